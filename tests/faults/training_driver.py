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

import torch
from pydantic import Field
from torch import nn

import zoo_core.checkpoint as ckpt
from zoo_core.config import TrainConfig, ZooConfig
from zoo_core.generator import Generator
from zoo_core.trainer import get_trainer

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


class NoisyConfig(ZooConfig):
    dim: int = Field(6, description="Data dimension.")


class NoisyDenoiser(Generator):
    """Denoises inputs corrupted with fresh noise: its loss draws from the global torch RNG."""

    family = "test-noisy"
    config_class = NoisyConfig

    def __init__(self, config):
        super().__init__(config)
        self.encoder = nn.Linear(config.dim, 3)
        self.decoder = nn.Linear(3, config.dim)

    def training_step(self, batch, *, optimizer="main"):
        if what == "step":
            die_on_call(count)
        noisy = batch + 0.3 * torch.randn_like(batch)
        return {"loss": ((self.decoder(torch.tanh(self.encoder(noisy))) - batch) ** 2).mean()}

    def sample(self, n, *, generator=None, **_):
        return torch.sigmoid(self.decoder(torch.randn(n, 3, generator=generator))).view(n, 1, 1, -1)

    def example_batch(self, batch_size, *, generator=None):
        return torch.randn(batch_size, self.config.dim, generator=generator)


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
get_trainer(trainer_name)(NoisyDenoiser(NoisyConfig()), data, config, out_dir=out, progress=False, cpu=True).fit(resume)
