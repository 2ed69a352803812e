"""zoo-vae's catalog recipes, end to end (minutes): run with `pytest -m slow`."""

import json

import pytest

from helpers import MNIST, run_zoo

pytestmark = pytest.mark.slow


def test_the_first_stage_of_vae_mnist_burda_matches_the_shipped_curve(tmp_path):
    """The paper's schedule, stage 0 (one epoch, 2,980 steps of batch 20; about 1 min on a free core):
    the shipped curve measured 113.50 +- 1.01 nats (k=5000, first 1,000 test images) after it."""
    run_zoo("train", "vae-mnist-burda", "--data", str(MNIST), "--out", str(tmp_path / "run"), "--steps", "2980",
            "--trainer", "plain", check=True)
    run_zoo("eval", str(tmp_path / "run" / "model"), "--metric", "nll", "--k", "500", "--limit", "500",
            "--data", str(MNIST), "-o", str(tmp_path / "eval"), check=True)
    measured = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 105 < measured["nll"] < 120, measured
    assert -measured["elbo"] > measured["nll"]
