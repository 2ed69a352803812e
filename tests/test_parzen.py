"""The Parzen-window metric: one core estimator every family can use (``zoo eval NAME --metric parzen``)."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from helpers import MNIST, run_zoo

needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")


def test_parzen_is_registered_by_the_core_and_stays_importable_from_zoo_gan():
    import zoo_core.parzen
    import zoo_gan.metrics
    from zoo_core.plugins import get_metric, owner_of

    spec = get_metric("parzen")
    assert spec.families is None and spec.function == "zoo_core.parzen:parzen"
    assert owner_of(spec).name == "zoo-core"
    assert zoo_gan.metrics.parzen_log_likelihood is zoo_core.parzen.parzen_log_likelihood
    assert zoo_gan.metrics.parzen is zoo_core.parzen.parzen


def test_per_image_log_densities_and_their_mean():
    from zoo_core.parzen import parzen_log_densities, parzen_log_likelihood

    g = torch.Generator().manual_seed(0)
    x, centres = torch.rand(7, 5, generator=g), torch.rand(4, 5, generator=g)
    sigma = 0.3
    expected = torch.stack([
        torch.logsumexp(torch.stack([-(xi - c).double().pow(2).sum() / (2 * sigma**2) for c in centres]), 0)
        - math.log(4) - 5 / 2 * math.log(2 * math.pi * sigma**2) for xi in x])
    got = parzen_log_densities(x, centres, [sigma, 0.5], batch_size=3)
    assert got.shape == (2, 7)
    assert torch.allclose(got[0], expected, atol=1e-5)
    assert torch.allclose(parzen_log_likelihood(x, centres, [sigma, 0.5]), got.mean(1))


@needs_mnist
def test_the_protocol_chooses_sigma_on_held_out_training_images_and_reports_the_standard_error():
    from zoo_core.datasets import load_mnist
    from zoo_core.parzen import parzen_log_densities, parzen_log_likelihood, parzen_of_images

    centres = load_mnist(MNIST, split="train", limit=500).tensors()
    sigmas = (0.1, 0.2, 0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the chosen sigma is inside the grid
        result = parzen_of_images(centres, data=MNIST, num_validation=300, test_limit=400, sigmas=sigmas)
    train = load_mnist(MNIST, split="train").tensors()
    validation = parzen_log_likelihood(train[-300:].flatten(1), centres.flatten(1), sigmas)
    assert result["parzen_sigma"] == sigmas[int(validation.argmax())]
    assert result["parzen_validation_log_likelihood"] == pytest.approx(float(validation.max()))
    per_image = parzen_log_densities(load_mnist(MNIST, split="test", limit=400).tensors().flatten(1), centres.flatten(1),
                                     [result["parzen_sigma"]])[0]
    assert result["parzen_log_likelihood"] == pytest.approx(float(per_image.mean()))
    assert result["parzen_log_likelihood_stderr"] == pytest.approx(float(per_image.std()) / 20)


@needs_mnist
def test_zoo_eval_parzen_works_for_any_family_that_samples_mnist(tmp_path):
    result = run_zoo("eval", "vae-mnist", "--metric", "parzen", "--data", str(MNIST), "--option", "num_samples=300",
                     "--option", "test_limit=200", "-o", str(tmp_path / "vae"), check=True)
    values = json.loads((tmp_path / "vae" / "metrics.json").read_text())
    assert "parzen_log_likelihood:" in result.stdout and math.isfinite(values["parzen_log_likelihood"])
    assert values["parzen_log_likelihood_stderr"] > 0
    # sampler options pass through to the family's sampler (here a 2-step DDIM walk of the DDPM)
    run_zoo("eval", "ddpm-mnist", "--metric", "parzen", "--data", str(MNIST), "--option", "num_samples=16",
            "--option", "test_limit=50", "--option", "sampler=ddim", "--option", "num_inference_steps=2",
            "-o", str(tmp_path / "ddpm"), check=True)
    assert math.isfinite(json.loads((tmp_path / "ddpm" / "metrics.json").read_text())["parzen_log_likelihood"])
    wrong = run_zoo("eval", "ddpm-cifar-tiny", "--metric", "parzen", "--data", str(MNIST), "--option", "num_samples=2",
                    "--option", "sampler=ddim", "--option", "num_inference_steps=2", "-o", str(tmp_path / "cifar"))
    assert wrong.returncode == 2 and "3072" in wrong.stderr and "784" in wrong.stderr


@pytest.mark.slow
@needs_mnist
def test_real_training_images_score_the_ceiling_of_243():
    from zoo_core.datasets import load_mnist
    from zoo_core.parzen import parzen_of_images

    torch.set_num_threads(1)
    result = parzen_of_images(load_mnist(MNIST, split="train", limit=10000).tensors(), data=MNIST)
    assert 240 < result["parzen_log_likelihood"] < 246  # Theis et al. (2016): 243 for the true distribution


def test_zoo_ship_files_a_standard_error_with_its_metric_not_as_a_metric():
    from zoo_core.ship import metric_rows

    rows = metric_rows("m", {"parzen": {"parzen_log_likelihood": 230.12345, "parzen_log_likelihood_stderr": 1.9876,
                                        "parzen_sigma": 0.2}},
                       data="mnist", options={}, dataset="mnist", split="test", notes=None)
    assert [(r["name"], r.get("stderr")) for r in rows] == [("parzen_log_likelihood", 1.99), ("parzen_sigma", None)]
