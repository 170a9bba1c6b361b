"""The import rules of DESIGN.md §2, enforced by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "orchestrator"
# Process entry points and the client are outside the server's layering.
AIOHTTP_OK = ("api", "engines.openai", "engines.openai_prompts", "client", "serve", "cli")


def _modules() -> list[tuple[str, set[str]]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        name = ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
        out.append((name, imported))
    return out


MODULES = _modules()


def _inside(module: str, *areas: str) -> bool:
    rel = module.removeprefix("orchestrator.")
    return any(rel == a or rel.startswith(a + ".") for a in areas)


@pytest.mark.parametrize(("module", "imports"), MODULES, ids=[m for m, _ in MODULES])
def test_import_rules(module: str, imports: set[str]) -> None:
    ours = {i for i in imports if i.startswith("orchestrator")}
    if _inside(module, "core"):
        assert all(_inside(i, "core", "errors", "ids") for i in ours), (module, ours)
    if _inside(module, "store"):
        assert all(_inside(i, "store", "core", "errors", "ids") for i in ours), (module, ours)
    if _inside(module, "engines"):
        assert not any(_inside(i, "store", "feed", "api", "runner") for i in ours), (module, ours)
    if any(i == "aiohttp" or i.startswith("aiohttp.") for i in imports):
        assert _inside(module, *AIOHTTP_OK), f"{module} imports aiohttp"
    if any(i == "aiosqlite" or i.startswith("aiosqlite.") for i in imports):
        assert _inside(module, "store"), f"{module} imports aiosqlite"


def test_modules_stay_small() -> None:
    big = {p.name: n for p in PKG.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not big, f"modules over 450 lines: {big}"
