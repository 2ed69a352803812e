"""Disk full while zoo train writes a checkpoint or the export: one clear line that says "disk full"
and names the folder, the earlier checkpoint intact, no half-written folder, and --resume finishes
once there is room.

The slow test's full disk is real: a small tmpfs mounted in a private mount namespace
(``unshare -r -m``, no root needed where unprivileged user namespaces are allowed), through the
CLI; it is skipped, saying so, where no tmpfs can be mounted. The fast test limits the file size
instead (RLIMIT_FSIZE: writes past it fail with EFBIG, as Python ignores SIGXFSZ).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import MNIST

DRIVER = Path(__file__).with_name("disk_full_driver.py")
ZOO = str(Path(sys.executable).with_name("zoo"))


def can_mount_tmpfs(folder):
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {folder}"],
                           capture_output=True)
    return probe.returncode == 0


def test_a_write_past_the_file_size_limit_is_disk_full_and_leaves_nothing_half_written(tmp_path):
    import resource

    import torch

    from test_trainer import LinearConfig, LinearDenoiser
    from zoo_core.checkpoint import DiskFullError
    from zoo_core.config import TrainConfig
    from zoo_core.trainer import Trainer

    torch.manual_seed(0)
    # the optimizer state (two moments per weight) is the largest file; the weights file fits
    trainer = Trainer(LinearDenoiser(LinearConfig(dim=400)), [torch.randn(400) for _ in range(16)],
                      TrainConfig(steps=2, batch_size=8), out_dir=tmp_path / "run", progress=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, hard))
    try:
        with pytest.raises(DiskFullError) as full:
            trainer.fit()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(full.value).startswith(f"disk full while writing checkpoint step 2 into {tmp_path / 'run' / 'checkpoints'}")
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []  # the temporary folder is gone
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.slow
def test_disk_full_for_checkpoints_and_export(tmp_path):
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if not can_mount_tmpfs(folder):
        pytest.skip("cannot mount a size-limited tmpfs here (no unshare -r -m, no user namespaces)")
    script = f"mount -t tmpfs -o size=64m tmpfs {folder} && exec {sys.executable} {DRIVER} {folder} {ZOO} {MNIST}"
    run = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["sizing"]["rc"] == 0

    full = report["checkpoint_full"]
    assert full["rc"] == 2, full
    assert full["stderr"][-1].startswith(f"zoo: error: disk full while writing checkpoint step 4 into {folder / 'a' / 'checkpoints'}"), full
    assert "run again with --resume" in full["stderr"][-1]
    assert report["after_checkpoint_full"] == ["step_00000002"]  # intact, and no temporary folder left
    resumed = report["checkpoint_resumed"]
    assert resumed["rc"] == 0 and "resumed from" in resumed["stdout"] and "step_00000002 at step 2" in resumed["stdout"], resumed

    full = report["export_full"]
    assert full["rc"] == 2, "\n".join(full["stderr"])
    assert full["stderr"][-1].startswith(f"zoo: error: disk full while exporting the model into {folder / 'b' / 'model'}"), full
    assert report["after_export_full"] == [".zoo-train.lock", "checkpoints", "log.jsonl"]  # no half-written model
    assert report["after_export_full_checkpoints"] == ["step_00000003"]
    assert report["export_resumed"]["rc"] == 0, report["export_resumed"]
    assert {"config.json", "model.safetensors", "README.md"} <= set(report["exported"])
