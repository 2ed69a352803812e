"""Train, evaluate and export a catalog DDPM (CPU, one thread).

    python plugins/zoo-ddpm/scripts/train_catalog.py ddpm-mnist --data ../shared/data/mnist --out runs/ddpm-mnist
    python plugins/zoo-ddpm/scripts/train_catalog.py ddpm-cifar-tiny --data ../shared/data/cifar10 --out runs/ddpm-cifar-tiny

--measure-only re-measures the shipped weights (after a change of the metric) and rewrites their card.

ddpm-mnist trains on the MNIST training split and is measured on the test split; ddpm-cifar-tiny trains on
the first 9,000 images of the shared CIFAR-10 (test-split, JPEG) npz and is measured on the last 1,000.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

import zoo
from zoo_core.datasets import load_cifar10_npz, load_mnist
from zoo_core.images import save_grid
from zoo_core.loading import sha256_file
from zoo_ddpm.metrics import ddpm_loss

MODELS = {
    "ddpm-mnist": {
        "dataset": "mnist",
        "config": {"image_channels": 1, "image_size": 28, "base_channels": 16, "channel_mults": [1, 2, 2],
                   "num_res_blocks": 1, "attention_resolutions": [7], "norm_groups": 8},
        "train": {"steps": 1000, "batch_size": 32, "lr": 2e-3, "warmup_steps": 50, "lr_schedule": "cosine",
                  "ema_decay": 0.99, "max_grad_norm": 1.0, "seed": 0, "log_every": 50, "checkpoint_every": 250},
    },
    "ddpm-cifar-tiny": {
        "dataset": "cifar10",
        "config": {"image_channels": 3, "image_size": 32, "base_channels": 16, "channel_mults": [1, 2, 2],
                   "num_res_blocks": 1, "attention_resolutions": [8], "norm_groups": 8},
        "train": {"steps": 1000, "batch_size": 32, "lr": 2e-3, "warmup_steps": 50, "lr_schedule": "cosine",
                  "ema_decay": 0.99, "max_grad_norm": 1.0, "seed": 0, "log_every": 50, "checkpoint_every": 250},
    },
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--measure-only", action="store_true", help="skip training: measure the shipped weights")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = MODELS[args.name]
    train = {**spec["train"], **({"steps": args.steps} if args.steps else {})}
    if spec["dataset"] == "mnist":
        dataset, license = load_mnist(args.data, "train"), {"license": "cc-by-sa-3.0"}
    else:
        dataset, license = Subset(load_cifar10_npz(args.data), range(9000)), {"license": "other", "license_name": "cifar-10", "license_link": "https://www.cs.toronto.edu/~kriz/cifar.html"}
    weights = Path(__file__).resolve().parents[1] / "zoo_ddpm" / "weights" / args.name
    seconds = None
    if not args.measure_only:
        model = zoo.build("ddpm", spec["config"])
        result = zoo.Trainer(model, dataset, zoo.TrainConfig(**train), out_dir=args.out, progress=False).fit(resume="latest")
        print(f"trained {result.steps} steps in {result.seconds:.0f} s; last losses {result.last_losses}", flush=True)
        seconds = result.seconds
        model = zoo.load(result.export_dir)
        model.save_pretrained(weights, dtype=torch.float16)
    model = zoo.load(weights, device="cpu")  # measure what ships (float16 weights)
    if not args.measure_only:
        start = time.time()
        save_grid(model.sample(64, generator=torch.Generator().manual_seed(0), num_inference_steps=100), Path(args.out) / "samples_100.png")
        print(f"64 samples, 100 strided steps: {time.time() - start:.0f} s", flush=True)
    start = time.time()
    values = ddpm_loss(model, data=args.data)
    print(f"ddpm_loss metric in {time.time() - start:.0f} s: {values}", flush=True)
    command = f"zoo eval {args.name} --metric ddpm_loss --data PATH/TO/{spec['dataset']}"
    split = "test"  # CIFAR-10: images 9000-9999 of the test npz, held out from training (the notes say so)
    metrics = [{"name": k, "value": round(v, 4), "dataset": spec["dataset"], "split": split, "command": command}
               | ({"stderr": round(values[f"{k}_stderr"], 4)} if f"{k}_stderr" in values else {})
               for k, v in values.items() if not k.endswith("_stderr")]
    model.save_pretrained(weights, metrics=metrics, dataset=spec["dataset"], **license, dtype=torch.float16)
    print(json.dumps({"seconds": seconds, "train": train, "config": spec["config"], "metrics": metrics,
                      "sha256": {p.name: sha256_file(p) for p in sorted(weights.iterdir())}}, indent=1))


if __name__ == "__main__":
    main()
