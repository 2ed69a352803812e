"""``zoo.load``: a catalog name, a Hub repo id or a local folder -> a ready Generator."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from .errors import InvalidConfigError, PluginNotInstalledError, UnknownFamilyError, WeightsError
from .generator import CONFIG_NAME, WEIGHTS_NAME

if TYPE_CHECKING:
    from .generator import Generator

_UNSAFE_WEIGHTS = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.ckpt")


def load(
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
    """Load a model, ready to sample: in eval mode, on ``device`` (default: the best available).

    ``pretrained_model_name_or_path`` is one of
      * a catalog name (``zoo list``), e.g. ``"ae-mnist"``: weights from the plugin's package or a
        pinned Hub commit, their sha256 checked;
      * a local folder written by ``save_pretrained`` (``config.json`` + ``model.safetensors``);
      * a Hub repo id ``"org/name"`` or ``"org/name@revision"`` (branch, tag or commit sha).

    The Hub keywords are huggingface_hub's: ``revision``, ``cache_dir`` (default: the HF cache),
    ``force_download`` (download again even if cached), ``token``, ``local_files_only``.
    ``torch_dtype`` is an alias of ``dtype`` (``torch.float16`` or ``"float16"``). The model
    remembers where it came from: ``model.name_or_path`` and ``model.catalog_entry`` (None
    unless it is a catalog model).
    """
    from .catalog import catalog

    if torch_dtype is not None:
        if dtype is not None and dtype != torch_dtype:
            raise ValueError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; torch_dtype is an alias of dtype")
        dtype = torch_dtype
    text = os.fspath(pretrained_model_name_or_path)
    entry = None
    if isinstance(pretrained_model_name_or_path, os.PathLike) or os.path.isdir(text) or text.startswith((".", "/", "~")):
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; a local model is a folder with {CONFIG_NAME}")
        model = load_folder(folder, device=device, dtype=dtype)
    elif text in catalog().entries or text in catalog().conflicts:
        entry = catalog().get(text)
        _require_family(entry.family, entry.plugin, what=f"the catalog model {text!r}")
        if revision is not None:
            raise ValueError(f"{text!r} is a catalog name pinned to one version; revision= is for Hub repo ids")
        with _hub_cache(cache_dir):
            folder = _catalog_folder(text, entry, local_files_only=local_files_only, token=token,
                                     force_download=force_download)
        model = load_folder(folder, device=device, dtype=dtype)
        _check_catalog_config(text, entry, model)
    else:
        from . import hub

        parsed = hub.parse_repo_id(text)
        if parsed is None:
            catalog().get(text)  # raises UnknownModelError with the closest names
            raise AssertionError("unreachable")
        repo_id, at_revision = parsed
        if at_revision and revision and at_revision != revision:
            raise ValueError(f"two revisions given for {repo_id}: @{at_revision} and revision={revision!r}")
        with _hub_cache(cache_dir):
            folder = hub.snapshot(repo_id, revision or at_revision, local_files_only=local_files_only, token=token,
                                  force_download=force_download)
        model = load_folder(folder, device=device, dtype=dtype)
    model.name_or_path = text
    model.catalog_entry = entry
    return model


@contextlib.contextmanager
def _hub_cache(cache_dir: Optional[str | os.PathLike]) -> Iterator[None]:
    """Use ``cache_dir`` as the Hub cache during one call (the zoo's Hub code reads HF_HUB_CACHE at
    each call; the variable is restored afterwards)."""
    if cache_dir is None:
        yield
        return
    old = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(Path(cache_dir).expanduser())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = old


def create_model(model_name: str, pretrained: bool = False, *, device: Any = None, dtype: Any = None,
                 **overrides: Any) -> "Generator":
    """timm's ``create_model``: a catalog name or a family, trained or not.

    * ``create_model("ae-mnist", pretrained=True)``: the catalog model with its weights (``zoo.load``);
    * ``create_model("ae-mnist")``: the same architecture (the entry's config), untrained;
    * ``create_model("vae", latent_dim=8)``: a family's default config with overrides, untrained.

    ``overrides`` change config fields. With ``pretrained=True`` the weights must still fit the
    changed config (e.g. a sampler setting); a changed shape is refused, naming the keys.
    """
    from .catalog import catalog
    from .plugins import families

    cat = catalog()
    if model_name in cat.entries or model_name in cat.conflicts:
        entry = cat.get(model_name)
        if pretrained:
            model = load(model_name, device=device, dtype=dtype)
            if not overrides:
                return model
            fresh = build(entry.family, {**model.config.model_dump(mode="json"), **overrides})
            from .generator import load_weights

            load_weights(fresh, model.state_dict(), source=f"the weights of {model_name}")
            model = fresh.to(device=model.device).eval().requires_grad_(False)
            model.name_or_path, model.catalog_entry = model_name, entry
            return model
        _require_family(entry.family, entry.plugin, what=f"the catalog model {model_name!r}")
        model = build(entry.family, {**entry.config, **overrides})
        model.name_or_path, model.catalog_entry = model_name, entry
    elif model_name in families():
        if pretrained:
            raise ValueError(
                f"{model_name!r} is a family, which has no pretrained weights; pass pretrained=False, or a catalog "
                f"name ({', '.join(n for n in sorted(cat.entries) if cat.entries[n].family == model_name) or 'none'})"
            )
        model = build(model_name, **overrides)
        model.name_or_path = model_name
    else:
        cat.get(model_name)  # UnknownModelError with the closest names
        raise AssertionError("unreachable")
    if dtype is not None:
        import torch

        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    return model.to(device) if device is not None else model


def build(family: str, config: Any = None, **overrides):
    """A fresh (untrained) model of ``family`` from a config object, a dict, or keyword overrides."""
    from .plugins import get_family

    spec = get_family(family)
    config_class = spec.config_class()
    if isinstance(config, config_class):
        if overrides:
            config = config.model_copy(update=overrides)
            config = config_class.model_validate(config.model_dump())
    else:
        config = validate_config(config_class, {**(config or {}), **overrides}, where=f"the {family} config")
    return spec.model_class()(config)


def validate_config(config_class, data: dict, *, where: str):
    from pydantic import ValidationError

    try:
        return config_class.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidConfigError(f"invalid config in {where}: {problems}") from None


def load_folder(folder: Path, *, device: Any = None, dtype: Any = None):
    """Build the model described by ``folder/config.json`` and load ``folder/model.safetensors``."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .generator import load_weights

    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    weights_path = folder / WEIGHTS_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}; is it a folder written by save_pretrained?")
    try:
        saved = json.loads(config_path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidConfigError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(saved, dict) or "family" not in saved or "config" not in saved:
        raise InvalidConfigError(f"{config_path} must hold 'family' and 'config' (written by save_pretrained)")
    if not weights_path.is_file():
        unsafe = [name for name in _UNSAFE_WEIGHTS if (folder / name).exists()]
        if unsafe:
            raise WeightsError(
                f"{folder} holds only pickled weights ({', '.join(unsafe)}); the zoo loads safetensors only, "
                "because unpickling runs arbitrary code. Convert them with safetensors.torch.save_file."
            )
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}")

    family = saved["family"]
    _require_family(family, saved.get("plugin"), what=str(config_path))
    from .plugins import get_family

    spec = get_family(family)
    config = validate_config(spec.config_class(), saved["config"], where=str(config_path))
    model = spec.model_class()(config)
    try:
        state = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{weights_path} is not a readable safetensors file ({error}); re-download or re-save it") from None
    load_weights(model, state, source=f"the weights in {weights_path}")
    model.eval()
    model.requires_grad_(False)
    if dtype is not None:
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    model.to(device if device is not None else default_device())
    return model


def default_device():
    """The best device Accelerate sees: cuda, then mps (and other accelerators), then cpu."""
    from accelerate import PartialState

    return PartialState().default_device


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require_family(family: str, plugin: Optional[str], *, what: str) -> None:
    from .plugins import get_family

    try:
        get_family(family)
    except UnknownFamilyError:
        if plugin:
            raise PluginNotInstalledError(
                f"{what} needs the {family!r} family from the plugin {plugin}, which is not installed "
                f"(or failed to load: see 'zoo plugins'). Install it with: pip install {plugin}"
            ) from None
        raise


def _catalog_folder(name: str, entry, *, local_files_only, token, force_download: bool = False) -> Path:
    from importlib import resources

    from .catalog import HubWeights

    weights = entry.weights
    if isinstance(weights, HubWeights):
        from . import hub

        return hub.download_pinned(
            weights.repo, weights.revision, weights.sha256, local_files_only=local_files_only, token=token,
            force_download=force_download,
        )
    folder = Path(str(resources.files(weights.package).joinpath(weights.path)))
    for file_name, expected in weights.sha256.items():
        path = folder / file_name
        if not path.is_file():
            raise WeightsError(f"{name}: {path} is missing from the installed {weights.package}; reinstall {entry.plugin}")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsError(
                f"{name}: {path} has sha256 {actual}, but the catalog expects {expected}; the file is "
                f"corrupt or was changed. Reinstall {entry.plugin}."
            )
    return folder


def _check_catalog_config(name: str, entry, model) -> None:
    saved = model.config.model_dump(mode="json")
    for key, value in entry.config.items():
        if saved.get(key) != value:
            raise WeightsError(
                f"{name}: the catalog says {key}={value!r} but the weights' config.json has {saved.get(key)!r}; "
                "the catalog and the shipped weights disagree"
            )
