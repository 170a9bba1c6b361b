"""README's `orchestrator import` example works as printed: its invoices come from the package (the
README's own snippet copies them), the file imports, and every eval in it passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Server, clean_env, cli

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(lang: str, first_line: str) -> str:
    blocks: list[str] = re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if b.startswith(first_line))


def test_the_import_example_imports_and_passes(bare_server: Server, tmp_path: Path) -> None:
    copy = readme_block("bash", "mkdir -p evals/invoices")
    (tmp_path / "evals" / "invoices").mkdir(parents=True)
    snippet = re.search(r'-c "(.*?)"', copy, re.S)
    assert snippet, copy
    subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=tmp_path, check=True, env=clean_env())
    assert len(list((tmp_path / "evals" / "invoices").glob("inv-*.txt"))) == 20
    (tmp_path / "evals" / "invoices.yaml").write_text(readme_block("yaml", "# evals/invoices.yaml"))

    imported = cli("import", str(tmp_path / "evals" / "invoices.yaml"), server=bare_server)
    assert imported.code == 0, imported
    ran = cli("run", "eval", "--workflow", "Invoice extraction", "--json", server=bare_server)
    assert ran.code == 0, ran
    assert ran.json()["counts"]["passed"] == 4
