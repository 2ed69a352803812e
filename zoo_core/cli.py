"""The ``zoo`` command line. User errors exit with status 2 and one line; ``ZOO_DEBUG=1`` shows tracebacks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence


class UserError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1 (samples, frames, frames per second)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


#: Keys a flag cannot set, because the command sets them: flag -> {key: what to do instead}.
_RESERVED_KEYS = {"--data-option": {"path": "give the data with --data", "split": "the command picks the split"}}


def _parse_assignments(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=[2,3]", "c=text"]`` -> values parsed as JSON where they parse, else strings."""
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{flag} takes KEY=VALUE, got {item!r}")
        if key in _RESERVED_KEYS.get(flag, {}):
            raise UserError(f"{flag} cannot set {key!r}: {_RESERVED_KEYS[flag][key]}")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


# -- commands -----------------------------------------------------------------------------------


def cmd_list(args) -> int:
    from . import listing

    live = sys.modules.get("zoo_core.catalog")
    # the last full read, when nothing it came from has changed; a catalog this process already
    # built (zoo.main called from Python after using the API) is the truth, so it wins
    snapshot = None if live is not None and live.loaded() else listing.load()
    if snapshot is None:
        from .catalog import catalog
        from .checks import catalog_problems
        from .plugins import family_distribution

        cat = catalog()
        errors = cat.errors + catalog_problems()
        listing.save(cat, errors)
        entries = {name: {"data": entry.model_dump(mode="json"), "source": entry.source,
                          "installed": family_distribution(entry.family) is not None}
                   for name, entry in cat.entries.items()}
    else:
        entries, errors = snapshot["entries"], snapshot["errors"]
    for error in errors:
        print(f"warning: {error.splitlines()[0]} (see 'zoo plugins')", file=sys.stderr)
    import fnmatch

    names = sorted(n for n in entries if not args.pattern or fnmatch.fnmatchcase(n, args.pattern))
    if args.json:
        print(json.dumps([{"name": n, **entries[n]["data"]} for n in names], indent=2))
        return 0
    if not names:
        print(f"no catalog models match {args.pattern!r}" if args.pattern else "the catalog is empty")
        return 0
    rows = [("NAME", "FAMILY", "PLUGIN", "METRICS", "SOURCE")]
    for name in names:
        entry = entries[name]
        data = entry["data"]
        metrics = ", ".join(f"{m['name']}={m['value']:.4g}" for m in data["metrics"][:2])
        plugin = data["plugin"] + ("" if entry["installed"] else " (not installed)")
        rows.append((name, data["family"], plugin, metrics, entry["source"]))
    _print_table(rows)
    return 0


def cmd_info(args) -> int:
    import yaml

    from .catalog import catalog, info
    from .hub import parse_repo_id

    if args.name not in catalog().entries and args.name not in catalog().conflicts:
        if Path(args.name).expanduser().is_dir():
            raise UserError(f"{args.name} is a folder; 'zoo info' shows catalog entries: see {args.name}/config.json "
                            f"and {args.name}/README.md, or load it with zoo.load({args.name!r})")
        if parse_repo_id(args.name) is not None:
            raise UserError(f"{args.name} is a Hub repo id; 'zoo info' shows catalog entries ('zoo list'). Its card "
                            f"is its README.md on the Hub; `zoo pull {args.name}` downloads it for zoo.load")
    print(yaml.safe_dump(info(args.name), sort_keys=False).rstrip())
    return 0


def cmd_plugins(args) -> int:
    from .catalog import catalog
    from .plugins import check_imports, plugin_records

    from .checks import catalog_problems

    records = check_imports() if args.check else plugin_records()
    catalog_errors = catalog().errors + catalog_problems()
    if args.json:
        print(json.dumps([
            {"name": r.name, "distribution": r.distribution.name, "version": r.distribution.version,
             "hooks": r.hooks, "registered": r.registered, "errors": r.errors} for r in records
        ] + ([{"catalog_errors": catalog_errors}] if catalog_errors else []), indent=2))
        return 1 if args.check and (catalog_errors or any(r.errors for r in records)) else 0
    for record in records:
        status = "ERROR" if record.errors else "ok"
        print(f"{record.distribution.name} {record.distribution.version}  [{record.name}]  {status}")
        if record.hooks:
            print(f"  hooks: {', '.join(record.hooks)}")
        if record.registered:
            print(f"  registered: {', '.join(record.registered)}")
        for error in record.errors:
            text = error if args.verbose else error.strip().splitlines()[0]
            print("  error: " + text.replace("\n", "\n    "))
    for error in catalog_errors:
        print("catalog error: " + error.replace("\n", "\n  "))
    if args.check:
        broken = sorted({r.distribution.name for r in records if r.errors})
        print(f"checked {len(records)} plugins: " + (f"problems in {', '.join(broken)}" if broken else "no problems"))
        return 1 if broken or catalog_errors else 0
    return 0


def _write_samples(model, path, *, num: int, seed: int, nrow: Optional[int] = None, **options) -> Path:
    """``num`` seeded samples of an image model, as one PNG grid. The generator is a CPU one, as
    diffusers does: families draw noise on it and move it, so a seed gives the same grid on every
    device (and a renderer never gets a CUDA generator it cannot use)."""
    import torch

    from .images import save_grid

    type(model).check_sampler_options(options)  # before any work: a typo fails at once
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        images = model.sample(num, generator=generator, **options)
    return save_grid(images.float().cpu(), path, nrow=nrow)


def _write_turntable(model, path, *, frames: int, width=None, height=None, fps: int = 15, depth: bool = False):
    """Render ``frames`` turntable views of a scene model into an animation (and depth maps), one
    frame at a time under a progress bar."""
    import torch

    from .images import save_animation
    from .progress import progress_bar

    cameras = model.turntable_cameras(frames, width=width, height=height)
    parts = []
    with torch.no_grad():
        for i in progress_bar(range(frames), desc=f"render {getattr(model, 'name_or_path', None) or model.family}",
                              unit="frame"):
            parts.append(model.render(cameras[i : i + 1]))
    out = {key: torch.cat([p[key] for p in parts]) for key in ("rgb", "depth")}
    written = [save_animation(out["rgb"].permute(0, 3, 1, 2), path, fps=fps)]
    if depth:
        d = out["depth"]
        d = (d - d.min()) / (d.max() - d.min()).clamp_min(1e-8)
        depth_path = Path(path).with_name(Path(path).stem + "-depth" + Path(path).suffix)
        written.append(save_animation(d[:, None].expand(-1, 3, -1, -1), depth_path, fps=fps))
    return written


def cmd_sample(args) -> int:
    from .loading import load

    model = load(args.name, device=args.device)
    if not model.samples_are_images:
        raise UserError(f"{args.name} does not sample images; see its family's docs")
    options = _parse_assignments(args.option, "--option")
    type(model).check_sampler_options(options)
    path = _write_samples(model, args.output, num=args.num, seed=args.seed, nrow=args.nrow, **options)
    print(f"wrote {args.num} samples to {path}")
    return 0


def cmd_train(args) -> int:
    from .catalog import catalog
    from .config import TrainConfig
    from .datasets import check_dataset_fits
    from .loading import _require_family, build, validate_config
    from .plugins import get_dataset, get_family, families, get_trainer

    trainer_spec = get_trainer(args.trainer)  # an unknown name fails before any data is read
    cat = catalog()
    config_overrides: dict[str, Any] = {}
    train_overrides: dict[str, Any] = {}
    export: dict[str, Any] = {}
    if args.target in cat.entries:
        entry = cat.get(args.target)
        _require_family(entry.family, entry.plugin, what=f"the catalog model {args.target!r}")
        family, dataset_name = entry.family, entry.dataset
        config_overrides, train_overrides = dict(entry.config), dict(entry.train)
        export = {"dataset": entry.dataset, "license": entry.license, "license_name": entry.license_name,
                  "license_link": entry.license_link, "name": args.target}
    elif args.target in families():
        family, dataset_name = args.target, None
    else:
        cat.get(args.target)  # UnknownModelError with suggestions
        return 2
    spec = get_family(family)
    dataset_name = args.dataset or dataset_name or spec.dataset
    if not dataset_name:
        raise UserError(f"the {family} family names no dataset; pass --dataset NAME")
    if args.resume and args.overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    config_overrides.update(_parse_assignments(args.set, "--set"))
    for flag in ("steps", "batch_size", "lr", "seed", "mixed_precision", "checkpoint_every", "checkpoint_minutes",
                 "grad_accum_steps"):
        value = getattr(args, flag)
        if value is not None:
            train_overrides[flag] = value
    train_overrides.update(_parse_assignments(args.train_set, "--train-set"))
    train = validate_config(TrainConfig, train_overrides, where="the training options")
    trainer_class = trainer_spec.trainer_class()
    from .trainer import TrainingInterrupted, seed_everything

    seed_everything(train.seed)  # the same initial weights in every process
    dataset = get_dataset(dataset_name).load(args.data, split="train", **_parse_assignments(args.data_option, "--data-option"))
    model = build(family, config_overrides)
    check_dataset_fits(model, dataset, dataset_name=dataset_name)
    out = Path(args.out or f"runs/{args.target}")
    trainer = trainer_class(model, dataset, train, out_dir=out, cpu=args.cpu or None, export=export,
                            overwrite=args.overwrite, resume_command=_resume_command(args),
                            **({"report_to": _trackers(args.report_to)} if args.report_to else {}))
    try:
        result = trainer.fit(resume="latest" if args.resume else None)
    except TrainingInterrupted as stop:
        if getattr(trainer, "is_main_process", True):
            print(f"zoo: {stop}", file=sys.stderr)
        return 128 + stop.signal
    if getattr(trainer, "is_main_process", True):
        print(f"trained {result.steps} steps in {result.seconds:.1f} s ({result.samples_per_second:.0f} samples/s); "
              f"final losses {json.dumps({k: round(v, 5) for k, v in result.last_losses.items()})}")
        print(f"exported to {result.export_dir}")
    return 0


def _trackers(value: str):
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names[0] if len(names) == 1 else names


def _resume_command(args) -> str:
    """The command line that continues this run: the same arguments, with --resume."""
    import shlex

    argv = [a for a in getattr(args, "argv", None) or [] if a != "--overwrite"]
    if "--resume" not in argv:
        argv.append("--resume")
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", args.out or f"runs/{args.target}"]
    command = "zoo " + shlex.join(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        command += "   (under the same launcher: torchrun / accelerate launch)"
    return command


def cmd_eval(args) -> int:
    from .loading import load
    from .plugins import get_metric

    options = _parse_assignments(args.option, "--option")
    specs = [get_metric(metric_name) for metric_name in args.metric]
    model = load(args.name, device=args.device)
    for metric_name, spec in zip(args.metric, specs):
        if spec.families and model.family not in spec.families:
            raise UserError(f"metric {metric_name!r} applies to {', '.join(spec.families)}, not {model.family}")
    # Every argument is checked: only now is the output folder made (default: one per model).
    out_dir = Path(args.out) if args.out else Path("eval") / _folder_name_for(args.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, float] = {}
    from .progress import progress_bar

    for metric_name, spec in zip(args.metric, progress_bar(specs, desc=f"eval {args.name}", unit="metric",
                                                            disable=len(specs) < 2)):
        values = spec.compute(model, data=args.data, out_dir=out_dir, **options)
        results.update(values)
        for key, value in values.items():
            print(f"{key}: {value:.6g}")
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out_dir / 'metrics.json'}")
    return 0


def cmd_push(args) -> int:
    from .hub import push_folder

    folder = Path(args.folder)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} is not a save_pretrained folder (no config.json)")
    url = push_folder(folder, args.repo_id, private=args.private, revision=args.branch,
                      commit_message=args.message, token=args.token, tag=args.tag, create_pr=args.create_pr)
    print(f"pushed {folder} to {args.repo_id}: {url}")
    return 0


def cmd_pull(args) -> int:
    from .hub import pull
    from .loading import resolved_source

    folder = pull(args.name, revision=args.revision)
    source = resolved_source(folder)
    if source and source.get("revision"):
        print(f"{args.name}: resolved {source['source']} to commit {source['revision']} ({source['converter']} "
              "format, converted)")
    elif folder.parent.name == "snapshots":  # a Hub cache folder is named by its commit
        print(f"{args.name}: resolved to commit {folder.name}")
    print(f"{args.name} is ready at {folder}")
    return 0


def cmd_convert(args) -> int:
    from .loading import convert

    out, converter, source, commit = convert(args.src, args.out, converter=args.format, revision=args.revision)
    print(f"converted {source}" + (f" at commit {commit}" if commit else "") + f" ({converter} format) into {out}")
    return 0


def cmd_render(args) -> int:
    from .loading import load
    from .renderer import Renderer

    model = load(args.name, device=args.device)
    if not isinstance(model, Renderer):
        raise UserError(f"{args.name} is a {model.family} model, which does not render scenes (try 'zoo sample')")
    width, height = _size(args.size)
    written = _write_turntable(model, args.output, frames=args.frames, width=width, height=height, fps=args.fps,
                               depth=args.depth)
    print(f"wrote {args.frames} frames to {written[0]}")
    if args.depth:
        print(f"wrote depth maps to {written[1]}")
    return 0


def cmd_demo(args) -> int:
    """Load every installed catalog model; write sample grids, and turntables for scene models, and
    an offline ``index.html`` gallery of them with their catalog metrics and what was skipped."""
    from .catalog import catalog, list_models
    from .errors import ZooError
    from .loading import load
    from .plugins import family_distribution
    from .progress import progress_bar
    from .renderer import Renderer

    cat = catalog()
    names = list_models(args.pattern)
    skipped = {n: f"its plugin {cat.entries[n].plugin} is not installed (pip install {cat.entries[n].plugin})"
               for n in names if not family_distribution(cat.entries[n].family)}
    names = [n for n in names if n not in skipped]
    if not names:
        raise UserError("no installed catalog model to run; 'zoo list' shows the catalog")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shown: dict[str, Path] = {}
    for name in progress_bar(names, desc="demo", unit="model"):
        try:  # offline: shipped weights or the cache; say what is skipped and why
            model = load(name, device=args.device, local_files_only=True)
        except (ZooError, OSError) as error:  # e.g. Hub weights that are not cached
            skipped[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"{name}: skipped: {skipped[name]}", flush=True)
            continue
        how = ""
        if isinstance(model, Renderer):
            path = _write_turntable(model, out / f"{name}-turntable.gif", frames=args.frames)[0]
        else:
            # the family's cheap sampler settings, as on the model cards (a DDPM: 20 strided steps, not 1000)
            preview = dict(getattr(model._family_spec(), "preview_options", None) or {})
            try:
                path = _write_samples(model, out / f"{name}.png", num=args.num, seed=0, **preview)
                how = f" ({', '.join(f'{k}={v}' for k, v in preview.items())}; 'zoo sample {name}' for the full sampler)" if preview else ""
            except (ValueError, TypeError):
                if not preview:
                    raise
                path = _write_samples(model, out / f"{name}.png", num=args.num, seed=0)  # they do not fit this config
        shown[name] = path
        print(f"{name}: wrote {path}{how}", flush=True)
    from .gallery import write_gallery

    index = write_gallery(out, {n: (shown[n], cat.entries[n]) for n in shown}, skipped)
    print(f"gallery: {index}")
    if not shown:
        raise UserError("every catalog model was skipped (see above)")
    return 0


def cmd_env(args) -> int:
    """Versions and devices, to paste into a bug report (like ``accelerate env``)."""
    from .envinfo import environment

    info = environment()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("Copy-and-paste the text below in your bug report.\n")
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"- {key}:")
            for sub_key, sub_value in value.items():
                print(f"\t- {sub_key}: {sub_value}")
        elif isinstance(value, list):
            print(f"- {key}: {', '.join(map(str, value)) or 'none'}")
        else:
            print(f"- {key}: {value}")
    return 0


def _folder_name_for(name: str) -> str:
    """A folder name for a model given as a catalog name, ``org/repo[@rev]`` or a local folder."""
    text = name.rstrip("/\\")
    if Path(text).expanduser().is_dir() or text.startswith((".", "/", "~")):
        return Path(text).expanduser().resolve().name or "model"
    return text.replace("/", "--").replace("@", "--") or "model"


def _size(text: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    if not text:
        return None, None
    try:
        width, _, height = text.lower().partition("x")
        return int(width), int(height or width)
    except ValueError:
        raise UserError(f"--size takes WIDTHxHEIGHT, e.g. 100x100, got {text!r}") from None


def _print_table(rows) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


# -- parser -------------------------------------------------------------------------------------


def build_parser(plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The ``zoo`` parser; ``plugin_commands=False`` leaves out the commands registered through
    ``zoo_register_commands`` (adding them loads every plugin, which a core command may not need)."""
    from . import __version__

    parser = _Parser(prog="zoo", description="A plugin-based zoo of generative models.")
    parser.add_argument("-V", "--version", action="version", version=f"zoo {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (also: TQDM_DISABLE=1)")
    quiet = argparse.ArgumentParser(add_help=False)  # every command takes --quiet after its name too
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars (also: TQDM_DISABLE=1)")
    sub = _QuietSubparsers(parser.add_subparsers(dest="command", metavar="COMMAND", required=True), quiet)

    p = sub.add_parser("list", help="list catalog models", description="List the catalog's models.")
    p.add_argument("pattern", nargs="?", help="shell wildcard, e.g. 'ae-*'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show one catalog entry", description="Show a catalog entry.")
    p.add_argument("name")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="list plugins and their errors", description="List installed plugins.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show full tracebacks of plugin errors")
    p.add_argument("--check", action="store_true",
                   help="also import every family's, dataset's and metric's code now; exit 1 if a plugin has errors")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("sample", help="write a grid of samples", description="Sample a model into a PNG grid.")
    p.add_argument("name", help="catalog name, org/repo[@rev] or folder")
    p.add_argument("-n", "--num", type=_count, default=16, help="number of samples (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="samples.png", help="PNG path (default samples.png)")
    p.add_argument("--nrow", type=_count, default=None, help="images per row")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="sampler option, e.g. num_inference_steps=50")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="train a catalog model or a family", description=(
        "Train a catalog model (its config and hyperparameters) or a family (its defaults). Runs on one "
        "process here, or many under 'accelerate launch' / 'torchrun'."))
    p.add_argument("target", metavar="NAME_OR_FAMILY")
    p.add_argument("--data", default=None, help="dataset folder or file (default: the usual location)")
    p.add_argument("--dataset", default=None, help="registered dataset name (default: the entry's or family's)")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE", help="dataset reader option")
    p.add_argument("--out", default=None, help="output folder (default runs/NAME)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--grad-accum-steps", dest="grad_accum_steps", type=int)
    p.add_argument("--mixed-precision", dest="mixed_precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, help="also checkpoint every N steps")
    p.add_argument("--checkpoint-minutes", dest="checkpoint_minutes", type=float,
                   help="checkpoint every this many minutes of training (default 10; 0: off)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model config override")
    p.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="any other TrainConfig field")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out (default: refuse)")
    p.add_argument("--trainer", default="accelerate", metavar="NAME",
                   help="training engine: accelerate (default) or plain (one process, no Accelerate); see 'zoo plugins'")
    p.add_argument("--report-to", dest="report_to", default=None, metavar="TRACKER",
                   help="also log to experiment trackers through Accelerate: tensorboard (pip install "
                        "'zoo-core[tensorboard]'), wandb, all, or a comma-separated list; into OUT/trackers")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="measure metrics", description="Compute metrics of a model.")
    p.add_argument("name")
    p.add_argument("--metric", action="append", required=True, help="metric name (repeatable); see 'zoo plugins'")
    p.add_argument("--data", default=None, help="dataset folder or file")
    p.add_argument("-o", "--out", default=None, help="folder for images and metrics.json (default eval/NAME)")
    p.add_argument("--device", default=None)
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="metric option; any other --KEY VALUE is one too (--k 5000 = --option k=5000)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("push", help="upload a saved model to the Hub", description="Push a save_pretrained folder.")
    p.add_argument("folder")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private (default: the owner's default)")
    p.add_argument("--create-pr", dest="create_pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--branch", default=None, help="branch to commit to (created if missing)")
    p.add_argument("--tag", default=None, help="tag the new commit (e.g. v1)")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("pull", help="download a model into the cache", description="Pre-download a model.")
    p.add_argument("name", help="catalog name or org/repo[@rev]")
    p.add_argument("--revision", default=None)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("convert", help="convert a foreign checkpoint into a zoo folder", description=(
        "Convert a checkpoint in another library's layout (a folder, or a Hub repo org/name[@revision]) into a "
        "zoo folder (config.json, model.safetensors, README.md naming the source). Converters come from plugins "
        "('zoo plugins' lists them; zoo-ddpm registers 'diffusers')."))
    p.add_argument("src", help="folder or org/name[@revision]")
    p.add_argument("out", help="new folder to write")
    p.add_argument("--format", default=None, help="converter name (default: the first that recognizes SRC)")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("demo", help="sample every catalog model into a folder", description=(
        "Load every installed catalog model (offline: shipped weights or the cache) and write sample grids, "
        "and turntables for scene models, into a folder. Grids use each family's cheap sampler settings, as "
        "the model cards do (a DDPM samples 20 strided steps); 'zoo sample NAME' runs the full sampler."))
    p.add_argument("-o", "--out", default="zoo-output", help="folder (default zoo-output)")
    p.add_argument("pattern", nargs="?", help="only models matching this wildcard")
    p.add_argument("-n", "--num", type=_count, default=64, help="samples per model (default 64)")
    p.add_argument("--frames", type=_count, default=24, help="turntable frames (default 24)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("render", help="render a scene turntable", description="Render a turntable of a scene model.")
    p.add_argument("name")
    p.add_argument("--frames", type=_count, default=60)
    p.add_argument("-o", "--output", default="turntable.gif")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the model's)")
    p.add_argument("--fps", type=_count, default=15)
    p.add_argument("--depth", action="store_true", help="also write depth maps")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("env", help="versions and devices, for bug reports", description=(
        "Print the versions of zoo, its plugins, torch, accelerate and huggingface_hub, and the devices."))
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_env)
    if plugin_commands:
        _add_registered_commands(sub)
    return parser


class _QuietSubparsers:
    """``add_parser`` that gives every command the shared ``--quiet`` option."""

    def __init__(self, action, quiet: argparse.ArgumentParser):
        self._action, self._quiet = action, quiet

    def add_parser(self, name: str, **kwargs):
        return self._action.add_parser(name, parents=[self._quiet], **kwargs)

    @property
    def choices(self):
        return self._action.choices


def _add_registered_commands(sub) -> None:
    """Subcommands registered through the ``zoo_register_commands`` hook (the core's own included).
    A name the core already uses, or a command whose arguments fail, is reported by ``zoo plugins``."""
    from .plugins import commands, plugin_records
    from .specs import import_object

    def report(registered, problem: str) -> None:
        for record in plugin_records():
            if record.distribution == registered.distribution and problem not in record.errors:
                record.errors.append(problem)

    for name, registered in commands().items():
        spec, owner = registered.spec, registered.distribution.name
        if name in sub.choices:
            report(registered, f"{owner} registers the command {name!r}, which the core already has; it is ignored")
            continue
        p = sub.add_parser(name, help=spec.help, description=spec.help)
        try:
            import_object(spec.arguments)(p)
        except Exception as error:  # a broken plugin command must not break the others
            problem = f"the command {name!r} of {owner} is broken ({type(error).__name__}: {error})"
            report(registered, problem)
            p.set_defaults(func=lambda args, problem=problem: _fail(problem + "; see 'zoo plugins'"))
            continue
        p.set_defaults(func=lambda args, run=spec.run: import_object(run)(args))


def _fail(problem: str) -> int:
    raise UserError(problem)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import PluginBrokenError, ZooError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    # `zoo list` must start fast: its parser leaves out the plugins' commands (adding them loads
    # every plugin). Every other command, and --help, gets them all.
    parser = build_parser(plugin_commands=command != "list")
    if command == "eval":
        args, extra = parser.parse_known_args(argv)
        args.option = (args.option or []) + _metric_option_flags(extra, parser)
    else:
        args = parser.parse_args(argv)
    args.argv = argv  # for 'zoo train', which prints how to resume
    if args.quiet:
        from .progress import set_quiet

        set_quiet(True)
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe raises here, not at exit
        return code
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo list --json | head -1`: the reader left; end quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as error:
        if os.environ.get("ZOO_DEBUG"):
            raise
        plugin = _plugin_at_fault(error)
        if isinstance(error, PluginBrokenError) or (plugin is not None and not _deliberate(error)):
            where = f" the plugin {plugin}" if plugin else " a plugin"
            message = str(error) if isinstance(error, ZooError) else f"{type(error).__name__}: {_first_line(error)}"
            print(f"zoo: error: bug in{where}, not a mistake in your command: {message} "
                  "(report it to the plugin's authors; ZOO_DEBUG=1 shows the traceback)", file=sys.stderr)
            return 1
        if not isinstance(error, (UserError, ZooError, FileNotFoundError, ValueError, KeyError, NotImplementedError)):
            raise
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        print(f"zoo: error: {message}", file=sys.stderr)
        return 2


def _metric_option_flags(extra: Sequence[str], parser) -> list[str]:
    """``zoo eval``'s other flags are metric options: ``--k 5000`` (or ``--k=5000``) is ``--option k=5000``."""
    options, rest = [], list(extra)
    while rest:
        flag = rest.pop(0)
        key, sep, value = flag[2:].partition("=")
        if not flag.startswith("--") or not key:
            parser.error(f"unrecognized arguments: {' '.join([flag, *rest])}")
        if not sep:
            if not rest or rest[0].startswith("--"):
                parser.error(f"{flag} needs a value: {flag} VALUE (a metric option, as --option {key}=VALUE)")
            value = rest.pop(0)
        options.append(f"{key.replace('-', '_')}={value}")
    return options


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _plugin_at_fault(error: BaseException) -> Optional[str]:
    """The plugin distribution ("zoo-vae 0.1.0") whose code is the innermost in the traceback, or None.

    ZooErrors and UserErrors are the zoo speaking on purpose: never a plugin's fault. Otherwise the
    innermost frame of a plugin's package (not the core's) names the plugin.
    """
    from .errors import PluginBrokenError, ZooError

    if isinstance(error, (ZooError, UserError)) and not isinstance(error, PluginBrokenError):
        return None
    try:
        from .plugins import state

        packages = {}
        for record in state().plugins.values():
            if record.module and record.distribution.name != "zoo-core":
                packages[record.module.split(".")[0]] = f"{record.distribution.name} {record.distribution.version}"
    except Exception:  # the report of an error must not fail in turn
        return None
    found = None
    tb = error.__traceback__
    while tb is not None:
        top = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        if top in packages:
            found = packages[top]
        tb = tb.tb_next
    return found


def _deliberate(error: BaseException) -> bool:
    """A ValueError, FileNotFoundError or NotImplementedError that a plugin raised with its own message
    (a ``raise`` statement in the plugin, e.g. "num_inference_steps must be between 1 and T") is the
    plugin telling the user about their input; one raised by a failing operation (``d[key]``,
    ``int(text)``, a library call) is a bug. KeyErrors and other types from a plugin are always bugs."""
    import linecache

    if not isinstance(error, (ValueError, FileNotFoundError, NotImplementedError)) or isinstance(error, KeyError):
        return False
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip()
    return line.startswith("raise ")


if __name__ == "__main__":
    sys.exit(main())
