"""What plugins register. These are plain data objects and import nothing heavy.

A spec names its implementation by an import path ``"package.module:attribute"``; the object is
imported the first time it is needed, so that ``import zoo`` and ``zoo list`` stay fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"import path {path!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class FamilySpec:
    """A model family: a config class and the Generator that it builds.

    name:        the family's name, as written in registry.yaml and config.json ("ae", "ddpm").
    config:      import path of the family's ZooConfig subclass.
    model:       import path of the family's Generator subclass.
    description: one line for ``zoo plugins`` and ``zoo list``.
    dataset:     the dataset (by registered name) that ``zoo train FAMILY --data PATH`` reads.
    tiny_config: overrides that make a small, fast model; the conformance suite builds it.
    papers:      arXiv ids of the family's papers ("2006.11239"); cards tag them ``arxiv:ID``.
    citation:    BibTeX of the paper to cite, shown in every card of the family.
    preview_options: sampler options for the card's sample grid that keep it cheap
                 (e.g. ``{"num_inference_steps": 20}`` for a diffusion model).
    """

    name: str
    config: str
    model: str
    description: str = ""
    dataset: Optional[str] = None
    tiny_config: Mapping[str, Any] = field(default_factory=dict)
    papers: tuple[str, ...] = ()
    citation: Optional[str] = None
    preview_options: Mapping[str, Any] = field(default_factory=dict)

    def config_class(self):
        return import_object(self.config)

    def model_class(self):
        return import_object(self.model)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset reader.

    loader: import path of ``loader(path, split="train", **options) -> torch.utils.data.Dataset``.
            ``path`` may be None, meaning the usual download location; a missing file is an error
            that names it.
    hub_id: the dataset's id on the Hub (``ylecun/mnist``), which model cards list; None if it has none.
    pretty_name: a readable name for cards ("MNIST"); default: ``name``.
    """

    name: str
    loader: str
    description: str = ""
    hub_id: Optional[str] = None
    pretty_name: Optional[str] = None

    def load(self, path, split: str = "train", **options):
        return import_object(self.loader)(path, split=split, **options)


@dataclass(frozen=True)
class MetricSpec:
    """An evaluation metric.

    function: import path of ``function(model, *, data, out_dir, **options) -> dict[str, float]``;
              ``data`` is a dataset path or None, ``out_dir`` a folder for any images it writes.
    families: the families it applies to (None: all).
    """

    name: str
    function: str
    description: str = ""
    families: Optional[tuple[str, ...]] = None

    def compute(self, model, **kwargs) -> dict[str, float]:
        return import_object(self.function)(model, **kwargs)


@dataclass(frozen=True)
class CommandSpec:
    """A ``zoo`` subcommand.

    name:      the subcommand, ``zoo NAME``; the core's own commands keep their names.
    arguments: import path of ``arguments(parser)``, which adds the command's arguments (and any
               sub-subcommands) to its ``argparse.ArgumentParser``.
    run:       import path of ``run(args) -> int``, called with the parsed arguments; returns the
               exit status. Raise ``zoo_core.cli.UserError`` (or any ``zoo_core.errors.ZooError``)
               for a user's mistake: the CLI prints it as one line and exits with status 2.
    help:      one line for ``zoo --help``.
    """

    name: str
    arguments: str
    run: str
    help: str = ""
