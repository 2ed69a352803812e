"""Every bad input found in issue 10, table-driven: one line on stderr, exit status 2, no traceback,
and a message that names the fix. Most rows call ``zoo_core.cli.main`` in this process (the
console script is a thin wrapper around it); a few run the real ``zoo`` script end to end."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo_core.cli import main
from zoo_core.errors import InvalidArgumentError

from helpers import MNIST, run_zoo

NO_CUDA = not torch.cuda.is_available()

#: (id, argv, text the one-line message must hold)
BAD_INPUTS = [
    ("sample -n 0", ["sample", "ae-mnist", "-n", "0"], "argument -n/--num: must be at least 1, got 0"),
    ("sample -n -3", ["sample", "ae-mnist", "-n", "-3"], "must be at least 1, got -3"),
    ("sample -n abc", ["sample", "ae-mnist", "-n", "abc"], "expected a whole number, got 'abc'"),
    ("sample --nrow 0", ["sample", "ae-mnist", "--nrow", "0"], "argument --nrow: must be at least 1"),
    ("render --frames 0", ["render", "nerf-lego", "--frames", "0"], "argument --frames: must be at least 1, got 0"),
    ("render --fps 0", ["render", "nerf-lego", "--fps", "0"], "argument --fps: must be at least 1, got 0"),
    ("demo --frames 0", ["demo", "--frames", "0"], "argument --frames: must be at least 1"),
    ("demo -n 0", ["demo", "-n", "0"], "argument -n/--num: must be at least 1"),
    ("sample --device gpu", ["sample", "ae-mnist", "--device", "gpu"], "'gpu' is not a device name: use cpu, cuda"),
    ("sample --device cuda", ["sample", "ae-mnist", "--device", "cuda"],
     "'cuda' is not available here (a CPU-only build of torch"),
    ("eval --device gpu", ["eval", "ae-mnist", "--metric", "recon", "--device", "gpu"], "'gpu' is not a device name"),
    ("render --device xyz", ["render", "nerf-lego", "--device", "xyz"], "'xyz' is not a device name"),
    ("info org/repo", ["info", "org/repo"], "org/repo is a Hub repo id; 'zoo info' shows catalog entries"),
    ("train 3x32x32 ddpm on MNIST", ["train", "ddpm", "--dataset", "mnist", "--data", str(MNIST), "--steps", "1"],
     "the mnist dataset gives items of shape 1x28x28, but this ddpm model takes 3x32x32"),
    ("--data-option limit=0", ["train", "ae", "--data", str(MNIST), "--data-option", "limit=0", "--steps", "1"],
     "limit=0 is not a number of items: give a whole number of at least 1"),
    ("--data-option limit=-3", ["train", "ae", "--data", str(MNIST), "--data-option", "limit=-3", "--steps", "1"], "limit=-3 is not"),
    ("--data-option limit=abc", ["train", "ae", "--data", str(MNIST), "--data-option", "limit=abc", "--steps", "1"], "limit='abc' is not"),
    ("--data-option limit=1.5", ["train", "ae", "--data", str(MNIST), "--data-option", "limit=1.5", "--steps", "1"], "limit=1.5 is not"),
    ("--data-option limti=3", ["train", "ae", "--data", str(MNIST), "--data-option", "limti=3", "--steps", "1"],
     "takes no option 'limti' (did you mean limit?)"),
    ("--data-option split=test", ["train", "ae", "--data", str(MNIST), "--data-option", "split=test", "--steps", "1"],
     "--data-option cannot set 'split'"),
    ("--data-option =3", ["train", "ae", "--data", str(MNIST), "--data-option", "=3", "--steps", "1"], "--data-option takes KEY=VALUE"),
    ("pull repo id with a newline", ["pull", "org/name\n"], "is not a valid Hub repo id"),
    ("pull revision with a newline", ["pull", "org/name@main\n"], "is not a valid revision"),
    ("pull revision with a control character", ["pull", "org/name@ma\x01in"], "is not a valid revision"),
    ("push tag with a newline", ["push", "{folder}", "org/name", "--tag", "v1\n"], "is not a valid revision"),
    ("push repo id with a newline", ["push", "{folder}", "org/name\n"], "is not a valid Hub repo id"),
    ("sample repo id with a tab", ["sample", "org/na\tme"], "is not a valid Hub repo id"),
]


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    family = sorted(zoo.families())[0]
    return zoo.build(family, zoo.families()[family].tiny_config).save_pretrained(folder / "model")


_CPU_ONLY = pytest.mark.skipif(torch.version.cuda is not None, reason="needs a CPU-only build of torch")


@pytest.mark.parametrize("argv, expected", [
    pytest.param(argv, expected, id=name, marks=[_CPU_ONLY] if "cuda" in argv else [])
    for name, argv, expected in BAD_INPUTS
])
def test_bad_input_gets_one_line_and_exit_2(argv, expected, capsys, tmp_path, monkeypatch, saved_folder):
    monkeypatch.chdir(tmp_path)
    argv = [arg.replace("{folder}", str(saved_folder)) for arg in argv]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's errors
        code = exit.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert expected in captured.err, captured.err
    assert list(tmp_path.iterdir()) == [], "a refused command wrote nothing"


def test_bad_hub_settings_are_named(capsys, monkeypatch):
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "soon")
    assert main(["pull", "org/name"]) == 2
    assert "ZOO_HUB_TIMEOUT='soon' is not a timeout" in capsys.readouterr().err
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "5")
    monkeypatch.setenv("ZOO_HUB_RETRIES", "-1")
    assert main(["pull", "org/name"]) == 2
    assert "ZOO_HUB_RETRIES='-1' is not a retry count" in capsys.readouterr().err


def test_the_console_script_too():
    """The same rules through the installed `zoo` script, in a fresh process."""
    result = run_zoo("sample", "ae-mnist", "--device", "gpu")
    assert result.returncode == 2 and result.stderr.startswith("zoo: error: device 'gpu' is not a device name")
    assert result.stderr.count("\n") == 1


# -- the same checks in the Python API ---------------------------------------------------------


@pytest.mark.parametrize("alias, dtype", [("fp16", torch.float16), ("half", torch.float16), ("float16", torch.float16),
                                          ("bf16", torch.bfloat16), ("torch.float64", torch.float64),
                                          ("fp32", torch.float32), (torch.float64, torch.float64)])
def test_load_accepts_the_usual_dtype_names(alias, dtype):
    assert zoo.load("ae-mnist", device="cpu", dtype=alias).dtype == dtype


@pytest.mark.parametrize("dtype", ["fp17", "int8", torch.int8, 16])
def test_load_refuses_other_dtypes_with_the_valid_names(dtype):
    with pytest.raises(InvalidArgumentError, match="'fp16' / 'half'"):
        zoo.load("ae-mnist", dtype=dtype)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 3.5] + (["cuda"] if NO_CUDA else []))
def test_load_refuses_devices_this_machine_lacks(device):
    with pytest.raises(InvalidArgumentError, match="device"):
        zoo.load("ae-mnist", device=device)


@pytest.mark.parametrize("limit", [0, -3, 1.5, "10", True])
def test_dataset_limits_must_be_positive_whole_numbers(limit):
    from zoo_core.plugins import get_dataset

    with pytest.raises(InvalidArgumentError, match="is not a number of items"):
        get_dataset("mnist").load(MNIST, limit=limit)
    assert len(get_dataset("mnist").load(MNIST, limit=3)) == 3
