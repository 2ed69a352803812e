"""Train the MNIST classifier that fid-mnist uses, or check the shipped one's test accuracy.

    OMP_NUM_THREADS=1 python plugins/zoo-fid-mnist/scripts/train_classifier.py --data ../shared/data/mnist \
        --out runs/mnist-classifier          # trains on the 60,000 training images (one thread)
    python plugins/zoo-fid-mnist/scripts/train_classifier.py --data ../shared/data/mnist --evaluate
                                             # accuracy of the shipped weights on the 10,000 test images

Training writes OUT/mnist-classifier.safetensors (float32) and OUT/checkpoint.pt after every epoch
(rerunning the same command resumes), and prints the test accuracy and the file's sha256. To ship it:
copy the safetensors file to zoo_fid_mnist/weights/ and put its sha256 into
zoo_fid_mnist/classifier.py (WEIGHTS_SHA256); fid-mnist numbers measured with other weights are not
comparable.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(images.split(batch_size), labels.split(batch_size)))
    return correct / len(labels)


def shifted(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image moved by up to ``max_shift`` pixels in x and y (zero fill): a little translation invariance."""
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator))
    rows = (dy[:, None] + torch.arange(28))[:, :, None].expand(n, 28, 28)
    cols = (dx[:, None] + torch.arange(28))[:, None, :].expand(n, 28, 28)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MNIST folder (the four IDX gz files)")
    parser.add_argument("--out", default="runs/mnist-classifier")
    parser.add_argument("--evaluate", action="store_true", help="only report the shipped weights' test accuracy")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from zoo_core.datasets import load_mnist
    from zoo_core.loading import sha256_file
    from zoo_fid_mnist.classifier import MNISTClassifier, load_classifier, weights_path

    test = load_mnist(args.data, split="test")
    test_x, test_y = test.tensors(), test.labels
    if args.evaluate:
        model = load_classifier()
        print(f"{weights_path()} (sha256 {sha256_file(weights_path())}): "
              f"test accuracy {accuracy(model, test_x, test_y):.4f} on {len(test_y)} MNIST test images")
        return 0

    from safetensors.torch import save_file

    train = load_mnist(args.data, split="train")
    x, y = train.tensors(), train.labels
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = MNISTClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(y) / args.batch_size)
    total = args.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    start_epoch = 0
    checkpoint = out / "checkpoint.pt"
    if checkpoint.is_file():  # our own file, written below
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = state["epoch"]
        print(f"resumed after epoch {start_epoch}")
    for epoch in range(start_epoch, args.epochs):
        generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(y), generator=generator)
        model.train()
        started = time.perf_counter()
        for step, index in enumerate(order.split(args.batch_size)):
            loss = F.cross_entropy(model(shifted(x[index], generator)), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 100 == 0:
                print(f"epoch {epoch + 1} step {step}/{steps_per_epoch} loss {loss.item():.4f} "
                      f"({(time.perf_counter() - started) / (step + 1):.3f} s/step)", flush=True)
        print(f"epoch {epoch + 1}: {time.perf_counter() - started:.0f} s, test accuracy {accuracy(model, test_x, test_y):.4f}",
              flush=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "epoch": epoch + 1}, checkpoint)
    weights = out / "mnist-classifier.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    print(f"wrote {weights}: sha256 {sha256_file(weights)}, {weights.stat().st_size} bytes, "
          f"test accuracy {accuracy(model, test_x, test_y):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
