"""Speed of Ho et al.'s CIFAR-10 UNet (35.7M parameters): the zoo's versus diffusers' UNet2DModel,
side by side in one process, with the same weights, inputs and torch threads.

Measured, each as the median of ``--reps`` repetitions with zoo and diffusers interleaved (the
machine may be shared: interleaving exposes both to the same load):
  * train: one optimizer step (forward, MSE to the noise, backward, AdamW) on a batch of
    ``--train-batch`` 32x32 images, images/s;
  * sample forward: one no-grad forward of ``--sample-batch`` images, images/s;
  each in fp32 and in bf16 autocast (``torch.autocast``, as ``--mixed-precision bf16`` does);
  * DDIM: the whole sampling call, 50 DDIM steps for 16 images: ``model.sample(16, sampler="ddim")``
    versus diffusers' ``DDIMPipeline`` (``--ddim-reps``; 0 skips it);
  * the machine's limit: a large matmul (``--matmul-size``^3) in fp32 and in bf16, GFLOP/s, measured
    in the same run; the UNet's FLOPs per image come from torch's FlopCounterMode (a training step
    counts forward + backward).
Printed: images/s of each side, the ratio zoo/diffusers, the zoo's bf16/fp32 ratio, and the
fraction of the matmul limit (images/s x GFLOP per image / matmul GFLOP/s).

    python bench/bench_ddpm.py                      # CPU, all threads
    python bench/bench_ddpm.py --device cuda --compile   # where a GPU is lent
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

CIFAR = dict(sample_size=32, block_out_channels=(128, 256, 256, 256), layers_per_block=2, norm_num_groups=32,
             down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
             flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6, attention_head_dim=None)


def build(device: str):
    """diffusers' UNet2DModel with seeded random weights, and the zoo DDPM converted from it."""
    from diffusers import UNet2DModel

    import zoo
    from zoo_core.generator import load_weights
    from zoo_ddpm.convert_diffusers import convert_state_dict, zoo_config

    torch.manual_seed(0)
    theirs = UNet2DModel(**CIFAR)
    ours = zoo.build("ddpm", zoo_config({"_class_name": "UNet2DModel", **CIFAR}, None, source="bench"))
    load_weights(ours, convert_state_dict(theirs.state_dict(), ours.state_dict(), ours.config, source="bench"))
    return ours.to(device), theirs.to(device)


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def autocast(device: str, bf16: bool):
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)


def workloads(ours, theirs, args):
    """name -> (zoo callable, diffusers callable, images per call, FLOPs kind)."""
    device = args.device
    zoo_net, their_net = ours.unet, theirs
    x_train = torch.randn(args.train_batch, 3, 32, 32, device=device)
    t_train = torch.randint(0, 1000, (args.train_batch,), device=device)
    x_sample = torch.randn(args.sample_batch, 3, 32, 32, device=device)
    t_sample = torch.full((args.sample_batch,), 500, device=device)
    optimizers = {id(m): torch.optim.AdamW(m.parameters(), lr=1e-4, foreach=True) for m in (zoo_net, their_net)}

    def train_step(net, forward, bf16):
        def step():
            net.train()
            optimizer = optimizers[id(net)]
            with autocast(device, bf16):
                loss = torch.nn.functional.mse_loss(forward(x_train, t_train).float(), x_train)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    def sample_forward(net, forward, bf16):
        def run():
            net.eval()
            with torch.no_grad(), autocast(device, bf16):
                forward(x_sample, t_sample)
        return run

    zoo_forward = zoo_net
    their_forward = lambda x, t: their_net(x, t).sample  # noqa: E731
    result = {}
    for precision, bf16 in (("fp32", False), ("bf16", True)):
        result[f"train {precision}"] = (train_step(zoo_net, zoo_forward, bf16), train_step(their_net, their_forward, bf16),
                                        args.train_batch, "train", precision)
        result[f"sample forward {precision}"] = (sample_forward(zoo_net, zoo_forward, bf16),
                                                 sample_forward(their_net, their_forward, bf16), args.sample_batch,
                                                 "forward", precision)
    return result


def forward_flops(net, device: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x, t = torch.randn(1, 3, 32, 32, device=device), torch.tensor([500], device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, t)
    return counter.get_total_flops()


def matmul_gflops(size: int, dtype, device: str, reps: int) -> float:
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    seconds = statistics.median(timed(lambda: a @ b, device) for _ in range(reps))
    return 2 * size ** 3 / seconds / 1e9


def ddim_call(ours, theirs, args):
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler

    pipeline = DDIMPipeline(unet=theirs.eval(), scheduler=DDIMScheduler.from_config(DDPMScheduler().config))
    pipeline.set_progress_bar_config(disable=True)
    ours.eval()

    def zoo_call():
        ours.sample(16, sampler="ddim", num_inference_steps=50, eta=0.0, generator=torch.Generator().manual_seed(0))

    def their_call():
        pipeline(batch_size=16, generator=torch.Generator().manual_seed(0), num_inference_steps=50, output_type="np")

    return zoo_call, their_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--sample-batch", type=int, default=16)
    parser.add_argument("--ddim-reps", type=int, default=1)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--channels-last", action="store_true", help="both models in channels_last memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile both UNets")
    parser.add_argument("--only", choices=["train", "sample", "ddim"], action="append", default=None,
                        help="run only these workloads (repeatable; default: all)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")
    ours, theirs = build(args.device)
    flops = forward_flops(ours.unet, args.device)
    if args.channels_last:
        ours.unet.to(memory_format=torch.channels_last)
        theirs.to(memory_format=torch.channels_last)
    if args.compile:
        ours.unet.forward = torch.compile(ours.unet.forward)
        theirs.forward = torch.compile(theirs.forward)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    limits = {"fp32": matmul_gflops(args.matmul_size, torch.float32, args.device, 5),
              "bf16": matmul_gflops(args.matmul_size, torch.bfloat16, args.device, 5)}
    rows = []
    only = set(args.only or ("train", "sample", "ddim"))
    for name, (zoo_fn, their_fn, images, kind, precision) in workloads(ours, theirs, args).items():
        if name.split()[0] not in only:
            continue
        zoo_fn(), their_fn()  # warm-up
        zoo_times, their_times = [], []
        for _ in range(args.reps):  # interleaved
            zoo_times.append(timed(zoo_fn, args.device))
            their_times.append(timed(their_fn, args.device))
        zoo_ips, their_ips = images / statistics.median(zoo_times), images / statistics.median(their_times)
        gflop_per_image = flops * (3 if kind == "train" else 1) / 1e9
        rows.append({"workload": name, "zoo_images_per_s": zoo_ips, "diffusers_images_per_s": their_ips,
                     "ratio": zoo_ips / their_ips, "gflop_per_image": gflop_per_image,
                     "zoo_fraction_of_limit": zoo_ips * gflop_per_image / limits[precision],
                     "diffusers_fraction_of_limit": their_ips * gflop_per_image / limits[precision]})
    by_name = {row["workload"]: row for row in rows}
    for kind in ("train", "sample forward"):
        if f"{kind} bf16" not in by_name:
            continue
        by_name[f"{kind} bf16"]["zoo_bf16_over_fp32"] = (by_name[f"{kind} bf16"]["zoo_images_per_s"]
                                                        / by_name[f"{kind} fp32"]["zoo_images_per_s"])
    if args.ddim_reps and "ddim" in only:
        zoo_call, their_call = ddim_call(ours, theirs, args)
        zoo_times, their_times = [], []
        for _ in range(args.ddim_reps):
            zoo_times.append(timed(zoo_call, args.device))
            their_times.append(timed(their_call, args.device))
        zoo_s, their_s = statistics.median(zoo_times), statistics.median(their_times)
        rows.append({"workload": "50 DDIM steps, 16 images (whole call)", "zoo_seconds": zoo_s, "diffusers_seconds": their_s,
                     "ratio": their_s / zoo_s})
    report = {"device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "load_average_at_start": load, "load_average_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
              "matmul_gflops": limits, "forward_gflop_per_image": flops / 1e9, "rows": rows}
    print(f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}; load average "
          f"{load:.1f} -> {report['load_average_at_end']:.1f}; matmul limit fp32 {limits['fp32']:.0f} GFLOP/s, "
          f"bf16 {limits['bf16']:.0f} GFLOP/s; UNet forward {flops / 1e9:.2f} GFLOP/image")
    print(f"{'workload':40} {'zoo':>10} {'diffusers':>10} {'zoo/diff':>9} {'zoo %lim':>9} {'diff %lim':>9} {'bf16/fp32':>9}")
    for row in rows:
        if "zoo_seconds" in row:
            print(f"{row['workload']:40} {row['zoo_seconds']:9.1f}s {row['diffusers_seconds']:9.1f}s {row['ratio']:8.2f}x")
            continue
        extra = f"{row['zoo_bf16_over_fp32']:8.2f}x" if "zoo_bf16_over_fp32" in row else ""
        print(f"{row['workload']:40} {row['zoo_images_per_s']:10.2f} {row['diffusers_images_per_s']:10.2f} "
              f"{row['ratio']:8.2f}x {100 * row['zoo_fraction_of_limit']:8.0f}% {100 * row['diffusers_fraction_of_limit']:8.0f}% {extra:>9}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
