"""``plain``: one process, plain PyTorch, no Accelerate. Easy to step through in a debugger, and
the loop the benches measure the Accelerate trainer against (``bench/bench_trainer.py``).

It draws the same data order and does the same arithmetic as the ``accelerate`` trainer on one
CPU process, so the two give bit-identical weights (``tests/test_trainer_plain.py``).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from ..datasets import batch_loading
from ..trainer import LoopTrainer, UnsupportedTrainingError, to_device


class PlainTrainer(LoopTrainer):
    """``plain``: a single-process loop. Full precision only; no ``accelerate launch``/``torchrun``."""

    name = "plain"

    def __init__(self, model, dataset, train=None, **kwargs):
        from ..config import TrainConfig

        super().__init__(model, dataset, train if train is not None else TrainConfig(), **kwargs)
        train = self.train
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UnsupportedTrainingError(
                f"the plain trainer runs one process, but this is one of {os.environ['WORLD_SIZE']} "
                "(torchrun/accelerate launch); use --trainer accelerate for several processes"
            )
        if train.mixed_precision != "no":
            raise UnsupportedTrainingError(
                f"the plain trainer trains in full precision only (mixed_precision={train.mixed_precision!r} "
                "asked); use --trainer accelerate for bf16/fp16"
            )
        if self.report_to:
            raise UnsupportedTrainingError(
                f"the plain trainer reports to no tracker ({self.report_to!r} asked); it writes log.jsonl and "
                "training-curve.png. Use --trainer accelerate for --report-to"
            )
        self.optimizers = model.configure_optimizers(train)
        if not self.optimizers:
            raise ValueError(f"{type(model).__name__}.configure_optimizers returned no optimizer")
        if len(self.optimizers) > 1 and train.grad_accum_steps > 1:
            raise UnsupportedTrainingError("grad_accum_steps > 1 is not supported for families with several optimizers")
        use_gpu = not self.cpu and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_gpu else "cpu")

    def _setup(self) -> None:
        train = self.train
        self._batches_per_epoch = len(self.dataset) // train.batch_size
        if self._batches_per_epoch == 0:
            raise ValueError(f"the dataset has {len(self.dataset)} items, fewer than one batch of {train.batch_size}")
        self._model = self.model.to(self.device)
        self._optimizers = self.optimizers
        self._schedulers = self._lr_schedulers(self._optimizers)
        self._accumulated = 0

    def _batches(self, epoch: int, skip: int) -> Iterable[tuple[Any, bool]]:
        if self.train.num_workers == 0:
            yield from self._local_batches(epoch, skip, self.device)
            return
        # the permutation torch's RandomSampler draws; the generator, so drawn from, seeds the workers
        generator = torch.Generator()
        order = self._epoch_order(epoch, generator)
        size, count = self.train.batch_size, self._batches_per_epoch
        batches = [order[i * size : (i + 1) * size] for i in range(skip, count)]
        dataset, collate = batch_loading(self.dataset)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=self.train.num_workers, generator=generator,
                            collate_fn=collate)
        for index, batch in enumerate(loader, start=skip):
            yield to_device(batch, self.device), index == count - 1

    def _train_on_batch(self, batch: Any, is_last: bool, optimizers: Optional[Sequence[str]] = None) -> tuple[dict[str, torch.Tensor], bool]:
        train, optimizers, model, names = self.train, self._optimizers, self._model, optimizers
        accumulate = train.grad_accum_steps
        # an optimizer step every grad_accum_steps batches, and at the end of each epoch
        sync = self._accumulated + 1 == accumulate or is_last
        losses: dict[str, torch.Tensor] = {}
        stepped = sync
        for (name, optimizer), scheduler in zip(optimizers.items(), self._schedulers):
            if names is not None and name not in names:
                continue
            if len(optimizers) > 1:
                model.zero_grad(set_to_none=True)
            out = model.training_step(batch, optimizer=name)
            if "loss" not in out:
                raise KeyError(f"training_step must return a dict with 'loss'; got {sorted(out)}")
            (out["loss"] / accumulate if accumulate > 1 else out["loss"]).backward()
            if sync:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                if train.max_grad_norm:
                    allowed = self._allow_step(name, out, grad_norm=torch.nn.utils.clip_grad_norm_(params, train.max_grad_norm))
                else:
                    allowed = self._allow_step(name, out, grads=[p.grad for p in params if p.grad is not None]
                                               if train.check_gradients else None)
                if allowed:
                    optimizer.step()
                    scheduler.step()
                else:
                    stepped = False
                optimizer.zero_grad(set_to_none=True)
            else:
                self._watch(out)
            prefix = "" if len(optimizers) == 1 else f"{name}/"
            for key, value in out.items():
                losses[f"{prefix}{key}" if key != "loss" or prefix else key] = value.detach()
        self._accumulated = 0 if sync else self._accumulated + 1
        if "loss" not in losses:
            losses["loss"] = sum(v for k, v in losses.items() if k.endswith("/loss"))
        return losses, stepped
