"""Time of one training step (forward, backward, the zoo's Adam) of Burda et al.'s two-stochastic-layer MNIST
VAE (784-200-200-100-100-100-50, tanh, exp sigma; 521,084 parameters) with the IWAE bound, batch --batch,
for each k in --k, in fp32 and under bf16 autocast; mean over --steps steps after 10 warm-up steps, on a
freshly built model and one random binary batch.

    python plugins/zoo-vae/scripts/two_layer_step_time.py --threads 2 --k 5 50
    python plugins/zoo-vae/scripts/two_layer_step_time.py --threads 1 --k 5 --fp32-only
"""

from __future__ import annotations

import argparse
import time

import torch

import zoo
from zoo_core.catalog import catalog
from zoo_core.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--fp32-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.bernoulli(torch.rand(args.batch, 1, 28, 28) * 0.3)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}")
    burda_two_layers = dict(catalog().entries["iwae-mnist-k5"].config)  # the catalog's config, built without data
    for k in args.k:
        for bf16 in (False,) if args.fp32_only else (False, True):
            torch.manual_seed(0)
            model = zoo.build("vae", {**burda_two_layers, "k": k})
            optimizer = model.configure_optimizers(TrainConfig(optimizer="adam", lr=1e-3, eps=1e-4))["main"]

            def step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = model.training_step(x)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            for _ in range(10):
                step()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            print(f"k={k} {'bf16' if bf16 else 'fp32'}: {(time.perf_counter() - start) / args.steps * 1000:.1f} ms/step")


if __name__ == "__main__":
    main()
