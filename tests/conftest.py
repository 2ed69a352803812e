"""Shared fixtures. The Hub environment is set here, before anything imports huggingface_hub,
because huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_DISABLE_XET once, at import."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
HUB_TOKEN = "hf_zoo_test_token"
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"  # no test ever talks to a real Hub
os.environ["HF_TOKEN"] = HUB_TOKEN
os.environ["HF_HUB_DISABLE_XET"] = "1"  # the test Hub speaks Git-LFS (basic transfer), not Xet
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="zoo-tests-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ["ZOO_CACHE"] = tempfile.mkdtemp(prefix="zoo-tests-cache-")  # converted checkpoints
atexit.register(shutil.rmtree, os.environ["ZOO_CACHE"], ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="zoo-tests-cache-")  # the zoo's catalog caches
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def hub_server():
    """The Hub-compatible test server (zoo_core/testing/hub_server.py) on 127.0.0.1, for the whole session."""
    from zoo_core.testing.hub_server import HubServer

    server = HubServer(port=HUB_PORT, token=HUB_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server, tmp_path, monkeypatch):
    """The running test Hub, with a fresh, empty HF_HOME (Hub cache) for this test."""
    hub_server.start()  # a test may have stopped it
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield hub_server
    hub_server.start()


@pytest.fixture
def zoo_hub(hub):
    """The conformance suite's loopback Hub (zoo_core.testing) is this session's test Hub."""
    yield hub
