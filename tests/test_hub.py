"""Hub support against a real huggingface_hub client and the Hub-compatible test server
(zoo_core/testing/hub_server.py, started by the ``hub`` fixture in conftest.py on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

import zoo
from zoo_core import hub as zhub
from zoo_core.errors import HubError

# huggingface_hub's own LFS upload passes raw bytes as data=; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

def _pick_small_family() -> str:
    """The family for the server-level tests: the example plugin's if installed, else a tiny one."""
    installed = zoo.families()
    for name in ("pixel-gaussian", "vae", "gan", "ae"):
        if name in installed:
            return name
    return sorted(installed)[0] if installed else "pixel-gaussian"


SMALL = _pick_small_family()


def _repo(prefix: str = "m") -> str:
    return f"tester/{prefix}-{uuid.uuid4().hex[:10]}"


def _fresh_cache(monkeypatch, tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    monkeypatch.setenv("HF_HOME", str(home))
    return home


def _small_model(seed: int = 0):
    if SMALL not in zoo.families():
        pytest.skip("no model family is installed")
    torch.manual_seed(seed)
    model = zoo.build(SMALL, zoo.families()[SMALL].tiny_config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def _plugin_of(family: str) -> str:
    from zoo_core.plugins import family_distribution

    return family_distribution(family).name


def _state_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _sample(model, n: int = 3) -> torch.Tensor:
    with torch.no_grad():
        return model.sample(n, generator=torch.Generator().manual_seed(0)).cpu()


def _as_dataset(batch):
    """Split a batch from ``example_batch`` into items the default collate puts back together."""
    if isinstance(batch, torch.Tensor):
        return list(batch.unbind(0))
    if isinstance(batch, dict):
        n = len(next(iter(batch.values())))
        return [{key: value[i] for key, value in batch.items()} for i in range(n)]
    if isinstance(batch, (tuple, list)):
        return list(zip(*batch))
    raise TypeError(f"cannot split a {type(batch).__name__} batch into items")


# -- validation (no server) --------------------------------------------------------------------


def test_parse_repo_id():
    assert zhub.parse_repo_id("org/name") == ("org/name", None)
    assert zhub.parse_repo_id("org/name@v1.0") == ("org/name", "v1.0")
    assert zhub.parse_repo_id("org/name@refs/pr/1") == ("org/name", "refs/pr/1")
    assert zhub.parse_repo_id("ae-mnist") is None
    assert zhub.parse_repo_id("a/b/c") is None


@pytest.mark.parametrize("text", ["org/na me", "org/..", "org/a..b", "-org/x", "org/x.git", "org/x@../../etc", "org/x@",
                                  "org/x\n", "org/x@main\n", "org/x@v1\x00", "org/x@ma\x1bin", "org\n/x"])
def test_bad_repo_ids_and_revisions_are_refused(text):
    with pytest.raises(zhub.InvalidRepoIdError):
        zhub.parse_repo_id(text)


@pytest.mark.parametrize("name", ["../config.json", "sub/model.safetensors", ".hidden", "a\\b", ""])
def test_bad_file_names_are_refused(name):
    with pytest.raises(zhub.InvalidRepoIdError):
        zhub.validate_file_name(name)


def test_pickle_file_names_are_refused():
    with pytest.raises(zhub.UnsafeWeightsError):
        zhub.validate_file_name("pytorch_model.bin")


def test_model_card_metadata_parses(tmp_path):
    from huggingface_hub import ModelCard

    model = _small_model()
    metrics = [{"name": "nll", "value": 1.25, "dataset": "mnist", "split": "test", "command": "zoo eval x"}]
    model.save_pretrained(tmp_path, metrics=metrics, dataset="mnist", license="apache-2.0", repo_id="org/px")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "zoo"
    assert SMALL in card.data.tags
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["ylecun/mnist"]  # the Hub id of the registered dataset "mnist"
    assert card.data.pipeline_tag
    assert card.data.eval_results[0].metric_value == 1.25
    assert 'zoo.load("org/px")' in card.text
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["family"] == SMALL and config["plugin"] == _plugin_of(SMALL) and "zoo_version" in config


# -- the round trip, every installed family -----------------------------------------------------


@pytest.mark.parametrize("family", sorted(zoo.families()))
def test_push_and_load_round_trip_every_family(family, hub, tmp_path, monkeypatch):
    """A tiny model trained for 2 steps, pushed, loaded in a fresh cache: bit-identical."""
    from zoo_core.config import TrainConfig
    from zoo_core.trainer import Trainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = zoo.families()[family]
    model = zoo.build(family, spec.tiny_config)
    data = _as_dataset(model.example_batch(8, generator=torch.Generator().manual_seed(1)))
    result = Trainer(
        model, data, TrainConfig(steps=2, batch_size=4, log_every=1), out_dir=tmp_path / "run", cpu=True, progress=False
    ).fit()
    assert result.steps == 2
    local = zoo.load(result.export_dir, device="cpu")

    repo_id = _repo(family)
    url = zhub.push_folder(result.export_dir, repo_id, commit_message=f"tiny {family}")
    assert repo_id in url
    assert hub.state.lfs_objects, "model.safetensors should go through the Git-LFS upload path"

    _fresh_cache(monkeypatch, tmp_path, "fresh-home")
    loaded = zoo.load(repo_id, device="cpu")
    assert type(loaded) is type(local)
    assert loaded.config == local.config
    assert _state_equal(loaded, local)
    assert torch.equal(_sample(loaded), _sample(local))


# -- revisions ----------------------------------------------------------------------------------


def test_second_version_keeps_the_first_by_sha_and_tag(hub, tmp_path, monkeypatch):
    repo_id = _repo()
    v1, v2 = _small_model(seed=1), _small_model(seed=2)
    url1 = v1.push_to_hub(repo_id, tag="v1")
    sha1 = url1.rstrip("/").rsplit("/", 1)[-1]
    v2.push_to_hub(repo_id, commit_message="second version")

    assert _state_equal(zoo.load(repo_id, device="cpu"), v2)
    assert _state_equal(zoo.load(f"{repo_id}@v1", device="cpu"), v1)
    assert _state_equal(zoo.load(f"{repo_id}@{sha1}", device="cpu"), v1)
    _fresh_cache(monkeypatch, tmp_path, "other-home")
    assert _state_equal(zoo.load(repo_id, revision="v1", device="cpu"), v1)
    assert torch.equal(_sample(zoo.load(repo_id, revision=sha1, device="cpu")), _sample(v1.eval()))


def test_push_to_a_branch(hub, tmp_path):
    repo_id = _repo()
    main, dev = _small_model(seed=3), _small_model(seed=4)
    main.push_to_hub(repo_id)
    dev.push_to_hub(repo_id, revision="dev")
    assert _state_equal(zoo.load(f"{repo_id}@dev", device="cpu"), dev)
    assert _state_equal(zoo.load(repo_id, device="cpu"), main)


def test_unknown_revision_lists_branches_and_tags(hub, tmp_path):
    repo_id = _repo()
    zhub.push_folder(_small_model().save_pretrained(tmp_path / "m"), repo_id, tag="v1")
    with pytest.raises(zhub.RevisionNotFoundError) as info:
        zoo.load(f"{repo_id}@v9")
    message = str(info.value)
    assert "'v9'" in message and "main" in message and "v1" in message


def test_unknown_repo(hub):
    with pytest.raises(zhub.RepoNotFoundError, match="was not found"):
        zoo.load("tester/does-not-exist")


# -- auth -------------------------------------------------------------------------------------


def test_private_repo_without_token_says_log_in(hub, tmp_path, monkeypatch):
    repo_id = _repo("private")
    model = _small_model()
    model.push_to_hub(repo_id, private=True)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(zhub.RepoNotFoundError) as info:
        zoo.load(repo_id)
    assert repo_id in str(info.value) and "private" in str(info.value)
    assert "HF_TOKEN" in str(info.value) and "hf auth login" in str(info.value)
    assert _state_equal(zoo.load(repo_id, token=hub.token, device="cpu"), model)


def test_push_without_token_says_log_in(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="HF_TOKEN"):
        _small_model().push_to_hub(_repo())


# -- offline and connection failures -------------------------------------------------------


def test_offline_loads_from_cache_with_the_server_stopped(hub, tmp_path, monkeypatch):
    repo_id = _repo()
    model = _small_model()
    url = model.push_to_hub(repo_id)
    sha = url.rstrip("/").rsplit("/", 1)[-1]
    online = zoo.load(repo_id, device="cpu")

    before = hub.request_count()
    assert _state_equal(zoo.load(repo_id, local_files_only=True, device="cpu"), online)
    assert hub.request_count() == before, "local_files_only=True must make no request at all"

    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert torch.equal(_sample(zoo.load(repo_id, device="cpu")), _sample(online))
    assert _state_equal(zoo.load(f"{repo_id}@{sha}", device="cpu"), online)

    with pytest.raises(zhub.NotCachedError) as info:
        zoo.load(f"{repo_id}@v7")
    message = str(info.value)
    assert f"{repo_id}@v7" in message and "zoo pull" in message and "main" in message


def test_connection_failure_names_cached_revisions(hub, tmp_path, monkeypatch):
    repo_id = _repo()
    _small_model().push_to_hub(repo_id)
    zoo.load(repo_id)
    hub.stop()
    with pytest.raises(zhub.HubConnectionError) as info:
        zoo.load(f"{repo_id}@v2")
    message = str(info.value)
    assert "offline" in message.lower() and "main ->" in message and hub.url in message
    # what is cached still loads while the Hub is down
    assert zoo.load(repo_id, device="cpu") is not None


# -- integrity and safety ---------------------------------------------------------------------


def _pushed_with_hashes(hub, tmp_path) -> tuple[str, str, dict[str, str]]:
    repo_id = _repo("pinned")
    folder = _small_model().save_pretrained(tmp_path / "pinned", repo_id=repo_id)  # the card as pushed
    url = zhub.push_folder(folder, repo_id)
    sha = url.rstrip("/").rsplit("/", 1)[-1]
    hashes = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in zhub.MODEL_FILES}
    return repo_id, sha, hashes


def test_pinned_download_checks_sha256(hub, tmp_path, monkeypatch):
    repo_id, sha, hashes = _pushed_with_hashes(hub, tmp_path)
    folder = zhub.download_pinned(repo_id, sha, hashes)
    assert {p.name for p in folder.iterdir()} == set(zhub.MODEL_FILES)
    assert folder.name == sha

    _fresh_cache(monkeypatch, tmp_path, "corrupt-home")
    hub.corrupt(repo_id, "model.safetensors")
    with pytest.raises(zhub.IntegrityError) as info:
        zhub.download_pinned(repo_id, sha, hashes)
    message = str(info.value)
    actual = re.search(r"model.safetensors has sha256 ([0-9a-f]{64}), but the catalog pins ([0-9a-f]{64})", message)
    assert actual and actual.group(2) == hashes["model.safetensors"] and actual.group(1) != actual.group(2)
    cache = Path(tmp_path / "corrupt-home" / "hub")
    assert not list(cache.rglob("snapshots/*/model.safetensors")), "a bad file must not stay in the cache"
    blobs = [p for p in cache.rglob("blobs/*") if p.is_file()]
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() != actual.group(1) for p in blobs)

    hub.corrupt(repo_id, "model.safetensors", False)
    assert zhub.download_pinned(repo_id, sha, hashes).name == sha
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert zhub.download_pinned(repo_id, sha, hashes).name == sha  # now cached: offline is fine


def test_pinned_download_refuses_a_file_tampered_in_the_cache(hub, tmp_path):
    repo_id, sha, hashes = _pushed_with_hashes(hub, tmp_path)
    folder = zhub.download_pinned(repo_id, sha, hashes)
    weights = (folder / "model.safetensors").resolve()
    weights.write_bytes(b"\0" + weights.read_bytes()[1:])
    with pytest.raises(zhub.IntegrityError, match=hashes["model.safetensors"]):
        zhub.download_pinned(repo_id, sha, hashes)
    assert not weights.exists()


def test_unpinned_download_of_wrong_bytes_is_refused(hub, tmp_path):
    repo_id = _repo("corrupt")
    _small_model().push_to_hub(repo_id)
    hub.corrupt(repo_id, "model.safetensors")
    with pytest.raises(zhub.IntegrityError, match="model.safetensors: expected sha256"):
        zoo.load(repo_id)
    assert not list(Path(zhub.cache_dir()).rglob("snapshots/*/model.safetensors"))
    hub.corrupt(repo_id, "model.safetensors", False)
    assert zoo.load(repo_id) is not None


def test_pinned_download_needs_a_commit_sha(hub):
    with pytest.raises(zhub.InvalidRepoIdError, match="40-hex"):
        zhub.download_pinned("tester/x", "main", {"config.json": "0" * 64, "model.safetensors": "0" * 64})
    with pytest.raises(zhub.InvalidRepoIdError):
        zhub.download_pinned("tester/x", "a" * 40, {"../config.json": "0" * 64})


def test_pickle_only_repo_is_refused_without_downloading_the_pickle(hub, tmp_path):
    repo_id = _repo("pickle")
    folder = _small_model().save_pretrained(tmp_path / "m")
    hub.put_files(repo_id, {"config.json": (folder / "config.json").read_bytes(), "pytorch_model.bin": b"\x80\x04K\x01."})
    with pytest.raises(zhub.UnsafeWeightsError, match="pytorch_model.bin"):
        zoo.load(repo_id)
    assert not [p for p in Path(zhub.cache_dir()).rglob("*.bin")]
    assert ("GET", f"/{repo_id}/resolve/{hub.state.repos[repo_id].branches['main']}/pytorch_model.bin") not in hub.state.requests


def test_repo_without_zoo_files(hub):
    repo_id = _repo("other")
    hub.put_files(repo_id, {"README.md": b"# not a zoo model\n"})
    with pytest.raises(zhub.EntryNotFoundError, match="not a zoo model"):
        zoo.load(repo_id)


def test_push_refuses_a_folder_without_safetensors(hub, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="pickled"):
        zhub.push_folder(tmp_path, _repo())


def test_pull_downloads_for_offline_use(hub, tmp_path, monkeypatch):
    repo_id = _repo()
    model = _small_model()
    model.push_to_hub(repo_id, revision="release")
    folder = zhub.pull(f"{repo_id}@release")
    assert (folder / "model.safetensors").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.stop()
    assert _state_equal(zoo.load(f"{repo_id}@release", device="cpu"), model)


# -- catalog entries pinned to a Hub commit ----------------------------------------------------


@pytest.fixture
def hub_catalog_entry(hub, tmp_path, monkeypatch):
    """A catalog entry (added for this test only) whose weights are a pinned commit on the test Hub."""
    from zoo_core import catalog as catalog_module

    repo_id, sha, hashes = _pushed_with_hashes(hub, tmp_path)
    name = f"{SMALL}-hub-test"
    catalog_module.reset()
    entries = catalog_module.catalog()
    entries.add_source(
        {"version": 1, "models": {name: {
            "family": SMALL, "plugin": _plugin_of(SMALL), "description": "test entry",
            "config": dict(zoo.families()[SMALL].tiny_config),
            "weights": {"repo": repo_id, "revision": sha, "sha256": hashes},
        }}},
        "tests",
    )
    yield name, repo_id, sha
    catalog_module.reset()


def test_catalog_entry_loads_from_its_pinned_commit(hub_catalog_entry, hub, tmp_path, monkeypatch):
    name, repo_id, sha = hub_catalog_entry
    pinned = zoo.load(name, device="cpu")
    _small_model(seed=9).push_to_hub(repo_id)  # main moves on; the entry stays on its commit
    _fresh_cache(monkeypatch, tmp_path, "catalog-home")
    assert _state_equal(zoo.load(name, device="cpu"), pinned)


def test_catalog_entry_with_corrupted_download_is_refused(hub_catalog_entry, hub):
    name, repo_id, sha = hub_catalog_entry
    hub.corrupt(repo_id, "model.safetensors")
    with pytest.raises(zhub.IntegrityError, match="the catalog pins"):
        zoo.load(name)
    hub.corrupt(repo_id, "model.safetensors", False)


def test_pull_a_catalog_entry_then_load_offline(hub_catalog_entry, hub, monkeypatch):
    name, repo_id, sha = hub_catalog_entry
    folder = zhub.pull(name)
    assert folder.name == sha
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert zoo.load(name, device="cpu") is not None


# -- the card on the Hub, the CLI, offline from the environment ------------------------------


def test_pushed_folder_card_names_the_repo(hub, tmp_path):
    from huggingface_hub import hf_hub_download

    repo_id = _repo()
    folder = _small_model().save_pretrained(tmp_path / "m")  # saved without repo_id
    zhub.push_folder(folder, repo_id)
    card = Path(hf_hub_download(repo_id, "README.md", cache_dir=zhub.cache_dir())).read_text()
    assert f'zoo.load("{repo_id}")' in card and f"# {repo_id}" in card
    assert "path/to/this/folder" in (folder / "README.md").read_text()  # the local folder is untouched


def _zoo_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "zoo_core.cli", *args], capture_output=True, text=True, env=env)


def test_cli_push_pull_and_offline_load_in_a_new_process(hub, tmp_path):
    import os

    model = _small_model()
    folder = model.save_pretrained(tmp_path / "m")
    repo_id = _repo("cli")
    pushed = _zoo_cli("push", str(folder), repo_id, "--private", "--branch", "exp", "--tag", "v1")
    assert pushed.returncode == 0, pushed.stderr
    assert hub.state.repos[repo_id].private and "exp" in hub.state.repos[repo_id].branches
    assert "v1" in hub.state.repos[repo_id].tags

    env = {**os.environ, "HF_HOME": str(tmp_path / "cli-home")}
    pulled = _zoo_cli("pull", f"{repo_id}@exp", env=env)
    assert pulled.returncode == 0, pulled.stderr
    missing = _zoo_cli("pull", f"{repo_id}@nope", env=env)
    assert missing.returncode != 0 and "nope" in missing.stderr and "Traceback" not in missing.stderr

    hub.stop()
    script = (
        "import sys, torch, zoo\n"
        f"m = zoo.load('{repo_id}@exp', device='cpu')\n"
        "sys.stdout.write(str(sum(float(p.double().sum()) for p in m.state_dict().values())))\n"
    )
    offline_env = {**env, "HF_HUB_OFFLINE": "1"}  # set before huggingface_hub is imported, as users do
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=offline_env)
    assert run.returncode == 0, run.stderr
    expected = sum(float(p.double().sum()) for p in model.state_dict().values())
    assert float(run.stdout) == expected
