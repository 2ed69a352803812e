"""The wheels hold what the source tree holds. The suite runs on editable installs, which import from the
source tree and so hide a module or data file that the build leaves out: zoo_core.trainers was missing from
zoo-core's wheel (`zoo train` failed with "No module named 'zoo_core.trainers'") until a GPU machine installed
the zoo from wheels. Each distribution is built here as pip builds it for a user, and compared file by file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = [ROOT, *sorted(path.parent for path in (ROOT / "plugins").glob("*/pyproject.toml"))]
SKIPPED = {"__pycache__"}


def _source_files(distribution: Path) -> set[str]:
    """Every file a user's install needs: the packages' modules and data, as paths inside the wheel."""
    packages = [path.parent for path in distribution.glob("*/__init__.py")]
    files = set()
    for package in packages:
        for path in package.rglob("*"):
            if path.is_file() and not SKIPPED & set(path.relative_to(distribution).parts) and not path.suffix == ".pyc":
                files.add(path.relative_to(distribution).as_posix())
    return files


def _clean_copy(distribution: Path, into: Path) -> Path:
    """The distribution's metadata and packages without a build/ folder: setuptools builds into build/lib and
    keeps what an earlier build left there, which would hide a missing package from this test."""
    copy = into / distribution.name
    copy.mkdir()
    for path in distribution.iterdir():
        if path.is_file() and (path.name in ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in")
                               or path.name.startswith(("README", "LICENSE"))):
            shutil.copy2(path, copy / path.name)
        elif (path / "__init__.py").is_file():
            shutil.copytree(path, copy / path.name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[Path, set[str]]:
    out, sources = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("sources")
    copies = [_clean_copy(distribution, sources) for distribution in DISTRIBUTIONS]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--wheel-dir", str(out), *map(str, copies)], check=True, cwd=out)
    built = {}
    for wheel in out.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            built[wheel.name.split("-")[0]] = {name for name in archive.namelist() if ".dist-info/" not in name}
    return {distribution: built[_wheel_name(distribution)] for distribution in DISTRIBUTIONS}


def _wheel_name(distribution: Path) -> str:
    """The project name as a wheel's file name spells it (zoo-vae -> zoo_vae)."""
    return tomllib.loads((distribution / "pyproject.toml").read_text())["project"]["name"].replace("-", "_")


@pytest.mark.parametrize("distribution", DISTRIBUTIONS, ids=lambda path: path.name if path != ROOT else "zoo-core")
def test_the_wheel_holds_every_module_and_data_file_of_its_packages(wheels, distribution):
    expected = _source_files(distribution)
    assert any(name.endswith("__init__.py") for name in expected)
    missing = sorted(expected - wheels[distribution])
    assert not missing, f"{_wheel_name(distribution)}'s wheel lacks {missing[:10]}"


def test_the_core_wheel_has_its_trainers_catalog_and_plugin_template(wheels):
    core = wheels[ROOT]
    assert {"zoo_core/trainers/__init__.py", "zoo_core/registry.yaml", "zoo_core/templates/plugin/pyproject.toml.tmpl",
            "zoo/__init__.py"} <= core
    assert not any(name.startswith(("tests/", "plugins/", "scripts/")) for name in core)
