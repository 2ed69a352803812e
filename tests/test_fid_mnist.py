"""fid-mnist (the zoo-fid-mnist plugin): the Fréchet distance, the shipped classifier, the metric via the CLI."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from helpers import MNIST, run_zoo

pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")


def random_covariance(d: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def sqrtm_denman_beavers(a: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """Principal square root of a matrix with positive real eigenvalues (Denman & Beavers 1976), no eigendecomposition."""
    y, z = a.clone(), torch.eye(len(a), dtype=a.dtype)
    for _ in range(iterations):
        y, z = 0.5 * (y + torch.linalg.inv(z)), 0.5 * (z + torch.linalg.inv(y))
    return y


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    from zoo_fid_mnist.metric import frechet_distance

    g = torch.Generator().manual_seed(0)
    mu_1, mu_2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    a, b = torch.rand(6, generator=g, dtype=torch.float64) + 0.1, torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    expected = float((mu_1 - mu_2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    assert frechet_distance(mu_1, torch.diag(a), mu_2, torch.diag(b)) == pytest.approx(expected, rel=1e-10)
    # 1-D: W2^2 = (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]])) \
        == pytest.approx(9.0 + 1.0)


def test_frechet_distance_of_commuting_covariances_is_the_closed_form():
    from zoo_fid_mnist.metric import frechet_distance

    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))  # a random rotation
    a, b = torch.rand(8, generator=g, dtype=torch.float64) * 3, torch.rand(8, generator=g, dtype=torch.float64) * 3
    sigma_1, sigma_2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    mu = torch.randn(8, generator=g, dtype=torch.float64)
    expected = float((a.sqrt() - b.sqrt()).pow(2).sum())
    assert frechet_distance(mu, sigma_1, mu, sigma_2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu, sigma_1, mu, sigma_1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_a_random_pair_matches_an_independent_square_root():
    from zoo_fid_mnist.metric import frechet_distance

    g = torch.Generator().manual_seed(2)
    d = 12
    sigma_1, sigma_2 = random_covariance(d, g), random_covariance(d, g)
    mu_1, mu_2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    root = sqrtm_denman_beavers(sigma_1 @ sigma_2)
    assert torch.allclose(root @ root, sigma_1 @ sigma_2, atol=1e-8)  # the reference is a square root
    expected = float((mu_1 - mu_2).pow(2).sum() + sigma_1.trace() + sigma_2.trace() - 2 * root.trace())
    got = frechet_distance(mu_1, sigma_1, mu_2, sigma_2)
    assert got == pytest.approx(expected, rel=1e-8)
    assert got == pytest.approx(frechet_distance(mu_2, sigma_2, mu_1, sigma_1), rel=1e-8)  # symmetric
    # singular covariances (rank 3 of 12, as with fewer samples than features) stay finite and >= 0
    low = torch.randn(d, 3, generator=g, dtype=torch.float64)
    assert math.isfinite(frechet_distance(mu_1, low @ low.T, mu_2, sigma_2)) and frechet_distance(mu_1, low @ low.T, mu_1, low @ low.T) < 1e-6


@pytest.fixture(scope="module")
def test_set():
    """The 10,000 MNIST test images, their labels and their classifier features (one pass, shared)."""
    from zoo_core.datasets import load_mnist
    from zoo_fid_mnist.metric import mnist_test_features

    test = load_mnist(MNIST, split="test")
    return test.tensors(), test.labels, mnist_test_features(MNIST)


def test_the_shipped_classifier_is_99_percent_accurate_on_the_10000_test_images(test_set):
    from zoo_fid_mnist.classifier import load_classifier, weights_path

    images, labels, features = test_set
    model = load_classifier()
    with torch.no_grad():
        predicted = model.readout(features).argmax(1)  # the read-out of the penultimate features
        assert torch.equal(predicted[:100], model(images[:100]).argmax(1))
    assert len(predicted) == 10000
    assert float((predicted == labels).float().mean()) >= 0.99
    assert weights_path().stat().st_size < 2 * 1024 * 1024


def test_a_corrupted_or_missing_classifier_file_is_refused(tmp_path):
    from zoo_core.errors import WeightsError
    from zoo_fid_mnist.classifier import load_classifier, weights_path

    corrupt = tmp_path / "mnist-classifier.safetensors"
    shutil.copy(weights_path(), corrupt)
    load_classifier(corrupt)  # an intact copy loads
    data = bytearray(corrupt.read_bytes())
    data[-1] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256.*corrupt.*reinstall zoo-fid-mnist"):
        load_classifier(corrupt)
    with pytest.raises(WeightsError, match="missing"):
        load_classifier(tmp_path / "nothing.safetensors")


def test_real_images_score_near_zero_and_noise_far_away(test_set):
    from zoo_core.datasets import load_mnist
    from zoo_fid_mnist.metric import fid_mnist_of_images, frechet_distance, gaussian_of

    images, _, features = test_set
    assert frechet_distance(*gaussian_of(features), *gaussian_of(features)) == pytest.approx(0.0, abs=1e-6)
    real = fid_mnist_of_images(load_mnist(MNIST, split="train", limit=1000).tensors(), data=MNIST)
    noise = fid_mnist_of_images(torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)), data=MNIST)
    blurred = fid_mnist_of_images(torch.nn.functional.avg_pool2d(images[:1000], 3, 1, 1), data=MNIST)
    assert 0 < real < blurred < noise


def test_fid_mnist_is_seeded(test_set):
    import zoo
    from zoo_fid_mnist.metric import fid_mnist

    model = zoo.load("gan-mnist", device="cpu")
    first = fid_mnist(model, data=MNIST, num_samples=300)
    assert fid_mnist(model, data=MNIST, num_samples=300) == first
    assert fid_mnist(model, data=MNIST, num_samples=300, seed=1) != first


def test_zoo_eval_fid_mnist_through_the_cli(tmp_path):
    result = run_zoo("eval", "ae-mnist", "--metric", "fid-mnist", "--data", str(MNIST), "--option", "num_samples=300",
                     "-o", str(tmp_path), check=True)
    values = json.loads((tmp_path / "metrics.json").read_text())
    assert values["fid_mnist"] > 0 and f"fid_mnist: {values['fid_mnist']:.6g}" in result.stdout
    assert (tmp_path / "fid-mnist-samples.png").is_file()


def test_fid_mnist_refuses_what_it_cannot_measure(tmp_path):
    typo = run_zoo("eval", "ae-mnist", "--metric", "fid-mnist", "--option", "num_sample=10", "-o", str(tmp_path))
    assert typo.returncode == 2
    assert "num_sample" in typo.stderr and "num_samples" in typo.stderr and "temperature" in typo.stderr
    wrong_shape = run_zoo("eval", "ddpm-cifar-tiny", "--metric", "fid-mnist", "--option", "num_samples=2",
                          "--option", "sampler=ddim", "--option", "num_inference_steps=2", "-o", str(tmp_path))
    assert wrong_shape.returncode == 2 and "1x28x28" in wrong_shape.stderr and "3x32x32" in wrong_shape.stderr
