"""zoo-vae: the math of Kingma & Welling (2013), the Generator contract, and the shipped vae-mnist."""

from pathlib import Path

import pytest
import torch

import zoo
from zoo_core.errors import InvalidConfigError

DATA = Path(__file__).parents[2] / "shared" / "data"
TINY = {"hidden_dim": 32, "latent_dim": 4}


def test_gaussian_kl_matches_torch_distributions():
    from zoo_vae.model import gaussian_kl

    torch.manual_seed(0)
    mu, log_sigma2 = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mu, (0.5 * log_sigma2).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, log_sigma2), expected)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_reparameterization_has_the_right_moments():
    from zoo_vae.model import VAE

    torch.manual_seed(0)
    mu, log_sigma2 = torch.tensor([[1.0, -2.0]]).expand(200_000, 2), torch.tensor([[0.0, 2 * torch.log(torch.tensor(3.0))]]).expand(200_000, 2)
    z = VAE.reparameterize(mu, log_sigma2)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 3.0]), atol=0.03, rtol=0)


def test_bernoulli_and_gaussian_log_likelihoods():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28)
    model = zoo.build("vae", TINY)
    logits = torch.randn(2, 1, 28, 28)
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(x, logits), expected, rtol=1e-4, atol=1e-3)
    gaussian = zoo.build("vae", TINY, likelihood="gaussian")
    mean = torch.rand(2, 1, 28, 28)
    sigma = gaussian.log_sigma2_x.exp().sqrt()
    expected = torch.distributions.Normal(mean, sigma).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian.log_likelihood(x, mean), expected.detach(), rtol=1e-4, atol=1e-2)


def test_importance_sampled_bound_is_above_the_elbo():
    torch.manual_seed(0)
    model = zoo.build("vae", TINY).eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        elbo = torch.stack([model.elbo(x)["elbo"] for _ in range(50)]).mean(0)
        iw = model.importance_log_likelihood(x, num_samples=50)
    assert (iw >= elbo - 0.05).all(), (iw - elbo)


@pytest.mark.parametrize("overrides", [{}, {"architecture": "conv", "hidden_dim": 8, "likelihood": "gaussian"}])
def test_training_step_sample_and_round_trip(tmp_path, overrides):
    torch.manual_seed(0)
    model = zoo.build("vae", {**TINY, **overrides})
    batch = model.example_batch(8)
    losses = model.training_step(batch)
    assert set(losses) >= {"loss", "kl", "reconstruction"} and all(torch.isfinite(v) for v in losses.values())
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = model.configure_optimizers(zoo.TrainConfig())["main"]
    losses["loss"].backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    images = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    model.save_pretrained(tmp_path)
    loaded = zoo.load(tmp_path, device="cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_bad_config_names_the_field():
    with pytest.raises(InvalidConfigError, match="likelihood"):
        zoo.build("vae", likelihood="poisson")
    with pytest.raises(ValueError, match="divisible by 4"):
        zoo.build("vae", architecture="conv", image_size=30)


def test_catalog_vae_mnist_samples_and_elbo():
    model = zoo.load("vae-mnist", device="cpu")
    images = model.sample(16, generator=torch.Generator().manual_seed(0))
    assert images.shape == (16, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    if not (DATA / "mnist").is_dir():
        pytest.skip("shared MNIST data not found")
    from zoo_vae.metrics import elbo

    values = elbo(model, data=DATA / "mnist", limit=200, num_samples=10, iw_limit=50)
    assert values["elbo"] > -115, values  # trained: ~-100 nats; an untrained decoder gives ~-550
    assert values["log_likelihood_iw10"] > values["elbo"] - 1
