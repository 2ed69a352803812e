"""The conformance checks every model family must pass (timm's test_models style).

Each check is a pytest test over the ``zoo_family`` fixture, and builds the family from its
``FamilySpec.tiny_config``. Run them with ``pytest --zoo-family NAME`` from any folder, or from
a plugin's own tests::

    from zoo_core.testing.conformance import *  # noqa: F401,F403

    ZOO_FAMILIES = ["my-family"]
"""

from __future__ import annotations

import inspect
import math
from typing import Mapping

import pytest
import torch

from zoo_core.config import TrainConfig

__all__ = [
    "test_conformance_builds_from_its_config",
    "test_conformance_training_step_gives_finite_losses",
    "test_conformance_one_optimizer_step_changes_the_weights",
    "test_conformance_sample_shape_range_and_seed",
    "test_conformance_sampler_options_are_declared_and_unknown_ones_refused",
    "test_conformance_save_pretrained_then_load_is_exact",
    "test_conformance_hub_round_trip",
    "test_conformance_catalog_entries_are_valid",
    "test_conformance_log_prob_gives_bits_per_dim",
]


def build_tiny(family: str, seed: int = 0):
    """The family's model from its ``tiny_config``, with a fixed initialisation seed."""
    import zoo

    torch.manual_seed(seed)
    return zoo.build(family, dict(zoo.families()[family].tiny_config))


def example_batch(model, n: int = 4, seed: int = 0):
    return model.example_batch(n, generator=torch.Generator().manual_seed(seed))


def take_one_step(model, lr: float = 1e-2) -> dict:
    """One optimizer step of every optimizer the family configures, on an example batch."""
    model.train()
    optimizers = model.configure_optimizers(TrainConfig(lr=lr))
    batch = example_batch(model)
    for name, optimizer in optimizers.items():
        model.zero_grad(set_to_none=True)
        model.training_step(batch, optimizer=name)["loss"].backward()
        optimizer.step()
    return optimizers


def assert_same_model(expected, actual) -> None:
    """Same class, config and weights, and the same samples for the same seed."""
    assert type(actual) is type(expected), (type(actual), type(expected))
    assert actual.config == expected.config
    assert not actual.training, "zoo.load must return the model in eval mode"
    state = actual.state_dict()
    for key, value in expected.state_dict().items():
        assert torch.equal(state[key].cpu(), value.cpu()), f"{key} differs after loading"
    expected.eval()
    with torch.no_grad():
        a = expected.sample(2, generator=torch.Generator().manual_seed(7))
        b = actual.sample(2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.cpu(), b.cpu()), "the loaded model samples differently from the saved one"


@pytest.mark.zoo_conformance
def test_conformance_builds_from_its_config(zoo_family):
    import zoo

    spec = zoo.families()[zoo_family]
    model = build_tiny(zoo_family)
    assert isinstance(model, zoo.Generator)
    assert model.family == zoo_family, f"{type(model).__name__}.family is {model.family!r}, registered as {zoo_family!r}"
    assert model.num_parameters() > 0
    config_class = spec.config_class()
    assert isinstance(model.config, config_class)
    assert config_class.model_config.get("frozen"), f"{config_class.__name__} must be frozen (subclass ZooConfig)"
    with pytest.raises(Exception):
        setattr(model.config, next(iter(config_class.model_fields)), None)
    undocumented = [name for name, field in config_class.model_fields.items() if not field.description]
    assert not undocumented, f"{config_class.__name__} fields without a description: {', '.join(undocumented)}"


@pytest.mark.zoo_conformance
def test_conformance_training_step_gives_finite_losses(zoo_family):
    model = build_tiny(zoo_family)
    model.train()
    for name in model.configure_optimizers(TrainConfig()):
        losses = model.training_step(example_batch(model), optimizer=name)
        assert "loss" in losses, f"training_step(optimizer={name!r}) returned {sorted(losses)}, without 'loss'"
        for key, value in losses.items():
            assert value.dim() == 0, f"{zoo_family} {name} {key} is not a scalar"
            assert torch.isfinite(value), f"{zoo_family} {name} {key} = {value}"


@pytest.mark.zoo_conformance
def test_conformance_one_optimizer_step_changes_the_weights(zoo_family):
    model = build_tiny(zoo_family)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizers = take_one_step(model)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{zoo_family}: no weight changed after one step of {list(optimizers)}"
    for name, optimizer in optimizers.items():
        params = [p for group in optimizer.param_groups for p in group["params"]]
        assert params, f"{zoo_family}: optimizer {name} has no parameters"


@pytest.mark.zoo_conformance
def test_conformance_sample_shape_range_and_seed(zoo_family):
    model = build_tiny(zoo_family).eval()
    with torch.no_grad():
        a = model.sample(3, generator=torch.Generator().manual_seed(1))
        b = model.sample(3, generator=torch.Generator().manual_seed(1))
        c = model.sample(3, generator=torch.Generator().manual_seed(2))
    assert isinstance(a, torch.Tensor) and a.shape[0] == 3, getattr(a, "shape", type(a))
    assert a.dtype.is_floating_point and torch.isfinite(a).all()
    assert torch.equal(a, b), "the same generator seed must give the same samples"
    assert not torch.equal(a, c), "another seed must give other samples (is the generator passed on?)"
    if model.samples_are_images:
        assert a.dim() == 4, f"image samples are (n, C, H, W), got {tuple(a.shape)}"
        assert a.min() >= 0.0 and a.max() <= 1.0, (float(a.min()), float(a.max()))


@pytest.mark.zoo_conformance
def test_conformance_sampler_options_are_declared_and_unknown_ones_refused(zoo_family):
    import zoo

    cls = zoo.families()[zoo_family].model_class()
    options = cls.sampler_options
    assert isinstance(options, Mapping), f"{cls.__name__}.sampler_options must map option name -> description"
    for name, description in options.items():
        assert isinstance(name, str) and name.isidentifier(), f"sampler option name {name!r}"
        assert isinstance(description, str) and description.strip(), f"sampler option {name!r} has no description"
    parameters = inspect.signature(cls.sample).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    plain = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    named = [p.name for p in list(parameters.values())[2:] if p.kind in plain and p.name != "generator"]  # after self, n
    undeclared = [name for name in named if name not in options]
    assert not undeclared, f"{cls.__name__}.sample takes {undeclared} but sampler_options does not declare them"
    missing = [name for name in options if name not in parameters and not takes_any]
    assert not missing, f"sampler_options declares {missing}, which {cls.__name__}.sample does not take"
    model = build_tiny(zoo_family).eval()
    with pytest.raises(TypeError) as refused, torch.no_grad():
        model.sample(1, generator=torch.Generator().manual_seed(0), zoo_no_such_option=1)
    assert "zoo_no_such_option" in str(refused.value), str(refused.value)
    if options:  # a near miss of a declared name gets the name suggested
        name = sorted(options)[0]
        with pytest.raises(TypeError) as near, torch.no_grad():
            model.sample(1, generator=torch.Generator().manual_seed(0), **{name + "x": 1})
        assert name in str(near.value), f"no suggestion of {name!r} in: {near.value}"


@pytest.mark.zoo_conformance
def test_conformance_save_pretrained_then_load_is_exact(zoo_family, tmp_path):
    import zoo

    model = build_tiny(zoo_family, seed=3)
    take_one_step(model)  # move off the initial weights, so that loading is really tested
    model.eval()
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    assert_same_model(model, zoo.load(tmp_path / "m", device="cpu"))


@pytest.mark.zoo_conformance
def test_conformance_hub_round_trip(zoo_family, zoo_hub):
    import zoo

    model = build_tiny(zoo_family, seed=4)
    take_one_step(model)
    model.eval()
    repo_id = f"zoo-conformance/{zoo_family}"
    model.push_to_hub(repo_id, commit_message="conformance round trip")
    assert_same_model(model, zoo.load(repo_id, device="cpu"))


@pytest.mark.zoo_conformance
def test_conformance_catalog_entries_are_valid(zoo_family):
    import zoo
    from zoo_core.catalog import Catalog, PackageWeights, catalog
    from zoo_core.checks import catalog_problems
    from zoo_core.plugins import family_distribution, state

    plugin = family_distribution(zoo_family).name
    for source, distribution in state().catalog_sources:  # the plugin's own catalog files parse and validate
        if distribution.name == plugin:
            Catalog().add_source(source, plugin)  # raises CatalogError naming the file and the entry
    ours = {name for name, e in catalog().entries.items() if e.family == zoo_family or e.plugin == plugin}
    problems = [p for p in catalog_problems() if any(p.startswith(f"entry {name!r} ") for name in ours)]
    assert not problems, "\n".join(problems)
    entries = {name: e for name, e in catalog().entries.items() if e.family == zoo_family}
    for name, entry in entries.items():
        assert entry.plugin == plugin, f"{name}: plugin {entry.plugin!r}, but the family comes from {plugin}"
        zoo.build(zoo_family, dict(entry.config))  # the overrides validate
        if isinstance(entry.weights, PackageWeights):  # shipped files: present, hashes and config match
            zoo.load(name, device="cpu")


@pytest.mark.zoo_conformance
def test_conformance_log_prob_gives_bits_per_dim(zoo_family):
    model = build_tiny(zoo_family).eval()
    if not callable(getattr(model, "log_prob", None)):
        pytest.skip(f"{zoo_family} does not implement log_prob(x) (optional; it enables the bits_per_dim metric)")
    from zoo_core.metrics import bits_per_dim_of

    with torch.no_grad():
        x = model.sample(3, generator=torch.Generator().manual_seed(0))
        log_p = model.log_prob(x)
    assert log_p.shape == (3,), f"log_prob(x) returns one value per example, got {tuple(log_p.shape)}"
    assert torch.isfinite(log_p).all()
    bpd = bits_per_dim_of(model, x)
    assert math.isfinite(bpd) and bpd > 0, bpd
