"""zoo.load and the catalog: every mistake a user can make gets a message that says what to do."""

import json
from importlib import resources

import pytest
import torch
from safetensors.torch import save_file

import zoo
from helpers import REPO
from zoo_core.catalog import Catalog
from zoo_core.errors import (CatalogError, InvalidConfigError, PluginNotInstalledError, UnknownModelError,
                             WeightsError)


def a_saved_model(tmp_path):
    family = sorted(zoo.families())[0]
    torch.manual_seed(0)
    model = zoo.build(family, dict(zoo.families()[family].tiny_config))
    return model, model.save_pretrained(tmp_path / "saved")


def test_the_top_level_registry_validates_and_is_the_one_shipped():
    catalog = Catalog()
    catalog.add_source(REPO / "registry.yaml", "zoo-core")
    shipped = resources.files("zoo_core").joinpath("registry.yaml").read_text()
    assert shipped == (REPO / "registry.yaml").read_text()
    for name, entry in catalog.entries.items():
        # an authors' checkpoint the zoo cannot download here may carry only the paper's numbers, or none
        foreign = getattr(entry.weights, "format", None) is not None
        assert entry.metrics or foreign, f"{name} has no measured metric"
        assert all(m.command or (foreign and m.reported_by) for m in entry.metrics), f"{name}: a metric lacks its command"


@pytest.mark.parametrize("fragment", sorted(REPO.glob("plugins/*/catalog-entries.yaml")), ids=lambda p: p.parent.name)
def test_each_plugins_shipping_script_output_is_in_registry_yaml(fragment):
    """A plugin's weights script writes catalog-entries.yaml (sha256s, metrics); registry.yaml must carry it."""
    import yaml

    registry = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]
    for name, entry in yaml.safe_load(fragment.read_text())["models"].items():
        assert name in registry, f"{name} from {fragment} is missing in registry.yaml"
        for key in ("family", "plugin", "config", "weights"):
            assert registry[name][key] == entry[key], f"registry.yaml's {name}.{key} differs from {fragment}"
        assert [m["value"] for m in registry[name]["metrics"]] == [m["value"] for m in entry["metrics"]]


def test_every_catalog_model_loads_offline_and_samples(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = [n for n in zoo.list_models() if zoo.info(n)["source"].startswith("package:")]
    for name in names:
        if zoo.info(name)["plugin"] == "zoo-example":
            continue
        model = zoo.load(name, device="cpu")
        assert not model.training and model.family == zoo.info(name)["family"]


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"family": "ae", "plugin": "zoo-ae", "wieghts": {}}, "entry 'bad', field wieghts: Extra inputs"),
        ({"family": "ae", "plugin": "zoo-ae", "weights": {"repo": "a/b", "revision": "main",
          "sha256": {"config.json": "0" * 64, "model.safetensors": "0" * 64}}}, "full 40-hex commit sha"),
        ({"family": "ae", "plugin": "zoo-ae", "weights": {"package": "p", "path": "w",
          "sha256": {"model.safetensors": "0" * 64}}}, "at least config.json and model.safetensors"),
        ({"family": "ae", "plugin": "zoo-ae", "weights": {"package": "p", "path": "w",
          "sha256": {"config.json": "0" * 64, "../model.safetensors": "0" * 64}}}, "plain file name"),
    ],
)
def test_catalog_mistakes_name_the_file_the_entry_and_the_field(tmp_path, entry, expected):
    path = tmp_path / "registry.yaml"
    path.write_text(json.dumps({"version": 1, "models": {"bad": entry}}))
    with pytest.raises(CatalogError) as error:
        Catalog().add_source(path, "zoo-test")
    assert str(path) in str(error.value) and expected in str(error.value), str(error.value)


def test_an_unknown_name_suggests_the_closest():
    names = zoo.list_models()
    assert names, "the catalog is empty"
    typo = names[0][:-1] + "x"
    with pytest.raises(UnknownModelError, match=f"Did you mean '{names[0]}'"):
        zoo.load(typo)
    with pytest.raises(KeyError):  # UnknownModelError is a KeyError, like timm and llm
        zoo.load("no-such-model-anywhere")


def test_list_models_takes_wildcards():
    everything = zoo.list_models()
    assert zoo.list_models("*") == everything
    for name in everything:
        prefix = name.split("-")[0]
        assert name in zoo.list_models(f"{prefix}-*")
    assert zoo.list_models("nothing-matches-*") == []


def test_a_family_whose_plugin_is_missing_names_the_distribution(tmp_path):
    _, folder = a_saved_model(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config.update(family="ghost", plugin="zoo-ghost")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PluginNotInstalledError, match="pip install zoo-ghost"):
        zoo.load(folder)


def test_an_invalid_config_names_the_file_and_the_field(tmp_path):
    _, folder = a_saved_model(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["config"]["not_a_field"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidConfigError, match=r"config\.json.*not_a_field: Extra inputs are not permitted"):
        zoo.load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(InvalidConfigError, match="is not valid JSON"):
        zoo.load(folder)


def test_weights_with_missing_or_unexpected_keys_are_refused_and_listed(tmp_path):
    model, folder = a_saved_model(tmp_path)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    dropped = sorted(state)[0]
    del state[dropped]
    state["extra.weight"] = torch.zeros(2)
    save_file(state, folder / "model.safetensors")
    (folder / "SHA256SUMS").unlink()  # a folder put together by hand, without save_pretrained's checksums
    with pytest.raises(WeightsError) as error:
        zoo.load(folder)
    assert f"missing keys (1): {dropped}" in str(error.value)
    assert "unexpected keys (1): extra.weight" in str(error.value)


def test_corrupt_and_pickled_weights_are_refused(tmp_path):
    _, folder = a_saved_model(tmp_path)
    (folder / "SHA256SUMS").unlink()  # without checksums, the safetensors reader itself must refuse it
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        zoo.load(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle bytes that must never be unpickled")
    with pytest.raises(WeightsError, match="only pickled weights"):
        zoo.load(folder)


def test_load_puts_the_model_in_eval_mode_on_the_requested_device_and_dtype(tmp_path):
    _, folder = a_saved_model(tmp_path)
    model = zoo.load(folder, device="cpu", dtype="float64")
    assert not model.training
    assert model.device == torch.device("cpu") and model.dtype == torch.float64
    assert not any(p.requires_grad for p in model.parameters())
    default = zoo.load(folder)
    assert default.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
