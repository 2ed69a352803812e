"""zoo-gan's architectures and options: old configs keep their old networks, the paper's MNIST
model (maxout D with dropout, ReLU G with a sigmoid output, uniform noise), DCGAN at 28 and 32
pixels with spectral norm or R1, and the SGD momentum ramp."""

import json
import math

import pytest
import torch
from torch import nn

import zoo

# today's (first release's) gan-mnist config.json, and a DCGAN config of that release
OLD_MLP = {"architecture": "mlp", "discriminator_dropout": 0.3, "generator_loss": "non_saturating", "hidden_dim": 128,
           "image_channels": 1, "image_size": 28, "latent_dim": 100}
OLD_DCGAN = {"architecture": "dcgan", "hidden_dim": 16, "latent_dim": 8, "image_size": 28}
PAPER = {"generator_widths": [1200, 1200], "generator_activation": "relu", "generator_batch_norm": False,
         "output_activation": "sigmoid", "discriminator_widths": [240, 240], "discriminator_activation": "maxout",
         "maxout_pieces": 5, "discriminator_input_dropout": 0.2, "discriminator_dropout": 0.5, "noise": "uniform"}


def _old_networks(c: dict) -> tuple[nn.Module, nn.Module]:
    """The first release's networks, written out as they were."""
    h = c["hidden_dim"]
    if c["architecture"] == "mlp":
        g = nn.Sequential(nn.Linear(c["latent_dim"], h), nn.LeakyReLU(0.2), nn.Linear(h, 2 * h), nn.BatchNorm1d(2 * h),
                          nn.LeakyReLU(0.2), nn.Linear(2 * h, 4 * h), nn.BatchNorm1d(4 * h), nn.LeakyReLU(0.2),
                          nn.Linear(4 * h, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
        d = nn.Sequential(nn.Flatten(), nn.Linear(784, 4 * h), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                          nn.Linear(4 * h, 2 * h), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(2 * h, 1))
        return g, d
    q = 7
    g = nn.Sequential(nn.Linear(c["latent_dim"], 2 * h * q * q), nn.Unflatten(1, (2 * h, q, q)), nn.BatchNorm2d(2 * h),
                      nn.ReLU(), nn.ConvTranspose2d(2 * h, h, 4, 2, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
                      nn.ConvTranspose2d(h, 1, 4, 2, 1), nn.Tanh())
    d = nn.Sequential(nn.Conv2d(1, h, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(h, 2 * h, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(2 * h), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * h * q * q, 1))
    return g, d


@pytest.mark.parametrize("old", [OLD_MLP, OLD_DCGAN], ids=["mlp", "dcgan"])
def test_a_config_of_the_first_release_loads_its_weights_and_samples_as_before(tmp_path, old):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    g, d = _old_networks(old)
    for module in g.modules():  # non-trivial batch-norm statistics
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    state = {f"generator.{k}": v for k, v in g.state_dict().items()}
    state.update({f"discriminator.{k}": v for k, v in d.state_dict().items()})
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"family": "gan", "plugin": "zoo-gan", "plugin_version": "0.1.0",
                                                      "zoo_version": "0.1.0", "config": old}))
    model = zoo.load(tmp_path, device="cpu")
    # the old sampler: x = (G(z) + 1) / 2, z ~ N(0, I) drawn from the generator
    z = torch.randn(6, old["latent_dim"], generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = ((g.eval()(z) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(model.sample(6, generator=torch.Generator().manual_seed(4)), expected)
    batch = torch.rand(4, 1, 28, 28)
    model.train()
    d.train()
    torch.manual_seed(1)
    logits = model.discriminator(batch * 2 - 1)
    torch.manual_seed(1)
    torch.testing.assert_close(logits, d(batch * 2 - 1))


def test_the_paper_mnist_model_has_its_sizes_maxout_dropout_sigmoid_and_uniform_noise():
    torch.manual_seed(0)
    model = zoo.build("gan", PAPER, generator_init_range=0.05, discriminator_init_range=0.005)
    # G 100-1200-1200-784, D maxout 784-240x5-240x5-1 (Goodfellow et al. 2014's pylearn2 model)
    assert sum(p.numel() for p in model.generator.parameters()) == 100 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 784 + 784
    assert sum(p.numel() for p in model.discriminator.parameters()) == 784 * 1200 + 1200 + 240 * 1200 + 1200 + 241
    assert [type(m).__name__ for m in model.discriminator] == [
        "Flatten", "Dropout", "Maxout", "Dropout", "Maxout", "Dropout", "Linear"]
    assert [m.p for m in model.discriminator if isinstance(m, nn.Dropout)] == [0.2, 0.5, 0.5]
    assert isinstance(model.generator[-2], nn.Sigmoid) and not any(isinstance(m, nn.BatchNorm1d) for m in model.generator)
    assert float(model.generator[0].weight.detach().abs().max()) <= 0.05 and float(model.discriminator[2].linear.weight.detach().abs().max()) <= 0.005
    # maxout: the max over each unit's 5 pieces
    maxout = model.discriminator[2]
    x = torch.randn(3, 784)
    pieces = maxout.linear(x).view(3, 240, 5)
    torch.testing.assert_close(maxout(x), pieces.max(-1).values)
    # uniform noise U(-sqrt 3, sqrt 3): unit variance
    z = model.noise(20000, torch.Generator().manual_seed(0))
    assert float(z.abs().max()) <= math.sqrt(3) and float(z.var()) == pytest.approx(1.0, abs=0.02)
    assert float(z.mean()) == pytest.approx(0.0, abs=0.02)
    # sigmoid output: D sees images in [0, 1] as they are, samples are G(z)
    images = model.eval().sample(4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(images, model.generator(model.noise(4, torch.Generator().manual_seed(0))))
    assert model.to_model_range(torch.ones(1)) == 1


@pytest.mark.parametrize("size", [28, 32])
def test_dcgan_with_spectral_norm_at_28_and_32_pixels(size):
    torch.manual_seed(0)
    model = zoo.build("gan", {"architecture": "dcgan", "hidden_dim": 8, "latent_dim": 8, "image_size": size,
                              "discriminator_norm": "spectral_norm", "discriminator_extra_convs": 1})
    assert model.sample(3).shape == (3, 1, size, size)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.discriminator)
    model.train()
    for _ in range(20):  # power iterations in training mode
        model.discriminator(torch.rand(2, 1, size, size))
    for module in model.discriminator.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            # the parametrized weight has largest singular value ~1 (conv: of its (out, in*k*k) matrix)
            sigma = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2)
            assert float(sigma) == pytest.approx(1.0, abs=0.05)
    out = model.training_step(model.example_batch(4), optimizer="discriminator")
    assert torch.isfinite(out["loss"])


def test_r1_penalty_is_half_gamma_times_the_squared_gradient_norm_on_real_data():
    torch.manual_seed(0)
    model = zoo.build("gan", {"latent_dim": 8, "hidden_dim": 16, "r1_gamma": 10.0, "discriminator_dropout": 0.0})
    plain = zoo.build("gan", {"latent_dim": 8, "hidden_dim": 16, "discriminator_dropout": 0.0})
    plain.load_state_dict(model.state_dict())
    batch = model.example_batch(8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    with_r1 = model.training_step(batch, optimizer="discriminator")
    torch.manual_seed(5)
    without = plain.training_step(batch, optimizer="discriminator")
    x = (batch * 2 - 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.discriminator(x).sum(), x)
    expected = grad.pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(with_r1["r1"], expected)
    torch.testing.assert_close(with_r1["loss"], without["loss"] + 5.0 * expected)
    with_r1["loss"].backward()  # the penalty is differentiable in D's weights (double backward)
    assert all(p.grad is not None for p in model.discriminator.parameters())


def test_momentum_ramps_linearly_and_resumes_from_the_optimizer_state():
    from zoo_gan.model import ramp_momentum

    def make():
        weight = nn.Parameter(torch.zeros(3))
        optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.5)
        ramp_momentum(optimizer, 0.7, steps=4)
        return weight, optimizer

    weight, optimizer = make()
    used = []
    for _ in range(6):
        weight.grad = torch.ones(3)
        optimizer.step()
        used.append(optimizer.param_groups[0]["momentum"])
    assert used == pytest.approx([0.5, 0.55, 0.6, 0.65, 0.7, 0.7])
    # a fresh optimizer loaded from a saved state continues the ramp where it was
    weight, optimizer = make()
    for _ in range(2):
        weight.grad = torch.ones(3)
        optimizer.step()
    state = optimizer.state_dict()
    _, again = make()
    again.load_state_dict(state)
    again.param_groups[0]["params"][0].grad = torch.ones(3)
    again.step()
    assert again.param_groups[0]["momentum"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="momentum"):
        ramp_momentum(torch.optim.Adam([nn.Parameter(torch.zeros(1))]), 0.7, steps=4)


def test_bad_gan_configs_are_refused_with_the_field_named():
    from zoo_core.errors import ZooError

    for bad, field in (({"architecture": "dcgan", "image_size": 30}, "image_size"),
                       ({"generator_widths": []}, "generator_widths"),
                       ({"final_momentum": 0.7}, "momentum_ramp_steps"),
                       ({"discriminator_steps": 0}, "discriminator_steps")):
        with pytest.raises((ValueError, ZooError), match=field):
            zoo.build("gan", bad)
