"""Choosing a trainer, and the plain trainer: the same weights as the Accelerate trainer, bit for bit."""

import pytest
import torch
from safetensors.torch import load_file

import zoo
from helpers import run_zoo
from zoo_core.config import TrainConfig
from zoo_core.trainer import Trainer, UnsupportedTrainingError
from zoo_core.trainers.accelerated import AccelerateTrainer
from zoo_core.trainers.conformance import tiny_dataset
from zoo_core.trainers.plain import PlainTrainer


def fit(trainer, family, out, **train):
    torch.manual_seed(0)
    model = zoo.build(family, dict(zoo.families()[family].tiny_config))
    config = TrainConfig(**{"steps": 20, "batch_size": 12, "lr": 3e-3, "log_every": 5, **train})
    # 100 items: 8 batches of 12 per epoch, so 20 steps cross two epoch ends
    data = tiny_dataset(model, n=100)
    zoo.trainer(trainer)(model, data, config, out_dir=out, progress=False, cpu=True).fit()
    return load_file(out / "model" / "model.safetensors")


ALL_SETTINGS = {"grad_accum_steps": 3, "ema_decay": 0.9, "max_grad_norm": 0.5, "lr_schedule": "cosine", "warmup_steps": 3}


# vae: a stochastic training_step (reparameterization noise). ALL_SETTINGS: accumulation over 3
# batches with 8 batches per epoch (Accelerate also steps at each epoch's end), EMA, clipping, cosine.
@pytest.mark.parametrize("family, settings", [
    ("ae", {}),
    ("vae", ALL_SETTINGS),
    pytest.param("vae", {}, marks=pytest.mark.slow),
    pytest.param("ae", ALL_SETTINGS, marks=pytest.mark.slow),
])
def test_plain_and_accelerate_give_bit_identical_weights_on_the_cpu(family, settings, tmp_path):
    accelerate = fit("accelerate", family, tmp_path / "accelerate", **settings)
    plain = fit("plain", family, tmp_path / "plain", **settings)
    assert accelerate.keys() == plain.keys()
    for key in accelerate:
        assert torch.equal(accelerate[key], plain[key]), key
    untrained = zoo.build(family, dict(zoo.families()[family].tiny_config)).state_dict()
    assert any(not torch.equal(plain[k], untrained[k]) for k in untrained)


def test_a_checkpoint_of_one_trainer_resumes_in_the_other(tmp_path):
    straight = fit("accelerate", "vae", tmp_path / "straight", ema_decay=0.9)
    fit("plain", "vae", tmp_path / "cut", ema_decay=0.9, steps=7)
    torch.manual_seed(0)
    model = zoo.build("vae", dict(zoo.families()["vae"].tiny_config))
    config = TrainConfig(steps=20, batch_size=12, lr=3e-3, log_every=5, ema_decay=0.9)
    zoo.trainer("accelerate")(model, tiny_dataset(model, n=100), config, out_dir=tmp_path / "cut", progress=False,
                              cpu=True).fit(resume="latest")
    resumed = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_trainer_selection_from_python():
    assert zoo.trainer("plain") is PlainTrainer and zoo.trainer("accelerate") is AccelerateTrainer
    assert issubclass(PlainTrainer, zoo.Trainer) and issubclass(AccelerateTrainer, zoo.Trainer)
    assert {"accelerate", "plain"} <= set(zoo.trainers())
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    # Trainer(...) still builds the default trainer, as before trainers were pluggable
    default = Trainer(model, tiny_dataset(model), TrainConfig(steps=1, batch_size=8), out_dir="unused", progress=False)
    assert type(default) is AccelerateTrainer
    with pytest.raises(zoo.errors.UnknownTrainerError, match=r"'plian'. Did you mean plain\? Registered trainers: accelerate, plain"):
        zoo.trainer("plian")


def test_a_trainer_must_implement_fit():
    class Incomplete(Trainer):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(None, [], TrainConfig())


@pytest.mark.parametrize("settings, env, message", [
    ({"mixed_precision": "bf16"}, {}, "full precision only .*use --trainer accelerate for bf16/fp16"),
    ({}, {"WORLD_SIZE": "2"}, "runs one process, but this is one of 2 .*use --trainer accelerate"),
])
def test_the_plain_trainer_says_what_it_cannot_do(settings, env, message, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    with pytest.raises(UnsupportedTrainingError, match=message):
        PlainTrainer(model, tiny_dataset(model), TrainConfig(**settings), out_dir="unused")


def test_zoo_train_refuses_an_unknown_trainer_before_reading_data(tmp_path):
    from helpers import MNIST

    wrong = run_zoo("train", "ae", "--data", str(MNIST), "--trainer", "plian", "--out", str(tmp_path / "wrong"))
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip() == ("zoo: error: No installed plugin provides the trainer 'plian'. Did you mean plain? "
                                    "Registered trainers: accelerate, plain."), wrong.stderr
    assert not (tmp_path / "wrong").exists()


@pytest.mark.slow
def test_zoo_train_trains_with_the_plain_trainer(tmp_path):
    from helpers import MNIST

    result = run_zoo("train", "ae", "--data", str(MNIST), "--data-option", "limit=64", "--set", "hidden_widths=[8]",
                     "--set", "code_dim=2", "--steps", "3", "--batch-size", "16", "--cpu", "--trainer", "plain",
                     "--out", str(tmp_path / "plain"), check=True)
    assert "trained 3 steps" in result.stdout
    assert zoo.load(tmp_path / "plain" / "model", device="cpu").family == "ae"
