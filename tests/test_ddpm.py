"""zoo-ddpm: the schedule, q(x_t|x_0), the posterior, one reverse step and the bound of Ho et al. (2020)."""

import math

import pytest
import torch

import zoo

TINY = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_resolutions": [16],
        "num_train_timesteps": 20, "norm_groups": 4}


def _scheduler(**kwargs):
    from zoo_ddpm.scheduler import DDPMScheduler

    return DDPMScheduler(**{"num_timesteps": 1000, **kwargs}).double()


def test_linear_schedule_and_alpha_bar():
    s = _scheduler()
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(1 - s.betas, 0))
    torch.testing.assert_close(s.alpha_bars_prev[1:], s.alpha_bars[:-1])
    assert float(s.alpha_bars_prev[0]) == 1.0
    # Ho et al.: with T = 1000 and this schedule, x_T is almost pure noise
    assert float(s.alpha_bars[-1]) < 1e-4


def test_cosine_schedule_follows_its_alpha_bar():
    s = _scheduler(beta_schedule="cosine")
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    # equal until the last few steps, where beta is clipped at 0.999
    torch.testing.assert_close(s.alpha_bars[:-5], f[:-5], rtol=1e-5, atol=1e-6)
    assert (s.betas <= 0.999 + 1e-6).all() and (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()
    from zoo_ddpm.scheduler import ScheduleError

    with pytest.raises(ScheduleError, match="linear"):
        _scheduler(beta_schedule="quadratic")


def test_q_xt_given_x0_moments_by_monte_carlo():
    s = _scheduler()
    torch.manual_seed(0)
    x0 = torch.tensor([0.7, -0.3], dtype=torch.float64)
    for t in (0, 100, 500, 999):
        eps = torch.randn(200_000, 2, dtype=torch.float64)
        x_t = s.add_noise(x0.expand(200_000, 2), eps, torch.full((200_000,), t))
        alpha_bar = float(s.alpha_bars[t])
        torch.testing.assert_close(x_t.mean(0), math.sqrt(alpha_bar) * x0, atol=0.01, rtol=0)
        torch.testing.assert_close(x_t.var(0), torch.full((2,), 1 - alpha_bar, dtype=torch.float64), atol=0.01, rtol=0.02)


def test_posterior_matches_bayes_rule():
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): a product of Gaussians in x_{t-1}."""
    s = _scheduler()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # reference in float64 (the buffers are float32)
    alpha_bars = torch.cumprod(1 - betas, 0)
    torch.manual_seed(0)
    for t in (1, 10, 500, 999):
        x0, x_t = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
        beta, alpha, alpha_bar_prev = float(betas[t]), 1 - float(betas[t]), float(alpha_bars[t - 1])
        precision = alpha / beta + 1 / (1 - alpha_bar_prev)
        mean = (math.sqrt(alpha) * x_t / beta + math.sqrt(alpha_bar_prev) * x0 / (1 - alpha_bar_prev)) / precision
        got_mean, got_var = s.posterior(x0[None], x_t[None], torch.tensor([t]))
        torch.testing.assert_close(got_mean[0], mean, rtol=1e-5, atol=1e-6)
        assert float(got_var) == pytest.approx(1 / precision, rel=1e-5)
    # at t = 1 (index 0) the posterior is a point mass at x_0
    assert float(s.posterior_variance[0]) == 0.0


def test_posterior_mean_in_terms_of_eps():
    """mu_tilde(x_t, x_0) = 1/sqrt(alpha_t) (x_t - beta_t/sqrt(1-alpha_bar_t) eps) when x_t = add_noise(x_0, eps)."""
    s = _scheduler()
    torch.manual_seed(0)
    x0, eps = torch.randn(4, 1, 2, 2, dtype=torch.float64), torch.randn(4, 1, 2, 2, dtype=torch.float64)
    t = torch.tensor([1, 50, 400, 999])
    x_t = s.add_noise(x0, eps, t)
    torch.testing.assert_close(s.model_mean(eps, t, x_t), s.posterior(x0, x_t, t)[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.predict_x0(x_t, t, eps), x0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_one_sampler_step_by_hand(variance):
    s = _scheduler(variance=variance)
    x_t = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    eps, z = torch.tensor([[0.2, 0.1]], dtype=torch.float64), torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    t = 600
    beta = 0.0001 + (0.02 - 0.0001) * t / 999
    alpha_bar = math.prod(1 - (0.0001 + (0.02 - 0.0001) * i / 999) for i in range(t + 1))
    alpha_bar_prev = alpha_bar / (1 - beta)
    sigma2 = beta if variance == "beta" else (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    expected = (x_t - beta / math.sqrt(1 - alpha_bar) * eps) / math.sqrt(1 - beta) + math.sqrt(sigma2) * z
    torch.testing.assert_close(s.step(eps, t, x_t, noise=z), expected, rtol=1e-5, atol=1e-6)
    # the last step adds no noise
    last = (x_t - math.sqrt(1e-4) * eps) / math.sqrt(1 - 1e-4)
    torch.testing.assert_close(s.step(eps, 0, x_t, noise=z), last, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_sampler_objects_take_the_schedulers_ancestral_step(variance):
    """DDPMSampler over consecutive steps is Algorithm 2; DDIM with eta = 1 is its beta_tilde case."""
    from zoo_ddpm.samplers import DDIMSampler, DDPMSampler

    s = _scheduler(variance=variance)
    torch.manual_seed(0)
    x_t, eps, z = (torch.randn(2, 3, dtype=torch.float64) for _ in range(3))
    close = dict(rtol=1e-5, atol=1e-6)  # the scheduler's buffers are float32, the samplers' scalars float64
    for t in (300, 1):
        ancestral = s.step(eps, t, x_t, noise=z)
        torch.testing.assert_close(DDPMSampler(clip_denoised=False).step(s, eps, t, t - 1, x_t, z), ancestral, **close)
        if variance == "beta_tilde":
            ddim = DDIMSampler(eta=1.0, clip_denoised=False).step(s, eps, t, t - 1, x_t, z)
            torch.testing.assert_close(ddim, ancestral, **close)
    last = DDPMSampler(clip_denoised=False).step(s, eps, 0, -1, x_t)
    torch.testing.assert_close(last, s.step(eps, 0, x_t), **close)


def test_normal_kl_and_discretized_decoder():
    from zoo_ddpm.scheduler import discretized_gaussian_log_likelihood, normal_kl

    torch.manual_seed(0)
    m1, m2, lv1, lv2 = torch.randn(4, 5).double().unbind(0)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected)
    # the 256 bins of the L_0 decoder hold all the probability
    bins = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    log_p = discretized_gaussian_log_likelihood(bins, torch.tensor(0.1, dtype=torch.float64), torch.tensor(math.log(0.05), dtype=torch.float64))
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-6)


def test_schedule_is_not_saved_and_model_round_trips(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("ddpm", TINY)
    assert not any(k.startswith("scheduler.") for k in model.state_dict())
    losses = model.training_step(model.example_batch(4))
    assert torch.isfinite(losses["loss"])
    before = [p.detach().clone() for p in model.parameters()]
    losses["loss"].backward()
    model.configure_optimizers(zoo.TrainConfig())["main"].step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    model.save_pretrained(tmp_path)
    loaded = zoo.load(tmp_path, device="cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    torch.testing.assert_close(loaded.scheduler.alpha_bars, model.scheduler.alpha_bars)


def test_sampling_range_options_and_errors():
    small = {**TINY, "image_size": 16, "attention_resolutions": [8], "num_train_timesteps": 10}
    model = zoo.build("ddpm", small, beta_schedule="cosine").eval()
    full, trajectory = model.sample(2, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert full.shape == (2, 3, 16, 16) and full.min() >= 0 and full.max() <= 1
    assert trajectory.shape == (11, 2, 3, 16, 16)
    for eta in (0.0, 1.0):
        strided = model.sample(2, generator=torch.Generator().manual_seed(0), sampler="ddim", num_inference_steps=4, eta=eta)
        assert strided.shape == (2, 3, 16, 16) and strided.min() >= 0 and strided.max() <= 1
    with pytest.raises(ValueError, match="num_inference_steps"):
        model.sample(1, num_inference_steps=50)
    from zoo_core.errors import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="did you mean num_inference_steps"):
        model.sample(1, num_inference_step=10)  # used to run all T steps silently
    with pytest.raises(UnknownOptionError, match="ddpm sampler takes no option 'eta'"):
        model.sample(1, eta=0.5)
    with pytest.raises(ValueError, match="norm_groups"):
        zoo.build("ddpm", TINY, norm_groups=3)


def test_vlb_terms_are_finite_and_positive():
    from zoo_ddpm.metrics import prior_term, vlb_terms

    model = zoo.build("ddpm", TINY).eval()
    x0 = model.example_batch(3) * 2 - 1
    with torch.no_grad():
        terms = vlb_terms(model, x0, torch.tensor([0, 5, 19]), torch.randn_like(x0))
        prior = prior_term(model, x0)
    assert torch.isfinite(terms).all() and (terms[1:] >= 0).all() and (prior >= 0).all()


def test_catalog_ddpm_mnist_samples():
    model = zoo.load("ddpm-mnist", device="cpu")
    images = model.sample(4, generator=torch.Generator().manual_seed(0), num_inference_steps=20)
    assert images.shape == (4, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert float(images.mean()) < 0.35  # MNIST is mostly black background (mean ~0.13)


def test_the_bound_is_reproducible_and_reports_its_standard_error():
    """Every draw comes from the metric's generator (the L_0 noise used the global RNG); the stratified
    estimate agrees with evaluating every term, within its standard error."""
    from helpers import MNIST
    from zoo_ddpm.metrics import ddpm_loss

    torch.manual_seed(0)
    model = zoo.build("ddpm", TINY, image_channels=1, image_size=28, attention_resolutions=[14]).eval()
    options = dict(data=MNIST, limit=40, batch_size=40, seed=3, exact_small_t=2, vlb_strata=4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions; two threads crawl when the cores are shared
    try:
        torch.manual_seed(1)
        first = ddpm_loss(model, **options)
        torch.manual_seed(2)  # another global RNG state: the same numbers
        assert ddpm_loss(model, **options) == first
        every_term = ddpm_loss(model, **{**options, "exact_small_t": 19})
    finally:
        torch.set_num_threads(threads)
    assert 0 < first["vlb_bits_per_dim_stderr"] < 0.2 * first["vlb_bits_per_dim"]
    assert abs(first["vlb_bits_per_dim"] - every_term["vlb_bits_per_dim"]) < 4 * first["vlb_bits_per_dim_stderr"]
