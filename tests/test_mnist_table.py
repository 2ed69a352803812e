"""scripts/mnist_table.py: the ranking of every MNIST model on fid-mnist and Parzen (run small here)."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import MNIST, REPO

SCRIPT = REPO / "scripts" / "mnist_table.py"
pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")


def run_table(*args: str) -> str:
    result = subprocess.run([sys.executable, str(SCRIPT), "--data", str(MNIST), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_table_ranks_by_fid_mnist_caches_and_rewrites_the_readme_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- mnist-table: begin -->\nold\n<!-- mnist-table: end -->\noutro\n")
    results = tmp_path / "results.json"
    common = ["--num-samples", "300", "--results", str(results), "--readme", str(readme)]
    out = run_table("gan-mnist", "vae-mnist", *common)
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    fids = [float(line.strip("|").split("|")[4]) for line in rows if "not measured" not in line]
    assert fids == sorted(fids) and len(fids) == 3  # two models and the real images, best first
    assert any("real MNIST training images" in line for line in rows)
    assert any("`ddpm-mnist`" in line and "not measured" in line for line in rows)  # every MNIST entry is listed
    saved = json.loads(results.read_text())
    from zoo_core.catalog import catalog

    assert saved["gan-mnist"]["key"]["weights"] == catalog().get("gan-mnist").weights.sha256["model.safetensors"]
    assert saved["real-data"]["fid_mnist"] < min(saved[n]["fid_mnist"] for n in ("gan-mnist", "vae-mnist"))
    # not so Parzen: with 300 centres the blurry VAE samples outscore 300 real images (Theis et al. 2016's point)
    assert saved["vae-mnist"]["parzen_log_likelihood"] > saved["real-data"]["parzen_log_likelihood"]
    assert all(saved[n]["parzen_log_likelihood_stderr"] > 0 for n in ("real-data", "gan-mnist", "vae-mnist"))
    text = readme.read_text()
    assert text.startswith("intro\n<!-- mnist-table: begin -->\n| rank |") and text.endswith("<!-- mnist-table: end -->\noutro\n")
    assert "old" not in text
    again = run_table("gan-mnist", *common)
    assert "gan-mnist: cached" in again and "measuring" not in again
    assert json.loads(results.read_text()) == saved


def test_catalog_rows_replace_the_entrys_rows_in_every_catalog_file(tmp_path):
    table = runpy.run_path(str(SCRIPT))
    shutil.copy(REPO / "registry.yaml", tmp_path / "registry.yaml")
    (tmp_path / "plugins" / "zoo-gan").mkdir(parents=True)
    shutil.copy(REPO / "plugins" / "zoo-gan" / "catalog-entries.yaml", tmp_path / "plugins" / "zoo-gan")
    result = {"family": "gan", "sampler_options": {}, "fid_mnist": 12.345, "parzen_log_likelihood": 200.0,
              "parzen_log_likelihood_stderr": 1.5, "parzen_sigma": 0.17, "commands": ["zoo eval a", "zoo eval b"]}
    real = {"fid_mnist": 1.0, "parzen_log_likelihood": 243.0}
    before = yaml.safe_load((tmp_path / "registry.yaml").read_text())["models"]
    for _ in range(2):  # idempotent
        table["update_catalog"]("gan-mnist", table["catalog_rows"]("gan-mnist", result, real), root=tmp_path)
    for path in (tmp_path / "registry.yaml", tmp_path / "plugins" / "zoo-gan" / "catalog-entries.yaml"):
        models = yaml.safe_load(path.read_text())["models"]
        metrics = {m["name"]: m for m in models["gan-mnist"]["metrics"]}
        assert [m["name"] for m in models["gan-mnist"]["metrics"]].count("fid_mnist") == 1
        assert metrics["fid_mnist"]["value"] == 12.35 and metrics["fid_mnist"]["command"] == "zoo eval a"
        assert metrics["parzen_log_likelihood"]["stderr"] == 1.5 and metrics["parzen_log_likelihood"]["args"]["sigma"] == 0.17
    after = yaml.safe_load((tmp_path / "registry.yaml").read_text())["models"]
    assert {k: v for k, v in after.items() if k != "gan-mnist"} == {k: v for k, v in before.items() if k != "gan-mnist"}
    from zoo_core.catalog import CatalogFile

    CatalogFile.model_validate(yaml.safe_load((tmp_path / "registry.yaml").read_text()))
