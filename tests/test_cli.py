"""The zoo CLI: help everywhere, one clear line and exit status 2 for user errors."""

import json

import pytest

from helpers import MNIST, run_zoo

COMMANDS = ["list", "info", "plugins", "sample", "train", "eval", "push", "pull", "render", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run_zoo(command, "--help", check=True)
    assert result.stdout.startswith("usage: zoo " + command)


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "ae-mnst"], "Unknown model 'ae-mnst'"),
        (["info", "nope"], "Unknown model 'nope'"),
        (["train", "ae", "--data", "/nonexistent"], "MNIST file /nonexistent/train-images-idx3-ubyte.gz is missing"),
        (["train", "ae", "--steps", "0", "--data", str(MNIST)], "steps: Input should be greater than or equal to 1"),
        (["train", "ae", "--set", "code_dimm=3", "--data", str(MNIST)], "code_dimm: Extra inputs are not permitted"),
        (["train", "ae", "--set", "oops", "--data", str(MNIST)], "--set takes KEY=VALUE"),
        (["eval", "ae-mnist", "--metric", "no-such-metric"], "unknown metric 'no-such-metric'"),
        (["sample", "/no/such/folder"], "/no/such/folder is not a folder"),
        (["render", "ae-mnist", "--frames", "2"], "does not render scenes"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message):
    result = run_zoo(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_list_shows_the_catalog_with_metrics_and_sources():
    result = run_zoo("list", check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "PLUGIN", "METRICS", "SOURCE"]
    entries = json.loads(run_zoo("list", "--json", check=True).stdout)
    assert len(lines) == len(entries) + 1
    assert {"ae-mnist", "nerf-lego"} <= {e["name"] for e in entries}
    filtered = json.loads(run_zoo("list", "ae-*", "--json", check=True).stdout)
    assert [e["name"] for e in filtered] == sorted(e["name"] for e in entries if e["name"].startswith("ae-"))


def test_info_prints_the_entry():
    result = run_zoo("info", "ae-mnist", check=True)
    assert "family: ae" in result.stdout and "installed: true" in result.stdout and "command:" in result.stdout


def test_sample_writes_a_grid(tmp_path):
    result = run_zoo("sample", "ae-mnist", "-n", "9", "--seed", "1", "-o", str(tmp_path / "g.png"), check=True)
    assert "wrote 9 samples" in result.stdout
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size == (2 + 3 * 30, 2 + 3 * 30)
