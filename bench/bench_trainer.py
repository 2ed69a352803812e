"""The Accelerate trainer versus the plain trainer (a single-process PyTorch loop the project owns
and tests: bit-identical weights on the CPU), on the same model, data, batch and steps: what
Accelerate's wrapping costs per step.

Both sides share the zoo's loop (logging, the non-finite guard, EMA, checkpoints) and differ only
in the engine: Accelerate's prepare/accumulate/backward/DataLoaderShard versus plain calls. Sides
alternate within one process (fresh model each run, same seed), ROUNDS rounds each; the loop's
samples/s is TrainResult.samples_per_second (the optimizer loop, without the final checkpoint and
export), the wall time covers the whole fit() call. Two models: the ae-mnist recipe's network
(2.84M parameters, batch 512: compute-bound) and a tiny one (784-16-4, batch 16: overhead-bound).

    python bench/bench_trainer.py --data ../shared/data/mnist [--steps 30] [--tiny-steps 500] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

CASES = {  # label: (model config, train config, steps = the --steps option named here)
    "ae-mnist recipe (784-1000-500-250-30, batch 512)": ({}, {"batch_size": 512, "lr": 0.003, "ema_decay": 0.999,
                                                              "weight_decay": 0.1}, "steps"),
    "tiny (784-16-4, batch 16)": ({"hidden_widths": [16], "code_dim": 4}, {"batch_size": 16, "lr": 0.003}, "tiny_steps"),
}


def run(trainer_name, model_config, train_config, dataset, steps):
    import torch

    import zoo
    from zoo_core.config import TrainConfig

    torch.manual_seed(0)
    model = zoo.build("ae", model_config)
    train = TrainConfig(**train_config, steps=steps, log_every=steps, checkpoint_minutes=0)
    with tempfile.TemporaryDirectory() as out:
        trainer = zoo.trainer(trainer_name)(model, dataset, train, out_dir=out, progress=False, cpu=True)
        start = time.perf_counter()
        result = trainer.fit()
        wall = time.perf_counter() - start
    return result.samples_per_second, wall, result.last_losses["loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--steps", type=int, default=30, help="steps of the ae-mnist recipe's model")
    parser.add_argument("--tiny-steps", type=int, default=500, help="steps of the tiny model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from zoo_core.datasets import load_mnist

    torch.set_num_threads(args.threads)
    dataset = load_mnist(args.data, split="train", limit=max(512 * args.steps, 16 * args.tiny_steps))
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} steps (ae-mnist) and {args.tiny_steps} "
          f"(tiny), {args.rounds} rounds per side")
    print("| model | accelerate loop samples/s | plain loop samples/s | ratio plain/accelerate (loop) "
          "| accelerate fit() s | plain fit() s | overhead per step | same final loss |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, (model_config, train_config, steps_option) in CASES.items():
        results = {"accelerate": [], "plain": []}
        for _ in range(args.rounds):
            for side in results:  # alternate, so that both sides see the same machine load
                results[side].append(run(side, model_config, train_config, dataset, getattr(args, steps_option)))
        rate = {side: statistics.median(r[0] for r in runs) for side, runs in results.items()}
        wall = {side: statistics.median(r[1] for r in runs) for side, runs in results.items()}
        batch = train_config["batch_size"]
        overhead_ms = 1000 * batch * (1 / rate["accelerate"] - 1 / rate["plain"])
        same = {runs[0][2] for runs in results.values()}
        print(f"| {label} | {rate['accelerate']:.0f} | {rate['plain']:.0f} | {rate['plain'] / rate['accelerate']:.3f}x "
              f"| {wall['accelerate']:.2f} | {wall['plain']:.2f} | {overhead_ms:+.2f} ms | {'yes' if len(same) == 1 else same} |")


if __name__ == "__main__":
    main()
