"""What a wheel carries: every package, the SQL migrations, the demo, and the browser page (web/ shipped
as the package data `orchestrator._web`, so a plain install serves the page)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "orchestrator"
WEB = ROOT / "web"
# What a build reads from the checkout (pyproject's `readme` included).
BUILD_INPUTS = ("pyproject.toml", "README.md", "orchestrator", "web")


def _setuptools() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config: dict[str, Any] = tomllib.load(f)["tool"]["setuptools"]
    return config


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_the_packages_list_names_every_package_on_disk() -> None:
    """An explicit list (packages.find cannot be combined with package-dir): a new subpackage must be added."""
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    config = _setuptools()
    assert set(config["packages"]) == on_disk | {"orchestrator._web"}
    assert len(config["packages"]) == len(set(config["packages"]))
    assert config["package-dir"] == {"orchestrator._web": "web"}
    assert not (WEB / "__init__.py").exists(), "web/ is the plain page, not Python"


def test_a_built_wheel_carries_the_page_the_migrations_and_the_demo(tmp_path: Path) -> None:
    # Built from a copy, so no build/ or egg-info lands in the checkout (other runs may share it), with
    # the build backend pyproject declares, as `pip install` gets it.
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("orchestrator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "orchestrator/_web/index.html" in names
    page = {f"orchestrator/_web/{p.relative_to(WEB).as_posix()}" for p in _files(WEB)}
    assert page <= names, sorted(page - names)
    migrations = {p.relative_to(ROOT).as_posix() for p in (PKG / "store" / "sqlite" / "migrations").glob("*.sql")}
    assert migrations and migrations <= names, sorted(migrations - names)
    demo = {p.relative_to(ROOT).as_posix() for p in _files(PKG / "demo")}
    assert demo <= names, sorted(demo - names)
    modules = {p.relative_to(ROOT).as_posix() for p in PKG.rglob("*.py")}
    assert modules <= names, sorted(modules - names)
