"""Batch-level fetching (a dataset's ``get_batch``), the trainers' one-process data path, and the guard's
finiteness check: each shortcut gives what the long way gives, bit for bit."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, default_collate

import zoo
from zoo_core.config import TrainConfig
from zoo_core.datasets import BatchFetching, ImageTensorDataset, batch_loading, fetch_batch, passthrough
from zoo_core.trainer import finite_all
from zoo_core.trainers.accelerated import AccelerateTrainer

from test_vae_iwae import binarized, needs_mnist

INDICES = [7, 3, 3, 0, 11, 5]  # any order, repeats allowed


def images(n=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 6, 5, 3), dtype=np.uint8)


def test_get_batch_is_the_collated_items():
    data = ImageTensorDataset(images())
    batch = data.get_batch(INDICES)
    assert batch.shape == (len(INDICES), 3, 6, 5) and batch.dtype == torch.float32
    assert torch.equal(batch, default_collate([data[i] for i in INDICES]))
    assert torch.equal(batch, default_collate(data.__getitems__(INDICES)))
    assert torch.equal(fetch_batch(data, INDICES), batch)


def test_fetch_batch_falls_back_to_what_a_dataloader_does():
    items = [torch.full((2,), float(i)) for i in range(12)]  # a list: no get_batch, no __getitems__
    assert torch.equal(fetch_batch(items, INDICES), torch.stack([items[i] for i in INDICES]))
    assert batch_loading(items) == (items, None)  # a DataLoader collates it as usual


def test_a_batch_fetching_loader_gives_the_usual_loaders_batches():
    data = ImageTensorDataset(images(40))
    view, collate = batch_loading(data)
    assert isinstance(view, BatchFetching) and collate is passthrough and len(view) == 40
    assert torch.equal(view[4], data[4])
    usual = DataLoader(data, batch_size=6, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3))
    fast = DataLoader(view, batch_size=6, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3),
                      collate_fn=collate)
    pairs = list(zip(usual, fast, strict=True))
    assert len(pairs) == 6
    for a, b in pairs:
        assert torch.equal(a, b)


@needs_mnist
def test_binarized_mnist_get_batch_draws_what_the_items_draw():
    train = binarized("train", limit=64)
    torch.manual_seed(0)
    batch = train.get_batch(INDICES)
    torch.manual_seed(0)
    assert torch.equal(batch, default_collate(train.__getitems__(INDICES)))  # the same Bernoulli draws
    test = binarized("test", limit=64)
    assert torch.equal(test.get_batch(INDICES), torch.stack([test[i] for i in INDICES]))


class Numbered:
    """Item i is the tensor [i]: a batch shows the data order."""

    def __len__(self):
        return 50

    def __getitem__(self, index):
        return torch.tensor([float(index)])

    def get_batch(self, indices):
        return torch.tensor(indices, dtype=torch.float32)[:, None]


@pytest.mark.parametrize("dataset", [Numbered(), [torch.tensor([float(i)]) for i in range(50)]],
                         ids=["get_batch", "list"])
def test_one_process_batches_follow_accelerates_order(dataset, tmp_path):
    """With one process the accelerate trainer fetches batches itself; they are its prepared DataLoader's."""
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    trainer = AccelerateTrainer(model, dataset, TrainConfig(steps=1, batch_size=8, seed=11), out_dir=tmp_path,
                                progress=False, cpu=True)
    trainer._seed(11)  # as fit() does: Accelerate's seedable sampler takes torch's seed
    trainer._setup()
    assert trainer._local and trainer._batches_per_epoch == 6
    orders = []
    for epoch in (0, 1, 2):
        trainer._loader.set_epoch(epoch)
        theirs = [batch.flatten().tolist() for batch in trainer._loader]
        ours = list(trainer._local_batches(epoch, 0, torch.device("cpu")))
        assert [batch.flatten().tolist() for batch, _ in ours] == theirs
        assert [last for _, last in ours] == [False] * 5 + [True]
        resumed = [batch.flatten().tolist() for batch, _ in trainer._local_batches(epoch, 4, torch.device("cpu"))]
        assert resumed == theirs[4:]
        orders.append(sum(theirs, []))
    assert len(set(map(tuple, orders))) == 3 and orders[0] != sorted(orders[0])  # shuffled anew each epoch


def fit(tmp_path, name, trainer="accelerate", **train):
    torch.manual_seed(0)
    model = zoo.build("vae", dict(zoo.families()["vae"].tiny_config))
    data = ImageTensorDataset(np.random.default_rng(1).integers(0, 256, size=(60, 28, 28), dtype=np.uint8))
    config = TrainConfig(**{"steps": 9, "batch_size": 8, "lr": 3e-3, "log_every": 3, **train})
    zoo.trainer(trainer)(model, data, config, out_dir=tmp_path / name, progress=False, cpu=True).fit()
    return load_file(tmp_path / name / "model" / "model.safetensors")


@pytest.mark.parametrize("trainer, other", [("accelerate", {"num_workers": 1}), ("plain", {"num_workers": 1}),
                                            ("accelerate", {"check_gradients": False})])
def test_the_one_process_path_trains_as_a_dataloader_does(trainer, other, tmp_path):
    """num_workers=1 takes a DataLoader (Accelerate's prepared one, with its look-ahead, or the plain trainer's)
    over the batch-fetching view; num_workers=0 the trainer's own fetch: the same weights. check_gradients
    only changes what is checked, not the arithmetic."""
    local = fit(tmp_path, "local", trainer)
    loader = fit(tmp_path, "other", trainer, **other)
    for key in local:
        assert torch.equal(local[key], loader[key]), key


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_finite_all_finds_every_kind_of_non_finite_value(device):
    """The guard's check: on the CPU a float64 sum of the norms, elsewhere one stacked isfinite (one host sync)."""
    def tensor(value, **kw):
        return torch.tensor(value, device=device, **kw)

    grads = [torch.randn(30, 20, device=device), torch.randn(20, device=device)]
    losses = [tensor(-3.0), tensor(2.5)]
    assert finite_all([*losses, *grads])
    assert finite_all([])
    if device == "cpu":  # CUDA's norm squares, so a value past 1.8e19 already makes its norm inf
        assert finite_all([tensor(3e38), tensor(3e38)])  # finite; their float64 sum does not overflow
    huge = torch.full((1000,), 3e38, device=device)  # finite, but its 2-norm passes float32's range
    assert finite_all([huge]) == (device == "cpu")  # the CPU checks the elements; elsewhere the norm (documented)
    assert not finite_all([huge[::2]])  # not contiguous: the norm path, on every device
    for bad in (math.nan, math.inf, -math.inf):
        poisoned = [g.clone() for g in grads]
        poisoned[1][7] = bad
        assert not finite_all([*losses, *poisoned]), bad
        assert not finite_all([tensor(bad), *grads]), bad
        assert not finite_all([g.bfloat16() for g in poisoned]), bad  # bf16 gradients, as under autocast
        assert not finite_all([poisoned[0], poisoned[1].expand(3, 20)]), bad  # an expanded (overlapping) view
        assert not finite_all([g.t() if g.dim() == 2 else g for g in poisoned]), bad  # transposed: not contiguous
    values = [g.clone() for g in grads]
    finite_all([*losses, *values])
    assert all(torch.equal(a, b) for a, b in zip(values, grads))  # checking changes no value
    assert not finite_all([tensor(math.inf), tensor(-math.inf)])
    assert not finite_all(grads, norm=tensor(math.nan))
    assert finite_all(grads, norm=tensor(4.0))
    assert finite_all([tensor([1, 2, 3])])  # integer tensors are not checked
    loss = (torch.randn(3, device=device, requires_grad=True) * 2).sum()
    assert finite_all([loss]) and loss.requires_grad  # and no autograd graph is recorded


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_the_accelerate_trainer_calls_training_step_directly_only_without_autocast(precision, tmp_path):
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    data = list(model.example_batch(16))
    trainer = AccelerateTrainer(model, data, TrainConfig(steps=1, batch_size=8, mixed_precision=precision),
                                out_dir=tmp_path, progress=False, cpu=True)
    trainer._setup()
    seen = []
    training_step = model.training_step

    def spy(batch, optimizer="main"):
        seen.append(torch.is_autocast_enabled("cpu"))
        return training_step(batch, optimizer=optimizer)

    model.training_step = spy
    trainer._forward(torch.stack(data[:8]), optimizer="main")
    if precision == "no":
        assert trainer._forward == training_step and seen == []  # bound at setup: the model's own method
    else:
        assert seen == [True]  # through Accelerate's autocast-patched module


def test_a_run_after_an_interrupted_accumulation_still_steps(tmp_path):
    """Accelerate's sync flag outlives an Accelerator: a run without accumulation, which skips accumulate(),
    must not inherit an earlier run's 'still accumulating' (its scheduler would never step)."""
    from accelerate.state import GradientState

    GradientState()._set_sync_gradients(False)  # as a run stopped in the middle of an accumulation leaves it
    fit(tmp_path, "after", lr_schedule="cosine", log_every=1)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "after" / "log.jsonl").read_text().splitlines()]
    assert len(lrs) == 9 and lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0] / 10  # the schedule ran
    weights = load_file(tmp_path / "after" / "model" / "model.safetensors")
    for key, value in fit(tmp_path, "fresh", lr_schedule="cosine", log_every=1).items():
        assert torch.equal(weights[key], value), key  # the same as a run in a fresh state
