"""Train an autoencoder family on MNIST with the core Trainer, then measure it on the test set.

The recipe that trained the shipped sparse and contractive autoencoders (their cards name the command);
``zoo train NAME`` runs the catalog's ``train:`` block the same way. E.g.

    python plugins/zoo-ae/scripts/train_ae.py ae --data ../shared/data/mnist --out runs/ae-mnist --threads 2 \
        --train '{"steps": 14040, "batch_size": 128, "lr": 0.001, "lr_schedule": "cosine", "warmup_steps": 200}'

It prints the training time and the test reconstruction error. Ship the result with
``zoo ship OUT --name NAME --package zoo_ae --dtype float16 --metric recon --data ../shared/data/mnist``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import zoo
from zoo_core.config import TrainConfig
from zoo_core.datasets import load_mnist
from zoo_core.trainer import Trainer
from zoo_ae import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=["ae", "sparse-ae", "contractive-ae"])
    parser.add_argument("--data", required=True, help="MNIST folder (the four IDX gz files)")
    parser.add_argument("--out", required=True, help="Trainer out_dir")
    parser.add_argument("--config", default="{}", help="config overrides, JSON")
    parser.add_argument("--train", default="{}", help="TrainConfig overrides, JSON")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--init", default=None, help="start from the weights of this save_pretrained folder (a warm restart)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = zoo.build(args.family, json.loads(args.config))
    if args.init:
        start_from = zoo.load(args.init, device="cpu")
        if start_from.config != model.config:
            raise SystemExit(f"--init {args.init} has config {start_from.config}, not {model.config}")
        model.load_state_dict(start_from.state_dict())
    train = TrainConfig(**{"log_every": 200, **json.loads(args.train)})
    dataset = load_mnist(args.data, split="train", limit=args.limit)
    start = time.perf_counter()
    result = Trainer(model, dataset, train, out_dir=args.out, progress=False).fit()
    wall = time.perf_counter() - start
    print(json.dumps({"train_seconds": round(result.seconds, 1), "wall_seconds": round(wall, 1),
                      "images_per_s": round(result.samples_per_second, 1), "epochs": result.steps * train.batch_size / len(dataset),
                      "last_losses": result.last_losses}))

    trained = zoo.load(result.export_dir, device="cpu")
    print(json.dumps({"recon_fp32": metrics.reconstruction_error(trained, data=args.data, out_dir=args.out)["recon_error"]}))


if __name__ == "__main__":
    main()
