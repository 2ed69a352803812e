"""Local model folders: a bit flip in the weights is caught through the SHA256SUMS file that
save_pretrained writes, and a full disk during save_pretrained changes nothing and says so.

The full disk is simulated with RLIMIT_FSIZE in a subprocess (writing past the limit fails
with EFBIG, as a full disk fails with ENOSPC): it needs no mount and no root."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch

import zoo
from zoo_core.errors import WeightsError



def _model(seed: int):
    family = sorted(zoo.families())[0]
    torch.manual_seed(seed)
    return zoo.build(family, zoo.families()[family].tiny_config)


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def test_save_pretrained_writes_checksums_that_sha256sum_understands(tmp_path):
    folder = _model(0).save_pretrained(tmp_path / "m")
    line = (folder / "SHA256SUMS").read_text()
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert line == f"{digest}  model.safetensors\n"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "SHA256SUMS", "config.json", "model.safetensors", "samples.png"]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0 and "model.safetensors: OK" in check.stdout


def test_a_bit_flip_in_a_saved_folder_is_refused_by_load_and_push(tmp_path, capsys):
    model = _model(0)
    folder = model.save_pretrained(tmp_path / "m")
    assert _same(zoo.load(folder, device="cpu"), model)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor: the file still parses, the numbers are wrong
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="changed since it was saved") as info:
        zoo.load(folder)
    assert "SHA256SUMS" in str(info.value)
    from zoo_core.cli import main

    assert main(["push", str(folder), "tester/never-pushed"]) == 2
    err = capsys.readouterr().err
    assert "changed since it was saved" in err and err.count("\n") == 1
    # the user's way out, named in the message: save again (or delete SHA256SUMS after an edit on purpose)
    model.save_pretrained(folder)
    assert _same(zoo.load(folder, device="cpu"), model)


def test_a_malformed_checksums_file_is_named(tmp_path):
    folder = _model(0).save_pretrained(tmp_path / "m")
    (folder / "SHA256SUMS").write_text("not a checksum line\n")
    with pytest.raises(WeightsError, match="SHA256SUMS line 1"):
        zoo.load(folder)


_FULL_DISK = """
import json, resource, signal, sys
import torch, zoo
from zoo_core.errors import DiskFullError

family = sorted(zoo.families())[0]
torch.manual_seed(0)
first = zoo.build(family, zoo.families()[family].tiny_config)
folder = first.save_pretrained(sys.argv[1])
size = (folder / "model.safetensors").stat().st_size
with torch.no_grad():
    for p in first.parameters():
        p.add_(1.0)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, resource.RLIM_INFINITY))
try:
    first.save_pretrained(folder)
except DiskFullError as error:
    print(json.dumps({"error": str(error), "type": type(error).__name__}))
else:
    print(json.dumps({"error": None}))
"""


def test_disk_full_during_save_pretrained_keeps_the_previous_save(tmp_path):
    folder = tmp_path / "m"
    result = subprocess.run([sys.executable, "-c", _FULL_DISK, str(folder)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["error"] and report["error"].startswith(f"disk full while saving to {folder}"), report
    assert "nothing there was changed" in report["error"]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "SHA256SUMS", "config.json", "model.safetensors", "samples.png"]
    assert _same(zoo.load(folder, device="cpu"), _model(0)), "the first save is intact"
    assert json.loads((folder / "config.json").read_text())["family"] == sorted(zoo.families())[0]
