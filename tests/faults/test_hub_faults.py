"""Hub faults: the real huggingface_hub client talks to the tests' Hub server through a proxy
(tests/fault_proxy.py) that answers 500, resets, stalls past the timeout, cuts bodies short and
flips bytes, for downloads and uploads. Each case checks what the zoo says, that nothing
unverified stays in the cache, and that the next call recovers. All on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

import zoo
from zoo_core import hub as zhub
from zoo_core.errors import HubError

from fault_proxy import FaultProxy

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

TIMEOUT = 1.0  # ZOO_HUB_TIMEOUT in these tests; the proxy stalls for 4 s
WEIGHTS_GET = r"/resolve/[0-9a-f]{40}/model\.safetensors$"
LISTING = r"/api/models/.*/paths-info/"


@pytest.fixture
def proxy(hub, monkeypatch):
    proxy = FaultProxy(hub.url, stall_seconds=4 * TIMEOUT).start()
    monkeypatch.setenv("HF_ENDPOINT", proxy.url)
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("ZOO_HUB_RETRIES", "1")
    yield proxy
    proxy.stop()


def _family() -> str:
    for name in ("pixel-gaussian", "vae", "gan", "ae"):
        if name in zoo.families():
            return name
    return sorted(zoo.families())[0]


def _model(seed: int = 0):
    family = _family()
    torch.manual_seed(seed)
    model = zoo.build(family, zoo.families()[family].tiny_config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    return model.eval()


def _pushed(seed: int = 0) -> tuple[str, object]:
    repo_id = f"tester/fault-{uuid.uuid4().hex[:10]}"
    model = _model(seed)
    model.push_to_hub(repo_id)
    return repo_id, model


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _cached_weights() -> list[Path]:
    """Every model.safetensors the cache would serve (snapshot links that resolve to a blob)."""
    return [p for p in Path(zhub.cache_dir()).rglob("snapshots/*/model.safetensors") if p.exists()]


def _blobs_not_matching_their_name() -> list[str]:
    """Blobs whose bytes are not what the Hub named them for (sha256 for LFS files, git sha1 for others)."""
    bad = []
    for path in Path(zhub.cache_dir()).rglob("blobs/*"):
        if not path.is_file() or path.name.endswith(".zoo-verified"):
            continue
        data = path.read_bytes()
        if path.name not in (hashlib.sha256(data).hexdigest(), hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()):
            bad.append(path.name)
    return bad


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# -- the headline: wrong bytes, and the Hub's hashes cannot be had ------------------------------


@pytest.mark.parametrize("listing_fault", ["500", "reset"])
def test_wrong_bytes_with_a_failing_listing_are_never_loaded_nor_kept(proxy, listing_fault):
    repo_id, model = _pushed()
    proxy.inject("wrong", method="GET", path=WEIGHTS_GET, times=10)
    proxy.inject(listing_fault, path=LISTING, times=10)
    with pytest.raises(HubError) as info:
        zoo.load(repo_id, device="cpu")
    message = _one_line(info.value)
    assert "could not get the Hub's hashes" in message and "nothing was loaded" in message
    assert ("HTTP 500" in message and "/paths-info/" in message) if listing_fault == "500" else "cut" in message
    assert _cached_weights() == [], "an unverified file stayed in the cache"
    assert _blobs_not_matching_their_name() == []
    # offline, the cache has nothing to offer: it must not serve the bad bytes either
    with pytest.raises(zhub.NotCachedError):
        zoo.load(repo_id, local_files_only=True)

    proxy.clear()  # the next call recovers
    assert _same(zoo.load(repo_id, device="cpu"), model)
    assert _same(zoo.load(repo_id, device="cpu", local_files_only=True), model)


def test_wrong_bytes_with_a_working_listing_are_refused_and_evicted(proxy):
    repo_id, model = _pushed()
    proxy.inject("wrong", method="GET", path=WEIGHTS_GET, times=10)
    with pytest.raises(zhub.IntegrityError, match="model.safetensors: expected sha256"):
        zoo.load(repo_id)
    assert _cached_weights() == []
    proxy.clear()
    assert _same(zoo.load(repo_id, device="cpu"), model)


# -- files already in the cache are checked again -------------------------------------------


def test_a_cached_file_changed_on_disk_is_caught_online_and_offline(proxy, monkeypatch):
    repo_id, model = _pushed()
    zoo.load(repo_id)
    blob = _cached_weights()[0].resolve()
    marker = blob.with_name(blob.name + ".zoo-verified")
    assert marker.is_file(), "a verified blob carries a marker"
    requests = len(proxy.log)
    assert _same(zoo.load(repo_id, device="cpu", local_files_only=True), model)
    assert len(proxy.log) == requests

    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01  # one bit flipped, the size unchanged
    blob.write_bytes(bytes(data))
    with pytest.raises(zhub.IntegrityError, match="expected sha256"):
        zoo.load(repo_id, local_files_only=True)  # offline: checked against the blob's name (the Hub's ETag)
    assert not blob.exists() and not marker.exists()

    assert _same(zoo.load(repo_id, device="cpu"), model)  # online again: downloaded afresh
    blob = _cached_weights()[0].resolve()
    blob.write_bytes(bytes(data))
    with pytest.raises(zhub.IntegrityError):
        zoo.load(repo_id)  # online: the cached file is not trusted either
    assert _same(zoo.load(repo_id, device="cpu"), model)


def test_a_cached_file_without_a_marker_is_verified_before_use(proxy):
    """A file another tool (or a killed process) put in the cache is checked, then trusted."""
    repo_id, model = _pushed()
    zoo.load(repo_id)
    blob = _cached_weights()[0].resolve()
    blob.with_name(blob.name + ".zoo-verified").unlink()
    assert _same(zoo.load(repo_id, device="cpu", local_files_only=True), model)
    assert blob.with_name(blob.name + ".zoo-verified").is_file()


# -- each fault on the download, persistent then gone ------------------------------------------


@pytest.mark.parametrize("fault", ["500", "reset", pytest.param("stall", marks=pytest.mark.slow), "short"])
def test_a_persistent_download_fault_ends_in_one_clear_line_and_the_next_call_recovers(proxy, fault):
    repo_id, model = _pushed()
    proxy.inject(fault, method="GET", path=WEIGHTS_GET, times=1000)
    started = time.monotonic()
    with pytest.raises(HubError) as info:
        zoo.load(repo_id)
    elapsed = time.monotonic() - started
    message = _one_line(info.value)
    assert "offline" not in message.lower(), message  # the server failed, not the network
    expected = {"500": "HTTP 500", "reset": "cut", "stall": f"within {TIMEOUT:g} s", "short": "cut"}[fault]
    assert expected in message, message
    assert "model.safetensors" in message or proxy.url in message, message
    assert "tried 2 times" in message, message
    assert elapsed < 60, f"bounded: took {elapsed:.0f} s"
    assert _cached_weights() == []

    proxy.clear()
    assert _same(zoo.load(repo_id, device="cpu"), model)


@pytest.mark.parametrize("fault", ["500", "reset", "stall", "short", "wrong"])
def test_a_single_download_fault_is_retried_within_the_call(proxy, fault):
    repo_id, model = _pushed()
    proxy.inject(fault, method="GET", path=WEIGHTS_GET, times=1)
    if fault == "wrong":  # wrong bytes are not retried: the error says so, and the next call is clean
        with pytest.raises(zhub.IntegrityError):
            zoo.load(repo_id)
    assert _same(zoo.load(repo_id, device="cpu"), model)
    assert proxy.faults_served(fault) == 1


@pytest.mark.parametrize("fault", ["500", "stall"])
def test_metadata_calls_are_bounded_and_name_the_status(proxy, fault):
    """The repo-info call that starts every download: a 5xx is named as such, a stall times out."""
    repo_id, model = _pushed()
    proxy.inject(fault, method="GET", path=r"/api/models/[^/]+/[^/]+/revision/", times=1000)
    started = time.monotonic()
    with pytest.raises(HubError) as info:
        zoo.load(repo_id)
    message = _one_line(info.value)
    assert time.monotonic() - started < 60
    expected = ("HTTP 500", "/revision/main") if fault == "500" else ("within 1 s",)
    assert all(text in message for text in expected), message
    assert "Are you offline" not in message
    proxy.clear()
    assert _same(zoo.load(repo_id, device="cpu"), model)


def test_pinned_catalog_downloads_are_bounded_too(proxy, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    repo_id, model = _pushed()
    sha = HfApi(endpoint=proxy.url).model_info(repo_id).sha
    folder = zhub.snapshot(repo_id, sha)
    hashes = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in zhub.MODEL_FILES}
    monkeypatch.setenv("HF_HOME", str(tmp_path / "pinned-home"))
    proxy.inject("500", method="GET", path=WEIGHTS_GET, times=1000)
    with pytest.raises(HubError, match="HTTP 500") as info:
        zhub.download_pinned(repo_id, sha, hashes)
    message = _one_line(info.value)
    assert "model.safetensors" in message and "offline" not in message.lower() and "tried 2 times" in message
    proxy.clear()
    assert zhub.download_pinned(repo_id, sha, hashes).name == sha


# -- uploads --------------------------------------------------------------------------------


@pytest.mark.parametrize("fault,path,method", [
    ("500", r"/api/models/.*/commit/", "POST"),
    ("reset", r"/api/models/.*/commit/", "POST"),
    # huggingface_hub itself retries preupload and LFS uploads five times, 23 s of back-off: slow
    pytest.param("500", r"/_lfs/", "PUT", marks=pytest.mark.slow),
    pytest.param("reset", r"/_lfs/", "PUT", marks=pytest.mark.slow),
    pytest.param("500", r"/api/models/.*/preupload/", "POST", marks=pytest.mark.slow),
    ("stall", r"/api/repos/create", "POST"),
])
def test_upload_faults_are_clear_and_the_next_push_recovers(proxy, hub, fault, path, method):
    repo_id = f"tester/up-{uuid.uuid4().hex[:10]}"
    model = _model(uuid.uuid4().int % 10**6)  # new bytes: the server has not seen this LFS object yet
    proxy.inject(fault, method=method, path=path, times=1000)
    with pytest.raises(HubError) as info:
        model.push_to_hub(repo_id)
    message = _one_line(info.value)
    assert "offline" not in message.lower()
    assert {"500": "HTTP 500", "reset": "cut", "stall": "within 1 s"}[fault] in message, message
    if "commit" in path:
        assert "may or may not have been made" in message
    repo = hub.state.repos.get(repo_id)
    assert repo is None or len(repo.commits) == 1, "nothing but the initial commit"
    proxy.clear()
    model.push_to_hub(repo_id)
    assert _same(zoo.load(repo_id, device="cpu"), model)


@pytest.mark.parametrize("fault", ["500", "reset"])
def test_a_single_upload_fault_is_retried_within_the_push(proxy, hub, fault):
    repo_id = f"tester/up-{uuid.uuid4().hex[:10]}"
    model = _model(uuid.uuid4().int % 10**6)
    proxy.inject(fault, method="PUT", path=r"/_lfs/", times=1)
    proxy.inject(fault, method="POST", path=r"/preupload/", times=1)
    model.push_to_hub(repo_id)
    assert proxy.faults_served(fault) == 2
    assert _same(zoo.load(repo_id, device="cpu"), model)


def test_push_with_an_existing_tag_fails_before_committing(hub, tmp_path, capsys):
    from zoo_core.cli import main

    repo_id = f"tester/tag-{uuid.uuid4().hex[:10]}"
    _model(1).push_to_hub(repo_id, tag="v1")
    commits = len(hub.state.repos[repo_id].commits)
    head = hub.state.repos[repo_id].branches["main"]
    folder = _model(2).save_pretrained(tmp_path / "v2")
    assert main(["push", str(folder), repo_id, "--tag", "v1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already has a tag 'v1'" in err and "nothing was pushed" in err, err
    assert len(hub.state.repos[repo_id].commits) == commits and hub.state.repos[repo_id].branches["main"] == head


# -- two processes, one empty cache ------------------------------------------------------------

_LOADER = """
import sys, zoo
try:
    model = zoo.load(sys.argv[1], device="cpu")
except Exception as error:
    print("ERROR", type(error).__name__, error)
    sys.exit(3)
print("OK", sum(float(p.double().sum()) for p in model.state_dict().values()))
"""


def _two_loaders(repo_id: str, env: dict) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-c", _LOADER, repo_id], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_two_processes_filling_an_empty_cache_end_with_one_good_copy(proxy, tmp_path):
    repo_id, model = _pushed()
    expected = sum(float(p.double().sum()) for p in model.state_dict().values())
    proxy.inject("slow", method="GET", path=WEIGHTS_GET, times=2)  # the two downloads overlap
    home = tmp_path / "shared-home"
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": proxy.url}
    results = _two_loaders(repo_id, env)
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert float(result.stdout.split()[-1]) == expected
    blobs = [p for p in (home / "hub").rglob("blobs/*") if p.is_file()]
    weights = [p for p in blobs if p.stat().st_size == _cached_size(model)]
    assert len(weights) == 1, [p.name for p in blobs]
    assert not [p for p in blobs if p.name.endswith(".incomplete")]
    assert hashlib.sha256(weights[0].read_bytes()).hexdigest() == weights[0].name


@pytest.mark.slow
def test_two_processes_with_corrupted_bytes_both_refuse_and_keep_nothing(proxy, tmp_path):
    repo_id, model = _pushed()
    proxy.inject("wrong", method="GET", path=WEIGHTS_GET, times=1000)
    home = tmp_path / "shared-home"
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": proxy.url}
    for result in _two_loaders(repo_id, env):
        assert result.returncode == 3 and "IntegrityError" in result.stdout, result.stdout + result.stderr
    assert not [p for p in (home / "hub").rglob("snapshots/*/model.safetensors") if p.exists()]


def _cached_size(model) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return (model.save_pretrained(tmp) / "model.safetensors").stat().st_size


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_pull_through_a_failing_hub_prints_one_line(proxy, capsys):
    from zoo_core.cli import main

    repo_id, _ = _pushed()
    proxy.inject("500", path=r"/revision/", times=1000)
    assert main(["pull", repo_id]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 500" in err and "Traceback" not in err, err
