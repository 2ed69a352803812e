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


def test_the_gan_mnist_recipe_reproduces_its_parzen_estimate_with_one_command(tmp_path):
    """gan-mnist's catalog recipe on the first 50,000 training images: 10,000 steps (~9 min on a quiet core)."""
    import zoo

    run_zoo("train", "gan-mnist", "--data", str(MNIST), "--data-option", "limit=50000", "--out", str(tmp_path / "run"),
            check=True)
    run_zoo("eval", str(tmp_path / "run" / "model"), "--metric", "parzen", "--data", str(MNIST),
            "-o", str(tmp_path / "eval"), check=True)
    value = json.loads((tmp_path / "eval" / "metrics.json").read_text())["parzen_log_likelihood"]
    shipped = next(m["value"] for m in zoo.info("gan-mnist")["metrics"] if m["name"] == "parzen_log_likelihood")
    assert value == pytest.approx(shipped, abs=1.0), value  # the same weights (float32 here, float16 shipped)
