"""Checks that a registered trainer keeps the ``Trainer`` contract, for the zoo's tests and for a
plugin that registers its own trainer::

    from zoo_core.trainers.conformance import check_trainer
    def test_my_trainer(tmp_path):
        check_trainer("my-trainer", tmp_path)

Each check trains a tiny model of an installed family (its ``tiny_config``, on batches from its
``example_batch``) and raises ``AssertionError`` saying what the trainer got wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def tiny_dataset(model, n: int = 48, seed: int = 5) -> list[Any]:
    """``n`` training items cut from the family's ``example_batch``."""
    batch = model.example_batch(n, generator=torch.Generator().manual_seed(seed))
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"{model.family}.example_batch returns a {type(batch).__name__}; pick a family with tensor batches")
    return list(batch)


def _build(family: str, seed: int = 0):
    import zoo

    torch.manual_seed(seed)
    return zoo.build(family, dict(zoo.families()[family].tiny_config))


def _fit(name: str, family: str, out: Path, resume=None, **train: Any):
    import zoo
    from zoo_core.config import TrainConfig

    model = _build(family)
    config = TrainConfig(**{"steps": 12, "batch_size": 8, "lr": 3e-3, "log_every": 4, "ema_decay": 0.9, **train})
    trainer = zoo.trainer(name)(model, tiny_dataset(model), config, out_dir=out, progress=False, cpu=True)
    return trainer.fit(resume=resume)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def check_trainer(name: str, workdir: str | Path, family: str = "ae") -> None:
    """Train, resume and export with trainer ``name``; fail with a message on any broken promise."""
    import zoo
    from zoo_core.trainer import Trainer, TrainResult

    workdir = Path(workdir)
    cls = zoo.trainer(name)
    assert isinstance(cls, type) and issubclass(cls, Trainer), f"trainer {name!r} is {cls!r}, not a Trainer subclass"

    straight = _fit(name, family, workdir / "straight")
    assert isinstance(straight, TrainResult), f"{name}: fit returned {type(straight).__name__}, not a TrainResult"
    assert straight.steps == 12, f"{name}: ran {straight.steps} steps, asked for 12"
    assert straight.export_dir is not None and Path(straight.export_dir) == workdir / "straight" / "model"
    log = [json.loads(line) for line in (workdir / "straight" / "log.jsonl").read_text().splitlines()]
    assert log and log[-1]["step"] == 12 and all("loss" in entry for entry in log), f"{name}: log.jsonl is {log}"

    untrained = _build(family).state_dict()
    exported = _weights(workdir / "straight" / "model")
    assert any(not torch.equal(exported[k], untrained[k]) for k in untrained), f"{name}: training changed no weight"
    loaded = zoo.load(workdir / "straight" / "model", device="cpu")
    assert loaded.family == family and not loaded.training
    for key, value in exported.items():
        assert torch.equal(loaded.state_dict()[key], value), f"{name}: zoo.load gives other weights for {key}"
    with torch.no_grad():
        samples = loaded.sample(2, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(samples).all()), f"{name}: the exported model samples non-finite values"

    # stopped after 5 steps, then resumed to 12: the uninterrupted run's weights, bit for bit
    _fit(name, family, workdir / "cut", steps=5)
    resumed = _fit(name, family, workdir / "cut", resume="latest")
    assert resumed.steps == 12, f"{name}: the resumed run ended at step {resumed.steps}"
    cut = _weights(workdir / "cut" / "model")
    for key in exported:
        assert torch.equal(cut[key], exported[key]), (
            f"{name}: resuming at step 5 does not reproduce the uninterrupted run ({key} differs)"
        )

    # another run's folder is refused, and so is resuming with other settings
    for kwargs, what in (({}, "training into a folder that holds a run"),
                         ({"resume": "latest", "lr": 1e-2}, "resuming with another learning rate")):
        try:
            _fit(name, family, workdir / "cut", **kwargs)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{name}: {what} was not refused")
