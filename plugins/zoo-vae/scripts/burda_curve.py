"""vae-mnist-burda's NLL-vs-epochs curve: train the paper's schedule stage by stage and measure the test
NLL after each stage (Burda et al. 2015: stage i = 0..7 has 3^i epochs, so the stages end at epochs
1, 4, 13, 40, 121, 364, 1093, 3280; 2,980 steps of batch 20 per epoch).

For each epoch E in --epochs it runs (skipping what is already there)
    zoo train vae-mnist-burda --data DATA --out OUT --steps E*2980 [--resume]
    zoo eval OUT/model-epoch-E --metric nll --k K --limit LIMIT --data DATA -o OUT/eval-epoch-E
and then writes OUT/nll-curve.png (NLL against epochs) and OUT/nll-curve.md (the table). The step
schedule's milestones do not depend on --steps, so the staged run is the uninterrupted one.

    python plugins/zoo-vae/scripts/burda_curve.py --data ../shared/data/mnist --epochs 1 4 13
    python plugins/zoo-vae/scripts/burda_curve.py --data DATA --epochs 1 4 13 40 --limit 10000   # scripts/gpu_check
    python plugins/zoo-vae/scripts/burda_curve.py --out runs/vae-mnist-burda --plot-only
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS_PER_EPOCH = 59_600 // 20


def run(*args: str) -> None:
    print("+ zoo " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "zoo_core.cli", "--quiet", *args], check=True)


def evaluations(out: Path) -> list[tuple[int, dict]]:
    found = []
    for folder in out.glob("eval-epoch-*"):
        metrics = folder / "metrics.json"
        if metrics.is_file():
            found.append((int(folder.name.rsplit("-", 1)[1]), json.loads(metrics.read_text())))
    return sorted(found, key=lambda pair: pair[0])


def draw(out: Path) -> None:
    from zoo_core.trainers.curve import plot_losses

    rows = evaluations(out)
    if not rows:
        sys.exit(f"no eval-epoch-*/metrics.json in {out}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"  # the trainer's curve drawer, with epochs as its x axis
        log.write_text("".join(json.dumps({"step": epoch, "test_nll_vs_epochs": m["nll"], "minus_test_elbo_vs_epochs": -m["elbo"]}) + "\n"
                               for epoch, m in rows))
        plot_losses(log, out / "nll-curve.png", x_label="epoch")
    k, images = int(rows[-1][1]["k"]), int(rows[-1][1]["images"])
    which = f"all {images:,}" if images == 10_000 else f"first {images:,}"
    lines = [f"| epochs | steps | test NLL (k={k}, {which} test images) | ± s.e. | -ELBO | KL |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {epoch} | {epoch * STEPS_PER_EPOCH:,} | {m['nll']:.2f} | {m['nll_stderr']:.2f} | {-m['elbo']:.2f} | "
              f"{m['kl']:.2f} |" for epoch, m in rows]
    (out / "nll-curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'nll-curve.png'} and {out / 'nll-curve.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST folder")
    parser.add_argument("--out", type=Path, default=Path("runs/vae-mnist-burda"))
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 4, 13])
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=1000, help="first N test images (10000: all)")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    if not args.plot_only:
        for epoch in sorted(args.epochs):
            snapshot = args.out / f"model-epoch-{epoch}"
            if not snapshot.is_dir():
                resume = ["--resume"] if (args.out / "checkpoints").is_dir() else []
                run("train", "vae-mnist-burda", "--data", str(args.data), "--out", str(args.out),
                    "--steps", str(epoch * STEPS_PER_EPOCH), *resume)
                shutil.copytree(args.out / "model", snapshot)
            if not (args.out / f"eval-epoch-{epoch}" / "metrics.json").is_file():
                run("eval", str(snapshot), "--metric", "nll", "--k", str(args.k), "--limit", str(args.limit),
                    "--data", str(args.data), "-o", str(args.out / f"eval-epoch-{epoch}"))
    draw(args.out)


if __name__ == "__main__":
    main()
