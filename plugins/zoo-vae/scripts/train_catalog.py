"""Train, evaluate and export the catalog model vae-mnist (CPU, one thread, a few minutes).

    python plugins/zoo-vae/scripts/train_catalog.py --data ../shared/data/mnist --out runs/vae-mnist

Writes the save_pretrained folder into zoo_vae/weights/vae-mnist/ and prints the catalog entry.
"""

import argparse
import json
import time
from pathlib import Path

import torch

import zoo
from zoo_core.datasets import load_mnist
from zoo_core.loading import sha256_file
from zoo_vae.metrics import elbo

NAME = "vae-mnist"
CONFIG = {"architecture": "mlp", "hidden_dim": 400, "latent_dim": 20, "likelihood": "bernoulli"}
TRAIN = {"steps": 20000, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "seed": 0, "log_every": 500}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=f"runs/{NAME}")
    parser.add_argument("--steps", type=int, default=TRAIN["steps"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = {**TRAIN, "steps": args.steps}
    model = zoo.build("vae", CONFIG)
    result = zoo.Trainer(model, load_mnist(args.data, "train"), zoo.TrainConfig(**train), out_dir=args.out,
                         progress=False).fit()
    print(f"trained {result.steps} steps in {result.seconds:.0f} s; last losses {result.last_losses}")
    weights = Path(__file__).resolve().parents[1] / "zoo_vae" / "weights" / NAME
    model = zoo.load(result.export_dir)
    model.save_pretrained(weights, dtype=torch.float16)
    model = zoo.load(weights)  # measure what ships (float16 weights)
    start = time.time()
    values = elbo(model, data=args.data, split="test")
    print(f"elbo metric in {time.time() - start:.0f} s: {values}")
    command = f"zoo eval {NAME} --metric elbo --data PATH/TO/mnist"
    metrics = [{"name": k, "value": round(v, 2), "dataset": "mnist", "split": "test", "command": command}
               for k, v in values.items()]
    model.save_pretrained(weights, metrics=metrics, dataset="mnist", license="CC-BY-SA-3.0", dtype=torch.float16)
    print(json.dumps({"seconds": result.seconds, "metrics": metrics,
                      "sha256": {p.name: sha256_file(p) for p in sorted(weights.iterdir())}}, indent=1))


if __name__ == "__main__":
    main()
