"""Test helpers: building and installing small plugin distributions for real (pip), running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST = SHARED_DATA / "mnist"


def write_distribution(root: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
    """Write the source of a plugin distribution ``name`` (a pyproject.toml and modules) under ``root``."""
    package = name.replace("-", "_")
    source = root / name
    (source / package).mkdir(parents=True, exist_ok=True)
    (source / package / "__init__.py").write_text("")
    for module, code in modules.items():
        (source / package / f"{module}.py").write_text(textwrap.dedent(code))
    eps = "\n".join(f'{key} = "{value}"' for key, value in entry_points.items())
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.0.1"

        [project.entry-points.zoo]
        """) + eps + f"\n\n[tool.setuptools]\npackages = [\"{package}\"]\n")
    return source


def pip_install(*args: str) -> None:
    """pip install into this interpreter's environment (or --target), offline, no build isolation."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", *args],
        check=True, capture_output=True, text=True,
    )


def run_zoo(*args: str, env: dict | None = None, check: bool = False, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed ``zoo`` console script."""
    full_env = {**os.environ, **(env or {})}
    zoo = Path(sys.executable).with_name("zoo")
    result = subprocess.run([str(zoo), *args], capture_output=True, text=True, env=full_env, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
