"""What a checkpoint costs, for the largest catalog recipe (ae-mnist: 2.84M parameters, AdamW, EMA),
to choose the default wall-clock checkpoint interval (TrainConfig.checkpoint_minutes).

Trains the recipe's model with its hyperparameters for a few steps (the accelerate trainer, MNIST),
then writes a checkpoint ROUNDS more times exactly as training does (weights, EMA, optimizer and
scheduler state, RNG, the sha256 manifest, fsync, rename, pruning), and prints the median time of
a checkpoint, of a training step, and the share of training time a checkpoint every N minutes costs.

    python bench/bench_checkpoint.py --data ../shared/data/mnist [--entry ae-mnist] [--steps 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--entry", default="ae-mnist")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    args = parser.parse_args()

    import torch

    import zoo
    from zoo_core.catalog import catalog
    from zoo_core.config import TrainConfig
    from zoo_core.plugins import get_dataset

    entry = catalog().get(args.entry)
    train = TrainConfig(**{**entry.train, "steps": args.steps, "checkpoint_minutes": 0, "log_every": args.steps})
    dataset = get_dataset(entry.dataset).load(args.data, split="train", limit=train.batch_size * args.steps)
    torch.manual_seed(0)
    model = zoo.build(entry.family, dict(entry.config))
    with tempfile.TemporaryDirectory() as out:
        trainer = zoo.trainer("accelerate")(model, dataset, train, out_dir=out, progress=False, cpu=True)
        result = trainer.fit()
        step_s = train.batch_size / result.samples_per_second
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            folder = trainer._save_checkpoint(trainer._progress.step)
            times.append(time.perf_counter() - start)
        size = sum(p.stat().st_size for p in folder.iterdir())
    checkpoint_s = statistics.median(times)
    print(f"{args.entry}: {model.num_parameters() / 1e6:.2f}M parameters, batch {train.batch_size}, "
          f"checkpoint {size / 1e6:.1f} MB, torch threads {torch.get_num_threads()}")
    print(f"checkpoint: median {checkpoint_s:.3f} s (min {min(times):.3f}, max {max(times):.3f}, {args.rounds} writes)")
    print(f"training step: {step_s:.3f} s ({result.samples_per_second:.0f} samples/s over {args.steps} steps)")
    print("| interval | checkpoint cost, share of training time |")
    print("| ---: | ---: |")
    for minutes in args.minutes:
        print(f"| {minutes:g} min | {100 * checkpoint_s / (60 * minutes + checkpoint_s):.3f} % |")


if __name__ == "__main__":
    main()
