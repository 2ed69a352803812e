"""Frozen pydantic configs: the one constructor argument of every model, serialized to config.json."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ZooConfig(BaseModel):
    """Base of every family's config: immutable, and unknown keys are errors (typos do not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class TrainConfig(ZooConfig):
    """Hyperparameters of the core Trainer; the same for every family. NaN and infinity are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    steps: int = Field(1000, ge=1, description="Optimizer steps (per optimizer) to run.")
    batch_size: int = Field(64, ge=1, description="Global batch size, split across processes.")
    optimizer: Literal["adamw", "adam", "sgd"] = Field(
        "adamw", description="The optimizer families build with zoo_core.optim.build_optimizer: AdamW, Adam (L2 weight "
        "decay added to the gradient, as in the papers before AdamW) or SGD with momentum."
    )
    lr: float = Field(1e-3, gt=0, description="Learning rate (peak, after warm-up).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam(W) betas.")
    eps: float = Field(1e-8, gt=0, description="Adam(W) epsilon (Burda et al.'s IWAE code: 1e-4).")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    lr_schedule: Literal["constant", "cosine", "step"] = Field(
        "constant", description="Learning-rate schedule after warm-up: constant, cosine to 0 at `steps`, or 'step': "
        "multiplied by lr_gamma at each of lr_milestones."
    )
    lr_milestones: tuple[int, ...] = Field(
        (), description="With lr_schedule='step': the optimizer steps (counted from the start) at which the lr is "
        "multiplied by lr_gamma; increasing."
    )
    lr_gamma: float = Field(0.1, gt=0, description="With lr_schedule='step': the factor applied at each milestone.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps before the schedule.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    max_grad_norm: Optional[float] = Field(None, gt=0, description="Clip gradients to this global norm.")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="Accelerate mixed precision.")
    seed: int = Field(0, description="Seeds torch, numpy, random and the data order.")
    ema_decay: Optional[float] = Field(
        None, gt=0, lt=1, description="Keep an exponential moving average of the weights and export it."
    )
    checkpoint_every: int = Field(0, ge=0, description="Save a resumable checkpoint every N steps (0: off).")
    checkpoint_minutes: float = Field(
        10.0, ge=0, description=(
            "Also save one every this many minutes of training (0: off). A checkpoint of the largest catalog "
            "recipe (ae-mnist: 2.84M parameters, AdamW and EMA, 45 MB) took 4.4 s on a shared 2-core machine "
            "(load ~10), 0.73% of a 10-minute interval: python bench/bench_checkpoint.py --data ../shared/data/mnist."
        ),
    )
    keep_checkpoints: int = Field(2, ge=1, description="How many checkpoints to keep on disk (the newest ones).")
    nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="On a NaN/inf loss or gradient: stop (naming the step and losses) or skip the batch."
    )
    max_nonfinite_batches: int = Field(
        10, ge=0, description="With nonfinite=skip: stop once this many batches have been skipped."
    )
    check_gradients: bool = Field(
        True, description=(
            "Check the gradients, not only the losses, for NaN/inf before every optimizer step. It costs one "
            "read of the gradients a step: about 0.09 ms more than the losses alone in a 1.9 ms step of Burda et "
            "al.'s 0.43M-parameter VAE at batch 20 on one CPU thread (python bench/vae_step_parts.py), about 1% "
            "at batch 256; free with max_grad_norm (clipping computes the norm). False: losses only, so a "
            "non-finite gradient with a finite loss reaches the weights (checkpoints and the export still refuse "
            "non-finite weights)."
        ),
    )
    init_from: Optional[str] = Field(
        None, description=(
            "Fine-tune: start from the weights of this trained model (a catalog name, a model folder or a Hub repo "
            "id, as zoo.load takes them) instead of a fresh initialization. Its family must be the run's and its "
            "weights must fit the config (other settings, e.g. a VAE's k, may differ); the optimizer, schedule "
            "and EMA start fresh, and the family's data-dependent initialization (on_fit_start) is skipped."
        ),
    )
    log_every: int = Field(50, ge=1, description="Log losses and throughput every N steps.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")

    @model_validator(mode="after")
    def _check_schedule(self) -> "TrainConfig":
        milestones = self.lr_milestones
        if any(m <= 0 for m in milestones) or any(a >= b for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"lr_milestones must be positive and increasing, got {list(milestones)}")
        if milestones and self.lr_schedule != "step":
            raise ValueError(f"lr_milestones is only used with lr_schedule='step' (lr_schedule is {self.lr_schedule!r})")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum is an SGD setting; optimizer is {self.optimizer!r} (use betas for Adam)")
        return self
