"""A zoo train run killed (SIGKILL) at an arbitrary moment and resumed loses at most one checkpoint
interval of work: checkpoints are written every ``checkpoint_minutes`` of training by default.

The default interval is 10 minutes; the test shortens it to 3 seconds (--checkpoint-minutes 0.05)
so that several intervals pass in a few seconds, and changes nothing else.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import MNIST, run_zoo
from zoo_core.checkpoint import scan
from zoo_core.config import TrainConfig

ZOO = str(Path(sys.executable).with_name("zoo"))
INTERVAL_S = 3.0


def test_the_default_is_a_checkpoint_every_ten_minutes():
    assert TrainConfig().checkpoint_minutes == 10.0 and TrainConfig().checkpoint_every == 0


def test_a_killed_run_loses_at_most_one_interval(tmp_path):
    args = ["train", "ae", "--data", str(MNIST), "--data-option", "limit=1024", "--set", "hidden_widths=[16]",
            "--set", "code_dim=4", "--batch-size", "16", "--cpu", "--out", str(tmp_path),
            "--checkpoint-minutes", str(INTERVAL_S / 60), "--train-set", "log_every=1"]
    run = subprocess.Popen([ZOO, *args, "--steps", "1000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "log.jsonl"

    def entries():
        lines = log.read_text().splitlines() if log.is_file() else []
        return [json.loads(line) for line in lines[:-1]]  # the last line may be half-written

    try:
        for _ in range(1800):  # bounded: 180 s
            logged = entries()
            if logged and logged[-1]["elapsed_s"] >= 3.5 * INTERVAL_S:
                break
            time.sleep(0.1)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    logged = entries()
    elapsed = {entry["step"]: entry["elapsed_s"] for entry in logged}
    complete = [found for found in scan(tmp_path) if found.problem is None]
    assert complete, "no checkpoint was written on the clock"
    saved = complete[0].step
    lost_s = logged[-1]["elapsed_s"] - elapsed[saved]
    # at most one interval, plus the step and the checkpoint write under way when the clock fired
    assert 0 <= lost_s <= 1.5 * INTERVAL_S, (saved, lost_s, logged[-1])
    assert elapsed[saved] >= INTERVAL_S  # written by the clock (no --checkpoint-every was given)

    resumed = run_zoo(*args, "--steps", str(saved + 5), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {saved}" in resumed.stdout
