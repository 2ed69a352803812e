"""``zoo ship``: publish trained weights inside a plugin package, with their catalog entry.

One command for what every plugin used to script by hand:

1. load the trained model (a ``save_pretrained`` folder, or a ``zoo train`` run folder);
2. measure the metrics (the same functions ``zoo eval`` runs, seeded);
3. save the weights in the chosen precision and load them back;
4. measure again and refuse to ship if a metric moved by more than ``--rtol``;
5. write the folder into ``PKG/weights/NAME`` (the card carries the metrics), and the entry, with
   the sha256 of every file, into the plugin's catalog fragment; print the entry.

Nothing is written unless every check passes.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

DTYPES = ("float32", "float16", "bfloat16")


class ShipError(Exception):
    """A reason not to ship, printed as one line by the CLI."""


def find_model_folder(path: Path) -> Path:
    """A ``save_pretrained`` folder, or the ``model/`` export inside a ``zoo train`` run folder."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise ShipError(f"{path} is neither a save_pretrained folder (config.json) nor a 'zoo train' run folder (model/)")


def recipe_config(source: Path, model) -> dict[str, Any]:
    """The entry's ``config:``, what ``zoo train NAME`` builds: for a ``zoo train`` run folder, the config
    its newest checkpoint trained, which can differ from the exported weights' (a GAN exports its
    generator only); otherwise the weights' own config. Defaults are left out."""
    from . import checkpoint as ckpt

    config = model.config
    newest = next((found for found in ckpt.scan(Path(source)) if found.problem is None), None)
    trained = (newest.manifest or {}).get("model_config") if newest is not None else None
    if trained is not None:
        config = type(model.config).model_validate(trained)
    return config.model_dump(mode="json", exclude_defaults=True)


def package_folder(package: str, override: Optional[Path] = None) -> Path:
    """The source folder of an importable package; refuses an ordinary site-packages install, where
    written files would be lost at the next install."""
    if override is not None:
        return Path(override)
    from importlib import resources

    try:
        folder = Path(str(resources.files(package)))
    except ModuleNotFoundError:
        raise ShipError(f"cannot import the package {package!r}; install your plugin (pip install -e DIR) first") from None
    if any(part in ("site-packages", "dist-packages") for part in folder.parts):
        raise ShipError(
            f"{package} is installed into {folder.parent} (a regular install), where shipped files would be lost; "
            f"install the plugin editable (pip install -e DIR) or pass --package-dir DIR/{package}"
        )
    return folder


def catalog_file(package_dir: Path, override: Optional[Path] = None) -> Path:
    """The plugin's catalog fragment: ``PKG/catalog.yaml``, else ``catalog-entries.yaml`` beside the package."""
    if override is not None:
        return Path(override)
    for candidate in (package_dir / "catalog.yaml", package_dir.parent / "catalog-entries.yaml"):
        if candidate.is_file():
            return candidate
    raise ShipError(f"no catalog fragment found ({package_dir / 'catalog.yaml'} or "
                    f"{package_dir.parent / 'catalog-entries.yaml'}); pass --catalog FILE")


def measure(model, metric_names: Sequence[str], *, data, options: dict, out_dir: Path) -> dict[str, dict[str, float]]:
    """metric name -> its values, each metric run with torch seeded to 0 (as ``zoo eval`` would)."""
    import torch

    from .plugins import get_metric

    results = {}
    for name in metric_names:
        spec = get_metric(name)
        if spec.families and model.family not in spec.families:
            raise ShipError(f"metric {name!r} applies to {', '.join(spec.families)}, not {model.family}")
        torch.manual_seed(0)
        values = spec.compute(model, data=data, out_dir=out_dir / name, **options)
        results[name] = {key: float(value) for key, value in values.items() if isinstance(value, (int, float))}
    return results


def compare(before: dict, after: dict, *, rtol: float, atol: float = 1e-6, keep: Sequence[str] = ()) -> list[str]:
    """The metric values (those in ``keep``, if given) that moved by more than rtol (relative) + atol."""
    moved = []
    for metric, values in before.items():
        for key, a in values.items():
            if keep and key not in keep:
                continue
            b = after[metric][key]
            if not (math.isfinite(a) and math.isfinite(b)) or abs(a - b) > atol + rtol * max(abs(a), abs(b)):
                moved.append(f"{key}: {a:.6g} before, {b:.6g} after saving")
    return moved


def metric_rows(name: str, values_by_metric: dict, *, data, options: dict, dataset, split, notes,
                keep: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The catalog's ``metrics:`` rows, each with the ``zoo eval`` command that re-measures it."""
    returned = {key for values in values_by_metric.values() for key in values}
    unknown = sorted(set(keep) - returned)
    if unknown:
        raise ShipError(f"--keep {', '.join(unknown)}: the metrics return no such value; they return "
                        f"{', '.join(sorted(returned))}")
    rows = []
    for metric, values in values_by_metric.items():
        command = f"zoo eval {name} --metric {metric}" + (f" --data {data}" if data else "")
        command += "".join(f" --option {k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items())
        for key, value in values.items():
            if keep and key not in keep or key.endswith("_stderr") and key[:-len("_stderr")] in values:
                continue  # NAME_stderr is the standard error of NAME: a field of its row, not a metric
            stderr = values.get(f"{key}_stderr")
            row = {"name": key, "value": float(f"{value:.6g}"), "stderr": None if stderr is None else float(f"{stderr:.3g}"),
                   "dataset": dataset, "split": split, "command": command, "notes": notes}
            rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def fragment_with(fragment: Path, name: str, entry: dict) -> str:
    """The text of the catalog fragment with ``name`` set to ``entry`` (its leading comment kept)."""
    import itertools

    import yaml

    from .catalog import CatalogFile

    old = fragment.read_text("utf-8") if fragment.is_file() else ""
    data = yaml.safe_load(old) or {}
    data = {"version": data.get("version", 1), **data, "models": {**(data.get("models") or {}), name: entry}}
    CatalogFile.model_validate(data)
    header = list(itertools.takewhile(lambda line: line.startswith("#"), old.splitlines()))
    return "\n".join(header + [yaml.safe_dump(data, sort_keys=False, width=120).rstrip()]) + "\n"


def ship(
    source: Path,
    *,
    name: str,
    package: str,
    dtype: str = "float32",
    metrics: Sequence[str] = (),
    data: Optional[str] = None,
    options: Optional[dict] = None,
    dataset: Optional[str] = None,
    description: str = "",
    license: Optional[str] = None,
    train: Optional[dict] = None,
    tags: Sequence[str] = (),
    notes: Optional[str] = None,
    keep: Sequence[str] = (),
    split: Optional[str] = None,
    rtol: float = 1e-2,
    package_dir: Optional[Path] = None,
    catalog: Optional[Path] = None,
    force: bool = False,
    log=print,
) -> dict[str, Any]:
    """Ship ``source`` as the catalog model ``name`` inside ``package``; returns the catalog entry."""
    import torch

    from . import loading
    from .plugins import family_distribution, get_family

    if dtype not in DTYPES:
        raise ShipError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    options = dict(options or {})
    folder = find_model_folder(source)
    pkg_dir = package_folder(package, package_dir)
    fragment = catalog_file(pkg_dir, catalog)
    target = pkg_dir / "weights" / name
    if target.exists() and not force:
        raise ShipError(f"{target} exists; shipped weights are not replaced unless you pass --force")

    model = loading.load(folder, device="cpu", dtype="float32")
    family = model.family
    dist = family_distribution(family)
    dataset = dataset or get_family(family).dataset
    with tempfile.TemporaryDirectory(prefix="zoo-ship-") as tmp:
        work = Path(tmp)
        before = measure(model, metrics, data=data, options=options, out_dir=work / "before")
        model.save_pretrained(work / "cast", dtype=getattr(torch, dtype))
        shipped = loading.load(work / "cast", device="cpu")
        after = measure(shipped, metrics, data=data, options=options, out_dir=work / "after")
        moved = compare(before, after, rtol=rtol, keep=keep)
        if moved:
            raise ShipError(f"the {dtype} weights do not reproduce the metrics (rtol {rtol}): {'; '.join(moved)}; "
                            "ship in a wider --dtype, raise --rtol if the metric is noisy, or --keep only the values "
                            "that measure the model (not timings)")
        for metric, values in after.items():
            log(f"{metric}: " + ", ".join(f"{k}={v:.6g} (before saving {before[metric][k]:.6g})" for k, v in values.items()))

        measured = metric_rows(name, after, data=data, options=options, dataset=dataset, split=split, notes=notes,
                               keep=keep)
        final = work / "final"
        shipped.save_pretrained(final, name=name, metrics=measured, dataset=dataset, license=license, dtype=getattr(torch, dtype))
        reloaded = loading.load(final, device="cpu")
        for key, value in shipped.state_dict().items():
            if not torch.equal(reloaded.state_dict()[key], value):
                raise ShipError(f"{key} changed between the measured and the written weights")
        files = {p.name: loading.sha256_file(p) for p in sorted(final.iterdir()) if p.is_file()}
        entry = {
            "family": family,
            "plugin": dist.name if dist else package.replace("_", "-"),
            "description": description,
            "config": recipe_config(source, shipped),
            "weights": {"package": package, "path": f"weights/{name}", "sha256": files},
            "dataset": dataset,
            "license": license,
            "train": dict(train or {}),
            "metrics": measured,
            "tags": list(tags),
        }
        entry = {k: v for k, v in entry.items() if v is not None}
        text = fragment_with(fragment, name, entry)  # validated before anything is written
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(final, target)
    fragment.write_text(text, "utf-8")
    from . import plugins

    plugins.reset()  # the next lookup reads the new entry
    log(f"wrote {target} ({sum(p.stat().st_size for p in target.iterdir()) / 1e6:.2f} MB) and {name} into {fragment}")
    return entry


def arguments(parser) -> None:
    parser.add_argument("source", metavar="RUN_OR_FOLDER", help="a 'zoo train' run folder or a save_pretrained folder")
    parser.add_argument("--name", required=True, help="catalog name, e.g. flow-mnist (also the folder under PKG/weights)")
    parser.add_argument("--package", required=True, metavar="PKG", help="the plugin's importable package, e.g. zoo_flow")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="precision of the shipped weights")
    parser.add_argument("--metric", action="append", default=[], metavar="M",
                        help="a registered metric to measure and check (repeatable); see 'zoo families'")
    parser.add_argument("--data", default=None, help="dataset folder or file the metrics read")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE", help="metric option, as in 'zoo eval'")
    parser.add_argument("--dataset", default=None, help="registered dataset name (default: the family's)")
    parser.add_argument("--description", default="", help="one paragraph for 'zoo list' and 'zoo info'")
    parser.add_argument("--license", default=None)
    parser.add_argument("--train", default=None, metavar="JSON",
                        help="the TrainConfig overrides that trained it, e.g. '{\"steps\": 2000}' (the catalog's train: block)")
    parser.add_argument("--tag", action="append", default=[], help="catalog tag (repeatable)")
    parser.add_argument("--keep", action="append", default=[], metavar="KEY",
                        help="catalogue and check only these metric values (repeatable; default: every value the metrics return)")
    parser.add_argument("--split", default=None, help="the data split the metrics read, recorded in the entry (e.g. test)")
    parser.add_argument("--notes", default=None, help="a note on every metric, e.g. how it was trained")
    parser.add_argument("--rtol", type=float, default=1e-2, help="largest relative change of a metric after saving (default 0.01)")
    parser.add_argument("--package-dir", type=Path, default=None, help="the package's source folder (default: where it imports from)")
    parser.add_argument("--catalog", type=Path, default=None, help="catalog fragment (default: PKG/catalog.yaml or ../catalog-entries.yaml)")
    parser.add_argument("--force", action="store_true", help="replace weights already shipped under NAME")


def run(args) -> int:
    import yaml

    from .cli import UserError, _parse_assignments

    train = None
    if args.train:
        try:
            train = json.loads(args.train)
        except json.JSONDecodeError as error:
            raise UserError(f"--train takes a JSON object, got {args.train!r} ({error})") from None
    try:
        entry = ship(
            Path(args.source), name=args.name, package=args.package, dtype=args.dtype, metrics=args.metric,
            data=args.data, options=_parse_assignments(args.option, "--option"), dataset=args.dataset,
            description=args.description, license=args.license, train=train, tags=args.tag, notes=args.notes,
            keep=args.keep, split=args.split,
            rtol=args.rtol, package_dir=args.package_dir, catalog=args.catalog, force=args.force,
        )
    except ShipError as error:
        raise UserError(str(error)) from None
    print("registry entry:")
    sys.stdout.write(yaml.safe_dump({args.name: entry}, sort_keys=False, width=120))
    return 0
