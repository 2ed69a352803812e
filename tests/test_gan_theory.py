"""The theory of Goodfellow et al. (2014) on a 1-D toy, with the GAN family's own losses: for a fixed
G, a discriminator trained on samples approaches D*(x) = p_r(x) / (p_r(x) + p_g(x)) (Proposition 1),
and the value of the game at it approaches 2 JS(p_r || p_g) - 2 log 2 (Theorem 1)."""

import math

import pytest
import torch
from torch import nn

from zoo_gan.model import discriminator_loss

P_R = torch.distributions.Normal(0.0, 1.0)  # the data


def fixed_generator(z: torch.Tensor) -> torch.Tensor:
    """G(z) = 1.5 + 0.6 z, z ~ N(0, 1): p_g = N(1.5, 0.6^2), overlapping p_r."""
    return 1.5 + 0.6 * z


P_G = torch.distributions.Normal(1.5, 0.6)


def js_divergence(p: torch.distributions.Distribution, q: torch.distributions.Distribution) -> float:
    """JS(p || q) = KL(p || m)/2 + KL(q || m)/2, m = (p + q)/2, by the trapezoid rule on a fine grid."""
    x = torch.linspace(-15, 15, 300_001, dtype=torch.float64)
    log_p, log_q = p.log_prob(x), q.log_prob(x)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    integrand = 0.5 * log_p.exp() * (log_p - log_m) + 0.5 * log_q.exp() * (log_q - log_m)
    return float(torch.trapezoid(integrand, x))


def test_js_divergence_by_quadrature_matches_its_known_values():
    assert js_divergence(P_R, P_R) == pytest.approx(0.0, abs=1e-9)
    far = torch.distributions.Normal(8.0, 1.0)
    assert js_divergence(torch.distributions.Normal(-8.0, 1.0), far) == pytest.approx(math.log(2), abs=1e-6)


def test_a_trained_discriminator_approaches_the_optimal_one_and_the_value_2_js_minus_2_log_2():
    torch.manual_seed(0)
    discriminator = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=3e-3)
    for step in range(1500):
        real = torch.randn(512, 1)
        fake = fixed_generator(torch.randn(512, 1))
        loss = discriminator_loss(discriminator(real), discriminator(fake))  # -V(D, G)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1000:
            for group in optimizer.param_groups:
                group["lr"] = 3e-4

    # D -> D* = p_r / (p_r + p_g) where there is data (|error| weighed by where samples fall)
    x = torch.linspace(-2.5, 3.0, 221).unsqueeze(1)
    with torch.no_grad():
        learned = torch.sigmoid(discriminator(x)).squeeze(1).double()
    log_r, log_g = P_R.log_prob(x.squeeze(1).double()), P_G.log_prob(x.squeeze(1).double())
    optimal = torch.sigmoid(log_r - log_g)
    weight = (log_r.exp() + log_g.exp()) / 2
    assert float((weight * (learned - optimal).abs()).sum() / weight.sum()) < 0.02
    assert float((learned - optimal).abs().max()) < 0.08

    # V(D, G) on fresh samples -> V(D*, G) = 2 JS(p_r || p_g) - 2 log 2
    expected = 2 * js_divergence(P_R, P_G) - 2 * math.log(2)
    generator = torch.Generator().manual_seed(1)
    real, fake = torch.randn(200_000, 1, generator=generator), fixed_generator(torch.randn(200_000, 1, generator=generator))
    with torch.no_grad():
        value = -float(discriminator_loss(discriminator(real), discriminator(fake)))
    assert value == pytest.approx(expected, abs=0.01)
    assert value <= expected + 0.005  # D* is the maximizer: a learned D can only fall short (up to sampling noise)
    # and the game's value is far from both ends: this toy is neither trivial nor saturated
    assert -2 * math.log(2) + 0.2 < expected < -0.2
