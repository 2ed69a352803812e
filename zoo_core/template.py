"""``zoo plugin new NAME``: write a working plugin distribution from ``zoo_core/templates/plugin``.

The result installs (``pip install -e zoo-NAME``) and passes the conformance suite as generated;
the author then replaces the model in ``zoo_NAME/model.py``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

#: template file -> where it goes, relative to the distribution's folder
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "{package}/__init__.py",
    "plugin.py.tmpl": "{package}/plugin.py",
    "model.py.tmpl": "{package}/model.py",
    "catalog.yaml.tmpl": "{package}/catalog.yaml",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


def core_range() -> str:
    """The zoo-core versions a new plugin accepts: this minor series (0.x moves fast), or this major."""
    from . import __version__

    major, minor = (int(p) for p in __version__.split(".")[:2])
    return f">={major}.{minor},<{major}.{minor + 1}" if major == 0 else f">={major}.{minor},<{major + 1}"


def new_plugin(name: str, directory: Path, *, force: bool = False) -> Path:
    """Write the distribution ``zoo-NAME`` (family ``NAME``, package ``zoo_NAME``) into ``directory``."""
    from .errors import ZooError

    if not _NAME.match(name):
        raise ZooError(f"plugin name {name!r}: use lowercase letters, digits and single dashes, starting with a "
                       "letter (e.g. 'flow' or 'real-nvp'); it becomes the family name")
    from .plugins import families

    if name in families():
        raise ZooError(f"a family {name!r} is already installed ('zoo families {name}'); pick another name")
    package = "zoo_" + name.replace("-", "_")
    values = {
        "family": name,
        "dist": "zoo-" + name,
        "package": package,
        "entry_point": name.replace("-", "_"),
        "model": "".join(part.capitalize() for part in name.split("-")),
        "core_range": core_range(),
    }
    target = Path(directory) / values["dist"]
    if target.exists() and any(target.iterdir()) and not force:
        raise ZooError(f"{target} exists and is not empty; pick another --dir or pass --force to overwrite")
    source = resources.files("zoo_core.templates").joinpath("plugin")
    for template, destination in FILES.items():
        path = target / destination.format(package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(source.joinpath(template).read_text("utf-8")).substitute(values), "utf-8")
    return target


def arguments(parser) -> None:
    sub = parser.add_subparsers(dest="plugin_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("new", help="write a new plugin distribution", description=(
        "Write zoo-NAME/ (pyproject with the zoo entry point, plugin.py, model.py with a frozen config, "
        "catalog.yaml and a conformance test) that installs and passes the conformance suite as written."))
    p.add_argument("name", help="the family name, e.g. flow; the distribution is zoo-NAME")
    p.add_argument("--dir", default=".", help="parent folder (default: the current folder)")
    p.add_argument("--force", action="store_true", help="overwrite files in an existing folder")


def run(args) -> int:
    target = new_plugin(args.name, Path(args.dir), force=args.force)
    print(f"wrote {target}")
    print(f"next: pip install -e {target} && pytest {target}   (or: pytest --zoo-family {args.name})")
    return 0
