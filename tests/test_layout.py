"""The boundaries of DESIGN.md §2, enforced by walking every module's imports, calls and string constants:

- `core` is pure: it imports only core, errors and ids, and nothing that does I/O;
- only `store` speaks SQL (database drivers, SQL statements) and `store` imports only core, errors, ids;
- only `api` imports aiohttp's server, and no route handler reaches the store (record types aside);
- only `runner` spawns tasks (the feed routes' per-connection readers and shutdown guard aside);
- `engines` never import the store, the feed, the API or the runner; `service` has no HTTP and no SQL;
- modules stay small.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "orchestrator"
IO_MODULES = (
    "asyncio",
    "anyio",
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "sqlite3",
    "socket",
    "subprocess",
    "os",
    "pathlib",
    "urllib",
    "http",
    "threading",
    "multiprocessing",
)
SQL_DRIVERS = ("sqlite3", "aiosqlite", "asyncpg", "psycopg")
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))\b", re.S)
SPAWNS = ("create_task", "create_task_group", "TaskGroup", "start_soon", "ensure_future", "gather", "open_process")
# Outside runner/, tasks only where a request owns them: a feed connection's reader of client frames and
# its shutdown guard live and die with that request.
SPAWN_OK = ("api.routes.feed",)
AIOHTTP_CLIENT_OK = ("api", "engines.openai", "cli")


@dataclass
class Module:
    name: str  # relative to the package: "store.sqlite.db"
    imports: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    strings: list[str] = field(default_factory=list)

    def inside(self, *areas: str) -> bool:
        return inside(self.name, *areas)


def inside(name: str, *areas: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in areas)


def _modules() -> list[Module]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = ".".join(path.relative_to(PKG).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__")
        mod = Module(rel or "__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mod.imports |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod.imports.add(node.module)
                mod.imports |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Call):
                fn = node.func
                mod.calls.add(fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else "")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                mod.strings.append(node.value)
        out.append(mod)
    return out


MODULES = _modules()


def ours(mod: Module) -> set[str]:
    return {i.removeprefix("orchestrator.") for i in mod.imports if i.startswith("orchestrator.")}


def top(name: str) -> str:
    return name.split(".", 1)[0]


@pytest.mark.parametrize("mod", MODULES, ids=[m.name for m in MODULES])
def test_boundaries(mod: Module) -> None:
    mine, theirs = ours(mod), {top(i) for i in mod.imports}
    if mod.inside("core"):
        assert all(inside(i, "core", "errors", "ids") for i in mine), mine
        assert not theirs & set(IO_MODULES), f"core does I/O: {theirs & set(IO_MODULES)}"
    if mod.inside("store"):
        assert all(inside(i, "store", "core", "errors", "ids") for i in mine), mine
    else:
        assert not theirs & set(SQL_DRIVERS), "a database driver outside store/"
        assert not [s for s in mod.strings if SQL.search(s)], "SQL outside store/"
    if any(inside(i, "aiohttp.web") or i.startswith("aiohttp.web_") for i in mod.imports):
        assert mod.inside("api"), "aiohttp's server outside api/"
    if "aiohttp" in theirs:
        assert mod.inside(*AIOHTTP_CLIENT_OK), "aiohttp outside api/, the openai engine and the CLI's client"
    if mod.inside("api.routes"):
        assert all(not inside(i, "store") or inside(i, "store.records") for i in mine), "a route imports the store"
    if mod.inside("engines"):
        assert not any(inside(i, "store", "feed", "api", "runner", "service") for i in mine), mine
    if mod.inside("service"):
        assert "aiohttp" not in theirs and not any(inside(i, "api") for i in mine), "HTTP in the service layer"
    if not mod.inside("runner", *SPAWN_OK):
        assert not mod.calls & set(SPAWNS), f"spawns tasks outside runner/: {mod.calls & set(SPAWNS)}"


def test_route_handlers_never_touch_the_store_through_the_app() -> None:
    """Not even through an object that holds one (`services.store.runs.get(...)`): a handler calls one
    service method (or, for the feed, the Feed)."""
    reach = re.compile(r"\bstore\.\w+\.\w+\(")
    for path in sorted((PKG / "api" / "routes").glob("*.py")):
        assert not reach.search(path.read_text(encoding="utf-8")), f"{path.name} reaches the store"


def test_the_rules_catch_what_they_forbid() -> None:
    """The walker sees imports, calls and SQL the rules are about (so a rule cannot pass vacuously)."""
    by_name = {m.name: m for m in MODULES}
    assert any(SQL.search(s) for s in by_name["store.sqlite.runs"].strings)
    assert "create_task_group" in by_name["runner.scheduler"].calls
    assert "aiohttp.web" in by_name["api.app"].imports
    assert "orchestrator.store.sqlite" in by_name["store"].imports


def test_modules_stay_small() -> None:
    big = {p.name: n for p in PKG.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not big, f"modules over 450 lines: {big}"
