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


def _target(spec: Any, path: str) -> Any:
    """``import_object(path)`` for a spec; a path that does not resolve is the plugin's bug, said as such."""
    try:
        return import_object(path)
    except (ImportError, AttributeError, ValueError) as error:
        from .errors import PluginBrokenError
        from .plugins import owner_of

        owner = owner_of(spec)
        plugin = f"the plugin {owner.name} {owner.version}" if owner else "the plugin that registered it"
        kind = type(spec).__name__.replace("Spec", "").lower()
        raise PluginBrokenError(
            f"{kind} {spec.name!r} names {path!r}, which cannot be imported ({type(error).__name__}: {error}). "
            f"This is a problem of {plugin}, not of your command: reinstall it or report it to its authors; "
            "`zoo plugins --check` lists every such problem."
        ) from error


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
        return _target(self, self.config)

    def model_class(self):
        return _target(self, self.model)


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
        loader = _target(self, self.loader)
        _check_options(loader, options, f"the {self.name} dataset", flag="--data-option")
        return loader(path, split=split, **options)


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
        return _target(self, self.function)(model, **kwargs)


def _check_options(function: Any, options: Mapping[str, Any], what: str, *, flag: str) -> None:
    """Refuse keyword options ``function`` does not take (unless it takes ``**kwargs``), naming the valid ones."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = sorted(n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   and n not in ("path", "split"))
    unknown = [name for name in options if name not in valid]
    if unknown:
        from .errors import UnknownOptionError, unknown_options

        raise UnknownOptionError(
            f"{what} takes no option {unknown_options(unknown, valid)}; its {flag} options: {', '.join(valid) or 'none'}"
        )


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


@dataclass(frozen=True)
class TrainerSpec:
    """A training engine for ``zoo train --trainer NAME`` and ``zoo.trainer(NAME)``.

    trainer: import path of a ``zoo_core.trainer.Trainer`` subclass; its constructor and ``fit``
             keep the contract in that class's docstring.
    """

    name: str
    trainer: str
    description: str = ""

    def trainer_class(self):
        return import_object(self.trainer)


@dataclass(frozen=True)
class ConverterSpec:
    """A foreign checkpoint format that the zoo converts into its own folder (config.json +
    model.safetensors + README.md), e.g. another library's layout of a model a family can express.

    detect:  import path of ``detect(folder) -> bool``: whether ``folder`` holds a checkpoint in this
             format (reads small config files only; never loads weights, never unpickles).
    convert: import path of ``convert(src_folder, out_folder, *, source: str, revision: str | None)``:
             writes the zoo folder ``out_folder``; ``source`` (a repo id or a path) and ``revision``
             go into the card. Refuses what it cannot express with a ZooError naming the field.
    files:   glob patterns of the files a Hub repo in this format needs (``zoo.load("org/repo")``
             downloads them besides the zoo's own files; pickled weights are never downloaded).
    """

    name: str
    detect: str
    convert: str
    description: str = ""
    files: tuple[str, ...] = ()

    def detects(self, folder) -> bool:
        return bool(import_object(self.detect)(folder))

    def run(self, src_folder, out_folder, *, source: str, revision: Optional[str] = None) -> None:
        import_object(self.convert)(src_folder, out_folder, source=source, revision=revision)
