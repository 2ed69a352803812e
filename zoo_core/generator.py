"""The Generator interface: what every model family implements.

A Generator is an ``nn.Module`` built from one frozen config. It samples, it knows how to compute
its training losses on a batch (the core Trainer does everything else), and it saves and loads
itself as ``config.json`` + ``model.safetensors`` + a ``README.md`` model card.
"""

from __future__ import annotations

import abc
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Optional

import torch
from torch import nn

from .config import TrainConfig, ZooConfig
from .errors import UnknownOptionError, WeightsError, unknown_options
from .integrity import atomic_save
from .noise import GeneratorArg

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


class Generator(nn.Module, abc.ABC):
    """Base class of every model in the zoo.

    Subclasses set ``family`` and ``config_class`` and implement ``sample``, ``training_step``
    and ``example_batch``. Image families return samples as float tensors ``(n, C, H, W)`` in
    ``[0, 1]``; families with other outputs document them on ``sample``.
    """

    family: ClassVar[str]
    config_class: ClassVar[type[ZooConfig]]
    #: Families whose samples are not images set this to False (the CLI then writes no grid).
    samples_are_images: ClassVar[bool] = True
    #: The keyword options ``sample`` takes besides ``n`` and ``generator``: name -> one line that
    #: says what it does. ``zoo sample --option`` and ``check_sampler_options`` refuse other names.
    sampler_options: ClassVar[Mapping[str, str]] = {}
    #: Where ``zoo.load`` / ``zoo.create_model`` got the model: the catalog name, repo id or folder
    #: it was given, and the catalog entry (None unless it is a catalog model).
    name_or_path: Optional[str] = None
    catalog_entry: Optional[Any] = None
    #: State-dict name prefixes that the Trainer's EMA (``train.ema_decay``) does not average: weights
    #: that neither sample nor export, such as a GAN's discriminator. Averaging them would cost a pass
    #: over them every step for nothing; their copies in the EMA follow the live weights instead, taken
    #: at every checkpoint and at the export.
    ema_exclude: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ZooConfig):
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}"
            )
        super().__init__()
        self.config = config

    # -- what a family implements -------------------------------------------------------------

    @abc.abstractmethod
    def sample(self, n: int, *, generator: GeneratorArg = None, **sampler_options: Any) -> torch.Tensor:
        """Draw ``n`` samples. Image families return ``(n, C, H, W)`` floats in ``[0, 1]``.

        ``generator``: a ``torch.Generator`` on any device, or a list of ``n`` (one per sample);
        draw noise with ``zoo_core.noise.randn_tensor``, which handles both. ``sampler_options``:
        only the names in ``sampler_options``; call ``check_sampler_options`` first."""

    @classmethod
    def check_sampler_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse option names that ``sampler_options`` does not declare, naming the valid ones and
        the closest match (``num_inference_step`` -> "did you mean num_inference_steps?").
        Families call it at the top of ``sample`` with the options they were given."""
        unknown = [name for name in options if name not in cls.sampler_options]
        if not unknown:
            return
        valid = sorted(cls.sampler_options)
        raise UnknownOptionError(
            f"{cls.family} samplers take no option {unknown_options(unknown, valid)}; valid options: "
            f"{', '.join(valid) or 'none'}"
        )

    @abc.abstractmethod
    def training_step(self, batch: Any, *, optimizer: str = "main") -> dict[str, torch.Tensor]:
        """Losses on one batch, as a dict of scalars. ``"loss"`` is what the optimizer minimizes.

        ``optimizer`` names the optimizer about to step (see ``configure_optimizers``); families
        with one optimizer ignore it. Never call ``.to(device)`` or ``backward`` here: the
        Trainer has placed the model and the batch and does the backward pass.
        """

    @abc.abstractmethod
    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> Any:
        """A random batch of the shape ``training_step`` expects (for tests and smoke runs)."""

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """The optimizers, by name, in the order they step on each batch. Default: one optimizer over all
        parameters, the one ``train.optimizer`` names (``zoo_core.optim.build_optimizer``)."""
        from .optim import build_optimizer

        return {"main": build_optimizer(self.parameters(), train)}

    def steps_per_optimizer(self) -> Mapping[str, int]:
        """How many times each named optimizer steps in one training step, each time on its own
        batch (e.g. ``{"discriminator": k}`` for k discriminator steps per generator step). Names
        left out step once. A training step then takes ``n`` batches, ``n`` the largest count; an
        optimizer that steps ``r`` times does so on the last ``r`` of them, and on each batch the
        optimizers run in ``configure_optimizers``' order. Default: every optimizer once, on one batch."""
        return {}

    def on_fit_start(self, batches: Iterable[Any]) -> None:
        """Called once before the first step of a fresh run (not on resume: the checkpoint holds the
        weights), in every process, under ``torch.no_grad()``, with an iterable of the training batches
        in order, for initializations that need the data (e.g. an output bias at the data's mean).
        Default: nothing."""

    def on_fit_end(self, batches: Iterable[Any]) -> None:
        """Called once after training, on the main process, with the (unwrapped) model and an
        iterable of training batches, before the model is exported. Default: nothing."""

    # -- conveniences -------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.get_default_dtype()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- persistence --------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """What goes into ``config.json``: the family, the versions, and the validated config."""
        from . import __version__
        from .plugins import family_distribution

        dist = family_distribution(self.family)
        return {
            "family": self.family,
            "plugin": dist.name if dist else None,
            "plugin_version": dist.version if dist else None,
            "zoo_version": __version__,
            "config": self.config.model_dump(mode="json"),
        }

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        name: Optional[str] = None,
        metrics: Optional[Iterable[Mapping[str, Any]]] = None,
        dataset: Optional[str] = None,
        license: Optional[str] = None,
        license_name: Optional[str] = None,
        license_link: Optional[str] = None,
        training: Optional[Mapping[str, Any]] = None,
        repo_id: Optional[str] = None,
        dtype: Optional[torch.dtype] = None,
        sample_image: bool = True,
        push_to_hub: bool = False,
        **push_kwargs: Any,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors``, a ``README.md`` model card and, for image
        families and renderers, ``samples.png`` (a small seeded grid, or one turntable frame) that
        the card shows.

        ``name`` is the card's title and ``model_name`` (default: ``repo_id``, else the model's
        catalog name, else the folder's name). ``metrics`` are dicts with ``name``, ``value`` and
        optionally ``dataset``, ``split``, ``command``, ``args`` (settings) and ``notes``; they go into
        the card's ``model-index``. ``license`` is a Hub license id (``other`` with ``license_name``
        and ``license_link``). ``training`` is what a training run knows (dataset, license,
        hyperparameters, final losses, hardware, time); the card shows it. ``dtype`` stores
        floating-point tensors in another precision (e.g. ``torch.float16`` to halve the file).
        ``push_to_hub=True`` then uploads the folder to ``repo_id`` (required then);
        ``push_kwargs`` go to ``push_to_hub`` (``private``, ``branch``, ``create_pr``, ``token``...).
        """
        from .card import hub_license

        hub_license(license, license_name, license_link)  # a license the Hub would refuse: fail before writing
        if push_to_hub:
            if not repo_id:
                raise ValueError("save_pretrained(..., push_to_hub=True) needs repo_id='org/name'")
            push_options = _push_options(push_kwargs)  # refuse unknown keywords before writing anything
        elif push_kwargs:
            raise TypeError(f"save_pretrained got unexpected keyword(s) {', '.join(sorted(push_kwargs))} "
                            "(Hub options such as private= or branch= go with push_to_hub=True)")
        directory = Path(save_directory)
        if name is None and not repo_id and self.catalog_entry is None:
            name = _folder_name(directory)  # the real folder's name, not the staging folder's
        self._save_files(directory, dtype=dtype, name=name, metrics=metrics, dataset=dataset, license=license,
                         license_name=license_name, license_link=license_link, training=training, repo_id=repo_id,
                         sample_image=sample_image)
        if push_to_hub:
            from .hub import push_folder

            push_folder(directory, repo_id, **push_options)  # after the save: a failed upload loses no file
        return directory

    @atomic_save  # staged, then moved into place with a SHA256SUMS file; disk full -> DiskFullError
    def _save_files(self, directory: Path, *, dtype: Optional[torch.dtype], **card: Any) -> Path:
        """The files of ``save_pretrained``; ``card`` are ``write_card``'s keywords."""
        from safetensors.torch import save_file

        directory = Path(directory)
        state = {}
        for key, tensor in self.state_dict().items():
            tensor = tensor.detach().to("cpu")
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[key] = tensor.contiguous().clone()
        config = self.config_dict()
        save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt", "family": self.family})
        _use_umask(directory / WEIGHTS_NAME)
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        self.write_card(directory, config=config, **card)
        return directory

    def write_card(
        self,
        directory: str | os.PathLike,
        *,
        config: Optional[Mapping[str, Any]] = None,
        name: Optional[str] = None,
        metrics: Optional[Iterable[Mapping[str, Any]]] = None,
        dataset: Optional[str] = None,
        license: Optional[str] = None,
        license_name: Optional[str] = None,
        license_link: Optional[str] = None,
        training: Optional[Mapping[str, Any]] = None,
        repo_id: Optional[str] = None,
        sample_image: bool = True,
    ) -> Path:
        """Write the ``README.md`` model card (and its ``samples.png``) into ``directory``, and
        nothing else (see ``save_pretrained`` for the arguments; ``config`` defaults to this
        model's ``config.json`` content). Returns the card's path."""
        from .card import SAMPLE_IMAGE, model_card
        from .renderer import Renderer

        directory = Path(directory)
        spec = self._family_spec()
        image = None
        if sample_image and self.write_preview(directory / SAMPLE_IMAGE, options=getattr(spec, "preview_options", {})):
            image = SAMPLE_IMAGE
        else:
            (directory / SAMPLE_IMAGE).unlink(missing_ok=True)  # never leave a stale image of other weights
        figures = self.write_card_figures(directory) if sample_image else []
        name = name or repo_id or (self.name_or_path if self.catalog_entry is not None else None) or _folder_name(directory)
        card = model_card(
            dict(config or self.config_dict()), name=name, metrics=list(metrics or []), dataset=dataset,
            license=license, license_name=license_name, license_link=license_link, repo_id=repo_id,
            samples_are_images=self.samples_are_images, papers=getattr(spec, "papers", ()),
            citation=getattr(spec, "citation", None), sample_image=image, figures=figures, training=training,
            load_name=self.name_or_path if self.catalog_entry is not None else None,
            renderer=isinstance(self, Renderer),
        )
        path = directory / CARD_NAME
        path.write_text(card)
        return path

    def write_card_figures(self, directory: Path) -> list[tuple[str, str]]:
        """More pictures for the card beside ``samples.png`` (e.g. a latent interpolation): write PNG files
        into ``directory`` and return ``(file name, caption)`` pairs, shown in that order. Called by
        ``write_card`` when it writes the sample image; keep it cheap. Default: none."""
        return []

    def write_preview(self, path: str | os.PathLike, *, options: Optional[Mapping[str, Any]] = None,
                      num: int = 8, seed: int = 0) -> Optional[Path]:
        """A cheap picture of what the model makes, for its card: ``num`` samples seeded with
        ``seed`` in one grid of 4 per row (image families, with the family's ``preview_options``),
        or one turntable frame at most 128 pixels wide (renderers). None for other families."""
        from .images import save_grid
        from .renderer import Renderer

        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                if isinstance(self, Renderer):
                    try:
                        cameras = self.turntable_cameras(1)
                        if cameras.width > 128:
                            cameras = self.turntable_cameras(1, width=128, height=round(128 * cameras.height / cameras.width))
                    except NotImplementedError:
                        return None
                    images = self.render(cameras)["rgb"].permute(0, 3, 1, 2)
                elif self.samples_are_images:
                    try:  # CPU generator: the same grid on every device
                        images = self.sample(num, generator=torch.Generator().manual_seed(seed), **dict(options or {}))
                    except (ValueError, TypeError):
                        if not options:
                            raise
                        # the cheap options do not fit this config (e.g. more steps than a tiny model has)
                        images = self.sample(num, generator=torch.Generator().manual_seed(seed))
                else:
                    return None
        finally:
            self.train(was_training)
        written = save_grid(images.float().cpu(), path, nrow=min(4, images.shape[0]))
        _use_umask(written)
        return written

    def _family_spec(self):
        from .errors import UnknownFamilyError
        from .plugins import get_family

        try:
            return get_family(self.family)
        except UnknownFamilyError:  # a family defined outside any plugin (tests, notebooks)
            return None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[str | os.PathLike] = None,
        force_download: bool = False,
        token: Optional[str | bool] = None,
        local_files_only: Optional[bool] = None,
        device: Any = None,
        dtype: Any = None,
        torch_dtype: Any = None,
    ) -> "Generator":
        """Load a catalog name, a Hub ``org/repo[@revision]`` or a local folder (see ``zoo.load``,
        which takes the same keywords as huggingface_hub: ``revision``, ``cache_dir``,
        ``force_download``, ``token``, ``local_files_only``; ``torch_dtype`` is ``dtype``)."""
        from .loading import load

        model = load(
            pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir, force_download=force_download,
            token=token, local_files_only=local_files_only, device=device, dtype=dtype, torch_dtype=torch_dtype,
        )
        if cls is not Generator and not isinstance(model, cls):
            raise TypeError(f"{pretrained_model_name_or_path!r} is a {type(model).__name__}, not a {cls.__name__}")
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        branch: Optional[str] = None,
        create_pr: bool = False,
        private: Optional[bool] = None,
        commit_message: Optional[str] = None,
        token: Optional[str] = None,
        tag: Optional[str] = None,
        revision: Optional[str] = None,
        metrics: Optional[Iterable[Mapping[str, Any]]] = None,
        dataset: Optional[str] = None,
        license: Optional[str] = None,
        license_name: Optional[str] = None,
        license_link: Optional[str] = None,
        training: Optional[Mapping[str, Any]] = None,
    ) -> str:
        """Save to a temporary folder and upload it to the Hub in one commit; returns its URL.

        The repo is created when missing (``private=None``: the Hub's default for the owner).
        ``branch`` is created from main when missing (``revision=`` is an alias); ``create_pr=True``
        opens a pull request instead of committing to the branch (the URL is the PR's); ``tag``
        tags the new commit. Uploaded: the model files and the card's ``samples.png``."""
        import tempfile

        from .hub import push_folder

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, metrics=metrics, dataset=dataset, license=license, license_name=license_name,
                                 license_link=license_link, training=training, repo_id=repo_id)
            return push_folder(tmp, repo_id, **_push_options(dict(
                branch=branch, revision=revision, create_pr=create_pr, private=private,
                commit_message=commit_message, token=token, tag=tag)))


def _push_options(options: dict[str, Any]) -> dict[str, Any]:
    """push_to_hub's keywords as push_folder takes them: ``revision=`` is an alias of ``branch=``."""
    options = dict(options)
    branch, revision = options.pop("branch", None), options.pop("revision", None)
    if branch and revision and branch != revision:
        raise ValueError(f"branch={branch!r} and revision={revision!r} disagree; revision= is an alias of branch=")
    allowed = {"create_pr", "private", "commit_message", "token", "tag"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"push_to_hub got unexpected keyword(s) {', '.join(unknown)}; valid: branch, revision, "
                        f"{', '.join(sorted(allowed))}")
    return {**options, "revision": branch or revision}


def _folder_name(directory: Path) -> str:
    """A saved folder's name, or its parent's when the folder is a run's generic ``model`` export."""
    resolved = directory.resolve()
    return resolved.parent.name if resolved.name in ("model", "final", "export") and resolved.parent.name else resolved.name


def _use_umask(path: Path) -> None:
    """Give a file the permissions the user's umask asks for (some writers create them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "weights") -> None:
    """Copy ``state`` into ``model``, refusing missing or unexpected keys and wrong shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        lines = [f"{source} do not match the model's config; refusing to load them."]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if wrong_shape:
            lines.append(f"  wrong shapes ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
        raise WeightsError("\n".join(lines))
    model.load_state_dict(state, strict=True)
