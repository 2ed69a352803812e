"""The kit, used as a third-party author would: `zoo plugin new`, install, `pytest --zoo-family`,
`zoo ship`, `zoo list`, `zoo sample`, and a round trip through the loopback Hub."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from helpers import MNIST, pip_install, run_zoo


def _uninstall(dist: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", dist], check=True)


def _pytest(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          capture_output=True, text=True, cwd=cwd)


def test_zoo_plugin_new_writes_the_distribution_and_refuses_bad_names(tmp_path):
    made = run_zoo("plugin", "new", "tmpl-check", "--dir", str(tmp_path), check=True)
    folder = tmp_path / "zoo-tmpl-check"
    assert f"wrote {folder}" in made.stdout
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {
        "pyproject.toml", "README.md", "tests/test_conformance.py", "zoo_tmpl_check/__init__.py",
        "zoo_tmpl_check/plugin.py", "zoo_tmpl_check/model.py", "zoo_tmpl_check/catalog.yaml"}
    pyproject = (folder / "pyproject.toml").read_text()
    assert 'tmpl_check = "zoo_tmpl_check.plugin"' in pyproject and '"zoo-core>=0.1,<0.2"' in pyproject
    assert "class TmplCheckConfig(ZooConfig):" in (folder / "zoo_tmpl_check" / "model.py").read_text()
    again = run_zoo("plugin", "new", "tmpl-check", "--dir", str(tmp_path))
    assert again.returncode == 2 and "exists and is not empty" in again.stderr
    bad = run_zoo("plugin", "new", "Bad_Name", "--dir", str(tmp_path))
    assert bad.returncode == 2 and "lowercase letters" in bad.stderr
    taken = run_zoo("plugin", "new", "vae", "--dir", str(tmp_path))
    assert taken.returncode == 2 and "a family 'vae' is already installed" in taken.stderr


# The author's model: a mixture of Bernoulli images (Bishop 2006, 9.3.3) on binarized pixels.
GLYPH = '''
    """A mixture of K Bernoulli images: p(x) = sum_k pi_k prod_i mu_ki^x_i (1 - mu_ki)^(1 - x_i)."""

    import torch
    from torch import nn
    from pydantic import Field

    import zoo
    from zoo_core.config import ZooConfig


    class GlyphConfig(ZooConfig):
        """K Bernoulli images of size x size pixels."""

        components: int = Field(10, ge=1, description="K, the number of Bernoulli images in the mixture.")
        size: int = Field(28, ge=1, description="Image height and width in pixels.")


    class Glyph(zoo.Generator):
        family = "glyph"
        config_class = GlyphConfig
        sampler_options = {"component": "draw every sample from this mixture component"}

        def __init__(self, config):
            super().__init__(config)
            self.pi_logits = nn.Parameter(torch.zeros(config.components))
            self.mu_logits = nn.Parameter(0.1 * torch.randn(config.components, 1, config.size, config.size))

        def log_prob(self, x):
            """log p(x) of the binarized image (a probability; bits_per_dim with levels=0)."""
            x = (x > 0.5).float().unsqueeze(1)  # (n, 1, 1, H, W) against (K, 1, H, W)
            log_bernoulli = -nn.functional.binary_cross_entropy_with_logits(
                self.mu_logits.expand(x.shape[0], -1, -1, -1, -1), x.expand(-1, self.config.components, -1, -1, -1),
                reduction="none").flatten(2).sum(2)
            return torch.logsumexp(torch.log_softmax(self.pi_logits, 0) + log_bernoulli, dim=1)

        def training_step(self, batch, *, optimizer="main"):
            return {"loss": -self.log_prob(batch).mean() / batch[0].numel()}

        def sample(self, n, *, generator=None, **options):
            self.check_sampler_options(options)
            if "component" in options:
                k = torch.full((n,), int(options["component"]), dtype=torch.long)
            else:
                k = torch.multinomial(torch.softmax(self.pi_logits, 0), n, replacement=True, generator=generator)
            return torch.bernoulli(torch.sigmoid(self.mu_logits[k]), generator=generator)

        def example_batch(self, batch_size, *, generator=None):
            return torch.rand((batch_size, 1, self.config.size, self.config.size), generator=generator)
'''


def test_an_author_goes_from_the_template_to_the_hub(tmp_path, hub):
    run_zoo("plugin", "new", "glyph", "--dir", str(tmp_path), check=True)
    source = tmp_path / "zoo-glyph"
    model_py = source / "zoo_glyph" / "model.py"
    pip_install("-e", str(source))
    try:
        own = _pytest(cwd=source)  # as generated, it passes the suite from its own tests
        assert own.returncode == 0 and "9 passed" in own.stdout, own.stdout + own.stderr

        # a first draft with two classic mistakes: the global RNG instead of the generator, options ignored
        draft = textwrap.dedent(GLYPH).replace("generator=generator", "generator=None")
        draft = draft.replace("self.check_sampler_options(options)", "pass")
        model_py.write_text(draft)
        plugin_py = source / "zoo_glyph" / "plugin.py"
        plugin_py.write_text(plugin_py.read_text().replace('"zoo_glyph.model:GlyphConfig"', '"zoo_glyph.model:GlyphConfig"')
                             .replace('tiny_config={"size": 4}', 'tiny_config={"size": 4, "components": 3}'))
        failing = _pytest("--zoo-family", "glyph", cwd=tmp_path)
        assert failing.returncode == 1, failing.stdout
        assert "FAILED" in failing.stdout and "test_conformance_sample_shape_range_and_seed[glyph]" in failing.stdout
        assert "test_conformance_sampler_options_are_declared_and_unknown_ones_refused[glyph]" in failing.stdout
        model_py.write_text(textwrap.dedent(GLYPH))  # fixed

        run = tmp_path / "run"
        run_zoo("train", "glyph", "--data", str(MNIST), "--data-option", "limit=2000", "--steps", "60",
                "--batch-size", "100", "--lr", "0.05", "--out", str(run), env={"ZOO_QUIET": "1"}, check=True)
        shipped = run_zoo("ship", str(run), "--name", "glyph-mnist", "--package", "zoo_glyph", "--dtype", "float16",
                          "--metric", "bits_per_dim", "--option", "levels=0", "--option", "limit=1000",
                          "--data", str(MNIST), "--split", "test", "--license", "mit",
                          "--description", "Bernoulli mixture on binarized MNIST", check=True).stdout
        bpd = float(re.search(r"bits_per_dim=([0-9.]+)", shipped).group(1))
        assert 0.05 < bpd < 0.6, shipped  # an untrained mixture scores 1 bit/dim; MNIST pixels are mostly blank
        weights = source / "zoo_glyph" / "weights" / "glyph-mnist"
        assert sorted(p.name for p in weights.iterdir()) == [  # samples.png: the card's image
            "README.md", "SHA256SUMS", "config.json", "model.safetensors", "samples.png"]
        catalog = (source / "zoo_glyph" / "catalog.yaml").read_text()
        assert "glyph-mnist:" in catalog and "model.safetensors: " in catalog and "command: zoo eval glyph-mnist" in catalog
        assert "registry entry:\nglyph-mnist:\n  family: glyph\n  plugin: zoo-glyph" in shipped

        passing = _pytest("--zoo-family", "glyph", "-rA", cwd=tmp_path)  # from a folder without tests
        assert passing.returncode == 0 and "9 passed" in passing.stdout, passing.stdout + passing.stderr
        assert re.search(r"PASSED \S*::test_conformance_hub_round_trip\[glyph\]", passing.stdout)
        assert re.search(r"PASSED \S*::test_conformance_catalog_entries_are_valid\[glyph\]", passing.stdout)
        assert "glyph-mnist" in run_zoo("list", "glyph-*", check=True).stdout
        assert "catalog: glyph-mnist" in run_zoo("families", "glyph", check=True).stdout
        run_zoo("sample", "glyph-mnist", "-n", "4", "-o", str(tmp_path / "grid.png"), check=True)
        assert (tmp_path / "grid.png").stat().st_size > 0

        run_zoo("push", str(weights), "author/glyph-mnist", check=True)
        same = subprocess.run([sys.executable, "-c", (
            "import torch, zoo\n"
            "a, b = zoo.load('glyph-mnist', device='cpu'), zoo.load('author/glyph-mnist', device='cpu')\n"
            "print(all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items()), type(b).__name__)\n")],
            capture_output=True, text=True, check=True)
        assert same.stdout.split() == ["True", "Glyph"]
    finally:
        _uninstall("zoo-glyph")
