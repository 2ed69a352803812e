"""One run per output folder: refusing another run's folder, the lock, resuming only a complete
checkpoint written with the same settings, and never unpickling a checkpoint."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import MNIST, run_zoo
from test_trainer import LinearConfig, LinearDenoiser, assert_same_weights, dataset, train
from zoo_core.checkpoint import LOCK, CheckpointError, RunLock, RunLockedError
from zoo_core.config import TrainConfig
from zoo_core.trainer import RunFolderError, Trainer, latest_checkpoint

ZOO = str(Path(sys.executable).with_name("zoo"))


def test_a_folder_that_holds_a_run_is_refused_unless_resume_or_overwrite(tmp_path):
    train(tmp_path, "run", steps=4)
    with pytest.raises(RunFolderError, match=r"already holds a training run \(checkpoints, log.jsonl, model, "
                                             r"training-curve.png\); "
                                             r"continue it with --resume, replace it with --overwrite"):
        train(tmp_path, "run", steps=4, seed=1)
    assert latest_checkpoint(tmp_path / "run").name == "step_00000004"  # untouched
    torch.manual_seed(0)
    Trainer(LinearDenoiser(LinearConfig()), dataset(), TrainConfig(steps=6, batch_size=8, seed=1), out_dir=tmp_path / "run",
            progress=False, overwrite=True).fit()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_00000006"]
    first = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1


def test_resume_refuses_another_seed_or_model_and_says_what_differs(tmp_path):
    train(tmp_path, "run", steps=3)
    with pytest.raises(RunFolderError, match=r"other settings \(seed 0 -> 7\)"):
        train(tmp_path, "run", steps=6, seed=7, resume="latest")
    with pytest.raises(RunFolderError, match=r"other settings \(model sgd False -> True; lr 0.05 -> 0.1\)"):
        train(tmp_path, "run", steps=6, lr=0.1, model_config=LinearConfig(sgd=True), resume="latest")


def test_resume_uses_the_newest_complete_checkpoint_and_says_which_it_skipped(tmp_path, capsys):
    _, straight = train(tmp_path, "straight", checkpoint_every=4, keep_checkpoints=3)
    train(tmp_path, "cut", steps=8, checkpoint_every=4, keep_checkpoints=3)
    checkpoints = tmp_path / "cut" / "checkpoints"
    weights = checkpoints / "step_00000008" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # a torn write
    (checkpoints / ".tmp-step_00000009").mkdir()  # a write that a kill interrupted
    capsys.readouterr()
    result, resumed = train(tmp_path, "cut", checkpoint_every=4, keep_checkpoints=3, resume="latest")
    err = capsys.readouterr().err
    assert f"skipped {checkpoints / '.tmp-step_00000009'}: incomplete: its write was interrupted" in err
    assert f"skipped {checkpoints / 'step_00000008'}: model.safetensors does not match its recorded size" in err
    assert result.steps == 12
    assert_same_weights(straight, resumed)
    assert not (checkpoints / ".tmp-step_00000009").exists()


def test_a_second_run_on_the_same_folder_fails_while_the_first_holds_the_lock(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunLockedError, match=rf"another zoo train \(pid {os.getpid()}\) is writing to {tmp_path / 'run'}"):
            train(tmp_path, "run", steps=2)
    train(tmp_path, "run", steps=2)  # released


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).write_text(f"{dead.pid}\n")
    result, _ = train(tmp_path, "run", steps=2)
    assert result.steps == 2
    assert f"took over the lock of {tmp_path / 'run'} from pid {dead.pid}, which is no longer running" in capsys.readouterr().err


def test_two_zoo_train_processes_on_one_folder(tmp_path):
    args = ["train", "ae", "--data", str(MNIST), "--data-option", "limit=256", "--set", "hidden_widths=[8]",
            "--set", "code_dim=2", "--batch-size", "16", "--cpu", "--out", str(tmp_path)]
    first = subprocess.Popen([ZOO, *args, "--steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # bounded: 60 s
            if (tmp_path / "log.jsonl").is_file():
                break
            time.sleep(0.1)
        assert (tmp_path / LOCK).read_text().strip() == str(first.pid)
        second = run_zoo(*args, "--steps", "3", "--resume")
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (f"zoo: error: another zoo train (pid {first.pid}) is writing to {tmp_path}; "
                                         "wait for it to finish, stop it, or train into another --out")
    finally:
        first.kill()
        first.wait()


class _Payload:
    """Unpickling this creates a file: the proof that a checkpoint was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_pickle_in_a_checkpoint_never_runs(tmp_path):
    train(tmp_path, "run", steps=3)
    checkpoint = latest_checkpoint(tmp_path / "run")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(str(marker)))
    # 1. Accelerate's pickled file names, as an older zoo wrote them, in a folder without a manifest
    old = tmp_path / "run" / "checkpoints" / "step_00000099"
    old.mkdir()
    for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl", "custom_checkpoint_0.pkl", "pytorch_model.bin"):
        (old / name).write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickled files .* which the zoo never loads because unpickling can run code"):
        train(tmp_path, "run", steps=6, resume=old)
    # 2. a zoo checkpoint whose state file was swapped for the payload, with the manifest's hashes updated
    import hashlib

    state = checkpoint / "state.safetensors"
    state.write_bytes(payload)
    manifest = json.loads((checkpoint / "state.json").read_text())
    manifest["files"]["state.safetensors"] = {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    (checkpoint / "state.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="is not a zoo state file"):
        train(tmp_path, "run", steps=6, resume=checkpoint)
    # 3. torch.load would have run it: the test's payload is real
    assert not marker.exists()
    with pytest.raises(Exception):
        torch.load(state, weights_only=True)
    assert not marker.exists()
    pickle.loads(payload).close()
    assert marker.exists()


def test_a_log_line_cut_by_a_kill_is_dropped_on_resume(tmp_path):
    train(tmp_path, "run", steps=5, checkpoint_every=5, log_every=1)
    with open(tmp_path / "run" / "log.jsonl", "a") as log:
        log.write('{"step": 6, "loss": 0.1')  # killed mid-write
    train(tmp_path, "run", steps=8, checkpoint_every=5, log_every=1, resume="latest")
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 9))


def test_lr_inf_is_refused_by_validation():
    result = run_zoo("train", "ae", "--data", str(MNIST), "--lr", "inf")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "lr: Input should be a finite number" in result.stderr, result.stderr
    with pytest.raises(ValueError, match="finite number"):
        TrainConfig(ema_decay=float("nan"))


def test_sigterm_writes_a_checkpoint_and_the_run_resumes_to_the_same_weights(tmp_path):
    import signal

    from zoo_core.trainer import TrainingInterrupted

    class Terminated(LinearDenoiser):
        calls = 0

        def training_step(self, batch, *, optimizer="main"):
            Terminated.calls += 1
            if Terminated.calls == 5:
                os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler preempting the job would
            return super().training_step(batch, optimizer=optimizer)

    _, straight = train(tmp_path, "straight")
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted) as stop:
        Trainer(Terminated(LinearConfig()), dataset(), TrainConfig(steps=12, batch_size=8, lr=0.05, log_every=4),
                out_dir=tmp_path / "cut", progress=False, resume_command="zoo train ... --resume").fit()
    assert stop.value.signal == signal.SIGTERM and stop.value.step == 5
    assert str(stop.value) == (f"stopped by SIGTERM at step 5; checkpoint written to "
                               f"{tmp_path / 'cut' / 'checkpoints' / 'step_00000005'}. To continue:\n  zoo train ... --resume")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    _, resumed = train(tmp_path, "cut", resume="latest")
    assert_same_weights(straight, resumed)


def test_a_second_signal_quits_at_once():
    import signal

    from zoo_core.trainer import _StopSignals

    before = signal.getsignal(signal.SIGINT)
    with _StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGINT  # the first one only asks the loop to stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
