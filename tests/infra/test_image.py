"""infra/Dockerfile, read as text (no Docker engine here to build it), and what its wheel will hold."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "infra" / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(keyword: str) -> list[str]:
    return re.findall(rf"^{keyword} (.+)$", DOCKERFILE, flags=re.MULTILINE)


def glob_matches(parts: tuple[str, ...], pattern: str) -> bool:
    """setuptools' package-data globbing: one ``*`` never crosses a folder."""
    wanted = pattern.split("/")
    assert "**" not in wanted, "a recursive pattern: teach this test about it"
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted))


def test_the_image_is_built_on_python_3_11_slim_and_runs_as_an_unprivileged_user() -> None:
    assert all(base.startswith("python:3.11-slim") for base in instructions("FROM"))
    assert instructions("USER")[-1] not in ("root", "0")
    assert "useradd --system" in DOCKERFILE
    # The compiler and headers stay in the build stage; the image that runs has none.
    run_stage = DOCKERFILE.split("\nFROM ")[-1]
    assert "gcc" not in run_stage and "-dev" not in run_stage
    assert "--no-index --find-links=/wheels till-ledger" in run_stage


def test_the_image_copies_every_package_the_project_installs() -> None:
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {line.split()[0] for line in instructions("COPY") if not line.startswith("--from")}
    assert packages <= copied


def test_every_file_the_packages_read_at_run_time_ships_in_the_wheel() -> None:
    """A wheel (the image) holds only the .py files unless package-data names the others: the pages'
    templates and styles would be missing from the image, though present in a development checkout."""
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    roots = [pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    unshipped = []
    for root in roots:
        for path in (ROOT / root).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT).parts
            shipped = any(relative[:len(package.split("."))] == tuple(package.split("."))
                          and glob_matches(relative[len(package.split(".")):], pattern)
                          for package, patterns in package_data.items() for pattern in patterns)
            if not shipped:
                unshipped.append("/".join(relative))
    assert unshipped == []
