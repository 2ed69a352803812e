"""Disk-full scenarios for zoo train, run by test_training_disk.py inside a private mount namespace
(``unshare -r -m``) where FOLDER is a fresh tmpfs whose size this script changes with
``mount -o remount,size=...``. Prints one JSON report on stdout.

    python disk_full_driver.py FOLDER ZOO MNIST
"""

import json
import os
import subprocess
import sys
from pathlib import Path

folder, zoo, mnist = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ARGS = ["train", "ae", "--data", mnist, "--data-option", "limit=256", "--set", "hidden_widths=[64]", "--set", "code_dim=8",
        "--batch-size", "16", "--lr", "0.003", "--cpu"]


def size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def resize(kib):
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(folder)], check=True)


def train(*args):
    env = {**os.environ, "TQDM_DISABLE": "1"}
    run = subprocess.run([zoo, *ARGS, *args], capture_output=True, text=True, timeout=300, env=env)
    return {"rc": run.returncode, "stderr": run.stderr.strip().splitlines() or [""], "stdout": run.stdout}


report = {}
resize(64 * 1024)
# sizes of one checkpoint and of the export, from a run with room to spare
report["sizing"] = train("--steps", "2", "--out", str(folder / "sizing"))
checkpoint_kib = size(folder / "sizing" / "checkpoints" / "step_00000002") // 1024
export_kib = size(folder / "sizing" / "model") // 1024
report["checkpoint_kib"], report["export_kib"] = checkpoint_kib, export_kib
subprocess.run(["rm", "-rf", str(folder / "sizing")], check=True)

# A. checkpoints: room for one checkpoint and a half; the second one (step 4) cannot be written
resize(int(checkpoint_kib * 1.5) + 64)
report["checkpoint_full"] = train("--steps", "6", "--checkpoint-every", "2", "--out", str(folder / "a"))
report["after_checkpoint_full"] = sorted(p.name for p in (folder / "a" / "checkpoints").iterdir())
resize(64 * 1024)  # the user frees space, then continues
report["checkpoint_resumed"] = train("--steps", "6", "--checkpoint-every", "2", "--out", str(folder / "a"), "--resume")
subprocess.run(["rm", "-rf", str(folder / "a")], check=True)

# B. export: room for the final checkpoint but not for the exported model as well
resize(checkpoint_kib + export_kib // 2 + 16)
report["export_full"] = train("--steps", "3", "--out", str(folder / "b"))
report["after_export_full"] = sorted(p.name for p in (folder / "b").iterdir())
report["after_export_full_checkpoints"] = sorted(p.name for p in (folder / "b" / "checkpoints").iterdir())
resize(64 * 1024)
report["export_resumed"] = train("--steps", "3", "--out", str(folder / "b"), "--resume")
report["exported"] = sorted(p.name for p in (folder / "b" / "model").iterdir())
print(json.dumps(report))
