"""The pilot behind iwae-mnist's second stage: continue a trained VAE for a fixed wall time with the IWAE
bound at --k (Adam, eps 1e-4, lr cosine from --lr to 0 over the wall time, batch --batch), then report the
test NLL with k=1000 on the first 1,000 binarized test images, of the live weights and of an EMA (--ema).

    python plugins/zoo-vae/scripts/iwae_finetune_pilot.py --data ../shared/data/mnist --base-only
    OMP_NUM_THREADS=1 python plugins/zoo-vae/scripts/iwae_finetune_pilot.py --data ../shared/data/mnist --k 50 --minutes 9
    OMP_NUM_THREADS=1 python plugins/zoo-vae/scripts/iwae_finetune_pilot.py --data ../shared/data/mnist --k 5 --minutes 9
    python plugins/zoo-vae/scripts/iwae_finetune_pilot.py --data ../shared/data/mnist --checkpoint runs/iwae-mnist/checkpoints/step_00010000

--checkpoint scores a training checkpoint's EMA weights (ema.safetensors) instead, on the same images.
Exploratory: a quick, paired comparison of continuations (the same images for every variant), not a
replacement for `zoo eval NAME --metric nll --k 5000` over all 10,000 images.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
from safetensors.torch import load_file

import zoo
from zoo_vae.data import load_mnist_binarized
from zoo_vae.metrics import nll


def evaluate(model, data: str) -> dict[str, float]:
    return nll(model, data=data, k=1000, limit=1000, batch_size=100, chunk=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MNIST folder")
    parser.add_argument("--base", default="iwae-mnist-k5", help="the model to continue (zoo.load name or folder)")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--minutes", type=float, default=9)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--base-only", action="store_true", help="only score --base")
    parser.add_argument("--checkpoint", help="score this checkpoint folder's EMA weights")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(1)
    model = zoo.load(args.base, device="cpu").float().requires_grad_(True)
    if args.base_only:
        print(json.dumps({"base": evaluate(model, args.data)}))
        return
    if args.checkpoint:
        state = load_file(os.path.join(args.checkpoint, "ema.safetensors"))
        model.load_state_dict({key.removeprefix("module."): value for key, value in state.items() if key.startswith("module.")})
        print(json.dumps({"checkpoint_ema": evaluate(model, args.data)}))
        return
    train = load_mnist_binarized(args.data, split="train")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-4)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema))
    start, losses = time.time(), []
    model.train()
    while (elapsed := (time.time() - start) / (args.minutes * 60)) < 1:
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * elapsed))
        x = torch.stack(train.__getitems__(torch.randint(0, len(train), (args.batch,)).tolist()))
        loss = -model.iwae_bound(x, args.k).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update_parameters(model)
        losses.append(float(loss.detach()))
    steps = len(losses)
    print(f"k={args.k} lr={args.lr} steps={steps} ({(time.time() - start) / steps * 1000:.1f} ms/step); mean loss of "
          f"the first / last 500 steps: {sum(losses[:500]) / len(losses[:500]):.3f} / {sum(losses[-500:]) / len(losses[-500:]):.3f}")
    print(json.dumps({"live": evaluate(model, args.data), "ema": evaluate(ema.module, args.data)}))


if __name__ == "__main__":
    main()
