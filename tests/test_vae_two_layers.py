"""zoo-vae with two stochastic layers, the MNIST architecture of Burda, Grosse & Salakhutdinov (2015),
"Importance Weighted Autoencoders": x -> 200 -> 200 -> h1 (100) -> 100 -> 100 -> h2 (50) and back, tanh,
sigma = exp(a), p(h2) = N(0, I), p(h1|h2) Gaussian, p(x|h1) Bernoulli. Built with ``latent_dims``.

Everything runs on tiny models and generated data (a few fake MNIST files in tmp_path)."""

import gzip
import json
import math
import struct

import pytest
import torch
from torch.distributions import Bernoulli, Normal

import zoo
from zoo_core.cli import main
from zoo_core.config import TrainConfig
from zoo_core.errors import InvalidConfigError

#: Burda et al.'s two-stochastic-layer MNIST model (their output bias init would add "output_bias_init": "data_mean")
BURDA_2 = {"latent_dims": [100, 50], "latent_hidden_dims": [200, 100], "hidden_layers": 2, "activation": "tanh",
           "encoder_sigma": "exp"}
#: the same shape, tiny: x -> 16 -> 16 -> h1 (6) -> 8 -> 8 -> h2 (3)
TINY_2 = {"latent_dims": [6, 3], "latent_hidden_dims": [16, 8], "hidden_layers": 2, "activation": "tanh",
          "encoder_sigma": "exp"}


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return zoo.build("vae", {**TINY_2, **overrides})


def binary_images(n, seed=0):
    """n binary 1x28x28 images: a bright random rectangle on a dark background, pixels drawn from it."""
    generator = torch.Generator().manual_seed(seed)
    grey = torch.full((n, 1, 28, 28), 0.05)
    for i in range(n):
        top, left = torch.randint(0, 14, (2,), generator=generator).tolist()
        grey[i, :, top:top + 12, left:left + 10] = 0.9
    return torch.bernoulli(grey, generator=generator)


def write_fake_mnist(folder, n_train=420, n_test=20, seed=0):
    """The four MNIST IDX files (gzipped) with grey-level rectangles: enough for mnist-binarized (which holds
    out the last 400 training images as validation)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = (binary_images(n, seed=seed + n) * 200 + torch.randint(0, 50, (n, 1, 28, 28), generator=generator))
        pixels = images.clamp(0, 255).to(torch.uint8).view(n, 28, 28).numpy().tobytes()
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(bytes([0, 0, 8, 3]) + struct.pack(">III", n, 28, 28) + pixels)
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + bytes(i % 10 for i in range(n)))
    return folder


def independent_log_weight(model, x, eps_h1, eps_h2):
    """The five log-densities of log w for one (eps_h1, eps_h2) of shape (N, d1), (N, d2), with torch.distributions
    and the raw layers (sigma = exp(a) of every Gaussian layer: the tiny models use encoder_sigma='exp')."""
    hidden = model.encoder(x)
    q_h1 = Normal(model.to_mu(hidden), model.to_log_sigma2(hidden).exp())
    h1 = q_h1.loc + q_h1.scale * eps_h1
    hidden = model.q_h2_given_h1.hidden(h1)
    q_h2 = Normal(model.q_h2_given_h1.to_mu(hidden), model.q_h2_given_h1.to_log_sigma2(hidden).exp())
    h2 = q_h2.loc + q_h2.scale * eps_h2
    hidden = model.p_h1_given_h2.hidden(h2)
    p_h1 = Normal(model.p_h1_given_h2.to_mu(hidden), model.p_h1_given_h2.to_log_sigma2(hidden).exp())
    p_h2 = Normal(torch.zeros_like(h2), torch.ones_like(h2))
    p_x = Bernoulli(logits=model.decoder(h1))
    terms = {"log_p_x_given_h1": p_x.log_prob(x).flatten(1).sum(1), "log_p_h1_given_h2": p_h1.log_prob(h1).sum(1),
             "log_p_h2": p_h2.log_prob(h2).sum(1), "log_q_h1_given_x": q_h1.log_prob(h1).sum(1),
             "log_q_h2_given_h1": q_h2.log_prob(h2).sum(1)}
    log_w = (terms["log_p_x_given_h1"] + terms["log_p_h1_given_h2"] + terms["log_p_h2"]
             - terms["log_q_h1_given_x"] - terms["log_q_h2_given_h1"])
    return log_w, terms


# -- the architecture --------------------------------------------------------------------------


def test_burdas_two_layer_model_has_521084_parameters():
    model = zoo.build("vae", BURDA_2)
    # q(h1|x):  784*200+200 + 200*200+200 + 2*(200*100+100)    = 157,000 + 40,200 + 40,200      = 237,400
    # q(h2|h1): 100*100+100 + 100*100+100 + 2*(100*50+50)      =  10,100 + 10,100 + 10,100      =  30,300
    # p(h1|h2):  50*100+100 + 100*100+100 + 2*(100*100+100)    =   5,100 + 10,100 + 20,200      =  35,400
    # p(x|h1):  100*200+200 + 200*200+200 + 200*784+784        =  20,200 + 40,200 + 157,584     = 217,984
    #                                                                                     total   521,084
    assert 237_400 + 30_300 + 35_400 + 217_984 == 521_084
    assert model.num_parameters() == 521_084
    assert (model.config.latent_dim, model.config.hidden_dim) == (50, 200)  # filled in: h2's size, the x-side width
    shapes = lambda module: [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes(model.encoder) + shapes(model.to_mu) + shapes(model.to_log_sigma2) == [
        (784, 200), (200, 200), (200, 100), (200, 100)]  # q(h1|x)
    assert shapes(model.q_h2_given_h1) == [(100, 100), (100, 100), (100, 50), (100, 50)]
    assert shapes(model.p_h1_given_h2) == [(50, 100), (100, 100), (100, 100), (100, 100)]
    assert shapes(model.decoder) == [(100, 200), (200, 200), (200, 784)]  # p(x|h1): Bernoulli logits
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.modules()) == 8
    # the same model, written with the derived fields explicitly
    assert zoo.build("vae", {**BURDA_2, "latent_dim": 50, "hidden_dim": 200}).config == model.config


def test_one_layer_configs_are_unchanged():
    model = zoo.build("vae", {"hidden_dim": 200, "hidden_layers": 2, "latent_dim": 50, "activation": "tanh",
                              "encoder_sigma": "exp"})
    assert model.num_parameters() == 425_284 and not model.two_layers
    assert (model.config.latent_dims, model.config.latent_hidden_dims) == (None, None)
    assert all(name.split(".")[0] in {"encoder", "to_mu", "to_log_sigma2", "decoder"} for name in model.state_dict())
    shipped = zoo.load("vae-mnist-burda", device="cpu")  # its config.json has no latent_dims
    assert shipped.config.latent_dims is None and set(shipped.state_dict()) == set(model.state_dict())


def test_bad_two_layer_configs_name_the_problem():
    cases = [
        ({"latent_dims": [100]}, "latent_dims lists the two stochastic layers"),
        ({"latent_dims": [100, 50, 20]}, "latent_dims lists the two stochastic layers"),
        ({"latent_dims": [100, 0]}, "latent_dims.1"),
        ({"latent_dims": [100, 50], "latent_hidden_dims": [200]}, "one width per stochastic layer"),
        ({"latent_dims": [100, 50], "latent_hidden_dims": [200, -1]}, "latent_hidden_dims.1"),
        ({"latent_hidden_dims": [200, 100]}, "give latent_dims too"),
        ({"latent_dims": [100, 50], "latent_dim": 20}, "latent_dim is the top layer h2's dimension, 50"),
        ({"latent_dims": [100, 50], "latent_hidden_dims": [200, 100], "hidden_dim": 400}, "hidden_dim is the width"),
        ({"latent_dims": [100, 50], "architecture": "conv", "hidden_dim": 8}, "needs architecture='mlp'"),
        ({"latent_dims": "100,50"}, "latent_dims"),
    ]
    for config, message in cases:
        with pytest.raises(InvalidConfigError, match=message):
            zoo.build("vae", config)


# -- the bound -------------------------------------------------------------------------------


def test_log_weights_match_torch_distributions_for_fixed_noise():
    model = tiny().eval()
    x = binary_images(5)
    k = 3
    eps = (torch.randn(k, 5, 6), torch.randn(k, 5, 3))
    with torch.no_grad():
        log_w = model.log_weights(x, k, eps=eps)
        terms = model.log_densities(x, k, eps=eps)
        assert log_w.shape == (k, 5)
        for i in range(k):
            expected_w, expected_terms = independent_log_weight(model, x, eps[0][i], eps[1][i])
            torch.testing.assert_close(log_w[i], expected_w, rtol=1e-5, atol=1e-3)
            for name, value in expected_terms.items():
                torch.testing.assert_close(terms[name][i], value, rtol=1e-5, atol=1e-3)
        # encoding once (what the NLL metric does) changes nothing
        torch.testing.assert_close(model.log_weights(x, k, encoded=model.encode(x), eps=eps), log_w)
        # the log-variance parameterization (sigma^2 = exp(a)) is another model
        other = tiny(encoder_sigma="log_variance")
        assert not torch.allclose(other.log_weights(x, k, eps=eps), log_w)


def test_iwae_with_k_1_is_the_one_sample_log_weight_and_the_elbo():
    model = tiny().eval()
    x = binary_images(6)
    with torch.no_grad():
        torch.manual_seed(1)
        bound = model.iwae_bound(x, 1)
        torch.manual_seed(1)
        log_w = model.log_weights(x, 1)
        torch.manual_seed(1)
        log_w_again, reconstruction = model.log_weights(x, 1, with_reconstruction=True)
        torch.manual_seed(1)
        elbo = model.elbo(x)
    torch.testing.assert_close(bound, log_w[0])  # logsumexp over one sample - log 1
    torch.testing.assert_close(log_w_again, log_w)
    # the ELBO has no closed-form KL: its "kl" is the one-sample log q(h1|x) + log q(h2|h1) - log p(h1|h2) - log p(h2)
    torch.testing.assert_close(elbo["elbo"], log_w[0], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(elbo["reconstruction"], reconstruction[0])
    torch.testing.assert_close(elbo["kl"], reconstruction[0] - log_w[0], rtol=1e-5, atol=1e-3)
    # both objectives train that bound
    for objective in ("elbo", "iwae"):
        trained = tiny(objective=objective)
        torch.manual_seed(2)
        out = trained.training_step(x)
        torch.manual_seed(2)
        torch.testing.assert_close(out["loss"], -trained.iwae_bound(x, 1).mean(), rtol=1e-5, atol=1e-4)
        assert set(out) == ({"loss", "reconstruction", "kl"} if objective == "elbo" else {"loss"})


def test_the_iwae_bound_increases_with_k_on_a_fixed_model():
    from test_vae_iwae import assert_the_iwae_bound_increases_with_k

    model = tiny().eval()
    x = binary_images(6)
    torch.manual_seed(0)
    assert_the_iwae_bound_increases_with_k(model, x)


def test_iwae_training_step_reaches_every_parameter():
    model = tiny(objective="iwae", k=5)
    out = model.training_step(binary_images(8))
    assert set(out) == {"loss"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


# -- the NLL metric --------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [20, 7])
def test_nll_metric_matches_an_independent_log_mean_exp(tmp_path, chunk):
    from zoo_core.plugins import get_dataset
    from zoo_vae.metrics import nll

    data = write_fake_mnist(tmp_path / "mnist", n_train=10, n_test=14)
    model = tiny()
    k, n = 20, 12
    measured = nll(model, data=data, k=k, limit=n, chunk=chunk, batch_size=n)
    # independently: the same draws (seed 0; per chunk eps_h1 then eps_h2), log-mean-exp in float64 by hand
    x = get_dataset("mnist-binarized").load(data, split="test", limit=n).tensors()
    torch.manual_seed(0)
    log_w, reconstruction = [], []
    with torch.no_grad():
        for start in range(0, k, chunk):
            size = min(chunk, k - start)
            eps_h1, eps_h2 = torch.randn(size, n, 6), torch.randn(size, n, 3)
            for i in range(size):
                w, terms = independent_log_weight(model, x, eps_h1[i], eps_h2[i])
                log_w.append(w)
                reconstruction.append(terms["log_p_x_given_h1"])
    log_w, reconstruction = torch.stack(log_w).double(), torch.stack(reconstruction).double()
    top = log_w.max(0).values
    log_px = top + (log_w - top).exp().mean(0).log()
    assert measured["nll"] == pytest.approx(float(-log_px.mean()), abs=1e-3)
    assert measured["nll_stderr"] == pytest.approx(float(log_px.std() / math.sqrt(n)), rel=1e-3)
    assert measured["elbo"] == pytest.approx(float(log_w.mean()), abs=1e-3)
    assert measured["elbo"] < -measured["nll"]
    # two layers: kl is the Monte-Carlo KL over the same k samples, E[log q(h1, h2|x) - log p(h1, h2)]
    assert measured["kl"] == pytest.approx(float((reconstruction - log_w).mean()), abs=1e-3)
    assert measured["reconstruction_log_likelihood"] == pytest.approx(float(reconstruction.mean()), abs=1e-3)
    assert (measured["k"], measured["images"]) == (k, n)


# -- sampling, saving and loading ------------------------------------------------------------


def test_sampling_decodes_h2_through_the_mean_of_p_h1_given_h2_and_round_trips(tmp_path):
    model = tiny()
    images = model.sample(4, generator=torch.Generator().manual_seed(3), temperature=0.5)
    h2 = 0.5 * torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h1 = model.p_h1_given_h2(h2)[0]  # the mean, not a draw
        torch.testing.assert_close(images, torch.sigmoid(model.decoder(h1)))
    assert images.shape == (4, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    walk = model.interpolate(rows=2, steps=5)
    ends = torch.randn(2, 2, 1, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(walk[0], model.decode_top(ends[0, 0].float())[0], atol=1e-5, rtol=0)  # walks in h2

    model.save_pretrained(tmp_path / "two")
    saved = json.loads((tmp_path / "two" / "config.json").read_text())["config"]
    assert (saved["latent_dims"], saved["latent_hidden_dims"], saved["latent_dim"], saved["hidden_dim"]) == (
        [6, 3], [16, 8], 3, 16)
    assert "p(h1|h2)" in (tmp_path / "two" / "README.md").read_text()
    loaded = zoo.load(tmp_path / "two", device="cpu")
    assert loaded.config == model.config and loaded.two_layers
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert torch.equal(loaded.sample(4, generator=torch.Generator().manual_seed(3), temperature=0.5), images)
    x, eps = binary_images(3), (torch.randn(2, 3, 6), torch.randn(2, 3, 3))
    with torch.no_grad():
        assert torch.equal(loaded.log_weights(x, 2, eps=eps), model.log_weights(x, 2, eps=eps))


# -- training --------------------------------------------------------------------------------


def test_a_few_steps_of_the_plain_trainer_lower_the_bound_and_export(tmp_path):
    model = tiny(objective="iwae", k=3, output_bias_init="data_mean")
    data = list(binary_images(64, seed=1))
    fixed = torch.stack(data[:32])

    def loss(m):  # -L_3 on a fixed batch, with fixed draws
        torch.manual_seed(123)
        with torch.no_grad():
            return float(-torch.stack([m.iwae_bound(fixed, 3).mean() for _ in range(10)]).mean())

    # on_fit_start: the output bias of p(x|h1), the last Linear of the decoder, starts at logit(data mean)
    with torch.no_grad():
        started = tiny(objective="iwae", k=3, output_bias_init="data_mean")  # the same weights as model
        started.on_fit_start([torch.stack(data)])
    mean = torch.stack(data).mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(torch.sigmoid(started.decoder[-2].bias).view(1, 28, 28), mean, atol=1e-5, rtol=1e-4)
    before = loss(started)  # where the trainer's first step starts (~310 nats; ~548 before the bias init)

    train = TrainConfig(steps=40, batch_size=16, lr=3e-3, optimizer="adam", log_every=10, checkpoint_minutes=0)
    result = zoo.trainer("plain")(model, data, train, out_dir=tmp_path / "run", progress=False, cpu=True).fit()
    exported = zoo.load(result.export_dir, device="cpu")
    assert exported.config == model.config
    assert loss(exported) < before - 5, (before, loss(exported))  # ~272 nats after 40 steps


def test_zoo_train_sets_latent_dims_from_the_command_line(tmp_path, capsys):
    data = write_fake_mnist(tmp_path / "mnist")
    code = main(["train", "vae", "--data", str(data), "--dataset", "mnist-binarized", "--trainer", "plain",
                 "--batch-size", "10", "--steps", "3", "--out", str(tmp_path / "run"),
                 "--set", "latent_dims=[6,3]", "--set", "latent_hidden_dims=[16,8]", "--set", "hidden_layers=2",
                 "--set", "activation=tanh", "--set", "encoder_sigma=exp", "--set", "objective=elbo"])
    assert code == 0, capsys.readouterr().err
    model = zoo.load(tmp_path / "run" / "model", device="cpu")
    assert model.config == tiny().config and model.num_parameters() == tiny().num_parameters()
