"""The README's training examples run one after another as written (on a few steps), each in its own
--out, and "continue after a stop" continues: stopped by Ctrl-C, the run resumes at the
checkpoint's step + 1."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import REPO

ZOO = str(Path(sys.executable).with_name("zoo"))


def training_commands():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Training\n"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def test_the_readme_training_examples_run_in_order_and_resume_continues(tmp_path):
    commands = training_commands()
    assert [c[:2] for c in commands] == [["zoo", "train"]] * 5, commands
    outs = [c[c.index("--out") + 1] for c in commands]
    assert outs[0] == outs[1] and "--resume" in commands[1] and len(set(outs)) == 4, outs  # one --out per run
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")  # ../shared/data, as from the repo root
    env = {**os.environ, "TQDM_DISABLE": "1"}
    few = ["--data-option", "limit=1024"]

    # 1. the recipe, stopped with Ctrl-C once it has trained a step (long enough never to end first)
    first = subprocess.Popen([ZOO, *commands[0][1:], *few, "--steps", "100000"], cwd=work, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = work / outs[0] / "log.jsonl"
    for _ in range(1200):  # bounded: 120 s
        if log.is_file() and log.read_text().strip():
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr
    stopped = int(re.search(r"stopped by SIGINT at step (\d+); checkpoint written to (\S+)\.", stderr).group(1))
    printed = shlex.split(stderr.split("To continue:\n")[1].strip())
    assert set(commands[1]) <= set(printed), (printed, commands[1])  # the printed command is the README's
    assert (work / outs[0] / "checkpoints" / f"step_{stopped:08d}" / "state.json").is_file()

    # 2. continue after the stop, for 20 more steps
    second = subprocess.run([ZOO, *commands[1][1:], *few, "--steps", str(stopped + 20)], cwd=work, env=env, text=True,
                            capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"at step {stopped}" in second.stdout
    steps = [int(re.search(r'"step": (\d+)', line).group(1)) for line in log.read_text().splitlines()]
    assert steps[0] == 1 and [s for s in steps if s > stopped][0] == stopped + 1, steps
    assert steps[-1] == stopped + 20

    # 3, 4, 5. the family with overrides, a fine-tune of it (init_from), the plain trainer, each into its own folder
    for command in commands[2:]:
        run = subprocess.run([ZOO, *command[1:], *few, "--steps", "10"], cwd=work, env=env, text=True,
                             capture_output=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert "trained 10 steps" in run.stdout
    for out in outs:
        assert (work / out / "model" / "model.safetensors").is_file()
