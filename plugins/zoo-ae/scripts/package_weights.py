"""Measure a trained autoencoder on the MNIST test set, ship it inside the package and write its catalog entry.

    python plugins/zoo-ae/scripts/package_weights.py ae-mnist --src runs/ae-mnist/model --data ../shared/data/mnist \
        --metrics recon pca-baseline contractive --train '{"steps": 2500, ...}' --description "..."

Steps: load ``--src`` (any save_pretrained folder), compute each metric on the 10,000 test images with the
same functions ``zoo eval NAME --metric M`` calls, save the model with those metrics in its card as float16
into ``zoo_ae/weights/NAME``, load it back and check that the reconstruction error is unchanged, then
write the entry (sha256 of every file, the metrics and the commands) into ``catalog-entries.yaml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

import zoo
from zoo_core.loading import sha256_file
from zoo_ae import metrics as ae_metrics

PLUGIN = Path(__file__).resolve().parents[1]
ENTRIES = PLUGIN / "catalog-entries.yaml"
FUNCTIONS = {
    "recon": ae_metrics.reconstruction_error,
    "pca-baseline": ae_metrics.pca_baseline,
    "sparsity": ae_metrics.sparsity,
    "contractive": ae_metrics.contractive,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--src", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--metrics", nargs="+", default=["recon"], choices=sorted(FUNCTIONS))
    parser.add_argument("--train", default="{}", help="the TrainConfig overrides that trained it (JSON)")
    parser.add_argument("--train-command", default=None, help="the command that trained it (goes into the notes)")
    parser.add_argument("--description", default="")
    parser.add_argument("--notes", default="{}", help='JSON {metric value name: note}, e.g. a comparison')
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = zoo.load(args.src, device="cpu")
    out_dir = Path("runs") / "eval" / args.name
    measured = []
    for metric in args.metrics:
        values = FUNCTIONS[metric](model, data=args.data, out_dir=out_dir)
        print(json.dumps({"metric": metric, **values}), flush=True)
        command = f"zoo eval {args.name} --metric {metric} --data ../shared/data/mnist"
        for key, value in values.items():
            if key in ("images", "components", "noise_std") or (key == "recon_error" and metric != "recon" and "recon" in args.metrics):
                continue
            measured.append({"name": key if metric != "recon" else "recon_error", "value": round(float(value), 4),
                             "dataset": "mnist", "split": "test", "command": command})

    for m in measured:
        if m["name"] in json.loads(args.notes):
            m["notes"] = json.loads(args.notes)[m["name"]]
    target = PLUGIN / "zoo_ae" / "weights" / args.name
    model.save_pretrained(target, metrics=measured, dataset="mnist", license="apache-2.0", dtype=torch.float16)
    extra = ["", "## Training and comparisons", "", args.description, ""]
    if args.train_command:
        extra += ["Trained with (CPU):", "", f"    {args.train_command}", ""]
    extra += [f"- {m['name']}: {m['notes']}" for m in measured if m.get("notes")]
    card = target / "README.md"
    card.write_text(card.read_text().rstrip("\n") + "\n" + "\n".join(extra).rstrip("\n") + "\n")
    shipped = zoo.load(target, device="cpu")
    check = ae_metrics.reconstruction_error(shipped, data=args.data)["recon_error"]
    before = next(m["value"] for m in measured if m["name"] == "recon_error") if "recon" in args.metrics else check
    print(json.dumps({"shipped_recon_error": check, "bytes": {p.name: p.stat().st_size for p in target.iterdir()}}))
    if abs(check - before) > 1e-3:
        raise SystemExit(f"the float16 copy reconstructs differently: {check} vs {before}")

    entries = yaml.safe_load(ENTRIES.read_text()) if ENTRIES.is_file() else {"version": 1, "models": {}}
    entry = {
        "family": shipped.family,
        "plugin": "zoo-ae",
        "description": args.description,
        "config": shipped.config.model_dump(mode="json", exclude_defaults=True),
        "weights": {"package": "zoo_ae", "path": f"weights/{args.name}",
                    "sha256": {p.name: sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()}},
        "dataset": "mnist",
        "license": "apache-2.0",
        "train": json.loads(args.train),
        "metrics": measured,
        "tags": ["autoencoder", "mnist", shipped.family],
    }
    notes = json.loads(args.notes)
    for m in entry["metrics"]:
        if m["name"] in notes:
            m["notes"] = notes[m["name"]]
    if args.train_command:
        first = entry["metrics"][0]
        first["notes"] = (first.get("notes", "") + f" Trained with: {args.train_command}").strip()
    entries["models"][args.name] = entry
    ENTRIES.write_text("# zoo-ae catalog entries, written by scripts/package_weights.py; registry.yaml carries the same entries (tests/test_loading.py checks).\n"
                       + yaml.safe_dump(entries, sort_keys=False, width=1000))
    print(f"wrote {args.name} into {ENTRIES}")


if __name__ == "__main__":
    main()
