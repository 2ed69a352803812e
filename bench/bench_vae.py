"""Training speed of Burda et al.'s MNIST VAE (784-200-200-50, tanh, 425,284 parameters): the zoo's
trainers versus pythae's VAE training loop and a bare PyTorch loop, side by side in one run.

Every side trains the *same* network (zoo.build's modules, wrapped in pythae's BaseEncoder/BaseDecoder
for pythae) on the same statically binarized MNIST training images (``mnist-binarized`` with
``dynamic=False``: pythae has no dynamic binarization), with the same loss (the negative ELBO,
summed over pixels, averaged over the batch), Adam (lr 1e-3, eps 1e-4), batch size, optimizer steps and
torch threads. Each side runs in its own subprocess, one after the other, in --repeats rounds in which the sides take
turns (each side's best round is reported: the load of a shared machine varies, and so is the median, over the
rounds, of its ratio to the bare loop of the same round); reported per side:
  * images/s end to end: steps * batch / wall time of the whole training call (data loading,
    logging, for the zoo the final checkpoint and export);
  * loop images/s: the steady state of the step loop (zoo: TrainResult.samples_per_second; pythae:
    between its first and last on_train_step_end callbacks; bare: the loop itself);
  * the fraction of the fp32 matmul limit: the model's fwd+bwd flops per second over the flops per
    second of a 1024 x 1024 x 1024 fp32 matmul timed in the same run with the same threads.
The bare loop runs twice: with the zoo's optimizer (``zoo_core.optim.build_optimizer``: fused Adam), so that
its ratio is the trainer's own cost, and with ``torch.optim.Adam``'s defaults (on the CPU a loop over the
tensors), the loop most people write. pythae builds its own Adam (torch's defaults).
The zoo's trainers run twice: as configured by default, checking every loss and gradient for NaN/inf
before each step (the Reliability section's guard), and with ``check_gradients=False`` (losses only), so
that the guard's cost and the loop's own cost show apart.
The ``--mixed-precision bf16`` row trains the zoo side (accelerate trainer) in bf16 autocast and
reports its test NLL (k importance samples, first test images) after the same steps as fp32.

Setup (pythae 0.1.2 pins nothing that conflicts with the zoo, so one venv holds both):
    python3 -m venv /work/exp/bench-venv-pythae
    /work/exp/bench-venv-pythae/bin/pip install torch==2.13.0 pythae==0.1.2
    /work/exp/bench-venv-pythae/bin/pip install -e . -e plugins/zoo-vae
Run (from the repo root):
    /work/exp/bench-venv-pythae/bin/python bench/bench_vae.py --data ../shared/data/mnist
Without pythae installed, its rows say so and the rest runs.
On a GPU (pythae's side stays on the CPU and is left out; the matmul limit is the GPU's):
    python bench/bench_vae.py --data MNIST_DIR --device cuda --batch-sizes 20 --steps 2980 --nll-k 0 \
        --sides bare plain accelerate plain-losses accelerate-losses
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

PAPER = {"hidden_dim": 200, "hidden_layers": 2, "latent_dim": 50, "activation": "tanh", "encoder_sigma": "exp"}


def flops_per_image(model) -> float:
    """fwd + bwd flops of one image: 2 per multiply-add forward, twice that backward (the Linear layers)."""
    import torch

    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6.0 * macs


def matmul_limit(threads: int, device: str = "cpu") -> float:
    """fp32 flops/s of a 1024^3 matmul on this many threads, or on the GPU (best of 20)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    best = float("inf")
    for _ in range(20):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * 1024**3 / best


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def images(args):
    from zoo_core.plugins import get_dataset

    return get_dataset("mnist-binarized").load(args.data, split="train", dynamic=False, limit=args.steps * args.batch_size)


def run_zoo(args, trainer: str, mixed_precision: str = "no", check_gradients: bool = True) -> dict:
    import torch

    import zoo
    from zoo_core.config import TrainConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = zoo.build("vae", PAPER)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=1e-3, optimizer="adam", eps=1e-4,
                        log_every=args.steps, mixed_precision=mixed_precision, checkpoint_minutes=0,
                        check_gradients=check_gradients)
    with tempfile.TemporaryDirectory() as out_dir:
        fit = zoo.trainer(trainer)(model, images(args), train, out_dir=out_dir, progress=False,
                                   cpu=args.device == "cpu")
        start = time.perf_counter()
        result = fit.fit()
        wall = time.perf_counter() - start
    side = f"zoo {trainer}" + (f" {mixed_precision}" if mixed_precision != "no" else "") + ("" if check_gradients else " (losses only)")
    out = {"side": side, "steps": result.steps,
           "wall_s": wall, "images_per_s": args.steps * args.batch_size / wall,
           "loop_images_per_s": result.samples_per_second, "last_loss": result.last_losses["loss"],
           "flops_per_image": flops_per_image(model)}
    if args.nll_k:
        from zoo_vae.metrics import nll

        trained = fit.model.float()
        out["nll"] = nll(trained, data=args.data, k=args.nll_k, limit=args.nll_images)["nll"]
    return out


def run_bare(args, torch_adam: bool = False) -> dict:
    """The loop by hand, with the zoo's optimizer (``build_optimizer``: fused Adam), or with
    ``torch.optim.Adam``'s defaults as a bare loop usually has it (``torch_adam``)."""
    import torch

    import zoo
    from zoo_core.config import TrainConfig
    from zoo_core.optim import build_optimizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = zoo.build("vae", PAPER)
    model.to(args.device)
    data = images(args).get_batch(list(range(args.steps * args.batch_size))).to(args.device)
    if torch_adam:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    else:
        optimizer = build_optimizer(model.parameters(), TrainConfig(optimizer="adam", lr=1e-3, eps=1e-4))
    synchronize(args.device)
    start = time.perf_counter()
    order = torch.randperm(len(data), device=args.device)
    for step in range(args.steps):
        batch = data[order[step * args.batch_size : (step + 1) * args.batch_size]]
        loss = -model.elbo(batch)["elbo"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(args.device)
    wall = time.perf_counter() - start
    rate = args.steps * args.batch_size / wall
    return {"side": "bare, torch's Adam" if torch_adam else "bare PyTorch", "steps": args.steps, "wall_s": wall, "images_per_s": rate, "loop_images_per_s": rate,
            "last_loss": float(loss.detach()), "flops_per_image": flops_per_image(model)}


def run_pythae(args) -> dict:
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseEncoder

    import zoo
    from pythae_loop import sigmoid_decoder, timed_training

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    twin = zoo.build("vae", PAPER)  # the very same modules and initialization
    data = images(args).get_batch(list(range(args.steps * args.batch_size)))

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.twin = twin

        def forward(self, x):
            mu, log_sigma2 = self.twin.encode(x)
            return ModelOutput(embedding=mu, log_covariance=log_sigma2)

    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=PAPER["latent_dim"], reconstruction_loss="bce"),
                encoder=Encoder(), decoder=sigmoid_decoder(twin.decoder))
    timed = timed_training(model, data, batch_size=args.batch_size, lr=1e-3, optimizer_params={"eps": 1e-4})
    return {"side": "pythae", "steps": timed["steps"], "wall_s": timed["wall_s"],
            "images_per_s": args.steps * args.batch_size / timed["wall_s"], "loop_images_per_s": timed["loop_images_per_s"],
            "flops_per_image": flops_per_image(twin)}


SIDES = {"bare": run_bare, "bare-torch-adam": lambda a: run_bare(a, torch_adam=True), "plain": lambda a: run_zoo(a, "plain"), "accelerate": lambda a: run_zoo(a, "accelerate"),
         "plain-losses": lambda a: run_zoo(a, "plain", check_gradients=False),
         "accelerate-losses": lambda a: run_zoo(a, "accelerate", check_gradients=False),
         "bf16": lambda a: run_zoo(a, "accelerate", "bf16"), "fp32-nll": lambda a: run_zoo(a, "accelerate"),
         "pythae": run_pythae}


def main() -> None:
    parser = argparse.ArgumentParser(description="Burda et al.'s VAE: zoo trainers vs pythae vs a bare loop")
    parser.add_argument("--data", required=True, help="MNIST folder")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[20, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[1500, 230],
                        help="steps per batch size, one epoch at most (59,600 images): every side reads each image once")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="rounds in which the sides take turns; best round of each")
    parser.add_argument("--nll-k", type=int, default=100, help="importance samples of the bf16-vs-fp32 NLL (0: skip)")
    parser.add_argument("--nll-images", type=int, default=1000)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where every side trains")
    parser.add_argument("--sides", nargs="+", choices=sorted(SIDES), help="run only these sides (default: all)")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)  # the subprocesses
    parser.add_argument("--steps-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        args.steps = args.steps_one
        print(json.dumps(SIDES[args.side](args)))
        return

    import os

    for batch, steps in zip(args.batch_sizes, args.steps):
        if batch * steps > 59_600:
            parser.error(f"batch {batch} x {steps} steps is more than the 59,600 training images: at most {59_600 // batch} steps")
    limit = matmul_limit(args.threads, args.device)
    where = f"{args.threads} thread(s)" if args.device == "cpu" else describe(args.device)
    print(f"fp32 matmul limit: {limit / 1e9:.1f} GFLOP/s on {where}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    common = ["--data", args.data, "--threads", str(args.threads), "--device", args.device, "--nll-k", str(args.nll_k),
              "--nll-images", str(args.nll_images)]
    for batch, steps in zip(args.batch_sizes, args.steps):
        rows: dict[str, dict] = {}
        sides = (["bare", "bare-torch-adam", "plain", "accelerate", "plain-losses", "accelerate-losses", "pythae"]
                 + (["bf16"] if batch == args.batch_sizes[-1] else []))
        sides = [side for side in sides if side in (args.sides or sides) and (side != "pythae" or args.device == "cpu")]
        failed = set()
        rounds: dict[str, list[float]] = {}  # each side's loop images/s, round by round
        for _ in range(args.repeats):  # the sides take turns, and each keeps its best round: a shared machine's load varies
            for side in sides:
                if side in failed:
                    continue
                done = subprocess.run([sys.executable, __file__, *common, "--side", side, "--steps-one", str(steps),
                                       "--batch-size", str(batch), "--nll-k", str(args.nll_k if side == "bf16" else 0)],
                                      capture_output=True, text=True)
                if done.returncode:
                    tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                    print(f"  {side}: failed ({tail[0]})")
                    failed.add(side)
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rounds.setdefault(side, []).append(row["loop_images_per_s"])
                if side not in rows or row["loop_images_per_s"] > rows[side]["loop_images_per_s"]:
                    rows[side] = row
        if "bf16" in rows and args.nll_k:  # the fp32 NLL after the same steps, for the bf16 row
            done = subprocess.run([sys.executable, __file__, *common, "--side", "fp32-nll", "--steps-one", str(steps),
                                   "--batch-size", str(batch)], capture_output=True, text=True)
            if not done.returncode:
                rows["fp32-nll"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\nbatch {batch}, {steps} steps, Adam(lr 1e-3, eps 1e-4), {where}, best of {args.repeats} rounds")
        bare = rows.get("bare", {}).get("loop_images_per_s")
        usual = rows.get("bare-torch-adam", {}).get("loop_images_per_s")
        for side, row in rows.items():
            if side == "fp32-nll":
                continue
            fraction = row["loop_images_per_s"] * row["flops_per_image"] / limit
            ratio = f"  loop vs bare {row['loop_images_per_s'] / bare:.3f}x" if bare else ""
            ratio += f", vs bare with torch's Adam {row['loop_images_per_s'] / usual:.3f}x" if usual else ""
            paired = paired_ratios(rounds.get(side, []), rounds.get("bare", []))
            if paired and side != "bare":  # a round's sides run back to back: their ratio cancels the machine's drift
                ratio += (f"; per round vs bare: median {statistics.median(paired):.3f}x "
                          f"({min(paired):.3f}-{max(paired):.3f})")
            print(f"  {row['side']:>16}: {row['images_per_s']:8.0f} images/s end to end, {row['loop_images_per_s']:8.0f} in the "
                  f"loop ({fraction:.1%} of the matmul limit){ratio}")
        if "pythae" in rows and "accelerate" in rows:
            for side in ("plain", "accelerate", "plain-losses", "accelerate-losses"):
                if side not in rows:
                    continue
                print(f"  {rows[side]['side']} / pythae (loop): {rows[side]['loop_images_per_s'] / rows['pythae']['loop_images_per_s']:.2f}x")
        if "bf16" in rows and "fp32-nll" in rows:
            print(f"  NLL (k={args.nll_k}, first {args.nll_images} test images) after {steps} steps: "
                  f"fp32 {rows['fp32-nll']['nll']:.2f}, bf16 {rows['bf16']['nll']:.2f}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def paired_ratios(side: list[float], bare: list[float]) -> list[float]:
    """side / bare round by round (rounds where both ran)."""
    return [a / b for a, b in zip(side, bare)] if len(side) == len(bare) else []


def describe(device: str) -> str:
    import torch

    return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"


if __name__ == "__main__":
    main()
