"""Multi-process training on CPUs (torchrun + gloo), as users would run it on GPUs with accelerate launch."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import MNIST, run_zoo

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
ZOO = str(Path(sys.executable).with_name("zoo"))


def torchrun(*args, cwd=None):
    import subprocess

    command = [TORCHRUN, "--standalone", "--nproc_per_node", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


TRAIN = ["train", "ae", "--data", str(MNIST), "--data-option", "limit=256", "--set", "hidden_widths=[64]",
         "--set", "code_dim=8", "--steps", "6", "--batch-size", "16", "--lr", "0.003", "--cpu"]


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(tmp_path):
    run_zoo(*TRAIN, "--out", str(tmp_path / "one"), check=True)
    torchrun(ZOO, *TRAIN, "--out", str(tmp_path / "two"))
    one = load_file(tmp_path / "one" / "model" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert one.keys() == two.keys()
    initial_gap = 0.0
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-5, msg=key)
        initial_gap = max(initial_gap, float(one[key].abs().max()))
    assert initial_gap > 0


def test_data_is_sharded_and_only_the_main_process_writes(tmp_path):
    worker = Path(__file__).with_name("distributed_worker.py")
    torchrun(str(worker), str(tmp_path / "two"))
    seen = [json.loads((tmp_path / "two" / f"seen-rank{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4 * 4  # 4 steps of half the global batch of 8
    assert not set(seen[0]) & set(seen[1]), "both processes trained on the same samples"
    # one process, same seed and global batch: the union of the shards, step by step
    import subprocess

    subprocess.run([sys.executable, str(worker), str(tmp_path / "one")], check=True, capture_output=True)
    single = json.loads((tmp_path / "one" / "seen-rank0.json").read_text())
    for step in range(4):
        assert sorted(single[8 * step : 8 * step + 8]) == sorted(seen[0][4 * step : 4 * step + 4] + seen[1][4 * step : 4 * step + 4])
    assert sorted(p.name for p in (tmp_path / "two").glob("exported-by-rank*")) == ["exported-by-rank0"]
    # the logged losses are the mean over the processes, not the main process's own
    per_rank = [json.loads((tmp_path / "two" / f"losses-rank{r}.json").read_text()) for r in (0, 1)]
    logged = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [1, 2, 3, 4]
    for entry in logged:
        a, b = per_rank[0][entry["step"] - 1], per_rank[1][entry["step"] - 1]
        assert a != b
        assert entry["loss"] == pytest.approx((a + b) / 2, rel=1e-6), (entry, a, b)
    for checkpoint in (tmp_path / "two" / "checkpoints").iterdir():
        assert len(list(checkpoint.glob("model*.safetensors"))) == 1
