"""Rank every MNIST generator in the catalog on one scale: fid-mnist and the Parzen-window estimate.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/mnist_table.py                   # every MNIST entry, cached
    OMP_NUM_THREADS=1 .venv/bin/python scripts/mnist_table.py gan-mnist ddpm-mnist --force   # re-measure some
    .venv/bin/python scripts/mnist_table.py --readme README.md --catalog        # also rewrite the README's table
                                                                                # and the entries' metric rows

Every catalog entry whose dataset is mnist or an ``mnist-`` variant (mnist-binarized) is evaluated
(those of installed third-party plugins too), plus the real-data rows: 10,000 MNIST training images
in place of samples give the floor of fid-mnist and the ceiling of Parzen.
Each model draws 10,000 samples once (seed 0, batches of 1000: the same samples as `zoo eval NAME --metric fid-mnist` and `--metric parzen` with the same sampler
options) and both metrics are computed on them, on one thread. Results are cached in
scripts/mnist_table.json per model, weights sha256 and settings: rerunning measures only what is
new or changed. A family whose models cannot sample gets a row saying so. --catalog writes (or
replaces) each measured entry's fid_mnist and parzen_log_likelihood rows in registry.yaml and the
plugins' catalog-entries.yaml; then rewrite their cards with scripts/write_catalog_cards.py NAME...

Samplers: each model uses its family's default sampler, except where SAMPLER_OPTIONS (by model
name, then by family) or --sampler-option NAME:KEY=VALUE says otherwise; the table names the
sampler of each row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "scripts" / "mnist_table.json"
NUM_SAMPLES, SEED, BATCH = 10000, 0, 1000
# 1000 ancestral steps of ddpm-mnist cost ~12 ms per image and step on one shared core: 10,000 samples
# would take ~33 hours. The DDPM rows use DDIM (Song et al. 2021, eta 0) with 20 steps instead, the
# number of steps the ddpm family's own cheap preview takes (the sampling-time column says what it cost).
SAMPLER_OPTIONS = {"ddpm": {"sampler": "ddim", "num_inference_steps": 20}}
MARK_BEGIN, MARK_END = "<!-- mnist-table: begin -->", "<!-- mnist-table: end -->"


def set_num_samples(n: int) -> None:
    global NUM_SAMPLES
    NUM_SAMPLES = n


def mnist_entries() -> list[str]:
    import zoo
    from zoo_core.catalog import catalog

    return [name for name in zoo.list_models() if is_mnist(catalog().get(name).dataset)]


def is_mnist(dataset) -> bool:
    """MNIST or a variant registered under an ``mnist-`` name (``mnist-binarized``): the same images."""
    return dataset == "mnist" or str(dataset or "").startswith("mnist-")


def sampler_options(name: str) -> dict:
    from zoo_core.catalog import catalog

    return dict(SAMPLER_OPTIONS.get(name) or SAMPLER_OPTIONS.get(catalog().get(name).family) or {})


def weights_id(name: str) -> str:
    """What identifies the weights: the sha256 of model.safetensors in the catalog, or the Hub revision."""
    from zoo_core.catalog import catalog

    weights = catalog().get(name).weights
    sha = getattr(weights, "sha256", None) or {}
    return sha.get("model.safetensors") or f"{getattr(weights, 'repo', '?')}@{getattr(weights, 'revision', '?')}"


def classifier_id() -> str:
    from zoo_fid_mnist.classifier import WEIGHTS_SHA256

    return WEIGHTS_SHA256


def describe_sampler(family: str, options: dict) -> str:
    if not options:
        return "default"
    return ", ".join(f"{k}={v}" for k, v in options.items())


def measure_images(images, data) -> dict:
    from zoo_core.parzen import parzen_of_images
    from zoo_fid_mnist.metric import fid_mnist_of_images

    started = time.perf_counter()
    fid = fid_mnist_of_images(images, data=data)
    parzen = parzen_of_images(images, data=data)
    return {"fid_mnist": fid, **parzen, "metric_seconds": round(time.perf_counter() - started, 1)}


def measure_model(name: str, options: dict, data) -> dict:
    import torch

    import zoo
    from zoo_core.metrics import draw_samples

    model = zoo.load(name, device="cpu")
    row = {"family": model.family, "sampler": describe_sampler(model.family, options), "sampler_options": options}
    try:
        model.sample(1, generator=torch.Generator().manual_seed(0), **options)
    except NotImplementedError as error:
        return {**row, "cannot_sample": str(error) or f"the {model.family} family does not implement sample"}
    started = time.perf_counter()
    images = draw_samples(model, NUM_SAMPLES, seed=SEED, batch_size=BATCH, metric="the MNIST table", **options)
    row["sampling_seconds"] = round(time.perf_counter() - started, 1)
    return {**row, **measure_images(images, data)}


def real_rows(data) -> dict:
    from zoo_core.datasets import load_mnist

    train = load_mnist(data, split="train", limit=NUM_SAMPLES).tensors()
    return {"family": "data", "sampler": f"the first {NUM_SAMPLES:,} training images", **measure_images(train, data)}


def command(name: str, metric: str, options: dict) -> str:
    extra = "".join(f" --option {k}={v}" for k, v in options.items())
    return f"zoo eval {name} --metric {metric} --data ../shared/data/mnist{extra}"


def markdown(results: dict, names: list[str], keys: dict) -> str:
    """The ranking (by fid-mnist) of the entries ``names`` whose cached results match ``keys``."""
    rows = [(name, results[name]) for name in names if results.get(name, {}).get("key") == keys[name]]
    stale = [name for name in names if results.get(name, {}).get("key") != keys[name]]
    rows.append(("real MNIST training images", results["real-data"]))
    measured = sorted((r for r in rows if "fid_mnist" in r[1]), key=lambda r: r[1]["fid_mnist"])
    lines = ["| rank | model | family | sampler | fid-mnist ↓ | Parzen log-likelihood ↑ (nats ± s.e.) | σ | sampling time |",
             "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    rank = 0
    for name, r in measured:
        real = r["family"] == "data"
        rank += 0 if real else 1
        label = f"*{name}* (floor / ceiling)" if real else f"`{name}`"
        time_taken = "" if real else f"{r['sampling_seconds']:.1f} s"
        sampler = r["sampler"] if real else describe_sampler(r["family"], r["sampler_options"])
        lines.append(f"| {'' if real else rank} | {label} | {r['family']} | {sampler} | {r['fid_mnist']:.2f} | "
                     f"{r['parzen_log_likelihood']:.1f} ± {r['parzen_log_likelihood_stderr']:.1f} | "
                     f"{r['parzen_sigma']:.3f} | {time_taken} |")
    for name, r in rows:
        if "cannot_sample" in r:
            lines.append(f"| | `{name}` | {r['family']} | cannot sample: {r['cannot_sample']} | | | | |")
    for name in stale:
        lines.append(f"| | `{name}` | | not measured for its current weights: `python scripts/mnist_table.py {name}` | | | | |")
    return "\n".join(lines)


CATALOG_METRICS = ("fid_mnist", "parzen_log_likelihood")


def catalog_rows(name: str, r: dict, real: dict) -> list[dict]:
    """The entry's metric rows for its measured results ``r`` (``real``: the real-data row, for the notes)."""
    options = r["sampler_options"]
    sampler = f"; samples drawn with {describe_sampler(r['family'], options)}" if options else ""
    return [
        {"name": "fid_mnist", "value": round(r["fid_mnist"], 2), "dataset": "mnist", "split": "test",
         "command": r["commands"][0], "args": {"num_samples": NUM_SAMPLES, "seed": SEED, **options},
         "notes": f"Fréchet distance on the zoo-fid-mnist classifier's 128-d features, {NUM_SAMPLES:,} samples vs the "
                  f"10,000 test images{sampler}; real training images score {real['fid_mnist']:.2f} (the floor). NOT "
                  "comparable with Inception FIDs of papers. Ranking: python scripts/mnist_table.py"},
        {"name": "parzen_log_likelihood", "value": round(r["parzen_log_likelihood"], 2),
         "stderr": round(r["parzen_log_likelihood_stderr"], 2), "dataset": "mnist", "split": "test",
         "command": r["commands"][1],
         "args": {"sigma": round(r["parzen_sigma"], 4), "num_samples": NUM_SAMPLES, "seed": SEED, **options},
         "notes": f"nats per test image, Gaussian KDE on {NUM_SAMPLES:,} samples{sampler}, sigma chosen from 21 values "
                  "(0.05 to 0.5) on the last 1,000 training images; stderr over the 10,000 test images; real training "
                  f"images score {real['parzen_log_likelihood']:.1f} (the ceiling); GAN paper: 225 +- 2. A weak, "
                  "high-variance metric (Theis et al. 2016)"},
    ]


def flow(value) -> str:
    """One line of YAML flow style: plain words unquoted, other strings as JSON (which YAML reads)."""
    import re

    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value) and value not in ("true", "false", "null"):
        return value
    return json.dumps(value, ensure_ascii=False)


def update_catalog(name: str, rows: list[dict], root: Path = REPO) -> None:
    """Replace the entry's rows named in CATALOG_METRICS by ``rows`` (one flow-style line each, after its other
    metrics) in every catalog file that holds the entry, keeping the rest of each file as it is."""
    import re
    import textwrap

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sync_registry import entry_block

    for path in [root / "registry.yaml", *sorted(root.glob("plugins/*/catalog-entries.yaml"))]:
        text = path.read_text()
        try:
            start, end = entry_block(text, name)
        except ValueError:
            continue
        lines = text.splitlines(keepends=True)
        metrics = next((i for i in range(start, end) if lines[i] == "    metrics:\n"), None)
        if metrics is None:
            raise SystemExit(f"{path}: the entry {name} has no 'metrics:' list (add 'metrics:' to it, then rerun)")
        stop = next((i for i in range(metrics + 1, end) if re.match(r"^    \w", lines[i])), end)
        items: list[list[str]] = []  # each metric row with its continuation lines
        indent = None
        for line in lines[metrics + 1:stop]:
            match = re.match(r"^(\s*)- ", line)
            if match and (indent is None or len(match.group(1)) == indent):
                indent = len(match.group(1))
                items.append([line])
            elif items:
                items[-1].append(line)
        kept = [item for item in items if yaml.safe_load(textwrap.dedent("".join(item)))[0]["name"] not in CATALOG_METRICS]
        pad = " " * (indent if indent is not None else 6)
        new = [f"{pad}- {flow(row)}\n" for row in rows]
        lines[metrics + 1:stop] = [line for item in kept for line in item] + new
        text = "".join(lines)
        yaml.safe_load(text)  # still YAML
        path.write_text(text)
        print(f"{name}: wrote its fid_mnist and parzen rows in {path.relative_to(root)}")


def update_readme(path: Path, table: str) -> None:
    text = path.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        raise SystemExit(f"{path} has no {MARK_BEGIN} ... {MARK_END} block to replace")
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(f"{head}{MARK_BEGIN}\n{table}\n{MARK_END}{tail}")
    print(f"rewrote the table in {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="evaluate only these catalog entries (default: every MNIST entry)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist"), help="the MNIST folder")
    parser.add_argument("--results", default=str(RESULTS), help="the cache of results (JSON)")
    parser.add_argument("--force", action="store_true", help="re-measure the named entries even if cached")
    parser.add_argument("--sampler-option", action="append", default=[], metavar="NAME:KEY=VALUE",
                        help="a sampler option for one model, e.g. ddpm-mnist:num_inference_steps=250")
    parser.add_argument("--readme", default=None, help="also replace the table between the mnist-table marks in this file")
    parser.add_argument("--catalog", action="store_true",
                        help="write the measured entries' fid_mnist and parzen rows into the catalog files")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-samples", type=int, default=NUM_SAMPLES,
                        help=f"samples per model and real images (default {NUM_SAMPLES}, the protocol; fewer: a quick check)")
    args = parser.parse_args(argv)
    if args.catalog and args.num_samples != NUM_SAMPLES:
        raise SystemExit(f"--catalog records the protocol's numbers: leave --num-samples at {NUM_SAMPLES}")
    set_num_samples(args.num_samples)

    import torch

    torch.set_num_threads(args.threads)
    every = mnist_entries()
    unknown = sorted(set(args.names) - set(every))
    if unknown:
        raise SystemExit(f"not MNIST catalog entries: {', '.join(unknown)} (MNIST entries: {', '.join(every)})")
    overrides: dict[str, dict] = {}
    for item in args.sampler_option:
        name, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        try:
            overrides.setdefault(name, {})[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides.setdefault(name, {})[key] = value

    path = Path(args.results)
    results = json.loads(path.read_text()) if path.is_file() else {}
    settings = {"num_samples": NUM_SAMPLES, "seed": SEED, "batch_size": BATCH, "classifier": classifier_id()}
    todo = args.names or every
    keys = {name: {"weights": weights_id(name), "sampler_options": {**sampler_options(name), **overrides.get(name, {})},
                   **settings} for name in every}
    key = {"weights": "real", **settings}
    if results.get("real-data", {}).get("key") != key:
        print("real data: measuring", flush=True)
        results["real-data"] = {"key": key, **real_rows(args.data)}
        path.write_text(json.dumps(results, indent=2) + "\n")
    for name in todo:
        key = keys[name]
        options = key["sampler_options"]
        if not args.force and results.get(name, {}).get("key") == key:
            print(f"{name}: cached", flush=True)
            continue
        print(f"{name}: measuring ({describe_sampler('default', options)})", flush=True)
        results[name] = {"key": key, **measure_model(name, options, args.data)}
        results[name]["commands"] = [command(name, "fid-mnist", options), command(name, "parzen", options)]
        path.write_text(json.dumps(results, indent=2) + "\n")  # after each model: an interrupted run keeps its work
        print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'key'})}", flush=True)
    table = markdown(results, every, keys)
    print(table)
    if args.readme:
        update_readme(Path(args.readme), table)
    if args.catalog:
        for name in todo:
            r = results.get(name, {})
            if r.get("key") == keys[name] and "fid_mnist" in r:
                update_catalog(name, catalog_rows(name, r, results["real-data"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
