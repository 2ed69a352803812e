"""Does bf16 autocast train a DDPM as fp32 does? The first STEPS steps of a small config (ddpm-cifar-tiny's
UNet, batch 32, the catalog recipe), trained by the core Trainer three times: fp32 seed 0, bf16 seed 0,
and fp32 seed 1 (the seed noise to compare with). Writes the per-step losses (JSON) and a PNG of the
three curves (moving average over 100 steps), and prints the mean loss over the last 500 steps of each.

    nice -n 10 python plugins/zoo-ddpm/scripts/bf16_loss_curve.py --data ../shared/data/cifar10 \\
        --out plugins/zoo-ddpm/samples/bf16-loss-curve --threads 1
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

import zoo
from zoo_core.datasets import load_cifar10_npz

CONFIG = {"image_channels": 3, "image_size": 32, "base_channels": 16, "channel_mults": [1, 2, 2],
          "num_res_blocks": 1, "attention_resolutions": [8], "norm_groups": 8}
RUNS = [("fp32 seed 0", "no", 0), ("bf16 seed 0", "bf16", 0), ("fp32 seed 1", "no", 1)]
COLOURS = [(31, 119, 180), (214, 39, 40), (120, 120, 120)]


def train(data, steps: int, precision: str, seed: int, out: Path) -> list[float]:
    torch.manual_seed(seed)
    model = zoo.build("ddpm", CONFIG)
    config = zoo.TrainConfig(steps=steps, batch_size=32, lr=2e-3, warmup_steps=50, lr_schedule="cosine",
                             max_grad_norm=1.0, seed=seed, log_every=1, mixed_precision=precision)
    zoo.Trainer(model, data, config, out_dir=out, progress=False, cpu=True).fit()
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot(curves: dict[str, list[float]], path: Path, window: int = 100) -> None:
    from PIL import Image, ImageDraw

    width, height, margin = 900, 500, 60
    smooth = {name: moving_average(values, window) for name, values in curves.items()}
    low = min(min(v[window:]) for v in smooth.values())
    high = max(max(v[window:]) for v in smooth.values())
    steps = max(len(v) for v in smooth.values())
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin, margin // 2, width - margin // 2, height - margin], outline="black")

    def xy(i, value):
        return (margin + (width - 1.5 * margin) * i / (steps - 1),
                height - margin - (height - 1.5 * margin) * (value - low) / (high - low))

    for (name, values), colour in zip(smooth.items(), COLOURS):
        draw.line([xy(i, v) for i, v in enumerate(values) if i >= window], fill=colour, width=2)
    for k, (name, colour) in enumerate(zip(smooth, COLOURS)):
        draw.text((margin + 10, margin // 2 + 8 + 14 * k), f"{name} (moving average over {window} steps)", fill=colour)
    draw.text((margin, height - margin + 8), f"step {window} .. {steps}; loss {low:.4f} .. {high:.4f}", fill="black")
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Subset(load_cifar10_npz(args.data), range(9000))
    curves, summary = {}, {}
    for name, precision, seed in RUNS:
        start = time.time()
        curves[name] = train(data, args.steps, precision, seed, out / name.replace(" ", "-"))
        tail = curves[name][-500:]
        summary[name] = {"mean_loss_last_500": sum(tail) / len(tail), "seconds": time.time() - start}
        print(name, summary[name], flush=True)
        # written after every run, so a cut-short job still leaves its finished curves
        (out / "losses.json").write_text(json.dumps({"config": CONFIG, "steps": args.steps, "summary": summary,
                                                     "losses": curves}))
        plot(curves, out / "loss-curves.png")
    fp32, bf16, seed1 = (summary[name]["mean_loss_last_500"] for name, _, _ in RUNS)
    print(f"last-500 mean loss: fp32 {fp32:.5f}, bf16 {bf16:.5f} (diff {bf16 - fp32:+.5f}); "
          f"fp32 seed 1 {seed1:.5f} (seed noise {seed1 - fp32:+.5f})")


if __name__ == "__main__":
    main()
