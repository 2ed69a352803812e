"""zoo-vae on the IWAE paper's protocol (Burda, Grosse & Salakhutdinov 2015): the mnist-binarized
dataset, the paper's architecture by config, the IWAE objective and the k-sample NLL metric."""

import json
import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo_core.cli import main
from zoo_core.errors import InvalidConfigError

DATA = Path(__file__).parents[2] / "shared" / "data"
MNIST = DATA / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="shared MNIST data not found")
TINY = {"hidden_dim": 16, "latent_dim": 3}
#: Burda et al.'s one-stochastic-layer MNIST model: 784-200-200-50 with tanh, exp sigma, bias at logit(mean)
PAPER = {"hidden_dim": 200, "hidden_layers": 2, "latent_dim": 50, "activation": "tanh", "encoder_sigma": "exp",
         "output_bias_init": "data_mean"}


def binarized(split="train", **options):
    from zoo_core.plugins import get_dataset

    return get_dataset("mnist-binarized").load(MNIST, split=split, **options)


# -- the dataset -------------------------------------------------------------------------------


@needs_mnist
def test_binarized_splits_sizes_and_values():
    from zoo_core.datasets import load_mnist

    train, validation, test = binarized("train"), binarized("validation"), binarized("test")
    assert (len(train), len(validation), len(test)) == (59_600, 400, 10_000)
    grey = load_mnist(MNIST, split="train").tensors()
    # the held-out 400 are the last training images, binarized from their grey levels
    assert torch.equal(validation.tensors() == 1, (validation.tensors() == 1) & (grey[-400:] > 0))
    for dataset in (train, validation, test):
        item = dataset[0]
        assert item.shape == (1, 28, 28) and set(item.unique().tolist()) <= {0.0, 1.0}
    # a pixel is 1 with the probability of its grey level: the binarized means match the grey means
    test_grey = load_mnist(MNIST, split="test").tensors()
    test_bin = test.tensors()
    assert abs(float(test_bin.mean()) - float(test_grey.mean())) < 0.002
    assert torch.equal(test_bin[test_grey == 0], torch.zeros_like(test_bin[test_grey == 0]))
    assert torch.equal(test_bin[test_grey == 1], torch.ones_like(test_bin[test_grey == 1]))
    with pytest.raises(ValueError, match="split must be one of"):
        binarized("valid")


@needs_mnist
def test_training_images_are_binarized_anew_at_each_draw_reproducibly():
    train = binarized("train", limit=64)
    torch.manual_seed(0)
    first = torch.stack(train.__getitems__(list(range(64))))
    second = torch.stack(train.__getitems__(list(range(64))))
    assert not torch.equal(first, second)  # dynamic: fresh pixels each time
    torch.manual_seed(0)
    assert torch.equal(first, torch.stack(train.__getitems__(list(range(64)))))  # seeded: the same draws
    # the average of many draws is the grey level
    draws = torch.stack([train[3] for _ in range(2000)]).mean(0)
    assert float((draws - train.images[3].float() / 255).abs().max()) < 0.06
    static = binarized("train", limit=64, dynamic=False)
    assert torch.equal(static[5], static[5])


@needs_mnist
def test_test_binarization_is_fixed_by_its_seed():
    a, b = binarized("test").tensors(), binarized("test").tensors()
    assert torch.equal(a, b)
    assert torch.equal(binarized("test", limit=100).tensors(), a[:100])  # a limit cuts the same images
    other = binarized("test", binarization_seed=1).tensors()
    assert not torch.equal(a, other) and abs(float(a.mean() - other.mean())) < 0.002


# -- the model -------------------------------------------------------------------------------


def test_the_papers_architecture_has_425284_parameters():
    model = zoo.build("vae", PAPER)
    assert model.num_parameters() == 425_284
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 200), (200, 200), (200, 50), (200, 50), (50, 200), (200, 200), (200, 784)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.modules()) == 4
    shipped = zoo.load("vae-mnist-burda", device="cpu")
    assert shipped.num_parameters() == 425_284 and shipped.config == model.config


def test_exp_sigma_is_log_variance_twice_the_layer_output():
    torch.manual_seed(0)
    model = zoo.build("vae", {**TINY, "encoder_sigma": "exp"})
    x = torch.rand(4, 1, 28, 28)
    a = model.to_log_sigma2(model.encoder(x))
    torch.testing.assert_close(model.encode(x)[1], 2 * a)  # sigma = exp(a)


def test_new_config_fields_are_checked():
    with pytest.raises(InvalidConfigError, match="objective='iwae'"):
        zoo.build("vae", k=5)
    with pytest.raises(InvalidConfigError, match="activation"):
        zoo.build("vae", activation="swish")
    with pytest.raises(InvalidConfigError, match="bernoulli"):
        zoo.build("vae", likelihood="gaussian", output_bias_init="data_mean")


#: config.json of the first vae-mnist (zoo-vae 0.1.0), before the fields of Burda et al.'s protocol
FIRST_VAE_MNIST = {"config": {"architecture": "mlp", "hidden_dim": 400, "image_channels": 1, "image_size": 28,
                              "latent_dim": 20, "likelihood": "bernoulli"},
                   "family": "vae", "plugin": "zoo-vae", "plugin_version": "0.1.0", "zoo_version": "0.1.0"}
FIRST_VAE_MNIST_WEIGHTS = {"encoder.1.weight": (400, 784), "encoder.1.bias": (400,), "to_mu.weight": (20, 400),
                           "to_mu.bias": (20,), "to_log_sigma2.weight": (20, 400), "to_log_sigma2.bias": (20,),
                           "decoder.0.weight": (400, 20), "decoder.0.bias": (400,), "decoder.2.weight": (784, 400),
                           "decoder.2.bias": (784,)}


def test_the_first_vae_mnist_config_keeps_loading_with_its_behaviour(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    folder = tmp_path / "first-vae-mnist"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(FIRST_VAE_MNIST))
    save_file({k: torch.randn(shape) for k, shape in FIRST_VAE_MNIST_WEIGHTS.items()}, folder / "model.safetensors")
    model = zoo.load(folder, device="cpu")
    config = model.config
    assert (config.hidden_layers, config.activation, config.encoder_sigma, config.objective, config.k,
            config.output_bias_init) == (1, "relu", "log_variance", "elbo", 1, "default")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == FIRST_VAE_MNIST_WEIGHTS
    assert [type(m).__name__ for m in model.decoder] == ["Linear", "ReLU", "Linear", "Unflatten"]
    x = torch.rand(2, 1, 28, 28)
    hidden = torch.relu(x.flatten(1) @ model.encoder[1].weight.T + model.encoder[1].bias)
    torch.testing.assert_close(model.encode(x)[1], model.to_log_sigma2(hidden))  # log sigma^2, as it was trained
    assert set(model.training_step(x)) == {"loss", "reconstruction", "kl"}  # the ELBO, as before


# -- the IWAE objective ----------------------------------------------------------------------


def _independent_log_weight(model, x, eps):
    """log p(x|z) + log p(z) - log q(z|x) with torch.distributions, for one eps (N, d)."""
    mu, log_sigma2 = model.encode(x)
    q = torch.distributions.Normal(mu, (0.5 * log_sigma2).exp())
    z = mu + (0.5 * log_sigma2).exp() * eps
    p_z = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    p_x = torch.distributions.Bernoulli(logits=model.decode_logits(z))
    return p_x.log_prob(x).flatten(1).sum(1) + p_z.log_prob(z).sum(1) - q.log_prob(z).sum(1)


def test_iwae_with_k_1_is_the_elbo():
    torch.manual_seed(0)
    model = zoo.build("vae", {**TINY, "encoder_sigma": "exp"}).eval()
    x = torch.bernoulli(torch.rand(5, 1, 28, 28))
    with torch.no_grad():
        eps = torch.randn(1, 5, 3)
        log_w = model.log_weights(x, 1, eps=eps)
        torch.testing.assert_close(log_w[0], _independent_log_weight(model, x, eps[0]), rtol=1e-5, atol=1e-3)
        # in expectation the one-sample bound is the closed-form-KL ELBO that objective='elbo' trains
        bounds = model.log_weights(x, 4000)  # 4000 one-sample bounds per image
        closed_form = model.elbo(x.repeat(4000, 1, 1, 1))["elbo"].view(4000, 5)
    standard_error = (bounds.var(0) / 4000 + closed_form.var(0) / 4000).sqrt()
    assert ((bounds.mean(0) - closed_form.mean(0)).abs() < 4 * standard_error).all()
    iwae_1 = zoo.build("vae", {**TINY, "encoder_sigma": "exp", "objective": "iwae", "k": 1})
    iwae_1.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    loss = iwae_1.training_step(x)["loss"]
    torch.manual_seed(1)
    torch.testing.assert_close(loss, -model.iwae_bound(x, 1).mean())


def assert_the_iwae_bound_increases_with_k(model, x):
    """L_1 < L_5 < L_50 on a fixed model and batch, each the mean of 200 draws, by 3 standard errors."""
    means, errors = [], []
    with torch.no_grad():
        for k in (1, 5, 50):
            bounds = torch.stack([model.iwae_bound(x, k).mean() for _ in range(200)])
            means.append(float(bounds.mean()))
            errors.append(float(bounds.std()) / 200**0.5)
    assert means[0] + 3 * (errors[0] + errors[1]) < means[1], (means, errors)
    assert means[1] + 3 * (errors[1] + errors[2]) < means[2], (means, errors)


def test_the_iwae_bound_increases_with_k_on_a_fixed_model():
    torch.manual_seed(0)
    model = zoo.build("vae", TINY).eval()
    assert_the_iwae_bound_increases_with_k(model, torch.bernoulli(torch.rand(6, 1, 28, 28) * 0.3))


def test_iwae_objective_trains_through_its_bound():
    torch.manual_seed(0)
    model = zoo.build("vae", {**TINY, "objective": "iwae", "k": 5})
    x = torch.bernoulli(torch.rand(8, 1, 28, 28))
    out = model.training_step(x)
    assert set(out) == {"loss"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# -- the NLL metric --------------------------------------------------------------------------


@needs_mnist
@pytest.mark.parametrize("chunk", [20, 7])
def test_nll_metric_matches_an_independent_log_mean_exp(tmp_path, capsys, chunk):
    torch.manual_seed(0)
    model = zoo.build("vae", TINY)
    model.save_pretrained(tmp_path / "tiny")
    k, n = 20, 12
    code = main(["eval", str(tmp_path / "tiny"), "--metric", "nll", "--data", str(MNIST), "--k", str(k),
                 "--limit", str(n), "--chunk", str(chunk), "--batch-size", str(n), "-o", str(tmp_path / "eval")])
    assert code == 0, capsys.readouterr().err
    measured = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # independently: the same draws (seed 0, chunk by chunk), log-mean-exp in float64 by hand
    x = binarized("test").tensors()[:n]
    torch.manual_seed(0)
    with torch.no_grad():
        log_w = torch.cat([torch.stack([_independent_log_weight(model, x, e) for e in torch.randn(min(chunk, k - s), n, 3)])
                           for s in range(0, k, chunk)]).double()
    top = log_w.max(0).values
    log_px = top + (log_w - top).exp().mean(0).log()
    assert measured["nll"] == pytest.approx(float(-log_px.mean()), abs=1e-3)
    assert measured["nll_stderr"] == pytest.approx(float(log_px.std() / math.sqrt(n)), rel=1e-3)
    assert measured["elbo"] == pytest.approx(float(log_w.mean()), abs=1e-3)
    assert measured["elbo"] < -measured["nll"]  # the k-sample bound is above the ELBO
    assert (measured["k"], measured["images"]) == (k, n)
    with torch.no_grad():
        mu, log_sigma2 = model.encode(x)
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * log_sigma2).exp()),
                                           torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert measured["kl"] == pytest.approx(float(kl), rel=1e-4)


@needs_mnist
def test_nll_is_seeded_and_leaves_the_callers_random_state(tmp_path):
    from zoo_vae.metrics import nll

    torch.manual_seed(0)
    model = zoo.build("vae", TINY)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = nll(model, data=MNIST, k=10, limit=20)
    assert torch.equal(torch.get_rng_state(), state)
    assert nll(model, data=MNIST, k=10, limit=20) == first
    assert nll(model, data=MNIST, k=10, limit=20, seed=1)["nll"] != first["nll"]


@needs_mnist
def test_eval_option_flags_errors(tmp_path):
    from helpers import run_zoo

    torch.manual_seed(0)
    zoo.build("vae", TINY).save_pretrained(tmp_path / "tiny")
    for args, message in [(["--k", "0"], "k=0 is not a number of importance samples"),
                          (["--k"], "--k needs a value")]:
        result = run_zoo("eval", str(tmp_path / "tiny"), "--metric", "nll", "--data", str(MNIST), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# -- training on the protocol ----------------------------------------------------------------


@needs_mnist
def test_data_mean_bias_and_resume_through_zoo_train(tmp_path, capsys):
    common = ["train", "vae", "--data", str(MNIST), "--dataset", "mnist-binarized", "--data-option", "limit=400",
              "--trainer", "plain", "--batch-size", "20", "--set", "hidden_dim=16", "--set", "hidden_layers=2",
              "--set", "latent_dim=3", "--set", "activation=tanh", "--set", "encoder_sigma=exp",
              "--set", "output_bias_init=data_mean", "--set", "objective=iwae", "--set", "k=3",
              "--train-set", "optimizer=adam", "--train-set", "eps=0.0001", "--train-set", "lr_schedule=step",
              "--train-set", "lr_milestones=[20,30]", "--train-set", "lr_gamma=0.5", "--checkpoint-every", "10"]
    assert main([*common, "--steps", "40", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--steps", "25", "--out", str(tmp_path / "split")]) == 0
    assert main([*common, "--steps", "40", "--out", str(tmp_path / "split"), "--resume"]) == 0
    capsys.readouterr()
    straight = zoo.load(tmp_path / "straight" / "model", device="cpu")
    resumed = zoo.load(tmp_path / "split" / "model", device="cpu")
    for key, value in straight.state_dict().items():  # the same binarized pixels after the resume
        assert torch.equal(value, resumed.state_dict()[key]), key
    # the decoder's last bias started at logit(mean of the training images); 40 small steps move it little
    last_bias = straight.decoder[-2].bias.detach().view(1, 28, 28)
    mean = binarized("train", limit=400).mean()
    assert float((torch.sigmoid(last_bias) - mean).abs().max()) < 0.08
    assert float(torch.sigmoid(last_bias)[mean == 0].max()) < 0.01


# -- cards -----------------------------------------------------------------------------------


def test_the_card_shows_samples_and_an_interpolation_grid(tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    model = zoo.build("vae", TINY)
    model.save_pretrained(tmp_path / "tiny")
    card = (tmp_path / "tiny" / "README.md").read_text()
    assert "](samples.png)" in card and "](interpolation.png)" in card and "Bernoulli means" in card
    assert Image.open(tmp_path / "tiny" / "interpolation.png").size == (10 * 28 + 11 * 2, 6 * 28 + 7 * 2)
    walk = model.interpolate(rows=2, steps=5)
    assert walk.shape == (10, 1, 28, 28) and torch.equal(walk, model.interpolate(rows=2, steps=5))
    # the ends of each row are the two prior draws, decoded
    generator = torch.Generator().manual_seed(0)
    ends = torch.randn(2, 2, 1, 3, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(walk[0], model.decode(ends[0, 0].float())[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(walk[4], model.decode(ends[1, 0].float())[0], atol=1e-5, rtol=0)


@needs_mnist
@pytest.mark.parametrize("trainer", ["accelerate", "plain"])
def test_every_trainer_calls_on_fit_start_on_a_fresh_run(tmp_path, trainer):
    from zoo_core.config import TrainConfig

    torch.manual_seed(0)
    model = zoo.build("vae", {**TINY, "output_bias_init": "data_mean"})
    data = binarized("train", limit=200)
    train = TrainConfig(steps=1, batch_size=20, lr=1e-9, checkpoint_minutes=0)
    result = zoo.trainer(trainer)(model, data, train, out_dir=tmp_path / "run", progress=False, cpu=True).fit()
    bias = zoo.load(result.export_dir, device="cpu").decoder[-2].bias.detach().view(1, 28, 28)
    assert float((torch.sigmoid(bias) - data.mean()).abs().max()) < 0.08
