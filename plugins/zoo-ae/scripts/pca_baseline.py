"""The PCA row of Hinton & Salakhutdinov (2006), Fig. 2: PCA with 30 components fitted on the 60,000
MNIST training images (centred, exact eigendecomposition of the covariance with torch.linalg, float64),
average squared reconstruction error per test image (sum over the 784 pixels in [0, 1], mean over the
10,000 test images). The paper reports 13.87.

    python plugins/zoo-ae/scripts/pca_baseline.py --data ../shared/data/mnist [--components 30]
"""

import argparse
import json

from zoo_ae.metrics import pca_baseline


def main() -> None:
    parser = argparse.ArgumentParser(description="PCA reconstruction baseline on MNIST")
    parser.add_argument("--data", required=True, help="MNIST folder (the four IDX gz files)")
    parser.add_argument("--components", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(pca_baseline(None, data=args.data, components=args.components)))


if __name__ == "__main__":
    main()
