"""Cursor pages over any table (the SQLite store's rules, with PostgreSQL's numbered parameters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.errors import BadRequest
from orchestrator.store.postgres.db import Database
from orchestrator.store.records import Page, PageRequest, Row


class Where:
    """The conditions of a listing; a filter whose value is not given (None, "", empty) is left out.
    Clauses are written with `{}` where their one parameter goes; it becomes `$n` in order."""

    def __init__(self, *always: str) -> None:
        self.clauses: list[str] = list(always)
        self.params: list[Any] = []

    def _next(self) -> str:
        return f"${len(self.params) + 1}"

    def eq(self, column: str, value: Any) -> Where:
        return self.sql(column + " = {}", value)

    def sql(self, clause: str, value: Any) -> Where:
        if value not in (None, ""):
            self.clauses.append(clause.format(self._next()))
            self.params.append(value)
        return self

    def among(self, column: str, values: Sequence[Any] | None, *, negate: bool = False) -> Where:
        if values:
            op = "<> ALL" if negate else "= ANY"
            self.clauses.append(f"{column} {op}({self._next()}::text[])")
            self.params.append(list(values))
        return self

    def __str__(self) -> str:
        return " AND ".join(self.clauses) or "true"


async def page(
    db: Database,
    table: str,
    where: Where,
    req: PageRequest,
    *,
    sort: str = "n",
    columns: str = "*",
) -> Page[Row]:
    """WorkOS-style: `after=X` → items strictly after X in the order; `before=X` → the items just before X."""
    if req.before and req.after:
        raise BadRequest("Pass either `before` or `after`, not both.", code="invalid_cursor")
    cursor_id = req.after or req.before
    conds, args = list(where.clauses), list(where.params)
    desc = req.order == "desc"
    if cursor_id:
        ref = await db.fetchone(f"SELECT {sort} AS s, n FROM {table} WHERE id = $1", cursor_id)
        if ref is None:
            raise BadRequest(f"Unknown cursor {cursor_id!r}.", code="invalid_cursor", details={"cursor": cursor_id})
        smaller = desc == bool(req.after)  # going "after" in desc order means smaller keys; "before" flips it
        op = "<" if smaller else ">"
        a, b = len(args) + 1, len(args) + 2
        conds.append(f"({sort} {op} ${a} OR ({sort} = ${a} AND n {op} ${b}))")
        args += [ref["s"], ref["n"]]
    direction = "DESC" if (desc if not req.before else not desc) else "ASC"
    sql = f"SELECT {columns} FROM {table}"
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    sql += f" ORDER BY {sort} {direction}, n {direction} LIMIT ${len(args) + 1}"
    rows = await db.fetchall(sql, *args, req.limit + 1)
    more = len(rows) > req.limit
    rows = rows[: req.limit]
    if req.before:
        rows.reverse()
        return Page(rows, rows[0]["id"] if more and rows else None, rows[-1]["id"] if rows else None)
    return Page(rows, rows[0]["id"] if (req.after and rows) else None, rows[-1]["id"] if more and rows else None)
