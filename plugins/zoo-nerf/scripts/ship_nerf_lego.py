"""Ship a trained fast NeRF as a catalog model (nerf-lego, nerf-lego-200).

    python plugins/zoo-nerf/scripts/ship_nerf_lego.py TRAINED_FOLDER --data ../shared/data/nerf/lego_tiny_80views.npz \
        --command "python bench/bench_nerf.py ..." [--name nerf-lego]

Measures the held-out PSNR (the psnr metric, all pixels of the 8 held-out views) of the float16 weights,
writes them with the metric into zoo_nerf/weights/NAME/ and the entry, with the sha256 of every file,
into catalog-entries.yaml (registry.yaml must carry the same entry; tests/test_loading.py checks).
"""

import argparse
import tempfile
from pathlib import Path

import torch
import yaml

import zoo
from zoo_core.loading import sha256_file
from zoo_core.plugins import get_metric

HERE = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument("--train-notes", default="")
    parser.add_argument("--name", default="nerf-lego", help="catalog name, also the folder under zoo_nerf/weights")
    args = parser.parse_args()
    torch.set_num_threads(2)
    target = HERE / "zoo_nerf" / "weights" / args.name
    with tempfile.TemporaryDirectory() as tmp:  # measure the float16 weights, i.e. what ships
        zoo.load(args.folder, device="cpu").save_pretrained(tmp, dtype=torch.float16)
        model = zoo.load(tmp, device="cpu")
    scores = get_metric("psnr").compute(model, data=args.data, out_dir=HERE / "scripts")
    measure = f"zoo eval {args.name} --metric psnr --data {args.data}"
    metrics = [{"name": "psnr", "value": round(scores["psnr"], 2), "dataset": "blender", "dataset_config": "lego",
                "split": "validation", "command": measure}]  # validation: views 72-79, held out from training
    model.save_pretrained(target, name=args.name, metrics=metrics, dataset="blender", license="cc-by-nc-4.0",
                          dtype=torch.float16)
    files = {p.name: sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()}
    entry = {
        "family": "nerf",
        "plugin": "zoo-nerf",
        "description": f"NeRF fast variant (hash grid + occupancy grid) of the lego scene, {model.config.width}x{model.config.height}, "
                       f"{model.config.background} background; trained on views 0-71",
        "config": {"variant": "fast", "background": model.config.background, "width": model.config.width, "height": model.config.height},
        "weights": {"package": "zoo_nerf", "path": f"weights/{args.name}", "sha256": files},
        "dataset": "blender",
        "license": "cc-by-nc-4.0",
        "train": {"lr": 0.01, "betas": [0.9, 0.99]},
        "metrics": [dict(m, notes=f"trained with: {args.command}. {args.train_notes}".strip()) for m in metrics],
        "tags": ["nerf", "renderer", "lego", "fast"],
    }
    entries_file = HERE / "catalog-entries.yaml"
    entries = yaml.safe_load(entries_file.read_text()) if entries_file.exists() else {"models": {}}
    entries["models"][args.name] = entry
    entries_file.write_text("# Catalog entries of zoo-nerf, written by scripts/ship_nerf_lego.py; registry.yaml carries the same "
                            "entries (tests/test_loading.py checks).\n" + yaml.safe_dump(entries, sort_keys=False, width=120))
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"held-out PSNR {scores['psnr']:.2f} dB (min view {scores['psnr_min']:.2f}); {size / 1e6:.2f} MB in {target}")


if __name__ == "__main__":
    main()
