"""The one training loop of the zoo, on ``accelerate.Accelerator``.

Families implement ``Generator.training_step(batch) -> {"loss": ..., ...}``; this loop does the
rest, in the order of the Accelerate examples: Accelerator -> seed -> data -> optimizers -> one
``prepare`` -> ``backward`` -> step. It runs unchanged on a CPU, one GPU, or many processes
(``accelerate launch`` on GPUs, ``torchrun`` on CPUs).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .config import TrainConfig
from .generator import Generator

CHECKPOINTS = "checkpoints"
EXPORT = "model"


class _TrainingStep(nn.Module):
    """Routes ``forward`` to ``training_step`` so DDP/FSDP wrap the call that computes the loss."""

    def __init__(self, model: Generator):
        super().__init__()
        self.model = model

    def forward(self, batch: Any, optimizer: str = "main") -> dict[str, torch.Tensor]:
        return self.model.training_step(batch, optimizer=optimizer)


class _Progress:
    """The resumable counters, saved with every checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.micro_step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "micro_step": self.micro_step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step, self.micro_step = int(state["step"]), int(state["micro_step"])


@dataclass
class TrainResult:
    export_dir: Optional[Path]
    steps: int
    seconds: float
    samples_per_second: float
    last_losses: dict[str, float] = field(default_factory=dict)


def _lr_lambda(train: TrainConfig):
    def factor(step: int) -> float:
        if train.warmup_steps and step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        if train.lr_schedule == "cosine":
            progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def latest_checkpoint(out_dir: str | Path) -> Optional[Path]:
    folder = Path(out_dir) / CHECKPOINTS
    candidates = sorted(folder.glob("step_*")) if folder.is_dir() else []
    return candidates[-1] if candidates else None


class Trainer:
    """Train ``model`` on ``dataset`` with the hyperparameters in ``train``.

    out_dir:   checkpoints go to ``out_dir/checkpoints/step_N``, the final model to ``out_dir/model``
               (a ``save_pretrained`` folder), losses to ``out_dir/log.jsonl``.
    cpu:       force the CPU even when a GPU is present (and use gloo under torchrun).
    export:    extra keyword arguments for ``save_pretrained`` (metrics, dataset, license).
    """

    def __init__(
        self,
        model: Generator,
        dataset: Dataset,
        train: TrainConfig = TrainConfig(),
        *,
        out_dir: str | Path = "runs/zoo",
        cpu: Optional[bool] = None,
        progress: bool = True,
        export: Optional[dict[str, Any]] = None,
    ):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

        self.model, self.dataset, self.train = model, dataset, train
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.export = export or {}
        self.optimizers = model.configure_optimizers(train)
        if not self.optimizers:
            raise ValueError(f"{type(model).__name__}.configure_optimizers returned no optimizer")
        if len(self.optimizers) > 1 and train.grad_accum_steps > 1:
            raise ValueError("grad_accum_steps > 1 is not supported for families with several optimizers")
        # Each Trainer owns its precision and accumulation settings: forget an earlier Trainer's (in
        # this process) while keeping the distributed setup (PartialState) as it is.
        AcceleratorState._reset_state(reset_partial_state=False)
        self.accelerator = Accelerator(
            cpu=bool(cpu) if cpu is not None else not torch.cuda.is_available(),
            mixed_precision=train.mixed_precision,
            gradient_accumulation_steps=train.grad_accum_steps,
            dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
            project_config=ProjectConfiguration(project_dir=str(self.out_dir)),
            # a GAN's discriminator pass leaves the generator's weights unused, and vice versa
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=len(self.optimizers) > 1)],
        )
        if train.batch_size % self.accelerator.num_processes:
            raise ValueError(
                f"batch_size {train.batch_size} (the global batch) must divide evenly across "
                f"{self.accelerator.num_processes} processes"
            )

    def fit(self, resume: Optional[str | Path] = None) -> TrainResult:
        """Run ``train.steps`` optimizer steps (continuing a checkpoint if ``resume`` is given:
        a checkpoint folder, or ``"latest"``) and export the model. Returns a ``TrainResult``."""
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm

        accelerator, train = self.accelerator, self.train
        set_seed(train.seed)
        loader = DataLoader(
            self.dataset, batch_size=train.batch_size, shuffle=True, drop_last=True, num_workers=train.num_workers,
            generator=torch.Generator().manual_seed(train.seed),
        )
        if len(loader) == 0:
            raise ValueError(f"the dataset has {len(self.dataset)} items, fewer than one batch of {train.batch_size}")
        names = list(self.optimizers)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(train)) for o in self.optimizers.values()]
        prepared = accelerator.prepare(_TrainingStep(self.model), *self.optimizers.values(), loader, *schedulers)
        step_module, optimizers = prepared[0], dict(zip(names, prepared[1 : 1 + len(names)]))
        loader, schedulers = prepared[1 + len(names)], prepared[2 + len(names) :]
        model = accelerator.unwrap_model(step_module).model

        ema = None
        if train.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(train.ema_decay), use_buffers=True)
            accelerator.register_for_checkpointing(ema)
        progress = _Progress()
        accelerator.register_for_checkpointing(progress)
        if resume:
            checkpoint = latest_checkpoint(self.out_dir) if str(resume) == "latest" else Path(resume)
            if checkpoint is None:
                accelerator.print(f"no checkpoint in {self.out_dir / CHECKPOINTS}; starting from scratch")
            else:
                if not checkpoint.is_dir():
                    raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
                try:
                    accelerator.load_state(str(checkpoint))
                except RuntimeError as error:
                    raise ValueError(
                        f"cannot resume from {checkpoint}: it was written by a different training setup "
                        f"(model, optimizers or EMA differ): {error}. Resume with the same settings, "
                        "or train into a fresh --out folder."
                    ) from None
                accelerator.print(f"resumed from {checkpoint} at step {progress.step}")

        log_path = self.out_dir / "log.jsonl"
        if accelerator.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=train.steps, initial=progress.step, disable=not (self.progress and accelerator.is_local_main_process),
                   desc=f"train {model.family}", unit="step", dynamic_ncols=True)
        start, start_step, last = time.perf_counter(), progress.step, {}
        step_module.train()
        while progress.step < train.steps:
            epoch, offset = divmod(progress.micro_step, len(loader))
            loader.set_epoch(epoch)
            batches = accelerator.skip_first_batches(loader, offset) if offset else loader
            for batch in batches:
                losses = self._train_on_batch(step_module, optimizers, schedulers, batch)
                progress.micro_step += 1
                if not accelerator.sync_gradients:
                    continue
                progress.step += 1
                if ema is not None:
                    ema.update_parameters(model)
                last = {k: float(v) for k, v in losses.items()}
                bar.update(1)
                if progress.step % train.log_every == 0 or progress.step == train.steps:
                    rate = (progress.step - start_step) * train.batch_size * train.grad_accum_steps / (time.perf_counter() - start)
                    bar.set_postfix(loss=f"{last['loss']:.4g}", samples_s=f"{rate:.0f}")
                    if accelerator.is_main_process:
                        with open(log_path, "a") as log:
                            log.write(json.dumps({"step": progress.step, **last, "samples_per_s": rate}) + "\n")
                if train.checkpoint_every and progress.step % train.checkpoint_every == 0:
                    self._checkpoint(progress.step)
                if progress.step >= train.steps:
                    break
        bar.close()
        seconds = time.perf_counter() - start
        rate = (progress.step - start_step) * train.batch_size * train.grad_accum_steps / max(seconds, 1e-9)
        self._checkpoint(progress.step)
        export_dir = self._export(model, ema)
        return TrainResult(export_dir, progress.step, seconds, rate, last)

    def _train_on_batch(self, step_module, optimizers, schedulers, batch) -> dict[str, torch.Tensor]:
        accelerator, clip = self.accelerator, self.train.max_grad_norm
        losses: dict[str, torch.Tensor] = {}
        with accelerator.accumulate(step_module):
            for (name, optimizer), scheduler in zip(optimizers.items(), schedulers):
                if len(optimizers) > 1:
                    step_module.zero_grad(set_to_none=True)  # the other optimizer's pass left gradients here
                out = step_module(batch, optimizer=name)
                if "loss" not in out:
                    raise KeyError(f"training_step must return a dict with 'loss'; got {sorted(out)}")
                accelerator.backward(out["loss"])
                if clip and accelerator.sync_gradients:
                    params = [p for group in optimizer.param_groups for p in group["params"]]
                    accelerator.clip_grad_norm_(params, clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                prefix = "" if len(optimizers) == 1 else f"{name}/"
                for key, value in out.items():
                    losses[f"{prefix}{key}" if key != "loss" or prefix else key] = value.detach()
        if "loss" not in losses:
            losses["loss"] = sum(v for k, v in losses.items() if k.endswith("/loss"))
        return losses

    def _checkpoint(self, step: int) -> None:
        accelerator = self.accelerator
        folder = self.out_dir / CHECKPOINTS / f"step_{step:08d}"
        accelerator.save_state(str(folder))  # every process must call it; only the main one writes
        if accelerator.is_main_process:
            for old in sorted((self.out_dir / CHECKPOINTS).glob("step_*"))[: -self.train.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    def _export(self, model: Generator, ema) -> Optional[Path]:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        export_dir = None
        if accelerator.is_main_process:
            final = copy.deepcopy(model)
            if ema is not None:
                final.load_state_dict(ema.module.state_dict())
            final.eval()
            with torch.no_grad():
                final.on_fit_end(self._plain_batches(final.device))
            export_dir = final.save_pretrained(self.out_dir / EXPORT, **self.export)
            self.model = final
        accelerator.wait_for_everyone()
        return export_dir

    def _plain_batches(self, device):
        loader = DataLoader(self.dataset, batch_size=self.train.batch_size, shuffle=False)
        from accelerate.utils import send_to_device

        for batch in loader:
            yield send_to_device(batch, device)
