"""The Generator interface: what every model family implements.

A Generator is an ``nn.Module`` built from one frozen config. It samples, it knows how to compute
its training losses on a batch (the core Trainer does everything else), and it saves and loads
itself as ``config.json`` + ``model.safetensors`` + a ``README.md`` model card.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Optional

import torch
from torch import nn

from .config import TrainConfig, ZooConfig
from .errors import UnknownOptionError, WeightsError
from .integrity import atomic_save

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

    def __init__(self, config: ZooConfig):
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}"
            )
        super().__init__()
        self.config = config

    # -- what a family implements -------------------------------------------------------------

    @abc.abstractmethod
    def sample(self, n: int, *, generator: Optional[torch.Generator] = None, **sampler_options) -> torch.Tensor:
        """Draw ``n`` samples. Image families return ``(n, C, H, W)`` floats in ``[0, 1]``."""

    @classmethod
    def check_sampler_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse option names that ``sampler_options`` does not declare, naming the valid ones and
        the closest match (``num_inference_step`` -> "did you mean num_inference_steps?").
        Families call it at the top of ``sample`` with the options they were given."""
        unknown = [name for name in options if name not in cls.sampler_options]
        if not unknown:
            return
        import difflib

        valid = sorted(cls.sampler_options)
        problems = []
        for name in unknown:
            close = difflib.get_close_matches(name, valid, n=1)
            problems.append(f"{name!r}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise UnknownOptionError(
            f"{cls.family} samplers take no option {', '.join(problems)}; valid options: "
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
        """The optimizers, by name, in the order they step on each batch. Default: one AdamW."""
        return {
            "main": torch.optim.AdamW(
                # foreach: one fused update over all tensors; the CPU default loops over them in Python
                self.parameters(), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay, foreach=True
            )
        }

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

    @atomic_save  # staged, then moved into place with a SHA256SUMS file; disk full -> DiskFullError
    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        metrics: Optional[Iterable[Mapping[str, Any]]] = None,
        dataset: Optional[str] = None,
        license: Optional[str] = None,
        repo_id: Optional[str] = None,
        dtype: Optional[torch.dtype] = None,
        training: Optional[Mapping[str, Any]] = None,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card.

        ``metrics`` are dicts with ``name``, ``value`` and optionally ``dataset``, ``split`` and
        ``command``; they go into the card's ``model-index``. ``dtype`` stores floating-point
        tensors in another precision (e.g. ``torch.float16`` to halve the file). ``training`` (from
        ``zoo train``: dataset, license, trainer, hyperparameters, final losses, hardware, time) adds
        a Training section to the card.
        """
        from safetensors.torch import save_file

        from .card import model_card

        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {}
        for key, tensor in self.state_dict().items():
            tensor = tensor.detach().to("cpu")
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[key] = tensor.contiguous().clone()
        config = self.config_dict()
        save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt", "family": self.family})
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        card = model_card(
            config, metrics=list(metrics or []), dataset=dataset, license=license, repo_id=repo_id,
            samples_are_images=self.samples_are_images, training=dict(training) if training else None,
        )
        (directory / CARD_NAME).write_text(card)
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> "Generator":
        """Load a catalog name, a Hub ``org/repo[@revision]`` or a local folder (see ``zoo.load``)."""
        from .loading import load

        model = load(name_or_path, **kwargs)
        if cls is not Generator and not isinstance(model, cls):
            raise TypeError(f"{name_or_path!r} is a {type(model).__name__}, not a {cls.__name__}")
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        revision: Optional[str] = None,
        commit_message: Optional[str] = None,
        token: Optional[str] = None,
        tag: Optional[str] = None,
        metrics: Optional[Iterable[Mapping[str, Any]]] = None,
        dataset: Optional[str] = None,
        license: Optional[str] = None,
    ) -> str:
        """Save to a temporary folder and upload it to the Hub in one commit (creating the repo, and
        the branch ``revision``, when missing; tagging the commit ``tag`` if given). Returns its URL."""
        import tempfile

        from .hub import push_folder

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, metrics=metrics, dataset=dataset, license=license, repo_id=repo_id)
            return push_folder(
                tmp, repo_id, private=private, revision=revision, commit_message=commit_message, token=token,
                tag=tag,
            )


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
