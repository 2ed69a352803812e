"""zoo-gan: the theory of Goodfellow et al. (2014), the two-optimizer contract, Parzen windows, gan-mnist."""

import math
from pathlib import Path

import pytest
import torch

import zoo

DATA = Path(__file__).parents[2] / "shared" / "data"
TINY = {"latent_dim": 8, "hidden_dim": 16}


def _optimal_discriminator_loss(mean_g: float, n: int = 400_000, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    """The D loss on 1-D toy data p_r = N(0, 1), p_g = N(mean_g, 1) at D* = p_r / (p_r + p_g) (+ a logit shift)."""
    from zoo_gan.model import discriminator_loss

    generator = torch.Generator().manual_seed(seed)
    p_r, p_g = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(mean_g, 1.0)
    real = torch.randn(n, generator=generator, dtype=torch.float64)
    fake = mean_g + torch.randn(n, generator=generator, dtype=torch.float64)
    # logit D*(x) = log p_r(x) - log p_g(x)
    return discriminator_loss(p_r.log_prob(real) - p_g.log_prob(real) + shift, p_r.log_prob(fake) - p_g.log_prob(fake) + shift)


def _js_divergence(mean_g: float) -> float:
    """JS(N(0,1) || N(mean_g,1)) by quadrature."""
    x = torch.linspace(-12, 12 + mean_g, 200_001, dtype=torch.float64)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(x).exp()
    q = torch.distributions.Normal(mean_g, 1.0).log_prob(x).exp()
    m = (p + q) / 2
    integrand = 0.5 * p * torch.log(p / m) + 0.5 * q * torch.log(q / m)
    return float(torch.trapezoid(torch.nan_to_num(integrand), x))


def test_optimal_discriminator_gives_minus_two_log_two_when_p_g_equals_p_r():
    # D* = 1/2 everywhere, so -V(D*, G) = 2 log 2 exactly
    assert float(_optimal_discriminator_loss(0.0)) == pytest.approx(2 * math.log(2), abs=1e-9)


def test_optimal_discriminator_value_is_two_js_minus_two_log_two():
    for mean_g in (0.5, 2.0):
        value = -float(_optimal_discriminator_loss(mean_g))  # V(D*, G), Monte Carlo
        assert value == pytest.approx(2 * _js_divergence(mean_g) - 2 * math.log(2), abs=0.01)
        # and D* is the maximizer: moving its logits either way lowers V
        for shift in (-0.5, 0.5):
            assert -float(_optimal_discriminator_loss(mean_g, shift=shift)) < value - 0.01


def test_non_saturating_loss_keeps_gradients_when_d_rejects_samples():
    from zoo_gan.model import generator_loss

    logits = torch.tensor([-6.0], requires_grad=True)  # D(G(z)) ~ 0.0025: early training
    (grad_ns,) = torch.autograd.grad(generator_loss(logits, "non_saturating"), logits)
    (grad_mm,) = torch.autograd.grad(generator_loss(logits, "minimax"), logits)
    d = torch.sigmoid(torch.tensor(-6.0))
    torch.testing.assert_close(grad_ns, -(1 - d).reshape(1))  # d/dl -log sigmoid(l)
    torch.testing.assert_close(grad_mm, -d.reshape(1))  # d/dl log(1 - sigmoid(l))
    assert abs(grad_ns) > 100 * abs(grad_mm)
    with pytest.raises(ValueError, match="non_saturating"):
        generator_loss(logits, "wasserstein")


def test_parzen_window_of_one_centre_is_a_gaussian_density():
    from zoo_gan.metrics import parzen_log_likelihood

    torch.manual_seed(0)
    x, centre = torch.randn(7, 5), torch.randn(1, 5)
    for sigma in (0.3, 1.0):
        expected = torch.distributions.Normal(centre, sigma).log_prob(x).sum(1).mean()
        got = parzen_log_likelihood(x, centre, [sigma])[0]
        assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # N identical centres give the same density as one
    same = parzen_log_likelihood(x, centre.expand(10, 5), [0.5])[0]
    assert float(same) == pytest.approx(float(parzen_log_likelihood(x, centre, [0.5])[0]), rel=1e-6)


@pytest.mark.parametrize("architecture", ["mlp", "dcgan"])
def test_two_optimizers_each_move_only_their_network(tmp_path, architecture):
    torch.manual_seed(0)
    model = zoo.build("gan", TINY, architecture=architecture)
    optimizers = model.configure_optimizers(zoo.TrainConfig(lr=1e-3, betas=(0.5, 0.999)))
    assert list(optimizers) == ["discriminator", "generator"]
    assert optimizers["generator"].param_groups[0]["betas"] == (0.5, 0.999)
    batch = model.example_batch(8)
    for name, network, other in (("discriminator", model.discriminator, model.generator),
                                 ("generator", model.generator, model.discriminator)):
        model.zero_grad(set_to_none=True)
        losses = model.training_step(batch, optimizer=name)
        assert torch.isfinite(losses["loss"])
        before = [p.detach().clone() for p in model.parameters()]
        losses["loss"].backward()
        if name == "discriminator":  # G's samples are detached in D's pass
            assert all(p.grad is None for p in other.parameters())
        optimizers[name].step()
        moved = {id(p) for p, b in zip(model.parameters(), before) if not torch.equal(p, b)}
        assert moved and moved <= {id(p) for p in network.parameters()}
    images = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    model.save_pretrained(tmp_path)
    loaded = zoo.load(tmp_path, device="cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    with pytest.raises(ValueError, match="discriminator"):
        model.training_step(batch, optimizer="main")


def test_core_trainer_runs_both_optimizers(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("gan", TINY)
    data = list(model.example_batch(16))
    result = zoo.Trainer(model, data, zoo.TrainConfig(steps=2, batch_size=8, log_every=1), out_dir=tmp_path,
                         progress=False).fit()
    assert result.steps == 2
    assert {"discriminator/loss", "generator/loss"} <= set(result.last_losses)


def test_catalog_gan_mnist_samples_look_like_mnist():
    model = zoo.load("gan-mnist", device="cpu")
    images = model.sample(256, generator=torch.Generator().manual_seed(0))
    assert images.shape == (256, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    # MNIST: mean intensity ~0.13, most pixels near 0; an untrained G gives ~0.5 everywhere
    assert 0.05 < float(images.mean()) < 0.25
    assert float((images < 0.1).float().mean()) > 0.6
