"""Cursor pages over any table: cursors are resource ids, order is (sort column, n)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.errors import BadRequest
from orchestrator.store.records import Page, PageRequest, Row
from orchestrator.store.sqlite.db import Database


class Where:
    """The conditions of a listing; a filter whose value is not given (None, "", empty) is left out."""

    def __init__(self, *always: str) -> None:
        self.clauses: list[str] = list(always)
        self.params: list[Any] = []

    def eq(self, column: str, value: Any) -> Where:
        return self.sql(f"{column} = ?", value)

    def sql(self, clause: str, value: Any) -> Where:
        """`clause` with one `?` for `value`."""
        if value not in (None, ""):
            self.clauses.append(clause)
            self.params.append(value)
        return self

    def __str__(self) -> str:
        return " AND ".join(self.clauses) or "1 = 1"

    def among(self, column: str, values: Sequence[Any] | None, *, negate: bool = False) -> Where:
        if values:
            self.clauses.append(f"{column} {'NOT IN' if negate else 'IN'} ({','.join('?' * len(values))})")
            self.params += list(values)
        return self


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
        ref = await db.fetchone(f"SELECT {sort} AS s, n FROM {table} WHERE id = ?", (cursor_id,))
        if ref is None:
            raise BadRequest(f"Unknown cursor {cursor_id!r}.", code="invalid_cursor", details={"cursor": cursor_id})
        forward = bool(req.after)
        # Going "after" in desc order means smaller keys; "before" flips it.
        smaller = desc == forward
        op = "<" if smaller else ">"
        conds.append(f"({sort} {op} ? OR ({sort} = ? AND n {op} ?))")
        args += [ref["s"], ref["s"], ref["n"]]
    walk_desc = desc if not req.before else not desc
    direction = "DESC" if walk_desc else "ASC"
    sql = f"SELECT {columns} FROM {table}"
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    sql += f" ORDER BY {sort} {direction}, n {direction} LIMIT ?"
    rows = await db.fetchall(sql, [*args, req.limit + 1])
    more = len(rows) > req.limit
    rows = rows[: req.limit]
    if req.before:
        rows.reverse()
        before = rows[0]["id"] if more and rows else None
        after = rows[-1]["id"] if rows else None
        return Page(rows, before, after)
    after = rows[-1]["id"] if more and rows else None
    before = rows[0]["id"] if (req.after and rows) else None
    return Page(rows, before, after)
