"""Runs one training (Python API) and, when asked, SIGKILLs itself at a chosen moment: inside a
training step, or at a point of a checkpoint write. Used by test_training_kill.py as a subprocess.

    python training_driver.py OUT TRAINER [--resume] [--kill WHAT:N]

WHAT: ``step`` (inside the Nth training_step call), or ``begin``, ``save_tree``, ``save_tensors``,
``write_json``, ``commit``, ``prune`` (right after the Nth call of that function of
zoo_core.checkpoint returns; ``write_json`` is the manifest, before the rename).
"""

import os
import signal
import sys
from pathlib import Path

import torch

import zoo_core.checkpoint as ckpt
from zoo_core.config import TrainConfig
from zoo_core.trainer import get_trainer

sys.path.insert(0, str(Path(__file__).parents[1]))  # the tests folder: its test model, not a plugin
from test_trainer import LinearConfig, LinearDenoiser  # noqa: E402

out, trainer_name = sys.argv[1], sys.argv[2]
resume = "latest" if "--resume" in sys.argv else None
kill = sys.argv[sys.argv.index("--kill") + 1] if "--kill" in sys.argv else None
what, _, count = (kill or "none:0").partition(":")
count = int(count)
calls = {"n": 0}


def die_on_call(n_calls):
    calls["n"] += 1
    if calls["n"] == n_calls:
        os.kill(os.getpid(), signal.SIGKILL)


class NoisyDenoiser(LinearDenoiser):
    """Denoises inputs corrupted with fresh noise: its loss draws from the global torch RNG."""

    def training_step(self, batch, *, optimizer="main"):
        if what == "step":
            die_on_call(count)
        return super().training_step(batch + 0.3 * torch.randn_like(batch), optimizer=optimizer)


if what not in ("none", "step"):
    original = getattr(ckpt, what)

    def patched(*args, **kwargs):
        result = original(*args, **kwargs)
        die_on_call(count)
        return result

    setattr(ckpt, what, patched)

data = list(torch.randn(60, 6, generator=torch.Generator().manual_seed(123)))  # 7 batches of 8 per epoch
torch.manual_seed(0)
config = TrainConfig(steps=20, batch_size=8, lr=0.05, log_every=1, checkpoint_every=3, keep_checkpoints=2,
                     ema_decay=0.8, grad_accum_steps=1)
get_trainer(trainer_name)(NoisyDenoiser(LinearConfig()), data, config, out_dir=out, progress=False, cpu=True).fit(resume)
