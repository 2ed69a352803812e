"""Parzen log-likelihood of the checkpoints of a ``zoo train`` GAN run: the curve behind the catalog numbers.

For each checkpoint (``RUN/checkpoints/step_*``), load the generator (the EMA's weights when the run
kept an EMA, else the raw ones) and measure ``zoo_gan.metrics.parzen``: ``--samples`` samples,
sigma chosen on the last 1,000 MNIST training images (held out by ``--data-option limit=50000``),
the mean log-density of the test images with its standard error over the test images (the core's
``parzen`` metric, as ``zoo eval NAME --metric parzen`` computes it). Appends one JSON line per
checkpoint to ``RUN/parzen.jsonl`` and skips steps already there.

    python plugins/zoo-gan/scripts/parzen_curve.py runs/gan-mnist --data ../shared/data/mnist [--samples 10000] [--test-limit N]
    python plugins/zoo-gan/scripts/parzen_curve.py runs/gan-mnist --data ../shared/data/mnist --fid
    python plugins/zoo-gan/scripts/parzen_curve.py --real --data ../shared/data/mnist   # the ceiling: real images as the samples
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def generator_at(checkpoint: Path, config: dict, raw: bool = False):
    """The GAN of ``config`` with the weights of ``checkpoint`` (its EMA unless ``raw``)."""
    import torch
    from safetensors.torch import load_file

    import zoo

    model = zoo.build("gan", config)
    ema = checkpoint / "ema.safetensors"
    if ema.is_file() and not raw:
        state = {k.removeprefix("module."): v for k, v in load_file(ema).items() if k.startswith("module.")}
    else:
        state = load_file(checkpoint / "model.safetensors")
    model.load_state_dict(state)
    return model.eval().requires_grad_(False).to(torch.float32)


def parzen_with_error(model, data, num_samples: int, test_limit) -> dict[str, float]:
    """The core ``parzen`` metric (``zoo eval --metric parzen``): the same samples, sigma and standard error."""
    from zoo_core.parzen import parzen

    result = parzen(model, data=data, num_samples=num_samples, test_limit=test_limit)
    result["parzen_standard_error"] = result.pop("parzen_log_likelihood_stderr")
    return result


def fid_mnist(model, data, num_samples: int) -> dict[str, float]:
    """The zoo-fid-mnist metric (``zoo eval --metric fid-mnist``): the same samples and test images."""
    from zoo_fid_mnist.metric import fid_mnist as metric

    return metric(model, data=data, num_samples=num_samples)


def real_images(data, num_samples: int, test_limit) -> dict[str, float]:
    """The ceiling: the first training images in place of samples."""
    from zoo_core.datasets import load_mnist
    from zoo_core.parzen import parzen_of_images

    result = parzen_of_images(load_mnist(data, split="train", limit=num_samples).tensors(), data=data, test_limit=test_limit)
    result["parzen_standard_error"] = result.pop("parzen_log_likelihood_stderr")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("--real", action="store_true", help="score the first training images instead of a run (the ceiling)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--test-limit", type=int, default=None, help="only the first N test images (exploring)")
    parser.add_argument("--raw", action="store_true", help="the raw weights, not the EMA's")
    parser.add_argument("--fid", action="store_true", help="fid-mnist instead of Parzen (RUN/fid-mnist.jsonl)")
    parser.add_argument("--every", type=int, default=1, help="only every N-th checkpoint step (by 'step' value / N)")
    args = parser.parse_args()

    import torch

    from zoo_core.progress import set_quiet

    set_quiet(True)
    torch.set_num_threads(1)
    if args.real:
        result = real_images(args.data, args.samples, args.test_limit)
        print(json.dumps({"samples": f"the first {args.samples} MNIST training images", **result}))
        return
    out = args.run / (("fid-mnist" if args.fid else "parzen") + ("-raw" if args.raw else "") + ".jsonl")
    done = set()
    if out.is_file():
        done = {(r["step"], r["num_samples"], r["test_limit"]) for r in map(json.loads, out.read_text().splitlines())}
    for checkpoint in sorted((args.run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1])):
        manifest = json.loads((checkpoint / "state.json").read_text())
        step = int(checkpoint.name.split("_")[1])
        if (step, args.samples, args.test_limit) in done or step % args.every:
            continue
        model = generator_at(checkpoint, manifest["model_config"], raw=args.raw)
        start = time.perf_counter()
        result = (fid_mnist(model, args.data, args.samples) if args.fid
                  else parzen_with_error(model, args.data, args.samples, args.test_limit))
        row = {"step": step, "num_samples": args.samples, "test_limit": args.test_limit,
               "ema": not args.raw and (checkpoint / "ema.safetensors").is_file(),
               **{k: round(v, 4) for k, v in result.items()}, "eval_s": round(time.perf_counter() - start, 1)}
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
