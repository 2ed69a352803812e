"""Where a training step's time goes: Burda et al.'s MNIST VAE at batch 20 on one CPU thread, the plain
trainer against a bare PyTorch loop (both with the zoo's fused Adam), each part timed inside the loop.

bench/bench_vae.py measures whole steps side by side; this script splits them, to show what the trainer
adds and what it costs: the batch fetch, forward, backward, the guard (check_gradients: the losses and
every gradient checked for NaN/inf; with --losses-only the losses alone), the optimizer, the learning-rate
schedule, zero_grad and the loss bookkeeping. Timers add ~0.1 us a part; a part's cost in the loop is not
its cost in isolation (the gradients are out of cache when the guard reads them, for one).

    python bench/vae_step_parts.py --data ../shared/data/mnist [--losses-only] [--steps 1500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

from bench_vae import PAPER  # the model bench_vae.py trains (this folder is on sys.path when run as a script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MNIST folder")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--losses-only", action="store_true", help="check_gradients=False for the trainer")
    args = parser.parse_args()

    import torch

    import zoo
    from zoo_core.config import TrainConfig
    from zoo_core.optim import build_optimizer
    from zoo_core.plugins import get_dataset
    from zoo_core.trainers.plain import PlainTrainer

    torch.set_num_threads(1)
    clock = time.perf_counter
    data = get_dataset("mnist-binarized").load(args.data, split="train", dynamic=False, limit=args.steps * 20)
    parts: dict[str, float] = defaultdict(float)

    class Timed(PlainTrainer):
        """The plain trainer's one-optimizer step, the same calls in the same order, with timers."""

        def _batches(self, epoch, skip):
            batches = super()._batches(epoch, skip)
            while True:
                start = clock()
                try:
                    item = next(batches)
                except StopIteration:
                    return
                parts["fetch"] += clock() - start
                yield item

        def _train_on_batch(self, batch, is_last, optimizers=None):
            (name, optimizer), = self._optimizers.items()
            scheduler = self._schedulers[0]
            t0 = clock()
            out = self._model.training_step(batch, optimizer=name)
            t1 = clock()
            out["loss"].backward()
            t2 = clock()
            params = [p for group in optimizer.param_groups for p in group["params"]]
            grads = [p.grad for p in params if p.grad is not None] if self.train.check_gradients else None
            allowed = self._allow_step(name, out, grads=grads)
            t3 = clock()
            if allowed:
                optimizer.step()
            t4 = clock()
            if allowed:
                scheduler.step()
            t5 = clock()
            optimizer.zero_grad(set_to_none=True)
            t6 = clock()
            losses = {key: value.detach() for key, value in out.items()}
            t7 = clock()
            for part, a, b in (("forward", t0, t1), ("backward", t1, t2), ("guard", t2, t3), ("optimizer", t3, t4),
                               ("schedule", t4, t5), ("zero_grad", t5, t6), ("losses", t6, t7)):
                parts[part] += b - a
            return losses, allowed

    def report(side: str, total: float) -> None:
        per_step = {part: seconds / args.steps * 1e6 for part, seconds in parts.items()}
        rest = total / args.steps * 1e6 - sum(per_step.values())
        cells = "  ".join(f"{part} {us:6.1f}" for part, us in {**per_step, "rest": rest}.items())
        print(f"{side:>13}: step {total / args.steps * 1e6:7.1f} us = {cells}")

    for _ in range(args.rounds):
        parts.clear()
        torch.manual_seed(0)
        model = zoo.build("vae", PAPER)
        train = TrainConfig(steps=args.steps, batch_size=20, lr=1e-3, optimizer="adam", eps=1e-4, log_every=args.steps,
                            checkpoint_minutes=0, check_gradients=not args.losses_only)
        with tempfile.TemporaryDirectory() as out_dir:
            result = Timed(model, data, train, out_dir=out_dir, progress=False, cpu=True).fit()
        report("zoo plain" + (" (losses)" if args.losses_only else ""), args.steps * 20 / result.samples_per_second)

        parts.clear()
        torch.manual_seed(0)
        model = zoo.build("vae", PAPER)
        optimizer = build_optimizer(model.parameters(), TrainConfig(optimizer="adam", lr=1e-3, eps=1e-4))
        images = data.get_batch(list(range(args.steps * 20)))
        order = torch.randperm(len(images))
        start = clock()
        for step in range(args.steps):  # bench_vae.py's bare loop
            t0 = clock()
            batch = images[order[step * 20 : (step + 1) * 20]]
            t1 = clock()
            loss = -model.elbo(batch)["elbo"].mean()
            t2 = clock()
            optimizer.zero_grad(set_to_none=True)
            t3 = clock()
            loss.backward()
            t4 = clock()
            optimizer.step()
            t5 = clock()
            for part, a, b in (("fetch", t0, t1), ("forward", t1, t2), ("zero_grad", t2, t3), ("backward", t3, t4),
                               ("optimizer", t4, t5)):
                parts[part] += b - a
        report("bare loop", clock() - start)


if __name__ == "__main__":
    main()
