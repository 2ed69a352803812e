"""The core Trainer versus a bare hand-written PyTorch GAN loop, on the same networks, data, batch and
steps: what the Trainer costs a GAN per step (issue #13's target: under 5%).

Three sides, interleaved round by round in one process so that they share the machine's load:

* ``bare``: the loop one writes by hand around the same model: batches drawn by indexing the image
  tensor, Adam(0.5, 0.999) for D and for G (``zoo_core.optim.build_optimizer``'s, fused, as the trainers'), ``model.training_step(x, optimizer="discriminator")``,
  backward, step, then the same for ``"generator"`` (so both sides compute exactly the same losses:
  the family draws fresh noise for G's step), and an EMA of G's weights;
* ``accelerate``: ``zoo.trainer("accelerate")`` (the default ``zoo train`` engine) on the same model;
* ``plain``: ``zoo.trainer("plain")``.

The trainers' rate is ``TrainResult.samples_per_second`` (the optimizer loop, without the final
checkpoint and export, which the bare loop does not do); their EMA averages G only, as the bare loop's
does (the GAN's ``ema_exclude``: D neither samples nor exports). Each side starts from the same seeded
weights. Two models:
the gan-mnist recipe's DCGAN (spectral-norm D) and the MLP of the first gan-mnist.

    python bench/bench_gan.py --data ../shared/data/mnist [--steps 60] [--rounds 3] [--threads 1] [--only mlp|dcgan]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

CASES = {  # label: model config (batch 64, Adam 2e-4 (0.5, 0.999), EMA 0.999, as the recipes)
    "gan-mnist recipe (MLP 256-512-1024, 3.0M parameters)": {"architecture": "mlp", "latent_dim": 100, "hidden_dim": 256},
    "DCGAN 64, spectral-norm D (0.85M parameters)": {"architecture": "dcgan", "latent_dim": 64, "hidden_dim": 64,
                                                     "discriminator_norm": "spectral_norm", "discriminator_extra_convs": 1},
}
BATCH, LR, BETAS, EMA = 64, 2e-4, (0.5, 0.999), 0.999


def build(config):
    import torch

    import zoo

    torch.manual_seed(0)
    return zoo.build("gan", config)


def bare(config, images, steps: int) -> tuple[float, float]:
    """A hand-written GAN loop; returns (samples/s, final D loss)."""
    import torch

    from zoo_core.config import TrainConfig
    from zoo_core.optim import build_optimizer

    ADAM = TrainConfig(optimizer="adam", lr=LR, betas=BETAS)
    model = build(config).train()
    G, D = model.generator, model.discriminator
    opt_d = build_optimizer(D.parameters(), ADAM)  # the trainers' optimizer (fused Adam): the ratio is their own cost
    opt_g = build_optimizer(G.parameters(), ADAM)
    ema = [p.detach().clone() for p in G.parameters()]
    order = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        x = images[torch.randint(0, len(images), (BATCH,), generator=order)]
        loss_d = model.training_step(x, optimizer="discriminator")["loss"]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = model.training_step(x, optimizer="generator")["loss"]
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in G.parameters()], 1 - EMA)
    seconds = time.perf_counter() - start
    return steps * BATCH / seconds, float(loss_d.detach())


def trainer(name, config, dataset, steps: int) -> tuple[float, float]:
    import zoo
    from zoo_core.config import TrainConfig

    model = build(config)
    train = TrainConfig(steps=steps, batch_size=BATCH, optimizer="adam", lr=LR, betas=BETAS, ema_decay=EMA,
                        log_every=steps, checkpoint_minutes=0)
    with tempfile.TemporaryDirectory() as out:
        result = zoo.trainer(name)(model, dataset, train, out_dir=out, progress=False, cpu=True).fit()
    return result.samples_per_second, result.last_losses["discriminator/loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["mlp", "dcgan"], help="one of the two models")
    args = parser.parse_args()

    import os

    import torch

    from zoo_core.datasets import load_mnist

    torch.set_num_threads(args.threads)
    dataset = load_mnist(args.data, split="train", limit=50000)
    images = dataset.tensors()
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, {args.steps} steps, {args.rounds} "
          f"interleaved rounds per side; load average before: {os.getloadavg()[0]:.2f}")
    print("| model | bare loop samples/s | accelerate samples/s | plain samples/s | bare/accelerate | bare/plain |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, config in CASES.items():
        if args.only and config["architecture"] != args.only:
            continue
        rates = {"bare": [], "accelerate": [], "plain": []}
        for _ in range(args.rounds):
            rates["bare"].append(bare(config, images, args.steps)[0])
            for name in ("accelerate", "plain"):
                rates[name].append(trainer(name, config, dataset, args.steps)[0])
        median = {side: statistics.median(values) for side, values in rates.items()}
        print(f"| {label} | {median['bare']:.0f} | {median['accelerate']:.0f} | {median['plain']:.0f} | "
              f"{median['bare'] / median['accelerate']:.3f}x | {median['bare'] / median['plain']:.3f}x |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} (a ratio above 1: the Trainer is slower by that factor)")


if __name__ == "__main__":
    main()
