"""The default trainer, on ``accelerate.Accelerator``.

In the order of the Accelerate examples: Accelerator -> seed -> data -> optimizers -> one
``prepare`` -> ``backward`` -> step. It runs unchanged on a CPU, one GPU, or many processes
(``accelerate launch`` on GPUs, ``torchrun`` on CPUs); the loop around it is ``LoopTrainer``'s.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterable, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..datasets import batch_loading
from ..generator import Generator
from ..trainer import LoopTrainer, UnsupportedTrainingError


class _TrainingStep(nn.Module):
    """Routes ``forward`` to ``training_step`` so DDP wraps the call that computes the loss."""

    def __init__(self, model: Generator):
        super().__init__()
        self.model = model

    def forward(self, batch: Any, optimizer: str = "main") -> dict[str, torch.Tensor]:
        return self.model.training_step(batch, optimizer=optimizer)


class AccelerateTrainer(LoopTrainer):
    """``accelerate``: device placement, mixed precision (no/bf16/fp16), gradient accumulation and
    clipping, and data sharding across processes, all by ``accelerate.Accelerator``.

    ``--batch-size`` is the global batch, split across processes; only the main process writes.
    Checkpoints are the zoo's own (safetensors + JSON), so FSDP and DeepSpeed, whose sharded
    states only Accelerate's pickled checkpoints hold, are refused."""

    name = "accelerate"

    def __init__(self, model, dataset, train=None, **kwargs):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, DistributedType, ProjectConfiguration

        from ..config import TrainConfig

        super().__init__(model, dataset, train if train is not None else TrainConfig(), **kwargs)
        self.train = train = launcher_settings(self.train)
        self.optimizers = model.configure_optimizers(train)
        if not self.optimizers:
            raise ValueError(f"{type(model).__name__}.configure_optimizers returned no optimizer")
        if len(self.optimizers) > 1 and train.grad_accum_steps > 1:
            raise UnsupportedTrainingError("grad_accum_steps > 1 is not supported for families with several optimizers")
        # Each Trainer owns its precision and accumulation settings: forget an earlier Trainer's (in
        # this process) while keeping the distributed setup (PartialState) as it is. Accelerate has
        # no public way to do this (an Accelerator with other settings than the live state's raises).
        AcceleratorState._reset_state(reset_partial_state=False)
        self.accelerator = Accelerator(
            # on a machine with no accelerator (CUDA, MPS, XPU...) cpu=True is what makes Accelerate use
            # gloo under torchrun; elsewhere Accelerate picks the device unless --cpu asks for the CPU
            cpu=bool(self.cpu) if self.cpu is not None else not _has_accelerator(),
            mixed_precision=train.mixed_precision,
            gradient_accumulation_steps=train.grad_accum_steps,
            dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
            project_config=ProjectConfiguration(project_dir=str(self.out_dir), logging_dir=str(self.out_dir / "trackers")),
            log_with=self.report_to or None,
            # a GAN's discriminator pass leaves the generator's weights unused, and vice versa
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=len(self.optimizers) > 1)],
        )
        kind = self.accelerator.distributed_type
        if kind in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
            raise UnsupportedTrainingError(
                f"the accelerate trainer does not support {kind.value}: its sharded optimizer state cannot be "
                "checkpointed in the zoo's pickle-free format; use data parallelism (accelerate launch --multi_gpu)"
            )
        if train.batch_size % self.accelerator.num_processes:
            raise ValueError(
                f"batch_size {train.batch_size} (the global batch) must divide evenly across "
                f"{self.accelerator.num_processes} processes"
            )

    # -- processes ----------------------------------------------------------------------------

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_local_main_process(self) -> bool:
        return self.accelerator.is_local_main_process

    def _barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def _any_process(self, *flags: bool) -> list[bool]:
        if self.num_processes == 1:
            return [bool(f) for f in flags]
        values = torch.tensor([float(bool(f)) for f in flags], device=self.accelerator.device)
        return [bool(v > 0) for v in self.accelerator.reduce(values, reduction="sum")]

    def _start_trackers(self) -> None:
        if self.report_to:
            hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                       for k, v in self.train.model_dump(mode="json").items()}
            hparams.update({f"model.{k}": v if isinstance(v, (int, float, str, bool)) else str(v)
                            for k, v in self.model.config.model_dump(mode="json").items()})
            self.accelerator.init_trackers(f"zoo-{self.model.family}", config=hparams)

    def _track(self, values: dict[str, float], step: int) -> None:
        if self.report_to:
            self.accelerator.log(values, step=step)

    def _end_trackers(self) -> None:
        if self.report_to:
            self.accelerator.end_training()

    def _mean_across_processes(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        if self.num_processes == 1:
            return super()._mean_across_processes(losses)
        names = sorted(losses)
        values = torch.stack([losses[k].detach().float().reshape(()) for k in names]).to(self.accelerator.device)
        return {k: float(v) for k, v in zip(names, self.accelerator.reduce(values, reduction="mean"))}

    def _seed(self, seed: int) -> None:
        from accelerate.utils import set_seed

        set_seed(seed)

    # -- the engine ---------------------------------------------------------------------------

    def _setup(self) -> None:
        from accelerate.utils import DistributedType

        accelerator, train = self.accelerator, self.train
        dataset, collate = batch_loading(self.dataset)
        loader = DataLoader(
            dataset, batch_size=train.batch_size, shuffle=True, drop_last=True, num_workers=train.num_workers,
            generator=torch.Generator().manual_seed(train.seed), collate_fn=collate,
        )
        if len(loader) == 0:
            raise ValueError(f"the dataset has {len(self.dataset)} items, fewer than one batch of {train.batch_size}")
        names = list(self.optimizers)
        schedulers = self._lr_schedulers(self.optimizers)
        prepared = accelerator.prepare(_TrainingStep(self.model), *self.optimizers.values(), loader, *schedulers)
        self._step_module = prepared[0]
        self._optimizers = dict(zip(names, prepared[1 : 1 + len(names)]))
        self._loader, self._schedulers = prepared[1 + len(names)], list(prepared[2 + len(names) :])
        self._model = accelerator.unwrap_model(self._step_module).model
        # Accelerate's optimizer wrapper looks up an optional package on every step() (an uncached
        # importlib find_spec, twice) and calls inspect.signature on every zero_grad(): ~0.7 ms a step,
        # a quarter of a small model's step on one CPU thread (bench/bench_vae.py, batch 20). Where
        # the wrapper has nothing else to do (no fp16 loss scaler, no XLA), step the optimizer it wraps.
        direct = accelerator.scaler is None and accelerator.distributed_type != DistributedType.XLA
        self._stepping = {name: opt.optimizer if direct else opt for name, opt in self._optimizers.items()}
        # Likewise, per step, where Accelerate has nothing to add (bench/bench_vae.py: the accelerate trainer
        # was 0.09-0.10 ms a step behind plain at batch 20, and is within 0-3% of it): with no gradient accumulation, its accumulate() context only counts steps and
        # backward() divides the loss by 1; with one process the prepared DataLoader only looks one batch
        # ahead and moves it to the device, which _local_batches does (the same order: Accelerate's seedable
        # sampler's); and a module that is neither DDP-wrapped nor autocast-patched is training_step itself.
        self._accumulating = accumulating = train.grad_accum_steps > 1
        if not accumulating:  # accumulate() sets this flag each step; an earlier run in this process may have left it off
            accelerator.gradient_state._set_sync_gradients(True)
        self._accumulate = accelerator.accumulate if accumulating else _no_accumulation
        self._backward = accelerator.backward if accumulating or accelerator.scaler is not None else _backward
        self._local = self.num_processes == 1 and not accumulating and train.num_workers == 0
        unwrapped = accelerator.unwrap_model(self._step_module)
        plain_module = unwrapped is self._step_module and "forward" not in vars(unwrapped)
        self._forward = self._model.training_step if plain_module else self._step_module
        self._batches_per_epoch = len(self._loader)
        self._step_module.train()

    def _batches(self, epoch: int, skip: int) -> Iterable[tuple[Any, bool]]:
        if self._local:
            yield from self._local_batches(epoch, skip, self.accelerator.device)
            return
        self._loader.set_epoch(epoch)
        loader = self.accelerator.skip_first_batches(self._loader, skip) if skip else self._loader
        for batch in loader:
            yield batch, False  # Accelerate tracks the end of the epoch itself

    def _train_on_batch(self, batch: Any, is_last: bool, optimizers: Optional[Sequence[str]] = None) -> tuple[dict[str, torch.Tensor], bool]:
        accelerator, clip, names, optimizers = self.accelerator, self.train.max_grad_norm, optimizers, self._optimizers
        # fp16's loss scaler skips overflowing steps itself
        check_gradients = self.train.check_gradients and self.train.mixed_precision != "fp16"
        losses: dict[str, torch.Tensor] = {}
        stepped = True
        with self._accumulate(self._step_module):
            # without accumulate() Accelerate's flag is not set anew each step; with no accumulation every step syncs
            sync = accelerator.sync_gradients if self._accumulating else True
            for (name, optimizer), scheduler in zip(optimizers.items(), self._schedulers):
                if names is not None and name not in names:
                    continue
                if len(optimizers) > 1:
                    self._step_module.zero_grad(set_to_none=True)  # the other optimizer's pass left gradients here
                out = self._forward(batch, optimizer=name)
                if "loss" not in out:
                    raise KeyError(f"training_step must return a dict with 'loss'; got {sorted(out)}")
                self._backward(out["loss"])
                allowed = True
                if sync:
                    params = [p for group in optimizer.param_groups for p in group["params"]]
                    if clip:
                        allowed = self._allow_step(name, out, grad_norm=accelerator.clip_grad_norm_(params, clip))
                    else:
                        allowed = self._allow_step(name, out, grads=[p.grad for p in params if p.grad is not None]
                                                   if check_gradients else None)
                else:
                    self._watch(out)
                if allowed:
                    if sync:  # the wrapper's step() is a no-op while accumulating
                        self._stepping[name].step()
                    scheduler.step()
                stepped = stepped and allowed
                if sync:  # while accumulating, the gradients are kept
                    self._stepping[name].zero_grad(set_to_none=True)
                prefix = "" if len(optimizers) == 1 else f"{name}/"
                for key, value in out.items():
                    losses[f"{prefix}{key}" if key != "loss" or prefix else key] = value.detach()
        if "loss" not in losses:
            losses["loss"] = sum(v for k, v in losses.items() if k.endswith("/loss"))
        return losses, stepped and sync

    def _extra_state(self) -> dict[str, Any]:
        scaler = self.accelerator.scaler
        return {"scaler": scaler.state_dict()} if scaler is not None else {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.accelerator.scaler is not None and state.get("scaler"):
            self.accelerator.scaler.load_state_dict(state["scaler"])


@contextlib.contextmanager
def _no_accumulation(module):
    yield


def _backward(loss: torch.Tensor) -> None:
    loss.backward()


def launcher_settings(train):
    """``accelerate launch`` / ``accelerate config`` settings (mixed precision, gradient accumulation,
    passed down as ACCELERATE_* variables) win over the zoo's defaults, but not over values the user
    set (on the zoo's command line, in the catalog recipe or in the TrainConfig)."""
    from ..config import TrainConfig

    update: dict[str, Any] = {}
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "").strip()
    if precision and "mixed_precision" not in train.model_fields_set and precision != train.mixed_precision:
        if precision not in ("no", "fp16", "bf16"):
            raise UnsupportedTrainingError(
                f"accelerate's mixed precision {precision!r} is not supported; the zoo trains with no, fp16 or bf16"
            )
        update["mixed_precision"] = precision
    accumulation = os.environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "").strip()
    if accumulation and "grad_accum_steps" not in train.model_fields_set and int(accumulation) != train.grad_accum_steps:
        update["grad_accum_steps"] = int(accumulation)
    if not update:
        return train
    print(f"using {', '.join(f'{k}={v}' for k, v in update.items())} from accelerate launch/config "
          "(set it on the zoo's command line to override)", file=sys.stderr)
    return TrainConfig.model_validate({**train.model_dump(include=train.model_fields_set), **update})


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, MPS, XPU, ...
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
