"""Training in the zoo: the ``Trainer`` interface, the loop its built-in trainers share, and the
registry of trainers (``zoo.trainer("plain")``).

Trainers are registered through the ``zoo_register_trainers`` hook like families are. The core
registers two: ``accelerate`` (``zoo_core.trainers.accelerated``, the default: one process, many
GPUs or CPUs, mixed precision) and ``plain`` (``zoo_core.trainers.plain``: one process, plain
PyTorch, no Accelerate; the baseline the benches compare against). With the same seed, batch and
steps on the CPU both produce bit-identical weights, and their checkpoints are interchangeable.

``Trainer(model, dataset, train, out_dir=...)`` builds the default trainer, as it always did.
"""

from __future__ import annotations

import abc
import bisect
import copy
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Optional, Sequence

import torch
import torch.optim.swa_utils
from torch.utils.data import Dataset

from . import checkpoint as ckpt
from .checkpoint import CHECKPOINTS, CheckpointError, DiskFullError, RunLockedError  # noqa: F401 (re-exported)
from .config import TrainConfig
from .datasets import fetch_batch
from .errors import UnknownTrainerError, ZooError  # noqa: F401 (re-exported)
from .generator import Generator

DEFAULT_TRAINER = "accelerate"
EXPORT = "model"
LOG = "log.jsonl"
CURVE = "training-curve.png"
#: TrainConfig fields that may change when a run is resumed: how long it runs and its bookkeeping.
#: Every other field, the model's config, the seed and the dataset's size must be the same.
RESUMABLE_CHANGES = frozenset(
    {"steps", "checkpoint_every", "checkpoint_minutes", "keep_checkpoints", "log_every", "num_workers",
     "nonfinite", "max_nonfinite_batches", "check_gradients"}
)


class UnsupportedTrainingError(ZooError, ValueError):
    """The trainer cannot do what the config or the launcher asks (the message names one that can)."""


class RunFolderError(ZooError, ValueError):
    """The output folder holds another run, or a checkpoint from other settings."""


class NonFiniteLossError(ZooError, FloatingPointError):
    """A loss or gradient became NaN or infinite: the run stopped, its finite checkpoints are kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped training after a final checkpoint; ``str()`` says how to
    continue. ``signal`` is the signal's number, ``checkpoint`` the folder written."""

    def __init__(self, message: str, *, signal_number: int, step: int, checkpoint: Optional[Path]):
        super().__init__(message)
        self.signal, self.step, self.checkpoint = signal_number, step, checkpoint

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class TrainResult:
    export_dir: Optional[Path]
    steps: int
    seconds: float
    samples_per_second: float
    last_losses: dict[str, float] = field(default_factory=dict)
    checkpoint: Optional[Path] = None
    skipped_batches: int = 0


class Trainer(abc.ABC):
    """Trains a ``Generator`` on a dataset. This docstring is the contract every trainer keeps;
    ``zoo_core.trainers.conformance.check_trainer`` tests a registered trainer against it.

    Given (constructor): ``model`` (a Generator, its weights already initialized: the caller seeds
    before building it), ``dataset`` (a map-style ``torch.utils.data.Dataset`` whose items collate
    into the batches ``model.training_step`` takes; its optional ``get_batch`` returns a batch collated
    already, ``zoo_core.datasets``), ``train`` (a ``TrainConfig``), ``out_dir``,
    ``cpu`` (stay on the CPU), ``progress`` (show a bar), ``export`` (keyword arguments for
    ``save_pretrained``: metrics, dataset, license), ``overwrite`` (replace an earlier run's files
    in ``out_dir``) and ``resume_command`` (the command that continues the run, printed after a
    stop). A trainer that cannot do what ``train`` or the launcher asks raises
    ``UnsupportedTrainingError`` naming what it cannot do, here or in ``fit``.

    ``fit(resume=None)`` must:

    * call ``model.configure_optimizers(train)`` once and, on a fresh run (not a resumed one),
      ``model.on_fit_start(batches)`` with the training batches in order, then for each optimizer step and each
      optimizer in its order ``model.training_step(batch, optimizer=name)``, backpropagate its
      ``"loss"`` and step that optimizer; ``train.steps`` optimizer steps in all, with the learning
      rate schedule, warm-up, gradient accumulation and clipping that ``train`` asks for;
    * where ``model.steps_per_optimizer()`` asks an optimizer to step ``r`` times per training step
      (a GAN's k discriminator steps), give each of those steps its own batch: a training step takes
      ``n`` batches (the largest ``r``), an optimizer with ``r`` steps runs on the last ``r`` of them,
      in ``configure_optimizers``' order on each batch; ``train.steps`` and the learning rate
      schedule count training steps (a schedule factor changes once per training step);
    * seed Python, numpy and torch with ``train.seed`` and draw the data order from it, so that a
      run is reproducible;
    * stop at the first non-finite loss or gradient naming the step and the losses (or, with
      ``nonfinite="skip"``, skip such batches up to ``max_nonfinite_batches``; with
      ``check_gradients=False``, losses only), and never write non-finite weights;
    * keep an exponential moving average of the weights when ``train.ema_decay`` is set;
    * write resumable checkpoints under ``out_dir/checkpoints`` every ``checkpoint_every`` steps,
      every ``checkpoint_minutes`` of training, at the end and when stopped by SIGINT/SIGTERM
      (then raise ``TrainingInterrupted``); keep ``keep_checkpoints`` of them;
    * with ``resume`` (``"latest"`` or a checkpoint folder) continue that checkpoint to the weights
      an uninterrupted run would give; refuse a checkpoint written with other settings, saying
      what differs; without it, refuse an ``out_dir`` that holds another run unless ``overwrite``;
    * write the losses to ``out_dir/log.jsonl`` (one JSON object per line: ``step``, the losses),
      and draw them against the step into ``out_dir/training-curve.png`` at the end;
    * call ``model.on_fit_end(batches)`` on the final weights (the EMA's, if kept), then export them
      with ``save_pretrained`` to ``out_dir/model``, which ``zoo.load`` reads;
    * return a ``TrainResult``.

    ``LoopTrainer`` below does all of this around four engine methods; a trainer may also
    implement ``fit`` from scratch.
    """

    #: The name the trainer is registered under (``zoo train --trainer NAME``).
    name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any):
        # ``Trainer(...)`` keeps meaning what it meant before trainers were pluggable: the default one.
        if cls is Trainer:
            cls = get_trainer(DEFAULT_TRAINER)
        return super().__new__(cls)

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
        overwrite: bool = False,
        resume_command: Optional[str] = None,
        report_to: Optional[str | list[str]] = None,
    ):
        self.model, self.dataset, self.train = model, dataset, train
        self.report_to = report_to
        self.out_dir = Path(out_dir)
        self.cpu, self.progress, self.export = cpu, progress, dict(export or {})
        self.overwrite = overwrite
        self.resume_command = resume_command

    @abc.abstractmethod
    def fit(self, resume: Optional[str | Path] = None) -> TrainResult:
        """Train, checkpoint and export as the class docstring says; ``resume`` is ``None``,
        ``"latest"`` or a checkpoint folder."""


# -- the registry --------------------------------------------------------------------------------


def trainers() -> dict[str, Any]:
    """The registered trainers: name -> ``TrainerSpec``."""
    from .plugins import trainers as registered

    return registered()


def get_trainer(name: str) -> type[Trainer]:
    """The ``Trainer`` subclass registered as ``name`` (``zoo.trainer("plain")``)."""
    from .plugins import get_trainer as lookup

    return lookup(name).trainer_class()


# -- helpers every trainer may use ---------------------------------------------------------------


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every device), as ``accelerate.utils.set_seed`` does."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def lr_lambda(train: TrainConfig):
    def factor(step: int) -> float:
        if train.warmup_steps and step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        if train.lr_schedule == "cosine":
            progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if train.lr_schedule == "step":
            return train.lr_gamma ** bisect.bisect_right(train.lr_milestones, step)
        return 1.0

    return factor


_lr_lambda = lr_lambda  # the name earlier code imported


def _every(count: int, factor):
    def per_training_step(optimizer_steps: int) -> float:
        return factor(optimizer_steps // count)

    return per_training_step


def latest_checkpoint(out_dir: str | Path) -> Optional[Path]:
    """The newest complete checkpoint folder in ``out_dir/checkpoints`` (``None`` if there is none)."""
    return next((found.path for found in ckpt.scan(Path(out_dir)) if found.problem is None), None)


_ONE = torch.ones(())  # finite_all's scale: read, never written


def finite_all(tensors: Sequence[torch.Tensor], norm: Optional[torch.Tensor] = None) -> bool:
    """Whether every element of ``tensors`` (and ``norm``) is finite: the check a step's losses and
    gradients get before the optimizer steps. Integer tensors are not checked.

    On the CPU, single values (the losses) are read as Python floats, and larger contiguous tensors (the
    gradients) go through torch's fused non-finite check, the one ``GradScaler`` uses; it multiplies them
    by 1, which changes no value, and is one read of them, where a norm per tensor is a read and a
    reduction. Elsewhere, one ``_foreach_norm`` and one host sync: a 2-norm is non-finite when an element
    is, or when it passes float32's range (as ``clip_grad_norm_``'s does). In a ~1.9 ms step of Burda et
    al.'s VAE at batch 20 the guard takes ~0.11 ms with the gradients, ~0.025 ms for the losses alone
    (python bench/vae_step_parts.py)."""
    with torch.no_grad():
        values, dense, rest, on_cpu = [], [], [], True  # one pass: ~0.4 us a tensor
        for t in (*tensors, norm) if norm is not None else tensors:
            if t.is_floating_point():
                on_cpu = on_cpu and t.is_cpu
                if t.numel() == 1:
                    values.append(t)
                elif t.is_contiguous():
                    dense.append(t)
                else:
                    rest.append(t)
        if not on_cpu:
            every = [*values, *dense, *rest]
            if not every:
                return True
            norms = [n.to(every[0].device) for n in torch._foreach_norm(every, 2, dtype=torch.float32)]
            return bool(torch.isfinite(torch.stack(norms)).all())  # one host sync
        if not all(math.isfinite(float(t)) for t in values):
            return False
        if rest and not all(math.isfinite(float(n)) for n in torch._foreach_norm(rest, 2, dtype=torch.float32)):
            return False
        if dense:  # contiguous, so multiplying by 1 in place is safe
            found = torch.zeros(())
            torch._amp_foreach_non_finite_check_and_unscale_(dense, found, _ONE)
            return not bool(found)
        return True


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _json_number(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None  # log.jsonl stays valid JSON (no bare NaN)


class ExponentialMovingAverage(torch.optim.swa_utils.AveragedModel):
    """``train.ema_decay``'s average of the weights, ema = decay * ema + (1 - decay) * weights after each
    optimizer step (the first step copies them), the same arithmetic and state dict (``module.*``,
    ``n_averaged``: the checkpoints' ``ema.safetensors``) as torch's ``AveragedModel`` with
    ``get_ema_multi_avg_fn`` and buffers averaged too. It pairs the tensors once rather than every step,
    and skips the model's ``ema_exclude`` (a GAN's discriminator), whose copies ``follow_excluded``
    sets to the live weights before they are saved."""

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__(model, use_buffers=True)
        self.decay = decay
        exclude = tuple(getattr(model, "ema_exclude", ()))
        self._averaged: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self._excluded: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        ours = [*self.module.named_parameters(), *self.module.named_buffers()]
        theirs = [*model.named_parameters(), *model.named_buffers()]
        for (name, average), (_, live) in zip(ours, theirs, strict=True):
            average, live = average.detach(), live.detach()
            if name.startswith(exclude) if exclude else False:
                pair = self._excluded
            else:
                pair = self._averaged.setdefault((average.device, average.dtype), ([], []))
            pair[0].append(average)
            pair[1].append(live)

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        """One step of the average (``model``: the model it was built from, whose tensors it holds)."""
        first = bool(self.n_averaged == 0)
        for (_, dtype), (averages, lives) in self._averaged.items():
            if first:
                torch._foreach_copy_(averages, lives)
            elif dtype.is_floating_point or dtype.is_complex:
                torch._foreach_lerp_(averages, lives, 1 - self.decay)
            else:  # integer buffers (BatchNorm's step count), as AveragedModel rounds them
                for average, live in zip(averages, lives):
                    average.copy_(average * self.decay + live * (1 - self.decay))
        if first:
            self.follow_excluded()
        self.n_averaged += 1

    @torch.no_grad()
    def follow_excluded(self) -> None:
        """Set the copies of the ``ema_exclude`` weights to the live ones."""
        if self._excluded[0]:
            torch._foreach_copy_(*self._excluded)


class _StopSignals:
    """The first SIGINT or SIGTERM asks the loop to stop after the current step (it then writes a
    checkpoint); a second one raises ``KeyboardInterrupt`` at once."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        # os.write, not print: a handler may run in the middle of another write to stderr
        os.write(2, f"\nzoo: {signal.Signals(signum).name} received: stopping after this step to write a "
                    "checkpoint (press Ctrl-C again to quit at once, losing the work since the last checkpoint)\n".encode())

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Progress:
    def __init__(self) -> None:
        self.step = 0
        self.micro_step = 0
        self.seconds = 0.0  # of training, over every resumed segment


class LoopTrainer(Trainer):
    """The loop both built-in trainers share: run-folder lock and checks, seeding, resuming,
    the step loop with the non-finite guard, EMA, logging, periodic and final checkpoints,
    stopping on signals, and the export. An engine implements:

    * ``_setup()``: place the model, build ``self._optimizers`` (name -> optimizer),
      ``self._schedulers`` (one per optimizer) and the data, set ``self._model`` (the unwrapped
      Generator on its device) and ``self._batches_per_epoch``;
    * ``_batches(epoch, skip)``: the batches of ``epoch`` after the first ``skip``, as
      ``(batch, is_last_of_epoch)``;
    * ``_train_on_batch(batch, is_last, optimizers=None)``: forward and backward for every
      optimizer (or only those named in ``optimizers``, which the loop passes when the model's
      ``steps_per_optimizer`` makes a training step span several batches); at an optimizer step
      call ``self._allow_step(name, out, grad_norm)`` before stepping; build the learning rate
      schedulers with ``self._lr_schedulers(optimizers)``. Returns
      ``(losses, stepped)``: the losses (tensors), and whether an optimizer step completed
      (``False`` while accumulating or when a non-finite batch was skipped);
    * and, for several processes, ``process_index``, ``num_processes``, ``_barrier`` and
      ``_any_process``.
    """

    process_index = 0
    num_processes = 1
    is_local_main_process = True

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    def _barrier(self) -> None:
        pass

    def _any_process(self, *flags: bool) -> list[bool]:
        return [bool(f) for f in flags]

    def _seed(self, seed: int) -> None:
        seed_everything(seed)

    def _mean_across_processes(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """The losses averaged over the processes (every process calls it at the same steps)."""
        return {k: float(v) for k, v in losses.items()}

    def _epoch_order(self, epoch: int, generator: Optional[torch.Generator] = None) -> list[int]:
        """The data order of ``epoch``: the permutation torch's ``RandomSampler`` (and Accelerate's seedable
        sampler) draws from a generator seeded with ``train.seed + epoch`` (``generator``, if given, is the one
        seeded and drawn from)."""
        generator = (generator or torch.Generator()).manual_seed(self.train.seed + epoch)
        return torch.randperm(len(self.dataset), generator=generator).tolist()

    def _local_batches(self, epoch: int, skip: int, device: torch.device) -> Iterable[tuple[Any, bool]]:
        """``_batches`` for one process with no workers: the batches of ``_epoch_order`` after the first ``skip``,
        each fetched in one call (``zoo_core.datasets.fetch_batch``) and moved to ``device``. A DataLoader does
        the same here, plus its iterator's bookkeeping: ~20-40 us a batch, 1-2% of a small model's step."""
        order, size = self._epoch_order(epoch), self.train.batch_size
        count = len(self.dataset) // size
        for index in range(skip, count):
            batch = fetch_batch(self.dataset, order[index * size : (index + 1) * size])
            yield to_device(batch, device), index == count - 1

    @abc.abstractmethod
    def _setup(self) -> None: ...

    @abc.abstractmethod
    def _batches(self, epoch: int, skip: int) -> Iterable[tuple[Any, bool]]: ...

    @abc.abstractmethod
    def _train_on_batch(self, batch: Any, is_last: bool) -> tuple[dict[str, torch.Tensor], bool]: ...

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _step_plan(self, names: list[str]) -> list[tuple[str, ...]]:
        """The optimizers that run on each batch of a training step (see ``steps_per_optimizer``)."""
        counts = {name: 1 for name in names}
        asked = dict(self.model.steps_per_optimizer())
        unknown = sorted(set(asked) - set(names))
        if unknown:
            raise ValueError(f"{type(self.model).__name__}.steps_per_optimizer names {', '.join(map(repr, unknown))}, "
                             f"not optimizers of configure_optimizers ({', '.join(names)})")
        for name, count in asked.items():
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"{type(self.model).__name__}.steps_per_optimizer()[{name!r}] must be an integer >= 1, got {count!r}")
            counts[name] = count
        n = max(counts.values())
        if n > 1 and self.train.grad_accum_steps > 1:
            raise UnsupportedTrainingError(
                f"grad_accum_steps > 1 is not supported when an optimizer steps several times per training step "
                f"({', '.join(f'{k}: {v}' for k, v in asked.items())})")
        return [tuple(name for name in names if j >= n - counts[name]) for j in range(n)]

    def _lr_schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> list[torch.optim.lr_scheduler.LambdaLR]:
        """One ``LambdaLR`` per optimizer, following ``train``'s schedule in training steps: an
        optimizer that steps r times per training step moves along it once every r of its steps."""
        counts = {name: sum(name in names for names in self._step_plan(list(optimizers))) for name in optimizers}
        factor = lr_lambda(self.train)
        return [torch.optim.lr_scheduler.LambdaLR(optimizer, factor if counts[name] == 1 else _every(counts[name], factor))
                for name, optimizer in optimizers.items()]

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- fit ----------------------------------------------------------------------------------

    def fit(self, resume: Optional[str | Path] = None) -> TrainResult:
        lock = ckpt.RunLock(self.out_dir) if self.is_main_process else None
        if lock is not None:
            lock.acquire()
            if lock.taken_over_from:
                print(f"took over the lock of {self.out_dir} from pid {lock.taken_over_from}, which is no longer running",
                      file=sys.stderr)
        try:
            with _StopSignals() as signals:
                return self._fit(resume, signals)
        finally:
            if lock is not None:
                lock.release()

    def _fit(self, resume: Optional[str | Path], signals: _StopSignals) -> TrainResult:
        train = self.train
        self._seed(train.seed)
        found = self._choose_checkpoint(resume)
        self._found_step = found.step if found else 0
        self._barrier()
        if self.is_main_process:
            self._prepare_folder(resumed=found is not None, resume_asked=bool(resume))
        self._barrier()
        self._setup()
        model = self._model
        if found is None and train.init_from:
            self._initialize_from(train.init_from)
        elif found is None:
            with torch.no_grad():
                model.on_fit_start(self._fit_end_batches(model.device))
        self._ema = ExponentialMovingAverage(model, train.ema_decay) if train.ema_decay else None
        self._progress = _Progress()
        self._skipped = 0
        self._poisoned: list[str] = []
        if found is not None:
            self._restore(found)
            if self.is_main_process:
                print(f"resumed from {found.path} at step {self._progress.step}")
        self._start_trackers()
        try:
            return self._loop(signals, found)
        finally:
            self._end_trackers()

    def _initialize_from(self, source: str) -> None:
        """``train.init_from``: copy a trained model's weights into the fresh model (every process does)."""
        from .generator import load_weights
        from .loading import load

        trained = load(source, device="cpu")
        if trained.family != self._model.family:
            raise UnsupportedTrainingError(
                f"init_from={source!r} is a {trained.family} model and this run trains a {self._model.family}: "
                f"start from a {self._model.family} model, or drop init_from")
        load_weights(self._model, trained.state_dict(), source=f"the weights of init_from={source!r}")
        if self.is_main_process:
            print(f"initialized from {source}")

    def _loop(self, signals: _StopSignals, found: Optional[ckpt.Found]) -> TrainResult:
        from .progress import progress_bar

        train, progress, model = self.train, self._progress, self._model
        log_path = self.out_dir / LOG
        bar = progress_bar(total=train.steps, initial=progress.step, desc=f"train {model.family}", unit="step",
                           leave=True, disable=not (self.progress and self.is_local_main_process))
        start = last_checkpoint_time = self._segment_start = time.perf_counter()
        start_step, last, written = progress.step, {}, found.path if found else None
        written_step = found.step if found else None
        plan = self._step_plan(list(self._optimizers))
        position = 0  # the batch of the training step (of len(plan)) that comes next
        self._model.train()
        while progress.step < train.steps:
            epoch, offset = divmod(progress.micro_step, self._batches_per_epoch)
            for batch, is_last in self._batches(epoch, offset):
                if len(plan) == 1:
                    losses, stepped = self._train_on_batch(batch, is_last)
                else:
                    losses, stepped = self._train_on_batch(batch, is_last, optimizers=plan[position])
                progress.micro_step += 1
                if not stepped:
                    continue
                position += 1
                if position < len(plan):
                    continue
                position = 0
                progress.step += 1
                if self._ema is not None:
                    self._ema.update_parameters(model)
                bar.update(1)
                now = time.perf_counter()
                if progress.step % train.log_every == 0 or progress.step in (train.steps, start_step + 1):
                    last = self._mean_across_processes(losses)
                    rate = (progress.step - start_step) * train.batch_size * train.grad_accum_steps / max(now - start, 1e-9)
                    bar.set_postfix(loss=f"{last.get('loss', float('nan')):.4g}", samples_s=f"{rate:.0f}")
                    self._track({**last, "samples_per_s": rate}, progress.step)
                    if self.is_main_process:
                        lr = next(iter(self._optimizers.values())).param_groups[0]["lr"]  # for the next step
                        entry = {"step": progress.step, **last, "lr": lr, "samples_per_s": rate,
                                 "elapsed_s": round(now - start, 3)}
                        with open(log_path, "a") as log:
                            log.write(json.dumps({k: _json_number(v) if isinstance(v, float) else v
                                                  for k, v in entry.items()}, allow_nan=False) + "\n")
                if progress.step >= train.steps:
                    break
                by_steps = bool(train.checkpoint_every) and progress.step % train.checkpoint_every == 0
                by_time = bool(train.checkpoint_minutes) and now - last_checkpoint_time >= 60 * train.checkpoint_minutes
                stop, by_time = self._any_process(signals.received is not None, by_time)
                if by_steps or by_time or stop:
                    written, written_step = self._save_checkpoint(progress.step), progress.step
                    last_checkpoint_time = time.perf_counter()
                if stop:
                    bar.close()
                    raise self._interrupted(signals.received or signal.SIGINT, written)
        bar.close()
        seconds = time.perf_counter() - start
        rate = (progress.step - start_step) * train.batch_size * train.grad_accum_steps / max(seconds, 1e-9)
        if written_step != progress.step:
            written = self._save_checkpoint(progress.step)
        export_dir = self._export(self._card_training(last, progress.seconds + seconds))
        if self.is_main_process:
            from .trainers.curve import plot_losses

            plot_losses(log_path, self.out_dir / CURVE)
        return TrainResult(export_dir, progress.step, seconds, rate, last, checkpoint=written, skipped_batches=self._skipped)

    def _interrupted(self, signum: int, written: Optional[Path]) -> TrainingInterrupted:
        command = self.resume_command or f"{type(self).__name__}(...).fit(resume='latest') with the same settings"
        name = signal.Signals(signum).name
        return TrainingInterrupted(
            f"stopped by {name} at step {self._progress.step}; checkpoint written to {written}. To continue:\n  {command}",
            signal_number=signum, step=self._progress.step, checkpoint=written,
        )

    # -- experiment trackers (report_to) ------------------------------------------------------

    def _start_trackers(self) -> None:
        if self.report_to:
            raise UnsupportedTrainingError(
                f"the {self.name} trainer cannot report to {self.report_to}; use --trainer accelerate"
            )

    def _track(self, values: dict[str, float], step: int) -> None:
        pass

    def _end_trackers(self) -> None:
        pass

    # -- the non-finite guard -----------------------------------------------------------------

    def _watch(self, out: dict[str, torch.Tensor]) -> None:
        """A micro-batch whose gradients are accumulated: remember non-finite losses until the step."""
        self._poisoned += [k for k, v in out.items() if not bool(torch.isfinite(v.detach()).all())]

    def _allow_step(self, name: str, out: dict[str, torch.Tensor], grad_norm: Optional[torch.Tensor] = None,
                    grads: Optional[Sequence[torch.Tensor]] = None) -> bool:
        """Called by the engine before each optimizer step: ``True`` to step. Non-finite losses or
        gradients stop the run (``NonFiniteLossError``) or, with ``nonfinite="skip"``, skip it.

        ``grad_norm``: the gradients' total norm where the engine has it (clipping returns it), else
        ``grads``: the gradients themselves (neither: the losses only, e.g. under fp16's loss scaler)."""
        if not self._poisoned and finite_all([*out.values(), *grads] if grads else list(out.values()), grad_norm):
            bad, bad_grad = [], False
        else:  # the slow path: find out what was not finite, for the message
            bad = self._poisoned + [k for k, v in out.items() if not bool(torch.isfinite(v.detach()).all())]
            if grad_norm is None and grads:
                grad_norm = torch.nn.utils.get_total_norm(list(grads))
            bad_grad = grad_norm is not None and not bool(torch.isfinite(grad_norm))
        self._poisoned = []
        (failed,) = self._any_process(bool(bad) or bad_grad)
        if not failed:
            return True
        step = self._progress.step + 1
        values = ", ".join(f"{k}={float(v.detach().float().mean()):.4g}" for k, v in out.items())
        what = (f"non-finite loss ({', '.join(sorted(set(bad)))})" if bad
                else "non-finite gradient (norm " + (f"{float(grad_norm)}" if grad_norm is not None else "?") + ")"
                if bad_grad else "a non-finite loss in another process")
        where = f" of optimizer {name!r}" if len(self._optimizers) > 1 else ""
        if self.train.nonfinite == "skip" and self._skipped < self.train.max_nonfinite_batches:
            self._skipped += 1
            print(f"warning: step {step}: {what}{where} [{values}]; skipped this batch "
                  f"({self._skipped} of at most {self.train.max_nonfinite_batches})", file=sys.stderr)
            return False
        kept = latest_checkpoint(self.out_dir)
        limit = (f" after skipping {self._skipped} batches (max_nonfinite_batches={self.train.max_nonfinite_batches})"
                 if self.train.nonfinite == "skip" else "")
        raise NonFiniteLossError(
            f"training stopped at step {step}{limit}: {what}{where} [{values}]. The weights were not updated "
            f"with it and nothing non-finite was saved; last finite checkpoint: {kept or 'none'}"
            + ("" if self.train.check_gradients else " (check_gradients=False: a non-finite gradient of an earlier step "
               "may have reached the weights)") + ". Lower the learning "
            "rate (--lr) or clip gradients (--train-set max_grad_norm=1.0) and train again, or skip such batches "
            "(--train-set nonfinite=skip)"
        )

    # -- checkpoints --------------------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        """What a checkpoint records about its run, compared on resume."""
        return {
            "trainer": self.name,
            "family": self.model.family,
            "model_config": self.model.config.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "seed": self.train.seed,
            "dataset_size": len(self.dataset),
            "num_processes": self.num_processes,
        }

    def _save_checkpoint(self, step: int) -> Path:
        """Every process calls it; each writes its RNG state, the main process the rest."""
        root = self.out_dir
        final = ckpt.step_folder(root, step)
        if self.is_main_process:
            ckpt.begin(root, step)
        self._barrier()
        tmp = ckpt.temporary_folder(root, step)
        try:
            ckpt.save_tree(tmp / f"rng-{self.process_index}.safetensors", rng_state())
        except BaseException as error:
            ckpt.abort(root, step)
            if ckpt.is_disk_full(error):
                raise ckpt.disk_full(error, f"checkpoint step {step}", tmp.parent) from None
            raise
        self._barrier()
        if self.is_main_process:
            try:
                weights = self._model.state_dict()
                if self._ema is not None:
                    self._ema.follow_excluded()
                bad = nonfinite_tensors(weights) + (nonfinite_tensors(self._ema.state_dict()) if self._ema else [])
                if bad:
                    raise NonFiniteLossError(f"refusing to checkpoint step {step}: non-finite values in {', '.join(bad[:8])}")
                ckpt.save_tensors(tmp / "model.safetensors", weights)
                if self._ema is not None:
                    ckpt.save_tensors(tmp / "ema.safetensors", self._ema.state_dict())
                ckpt.save_tree(tmp / "state.safetensors", {
                    "optimizers": {name: opt.state_dict() for name, opt in self._optimizers.items()},
                    "schedulers": [s.state_dict() for s in self._schedulers],
                    "progress": {"step": self._progress.step, "micro_step": self._progress.micro_step,
                                 "skipped_batches": self._skipped,
                                 "seconds": self._progress.seconds + time.perf_counter() - self._segment_start},
                    "extra": self._extra_state(),
                })
            except BaseException as error:
                ckpt.abort(root, step)
                if ckpt.is_disk_full(error):
                    raise ckpt.disk_full(error, f"checkpoint step {step}", final.parent) from None
                raise
            ckpt.commit(root, step, {**self._record(), "micro_step": self._progress.micro_step,
                                     "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            ckpt.prune(root, self.train.keep_checkpoints)
        self._barrier()
        return final

    def _choose_checkpoint(self, resume: Optional[str | Path]) -> Optional[ckpt.Found]:
        """The checkpoint to continue (``None``: start fresh), after checking that it is complete
        and was written with these settings. Says which newer ones it skipped and why."""
        if not resume:
            if not self.overwrite:
                leftovers = self._leftovers()
                if leftovers:
                    raise RunFolderError(
                        f"{self.out_dir} already holds a training run ({', '.join(leftovers)}); continue it with "
                        "--resume, replace it with --overwrite, or train into another --out"
                    )
            return None
        if str(resume) == "latest" or resume is True:
            found = None
            for candidate in ckpt.scan(self.out_dir):
                if candidate.problem is None:
                    found = candidate
                    break
                if self.is_main_process:
                    print(f"skipped {candidate.path}: {candidate.problem}", file=sys.stderr)
            if found is None:
                if self.is_main_process:
                    print(f"no complete checkpoint in {self.out_dir / CHECKPOINTS}; starting from scratch", file=sys.stderr)
                return None
        else:
            path = Path(resume)
            if not path.is_dir():
                raise FileNotFoundError(f"checkpoint {path} does not exist")
            found = ckpt.verify(path)
            if found.problem:
                raise CheckpointError(f"cannot resume from {path}: {found.problem}")
        self._check_same_run(found)
        return found

    def _check_same_run(self, found: ckpt.Found) -> None:
        old, new = found.manifest or {}, self._record()
        differences = []
        if old.get("family") != new["family"]:
            differences.append(f"family {old.get('family')} -> {new['family']}")
        else:
            keys = sorted(set(old.get("model_config", {})) | set(new["model_config"]))
            differences += [f"model {k} {old['model_config'].get(k)!r} -> {new['model_config'].get(k)!r}"
                            for k in keys if old["model_config"].get(k) != new["model_config"].get(k)]
        old_train = old.get("train", {})
        for key in sorted(set(old_train) | set(new["train"])):
            if key not in RESUMABLE_CHANGES and key in old_train and old_train.get(key) != new["train"].get(key):
                differences.append(f"{key} {old_train.get(key)!r} -> {new['train'].get(key)!r}")
        if old.get("dataset_size") != new["dataset_size"]:
            differences.append(f"dataset size {old.get('dataset_size')} -> {new['dataset_size']} items")
        if differences:
            raise RunFolderError(
                f"cannot resume from {found.path}: it was written with other settings ({'; '.join(differences)}). "
                "Resume with the same settings, or train into another --out (or pass --overwrite to replace the run)"
            )
        if self.is_main_process and old_train.get("steps") != new["train"]["steps"]:
            print(f"note: steps changed from {old_train.get('steps')} to {new['train']['steps']}", file=sys.stderr)

    def _leftovers(self) -> list[str]:
        if not self.out_dir.is_dir():
            return []
        return sorted(p.name for p in self.out_dir.iterdir() if p.name != ckpt.LOCK)

    def _prepare_folder(self, *, resumed: bool, resume_asked: bool) -> None:
        log_path = self.out_dir / LOG
        if not resumed:
            if self.overwrite or resume_asked:
                for name in (CHECKPOINTS, EXPORT):
                    shutil.rmtree(self.out_dir / name, ignore_errors=True)
            log_path.unlink(missing_ok=True)
            (self.out_dir / CURVE).unlink(missing_ok=True)
        else:
            # keep the log up to the checkpoint's step: one history, whatever was logged after it is redone
            kept = []
            if log_path.is_file():
                for line in log_path.read_text().splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a kill
                    if isinstance(entry, dict) and entry.get("step", 0) <= self._resume_step:
                        kept.append(line)
            log_path.write_text("".join(line + "\n" for line in kept))
        for found in ckpt.scan(self.out_dir):
            if found.path.name.startswith(".tmp-"):
                shutil.rmtree(found.path, ignore_errors=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _restore(self, found: ckpt.Found) -> None:
        from .generator import load_weights

        path = found.path
        try:
            load_weights(self._model, ckpt.load_tensors(path / "model.safetensors"), source=f"the weights in {path}")
            if self._ema is not None:
                self._ema.load_state_dict(ckpt.load_tensors(path / "ema.safetensors"))
            state = ckpt.load_tree(path / "state.safetensors")
            for name, optimizer in self._optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            for scheduler, saved in zip(self._schedulers, state["schedulers"]):
                scheduler.load_state_dict(saved)
            self._progress.step = int(state["progress"]["step"])
            self._progress.micro_step = int(state["progress"]["micro_step"])
            self._skipped = int(state["progress"].get("skipped_batches", 0))
            self._progress.seconds = float(state["progress"].get("seconds", 0.0))
            self._load_extra_state(state.get("extra", {}))
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"cannot resume from {path}: {type(error).__name__}: {error}") from None
        rng_file = path / f"rng-{self.process_index}.safetensors"
        if rng_file.is_file():
            set_rng_state(ckpt.load_tree(rng_file))
        elif self.is_main_process:
            print(f"note: {path} has no random state for process {self.process_index}; continuing with a fresh one",
                  file=sys.stderr)

    @property
    def _resume_step(self) -> int:
        return getattr(self, "_found_step", 0)

    # -- export -------------------------------------------------------------------------------

    def _card_training(self, last: dict[str, float], seconds: float) -> dict[str, Any]:
        """What the model card says about the training (``save_pretrained(training=...)``)."""
        import platform

        device = self._model.device
        if device.type == "cuda":
            hardware = torch.cuda.get_device_name(device)
        else:
            hardware = f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        given = {key: self.export[key] for key in ("dataset", "license") if self.export.get(key)}
        return {
            **given,  # a card's dataset and license are Hub ids, or absent: never a placeholder
            "examples": len(self.dataset),
            "trainer": f"{self.name} (zoo train)",
            "steps": self._progress.step,
            "time": f"{seconds:.1f} s of training",
            "hardware": f"{self.num_processes} process{'es' if self.num_processes > 1 else ''} x {hardware}",
            "final_losses": dict(last),
            "hyperparameters": self.train.model_dump(mode="json"),
        }

    def _export(self, training: Optional[dict[str, Any]] = None) -> Optional[Path]:
        self._barrier()
        export_dir = None
        if self.is_main_process:
            final = copy.deepcopy(self._model)
            if self._ema is not None:
                self._ema.follow_excluded()
                final.load_state_dict(self._ema.module.state_dict())
            final.eval()
            with torch.no_grad():
                final.on_fit_end(self._fit_end_batches(final.device))
            bad = nonfinite_tensors(final.state_dict())
            if bad:
                raise NonFiniteLossError(
                    f"refusing to export non-finite weights ({', '.join(bad[:8])}) to {self.out_dir / EXPORT}; "
                    f"the checkpoints in {self.out_dir / CHECKPOINTS} are kept"
                )
            export_dir = self.out_dir / EXPORT
            tmp = self.out_dir / f".tmp-{EXPORT}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                from .generator import _folder_name

                # the card is named after the run, not after the temporary folder it is written into
                card = {"name": _folder_name(export_dir)} if not (self.export.get("name") or self.export.get("repo_id")) else {}
                final.save_pretrained(tmp, **card, **self.export, **({"training": training} if training else {}))
                for file in tmp.iterdir():
                    ckpt.fsync_path(file)
                shutil.rmtree(export_dir, ignore_errors=True)
                os.rename(tmp, export_dir)
                ckpt.fsync_path(self.out_dir)
            except Exception as error:
                shutil.rmtree(tmp, ignore_errors=True)
                if ckpt.is_disk_full(error):
                    raise DiskFullError(
                        f"disk full while exporting the model into {export_dir} ({getattr(error, 'strerror', None) or error}); the "
                        f"checkpoints in {self.out_dir / CHECKPOINTS} are kept: free some space and run again with --resume"
                    ) from None
                raise
            self.model = final
        self._barrier()
        return export_dir

    def _fit_end_batches(self, device: torch.device) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        for batch in DataLoader(self.dataset, batch_size=self.train.batch_size, shuffle=False):
            yield to_device(batch, device)
