"""Full catalog recipes, end to end (minutes each): run with `pytest -m slow`."""

import json

import pytest

from helpers import MNIST, run_zoo

pytestmark = pytest.mark.slow


def test_the_ae_mnist_recipe_beats_the_paper_with_one_command(tmp_path):
    """Hinton & Salakhutdinov (2006): 3.00 per test image. About 6 min on 2 free CPU cores."""
    run_zoo("train", "ae-mnist", "--data", str(MNIST), "--out", str(tmp_path / "run"), check=True)
    run_zoo("eval", str(tmp_path / "run" / "model"), "--metric", "recon", "--data", str(MNIST),
            "-o", str(tmp_path / "eval"), check=True)
    error = json.loads((tmp_path / "eval" / "metrics.json").read_text())["recon_error"]
    assert error < 3.00, error
