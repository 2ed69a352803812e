"""Throughput of the same MLP autoencoder trained by pythae (0.1.2) and by zoo-ae, side by side.

Both sides train the *same* network (the paper's 784-1000-500-250-30 by default: identical nn modules,
built by zoo and wrapped in pythae's BaseEncoder/BaseDecoder), with the same loss (squared error
summed over pixels, averaged over the batch: pythae's AE loss; zoo-ae with loss="mse"), the same
optimizer (Adam, lr 1e-3; zoo's AdamW with weight_decay=0 is the same update), batch size, number of
optimizer steps and torch threads, on the same MNIST training images. Each side runs in its own
subprocess, one after the other, and reports
  * end-to-end images/s: steps * batch / wall time of its whole training call (pythae
    BaseTrainer.train(), zoo Trainer.fit(): data loading, logging, final save, and for zoo the fit of
    the code Gaussian; construction and imports excluded);
  * loop images/s: the steady state of the optimizer loop alone (zoo: TrainResult.samples_per_second;
    pythae: timed between its first and last on_train_step_end callbacks).

Setup (pythae pins nothing that conflicts with zoo, so one venv holds both):
    python3 -m venv /work/bench-venv-pythae
    /work/bench-venv-pythae/bin/pip install torch==2.13.0      # the local CPU build
    /work/bench-venv-pythae/bin/pip install pythae==0.1.2
    /work/bench-venv-pythae/bin/pip install -e /work/main -e /work/main/plugins/zoo-ae
Run (from the repo root):
    /work/bench-venv-pythae/bin/python bench/bench_ae_pythae.py --data ../shared/data/mnist \
        --steps 200 --batch-size 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def model_config(args) -> dict:
    return {"hidden_widths": args.widths, "code_dim": args.code_dim, "loss": "mse", "activation": args.activation}


def run_zoo(args) -> dict:
    import torch

    import zoo
    from zoo_core.config import TrainConfig
    from zoo_core.datasets import load_mnist
    from zoo_core.trainer import Trainer

    torch.set_num_threads(args.threads)
    dataset = load_mnist(args.data, split="train", limit=args.steps * args.batch_size)
    model = zoo.build("ae", model_config(args))
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, log_every=max(1, args.steps))
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(model, dataset, train, out_dir=out_dir, progress=False, cpu=True)
        start = time.perf_counter()
        result = trainer.fit()
        wall = time.perf_counter() - start
    return {"side": "zoo-ae", "steps": result.steps, "wall_s": wall, "loop_images_per_s": result.samples_per_second,
            "images_per_s": args.steps * args.batch_size / wall, "last_loss": result.last_losses["loss"]}


def run_pythae(args) -> dict:
    import torch
    from pythae.models import AE, AEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseEncoder

    import zoo
    from pythae_loop import sigmoid_decoder, timed_training
    from zoo_core.datasets import load_mnist

    torch.set_num_threads(args.threads)
    images = load_mnist(args.data, split="train", limit=args.steps * args.batch_size).tensors()
    twin = zoo.build("ae", model_config(args))  # the very same modules and initialization

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = twin.encoder

        def forward(self, x):
            return ModelOutput(embedding=self.net(x))

    model = AE(AEConfig(input_dim=(1, 28, 28), latent_dim=args.code_dim), encoder=Encoder(), decoder=sigmoid_decoder(twin.decoder))
    timed = timed_training(model, images, batch_size=args.batch_size, lr=args.lr)
    return {"side": "pythae", "steps": timed["steps"], "wall_s": timed["wall_s"], "loop_images_per_s": timed["loop_images_per_s"],
            "images_per_s": args.steps * args.batch_size / timed["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description="pythae AE vs zoo-ae training throughput")
    parser.add_argument("--data", required=True, help="MNIST folder")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="*", default=[1000, 500, 250])
    parser.add_argument("--code-dim", type=int, default=30)
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two sides this many times; best of each")
    parser.add_argument("--side", choices=["zoo", "pythae"], help=argparse.SUPPRESS)  # the subprocesses
    args = parser.parse_args()

    if args.side:
        print(json.dumps(run_zoo(args) if args.side == "zoo" else run_pythae(args)))
        return

    passthrough = [a for a in sys.argv[1:]]
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for side in ("pythae", "zoo"):
            done = subprocess.run([sys.executable, __file__, *passthrough, "--side", side], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"the {side} run failed:\n{done.stderr[-4000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(result))
            if side not in best or result["images_per_s"] > best[side]["images_per_s"]:
                best[side] = result
    widths = "-".join(str(w) for w in [784, *args.widths, args.code_dim])
    print(f"MLP AE {widths}, batch {args.batch_size}, Adam lr {args.lr}, {args.steps} steps, {args.threads} threads")
    for key in ("images_per_s", "loop_images_per_s"):
        zoo_rate, pythae_rate = best["zoo"][key], best["pythae"][key]
        print(f"{key:>18}: zoo-ae {zoo_rate:8.1f}  pythae {pythae_rate:8.1f}  ratio zoo/pythae {zoo_rate / pythae_rate:.2f}x")


if __name__ == "__main__":
    main()
