"""Print the sparsity and contractive metrics (and the reconstruction error) of saved autoencoders on
the full MNIST test set, for the comparisons in the model cards (e.g. a plain AE of the same width):

    python plugins/zoo-ae/scripts/compare.py --data ../shared/data/mnist MODEL_OR_FOLDER [...]
"""

import argparse
import json

import torch

import zoo
from zoo_ae import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description="sparsity / contractive metrics of several autoencoders")
    parser.add_argument("models", nargs="+", help="catalog names or save_pretrained folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        model = zoo.load(name, device="cpu")
        row = {"model": name, **metrics.sparsity(model, data=args.data), **metrics.contractive(model, data=args.data)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
