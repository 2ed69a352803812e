"""Model cards the real Hub accepts, their sample images, and the huggingface_hub-style signatures
(load / from_pretrained / save_pretrained / push_to_hub / create_model), against the test Hub,
whose metadata check (zoo_core/testing/hub_server.py: validate_card_metadata) refuses what the Hub refuses."""

from __future__ import annotations

import hashlib
import os
import uuid
from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo_core.testing.hub_server import HUB_LICENSES, validate_card_metadata
from zoo_core import hub as zhub
from zoo_core.catalog import PackageWeights, catalog
from zoo_core.errors import UnknownModelError, WeightsError

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

SHIPPED = [n for n in zoo.list_models() if isinstance(catalog().entries[n].weights, PackageWeights)]


def _repo(prefix: str = "card") -> str:
    return f"tester/{prefix}-{uuid.uuid4().hex[:10]}"


def _tiny(family: str = "vae", seed: int = 0):
    torch.manual_seed(seed)
    return zoo.build(family, zoo.families()[family].tiny_config)


def _metadata(readme: str) -> dict:
    return yaml.safe_load(readme.split("---\n")[1])


# -- the validator itself: it must refuse what the Hub refuses -----------------------------------


GOOD = """---
license: cc-by-sa-3.0
datasets: [ylecun/mnist]
model-index:
- name: m
  results:
  - task: {type: unconditional-image-generation}
    dataset: {type: ylecun/mnist, name: MNIST, split: test}
    metrics: [{type: nll, value: 1.5, args: {sigma: 0.2}}]
    source: {name: zoo eval m --metric nll, url: https://example.org/zoo}
---
# m
"""


@pytest.mark.parametrize("bad, problem", [
    (("license: cc-by-sa-3.0", "license: CC-BY-SA-3.0"), '"license" must be one of'),
    (("license: cc-by-sa-3.0", "license: other (CIFAR-10, cite Krizhevsky 2009)"), '"license" must be one of'),
    (("license: cc-by-sa-3.0", "license: other"), '"license_name" must be a lowercase slug'),
    (("datasets: [ylecun/mnist]", "datasets: [mnist]"), '"datasets" must hold Hub dataset ids'),
    (("datasets: [ylecun/mnist]", "datasets: [lego_200_rgba_80views.npz]"), '"datasets" must hold Hub dataset ids'),
    (("task: {type: unconditional-image-generation}", "task: {name: generation}"), 'task must have "type"'),
    (("metrics: [{type: nll, value: 1.5, args: {sigma: 0.2}}]", "metrics: []"), "metrics must be a non-empty array"),
    (("url: https://example.org/zoo", "url: zoo eval m"), "source.url must be a URL"),
    (("split: test}", "split: test, bandwidth: 0.2}"), 'unknown key "bandwidth"'),
])
def test_the_test_hub_refuses_cards_the_hub_refuses(bad, problem):
    assert validate_card_metadata(GOOD) == []
    errors = validate_card_metadata(GOOD.replace(*bad))
    assert any(problem in e for e in errors), errors


def test_a_refused_card_fails_the_push_and_modelcard_validate(hub):
    from huggingface_hub import HfApi, ModelCard

    bad = GOOD.replace("datasets: [ylecun/mnist]", "datasets: [mnist]")
    with pytest.raises(ValueError, match="Hub dataset ids"):
        ModelCard(bad).validate()  # POST /api/validate-yaml, as huggingface_hub does before a card push
    ModelCard(GOOD).validate()
    api = HfApi(endpoint=hub.url, token=hub.token)
    repo = _repo("refused")
    api.create_repo(repo)
    with pytest.raises(Exception, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=bad.encode(), path_in_repo="README.md", repo_id=repo)


# -- the shipped catalog folders -----------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_card_is_hub_valid_and_shows_its_samples(name):
    entry = catalog().entries[name]
    folder = Path(str(resources.files(entry.weights.package).joinpath(entry.weights.path)))
    readme = (folder / "README.md").read_text()
    assert validate_card_metadata(readme) == []
    meta = _metadata(readme)
    assert meta["library_name"] == "zoo" and meta["license"] in HUB_LICENSES
    if meta["license"] == "other":
        assert meta["license_name"] and meta["license_link"].startswith("https://")
    assert all("/" in d for d in meta.get("datasets", []))
    assert len(meta.get("datasets", [])) == len(set(meta.get("datasets", [])))  # mnist and mnist-binarized: one id
    index = meta["model-index"]
    assert len(index) == 1 and index[0]["name"] == name  # model_name is the model's name, not its family
    results = index[0]["results"]
    keys = [(r["task"]["type"], r["dataset"]["type"], r["dataset"].get("config"), r["dataset"].get("split")) for r in results]
    assert len(keys) == len(set(keys))  # canonical: one result per task, dataset and split
    assert sum(len(r["metrics"]) for r in results) == len(entry.metrics)
    for result in results:
        assert result["dataset"].get("split") in (None, "train", "test", "validation")
        for metric in result["metrics"]:
            catalog_metric = next(m for m in entry.metrics if m.name == metric["type"])
            assert catalog_metric.command in result["source"]["name"]
            assert metric.get("args", {}) == catalog_metric.args
    spec = zoo.families()[entry.family]
    assert {f"arxiv:{p}" for p in spec.papers} <= set(meta["tags"])
    assert spec.citation is None or spec.citation.strip() in readme
    assert f"](samples.png)" in readme and (folder / "samples.png").is_file()
    from PIL import Image

    assert min(Image.open(folder / "samples.png").size) >= 16
    # the catalog's hashes cover the card and its image
    for file_name in ("README.md", "samples.png"):
        assert entry.weights.sha256[file_name] == hashlib.sha256((folder / file_name).read_bytes()).hexdigest()


def test_settings_are_card_fields_not_metrics():
    names = {m.name for n in zoo.list_models() for m in catalog().entries[n].metrics}
    assert "parzen_sigma" not in names
    parzen = next(m for m in catalog().entries["gan-mnist"].metrics if m.name == "parzen_log_likelihood")
    assert parzen.args["sigma"] == pytest.approx(0.178, abs=1e-3)


# -- save_pretrained / push_to_hub ---------------------------------------------------------------


def test_save_pretrained_writes_a_seeded_sample_grid_and_the_card_shows_it(tmp_path):
    from PIL import Image

    model = _tiny("vae")
    model.save_pretrained(tmp_path / "a", name="my-vae", dataset="mnist", license="MIT")
    model.save_pretrained(tmp_path / "b", name="my-vae", dataset="mnist", license="mit")
    first, second = Image.open(tmp_path / "a" / "samples.png"), Image.open(tmp_path / "b" / "samples.png")
    assert first.size == second.size and first.tobytes() == second.tobytes()  # seeded: the same grid
    readme = (tmp_path / "a" / "README.md").read_text()
    assert "![Samples from my-vae](samples.png)" in readme and "# my-vae" in readme
    meta = _metadata(readme)
    assert meta["license"] == "mit" and meta["datasets"] == ["ylecun/mnist"] and meta["model_name"] == "my-vae"
    assert "arxiv:1312.6114" in meta["tags"] and "Kingma" in readme
    assert oct(os.stat(tmp_path / "a" / "model.safetensors").st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_files_follow_the_users_umask(tmp_path):
    old = os.umask(0o077)
    try:
        folder = _tiny("gan").save_pretrained(tmp_path / "private")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes["model.safetensors"] == 0o600 and modes["README.md"] == 0o600
    folder = _tiny("gan").save_pretrained(tmp_path / "shared")
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_renderer_card_shows_a_turntable_frame(tmp_path):
    if "nerf" not in zoo.families():
        pytest.skip("zoo-nerf is not installed")
    from PIL import Image

    model = _tiny("nerf")
    folder = model.save_pretrained(tmp_path / "scene")
    assert Image.open(folder / "samples.png").size == (8 + 4, 8 + 4)  # one 8x8 frame in the grid's padding
    assert "![A rendered view" in (folder / "README.md").read_text()


def test_training_details_become_card_fields(tmp_path):
    training = {"dataset": "mnist", "license": "cc-by-sa-3.0", "hyperparameters": {"lr": 0.001, "batch_size": 64},
                "final_losses": {"loss": 0.1234567}, "hardware": "1x CPU (2 threads)", "seconds": 12.5, "steps": 100}
    folder = _tiny("vae").save_pretrained(tmp_path / "m", training=training)
    readme = (folder / "README.md").read_text()
    meta = _metadata(readme)
    assert meta["license"] == "cc-by-sa-3.0" and meta["datasets"] == ["ylecun/mnist"]
    for text in ("## Training", "`lr`: 0.001", "`batch_size`: 64", "`loss`: 0.123457", "1x CPU (2 threads)", "12.5 s",
                 "Steps: 100"):
        assert text in readme
    assert validate_card_metadata(readme) == []


@pytest.mark.parametrize("license, error", [
    ("Apache 2", "not a Hub license id"),
    ("other", "needs license_name"),
])
def test_licenses_the_hub_would_refuse_are_refused_when_saving(tmp_path, license, error):
    with pytest.raises(ValueError, match=error):
        _tiny("vae").save_pretrained(tmp_path / "m", license=license)
    assert not (tmp_path / "m").exists()  # refused before anything was written


def test_push_uploads_the_sample_image_and_the_card_names_the_repo(hub, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    repo = _repo()
    folder = _tiny("vae").save_pretrained(tmp_path / "m", push_to_hub=True, repo_id=repo, license="mit",
                                          metrics=[{"name": "elbo", "value": -100.0, "dataset": "mnist",
                                                    "split": "test", "command": "zoo eval m --metric elbo"}])
    files = set(HfApi(endpoint=hub.url).list_repo_files(repo))
    assert {"config.json", "model.safetensors", "README.md", "samples.png"} <= files
    card = ModelCard.load(repo)
    assert card.data.model_name == repo and card.data.eval_results[0].source_name == "zoo eval m --metric elbo"
    assert card.data.license == "mit" and card.data.datasets == ["ylecun/mnist"]
    assert (folder / "samples.png").is_file()


def test_zoo_push_retargets_model_name_title_and_usage(hub, tmp_path):
    from huggingface_hub import ModelCard

    folder = _tiny("vae").save_pretrained(tmp_path / "local-name", metrics=[
        {"name": "elbo", "value": -1.0, "dataset": "mnist", "split": "test", "command": "zoo eval x --metric elbo"}])
    assert _metadata((folder / "README.md").read_text())["model-index"][0]["name"] == "local-name"
    repo = _repo()
    zhub.push_folder(folder, repo)
    card = ModelCard.load(repo)
    assert card.data.model_name == repo and f"# {repo}" in card.text and f'zoo.load("{repo}")' in card.text


def test_push_to_hub_branch_pr_and_private_default(hub, tmp_path):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub.token)
    model = _tiny("gan")
    repo = _repo()
    model.push_to_hub(repo)  # private=None: the owner's default (public here)
    assert not api.model_info(repo).private
    model.push_to_hub(repo, branch="exp", commit_message="on a branch")
    assert "exp" in {b.name for b in api.list_repo_refs(repo).branches}
    model.push_to_hub(repo, revision="exp2")  # revision= is branch='s alias
    assert "exp2" in {b.name for b in api.list_repo_refs(repo).branches}
    with pytest.raises(ValueError, match="alias of branch"):
        model.push_to_hub(repo, branch="a", revision="b")
    other = _tiny("gan", seed=1)
    url = other.push_to_hub(repo, create_pr=True)
    assert "/discussions/1" in url
    loaded = zoo.load(repo, revision="refs/pr/1", device="cpu")  # the PR's files, main untouched
    assert torch.equal(loaded.state_dict()["generator.0.weight"], other.state_dict()["generator.0.weight"])
    main = zoo.load(repo, device="cpu", force_download=True)
    assert torch.equal(main.state_dict()["generator.0.weight"], model.state_dict()["generator.0.weight"])
    private = _repo()
    model.push_to_hub(private, private=True)
    assert api.model_info(private).private


def test_save_pretrained_refuses_hub_options_without_a_push(tmp_path):
    with pytest.raises(TypeError, match="private"):
        _tiny("gan").save_pretrained(tmp_path, private=True)
    with pytest.raises(ValueError, match="repo_id"):
        _tiny("gan").save_pretrained(tmp_path, push_to_hub=True)
    assert not (tmp_path / "model.safetensors").exists()


# -- load / from_pretrained keywords -------------------------------------------------------------


def test_load_takes_huggingface_hub_keywords(hub, tmp_path):
    model = _tiny("vae")
    repo = _repo()
    model.push_to_hub(repo)
    cache = tmp_path / "my-cache"
    loaded = zoo.load(pretrained_model_name_or_path=repo, cache_dir=cache, token=hub.token, torch_dtype=torch.float64,
                      device="cpu")
    assert loaded.dtype == torch.float64 and any(cache.glob("models--tester--*"))
    assert not any(zhub.cache_dir().glob("models--tester--*"))  # only cache_dir was used
    assert loaded.name_or_path == repo and loaded.catalog_entry is None
    again = zoo.Generator.from_pretrained(repo, cache_dir=cache, local_files_only=True, torch_dtype="float16")
    assert again.dtype == torch.float16
    def downloads() -> int:
        return sum(1 for method, path in hub.state.requests if method == "GET" and "/resolve/" in path)

    before = downloads()
    zoo.load(repo, cache_dir=cache, device="cpu")
    assert downloads() == before  # cached: nothing downloaded again
    zoo.load(repo, cache_dir=cache, force_download=True, device="cpu")
    assert downloads() >= before + 2  # forced: config.json and model.safetensors fetched again
    with pytest.raises(ValueError, match="alias of dtype"):
        zoo.load(repo, dtype=torch.float16, torch_dtype=torch.float32)


def test_a_catalog_model_knows_its_name_and_entry():
    model = zoo.load("gan-mnist", device="cpu")
    assert model.name_or_path == "gan-mnist" and model.catalog_entry is catalog().entries["gan-mnist"]
    folder_model = zoo.Generator.from_pretrained(
        str(resources.files("zoo_gan").joinpath("weights/gan-mnist")), device="cpu")
    assert folder_model.catalog_entry is None and folder_model.name_or_path.endswith("gan-mnist")


# -- create_model / list_models ------------------------------------------------------------------


def test_create_model_like_timm():
    trained = zoo.create_model("gan-mnist", pretrained=True, device="cpu")
    untrained = zoo.create_model("gan-mnist", pretrained=False)
    assert type(untrained) is type(trained)
    # the catalog ships the generator only; the recipe's config builds the discriminator too, to train
    assert untrained.config.model_copy(update={"with_discriminator": False}) == trained.config
    assert not torch.equal(untrained.state_dict()["generator.0.weight"], trained.state_dict()["generator.0.weight"])
    assert untrained.catalog_entry is catalog().entries["gan-mnist"]
    small = zoo.create_model("vae", latent_dim=3)
    assert small.config.latent_dim == 3 and small.catalog_entry is None
    with pytest.raises(ValueError, match="family, which has no pretrained weights"):
        zoo.create_model("vae", pretrained=True)
    with pytest.raises(WeightsError, match="wrong shapes"):
        zoo.create_model("gan-mnist", pretrained=True, latent_dim=7)
    with pytest.raises(UnknownModelError, match="gan-mnist"):
        zoo.create_model("gan-mnst")


def test_list_models_pretrained_filter():
    pretrained = zoo.list_models()
    everything = zoo.list_models(pretrained=False)
    assert set(pretrained) < set(everything) and set(zoo.families()) <= set(everything)
    assert zoo.list_models("gan*", pretrained=False)[:2] == ["gan", "gan-mnist"]
