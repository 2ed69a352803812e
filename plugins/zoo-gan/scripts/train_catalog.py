"""Train, evaluate and export the catalog model gan-mnist (CPU, one thread, several minutes).

    python plugins/zoo-gan/scripts/train_catalog.py --data ../shared/data/mnist --out runs/gan-mnist

Trains on the first 50,000 MNIST training images (the last 10,000 are the Parzen validation split),
writes the save_pretrained folder into zoo_gan/weights/gan-mnist/ and prints the catalog entry.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

import zoo
from zoo_core.datasets import load_mnist
from zoo_core.images import save_grid
from zoo_core.loading import sha256_file
from zoo_gan.metrics import parzen

NAME = "gan-mnist"
CONFIG = {"architecture": "mlp", "latent_dim": 100, "hidden_dim": 128, "generator_loss": "non_saturating"}
TRAIN = {"steps": 6000, "batch_size": 64, "lr": 2e-4, "betas": (0.5, 0.999), "seed": 0, "log_every": 250,
         "checkpoint_every": 1000, "keep_checkpoints": 6}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=f"runs/{NAME}")
    parser.add_argument("--steps", type=int, default=TRAIN["steps"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = {**TRAIN, "steps": args.steps}
    model = zoo.build("gan", CONFIG)
    dataset = Subset(load_mnist(args.data, "train"), range(50000))
    result = zoo.Trainer(model, dataset, zoo.TrainConfig(**train), out_dir=args.out, progress=False).fit()
    print(f"trained {result.steps} steps in {result.seconds:.0f} s; last losses {result.last_losses}")
    weights = Path(__file__).resolve().parents[1] / "zoo_gan" / "weights" / NAME
    model = zoo.load(result.export_dir)
    model.save_pretrained(weights, dtype=torch.float16)
    model = zoo.load(weights)  # measure what ships (float16 weights)
    save_grid(model.sample(64, generator=torch.Generator().manual_seed(0)), Path(args.out) / "samples.png")
    start = time.time()
    values = parzen(model, data=args.data)
    print(f"parzen metric in {time.time() - start:.0f} s: {values}")
    command = f"zoo eval {NAME} --metric parzen --data PATH/TO/mnist"
    metrics = [{"name": k, "value": round(v, 3), "dataset": "mnist", "split": "test", "command": command}
               for k, v in values.items()]
    model.save_pretrained(weights, metrics=metrics, dataset="mnist", license="CC-BY-SA-3.0", dtype=torch.float16)
    print(json.dumps({"seconds": result.seconds, "metrics": metrics,
                      "sha256": {p.name: sha256_file(p) for p in sorted(weights.iterdir())}}, indent=1))


if __name__ == "__main__":
    main()
