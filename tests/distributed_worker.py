"""Run under torchrun by test_distributed.py: records which samples each process trains on and
which process writes the export."""

import json
import os
import sys
from pathlib import Path

import torch

from zoo_core.config import TrainConfig
from zoo_core.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))  # this script's sibling test module, not a plugin
from test_trainer import LinearConfig, LinearDenoiser  # noqa: E402

out = Path(sys.argv[1])
rank = int(os.environ.get("RANK", 0))
seen: list[int] = []
losses: list[float] = []


class Recording(LinearDenoiser):
    def training_step(self, batch, *, optimizer="main"):
        seen.extend(int(i) for i in batch[:, 0])  # the first feature is the sample's index
        out = super().training_step(batch[:, 1:], optimizer=optimizer)
        losses.append(float(out["loss"]))
        return out

    def save_pretrained(self, directory, **kwargs):
        (out / f"exported-by-rank{rank}").touch()
        return super().save_pretrained(directory, **kwargs)


data = [torch.cat([torch.tensor([float(i)]), torch.randn(6, generator=torch.Generator().manual_seed(i))]) for i in range(64)]
torch.manual_seed(0)
Trainer(Recording(LinearConfig()), data, TrainConfig(steps=4, batch_size=8, checkpoint_every=2, log_every=1), out_dir=out, progress=False).fit()
(out / f"seen-rank{rank}.json").write_text(json.dumps(seen))
(out / f"losses-rank{rank}.json").write_text(json.dumps(losses))
