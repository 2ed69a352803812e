"""NeRF wall-clock benchmark: the paper's configuration vs the fast (hash grid + occupancy) variant.

Trains each configuration on the lego views for a wall-clock budget, and at time checkpoints measures
the PSNR on held-out views (training time only: evaluation pauses the clock). Writes
``OUT/curves.md`` (a table), ``OUT/curves.png`` (PSNR vs minutes, drawn with Pillow), ``OUT/curves.json``
and prints the ratio "time for fast to reach the paper's final PSNR / the paper's budget".

The full protocol (the runs in bench/nerf-100 and bench/nerf-200; --save FOLDER keeps the fast model):
    python bench/bench_nerf.py --res 100 --paper-minutes 30 --fast-minutes 5 --out bench/nerf-100
    python bench/bench_nerf.py --res 200 --paper-minutes 0 --fast-minutes 15 --out bench/nerf-200
Evaluation uses a fixed subset of held-out pixels (``--eval-pixels`` per view, the same for both
configurations) during the run, and all pixels of every held-out view at the end of the fast run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import zoo
from zoo_core.config import TrainConfig
from zoo_nerf.data import load_npz
from zoo_nerf.metrics import evaluate_views

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf"

# CPU-sized settings of each configuration (model config overrides, optimizer)
# The learning rate is constant until the fraction decay_from of the wall-clock budget, then decays
# exponentially to 10x less at its end (see lr_factor).
# paper: decays 10x over the run, as in the paper (here: over the budget)
PAPER = dict(config=dict(variant="paper"), lr=5e-4, betas=(0.9, 0.999), batch=1024, decay_from=0.0)
# fast: the first warmup_steps use a quarter of the batch (before the occupancy grid has found the empty space,
# every ray costs all n_samples); the learning rate is constant for half the budget, then decays 10x
FAST = dict(config=dict(variant="fast"), lr=1e-2, betas=(0.9, 0.99), batch=4096, warmup_batch=1024, warmup_steps=64,
            decay_from=0.5)


def lr_factor(fraction: float, decay_from: float) -> float:
    """1 until ``decay_from`` of the budget has passed, then 0.1 ** (progress through the rest)."""
    return 0.1 ** (max(0.0, fraction - decay_from) / (1.0 - decay_from))


def scene(res: int):
    if res == 100:
        path = DATA / "lego_tiny_80views.npz"
        return path, dict(background=None), "black"
    if res == 200:
        path = DATA / "lego_200_rgba_80views.npz"
        return path, dict(background="white"), "white"
    raise SystemExit(f"--res must be 100 or 200, got {res}")


@torch.no_grad()
def pixel_psnr(model, rays: dict[str, torch.Tensor], chunk: int = 4096) -> float:
    model.eval()
    rgb = torch.cat([model.render_rays(o, d)["rgb"] for o, d in zip(rays["origins"].split(chunk), rays["directions"].split(chunk))])
    model.train()
    return float(-10 * torch.log10(torch.mean((rgb.clamp(0, 1) - rays["rgb"]) ** 2)))


def train(name, settings, train_set, eval_rays, *, minutes: float, checkpoints, width, height, focal, background, seed, log,
          overrides=None):
    torch.manual_seed(seed)
    model = zoo.build("nerf", dict(settings["config"], background=background, width=width, height=height, focal=focal,
                                   **(overrides if settings is FAST else {})))
    optimizer = model.configure_optimizers(TrainConfig(lr=settings["lr"], betas=settings["betas"]))["main"]
    rays, n, batch = train_set.tensors(), len(train_set), settings["batch"]
    generator = torch.Generator().manual_seed(seed)
    budget, clock, step, curve = minutes * 60.0, 0.0, 0, []
    marks = [m * 60.0 for m in checkpoints if m * 60.0 <= budget] + [budget]
    model.train()
    while clock < budget:
        start = time.perf_counter()
        size = settings.get("warmup_batch", batch) if step < settings.get("warmup_steps", 0) else batch
        index = torch.randint(0, n, (size,), generator=generator)
        losses = model.training_step({k: v[index] for k, v in rays.items()})
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] = settings["lr"] * lr_factor(min(clock / budget, 1.0), settings["decay_from"])
        clock += time.perf_counter() - start
        step += 1
        if marks and clock >= marks[0]:
            while marks and clock >= marks[0]:
                marks.pop(0)
            value = pixel_psnr(model, eval_rays)
            extra = ""
            if "samples_per_ray" in losses:
                extra = f", {float(losses['samples_per_ray']):.1f} samples/ray, {model.occupancy_fraction():.3f} of cells occupied"
            curve.append({"minutes": clock / 60, "step": step, "psnr": value, "train_psnr": float(losses["psnr"])})
            log(f"{name:5s} {clock / 60:6.2f} min  step {step:6d}  held-out PSNR {value:6.2f} dB  (batch PSNR {float(losses['psnr']):.2f}{extra})")
    return model, curve


def time_to_reach(curve, target):
    for point in curve:
        if point["psnr"] >= target:
            return point["minutes"]
    return None


def plot(curves: dict, path: Path, title: str) -> None:
    """PSNR vs minutes, one polyline per configuration (Pillow, no matplotlib)."""
    from PIL import Image, ImageDraw

    w, h, left, bottom, top, right = 720, 440, 60, 40, 30, 20
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    points = [p for c in curves.values() for p in c]
    if not points:
        return
    t_max = max(p["minutes"] for p in points) * 1.05
    lo = math.floor(min(p["psnr"] for p in points)) - 1
    hi = math.ceil(max(p["psnr"] for p in points)) + 1

    def xy(minutes, psnr):
        return left + (w - left - right) * minutes / t_max, h - bottom - (h - top - bottom) * (psnr - lo) / (hi - lo)

    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for db in range(lo, hi + 1, max(1, (hi - lo) // 8)):
        y = xy(0, db)[1]
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((8, y - 6), f"{db} dB", fill="black")
    for k in range(6):
        minutes = t_max * k / 5
        x = xy(minutes, lo)[0]
        draw.line([x, h - bottom, x, h - bottom + 4], fill="black")
        draw.text((x - 10, h - bottom + 8), f"{minutes:.1f}", fill="black")
    draw.text((w // 2 - 40, h - 16), "training minutes", fill="black")
    draw.text((left, 8), title, fill="black")
    colours = {"paper": (200, 40, 40), "fast": (30, 90, 200)}
    for i, (name, curve) in enumerate(curves.items()):
        colour = colours.get(name, (0, 0, 0))
        line = [xy(p["minutes"], p["psnr"]) for p in curve]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((w - right - 120, top + 10 + 16 * i), f"-- {name}", fill=colour)
    image.save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, default=100, choices=(100, 200))
    parser.add_argument("--paper-minutes", type=float, default=30.0, help="training budget of the paper config (0: skip)")
    parser.add_argument("--fast-minutes", type=float, default=5.0, help="training budget of the fast config (0: skip)")
    parser.add_argument("--checkpoints", type=str, default="0.25,0.5,1,1.5,2,3,4,5,7.5,10,12.5,15,20,25,30")
    parser.add_argument("--eval-pixels", type=int, default=2000, help="held-out pixels per view used during the runs")
    parser.add_argument("--fast-samples", type=int, default=None, help="fast config n_samples (default: 64 at 100x100, 96 at 200x200)")
    parser.add_argument("--reuse-fast", type=Path, default=None,
                        help="take the fast curve from an earlier run's curves.json instead of training it again")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="save_pretrained the fast model here")
    parser.add_argument("--out", type=Path, default=Path("bench/nerf-100"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "log.txt", "a")

    def log(message):
        print(message, flush=True)
        log_file.write(message + "\n")
        log_file.flush()

    path, options, background = scene(args.res)
    train_set, val_set = load_npz(path, "train", **options), load_npz(path, "val", **options)
    generator = torch.Generator().manual_seed(1234)
    per_view = val_set.width * val_set.height
    picks = torch.cat([v * per_view + torch.randperm(per_view, generator=generator)[: args.eval_pixels] for v in range(len(val_set.images))])
    eval_rays = {k: t[picks] for k, t in val_set.tensors().items()}
    checkpoints = [float(c) for c in args.checkpoints.split(",")]
    common = dict(checkpoints=checkpoints, width=val_set.width, height=val_set.height, focal=val_set.focal,
                  background=background, seed=args.seed, log=log,
                  overrides=dict(n_samples=args.fast_samples or (64 if args.res == 100 else 96)))
    log(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} res={args.res} threads={args.threads} "
        f"load average at start: {open('/proc/loadavg').read().split()[:3]}")
    curves, models = {}, {}
    if args.reuse_fast:
        curves["fast"] = json.loads(args.reuse_fast.read_text())["curves"]["fast"]
        log(f"# fast curve reused from {args.reuse_fast}")
    for name, settings, minutes in (("fast", FAST, args.fast_minutes), ("paper", PAPER, args.paper_minutes)):
        if minutes > 0:
            models[name], curves[name] = train(name, settings, train_set, eval_rays, minutes=minutes, **common)
            log(f"# load average after {name}: {open('/proc/loadavg').read().split()[:3]}")

    summary = {"res": args.res, "curves": curves, "settings": {"paper": PAPER, "fast": FAST}}
    if "fast" in models:
        models["fast"].eval()
        scores, renders = evaluate_views(models["fast"], val_set)
        summary["fast_full_val_psnr"] = sum(scores) / len(scores)
        log(f"fast: PSNR over all {len(scores)} held-out views (every pixel): {summary['fast_full_val_psnr']:.2f} dB")
        from zoo_core.images import save_grid

        save_grid(torch.cat([renders, val_set.images]).permute(0, 3, 1, 2), args.out / "fast_val_renders.png", nrow=len(scores))
        if args.save:
            models["fast"].save_pretrained(args.save, dtype=torch.float16)
            log(f"saved the fast model to {args.save}")
    if "fast" in curves and "paper" in curves and curves["paper"]:
        target = curves["paper"][-1]["psnr"]
        reached = time_to_reach(curves["fast"], target)
        paper_minutes = curves["paper"][-1]["minutes"]
        ratio = None if reached is None else reached / paper_minutes
        summary.update(paper_final_psnr=target, fast_minutes_to_paper_final=reached, ratio=ratio)
        bound = "<= " if reached is not None and reached == curves["fast"][0]["minutes"] else ""  # reached by the first checkpoint
        summary["ratio_is_upper_bound"] = bool(bound)
        log(f"time for fast to reach paper's {paper_minutes:.1f}-min PSNR ({target:.2f} dB) / {paper_minutes:.1f} min = "
            + (f"{bound}{reached:.3f} / {paper_minutes:.1f} = {bound}{ratio:.4f} ({'>= ' if bound else ''}{1 / ratio:.0f}x sooner)"
               if ratio else "not reached"))
    for target in (25.0, 28.0):
        if "fast" in curves:
            reached = time_to_reach(curves["fast"], target)
            log(f"fast reaches {target} dB after: " + (f"{reached:.2f} min" if reached is not None else "not reached in the budget"))

    rows = ["| config | minutes | steps | held-out PSNR (dB) |", "| --- | ---: | ---: | ---: |"]
    for name, curve in curves.items():
        rows += [f"| {name} | {p['minutes']:.2f} | {p['step']} | {p['psnr']:.2f} |" for p in curve]
    (args.out / "curves.md").write_text("\n".join(rows) + "\n")
    (args.out / "curves.json").write_text(json.dumps(summary, indent=2))
    plot(curves, args.out / "curves.png", f"lego {args.res}x{args.res}: held-out PSNR vs training time (2-core CPU)")
    log(f"wrote {args.out}/curves.md, curves.png, curves.json")


if __name__ == "__main__":
    main()
