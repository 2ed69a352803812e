"""``zoo.load``: a catalog name, a Hub repo id or a local folder -> a ready Generator."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from .errors import (
    InvalidArgumentError,
    InvalidConfigError,
    PluginNotInstalledError,
    UnknownFamilyError,
    WeightsError,
)
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
    dtype, device = resolve_dtype(dtype), resolve_device(device)  # refused before anything is downloaded
    if not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
        raise InvalidArgumentError(
            "zoo.load takes a catalog name, an 'org/name' Hub repo id or a folder path, got a "
            f"{type(pretrained_model_name_or_path).__name__}"
        )
    text = os.fspath(pretrained_model_name_or_path)
    entry = None
    if isinstance(pretrained_model_name_or_path, os.PathLike) or os.path.isdir(text) or text.startswith((".", "/", "~")):
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; a local model is a folder with {CONFIG_NAME}")
        model = load_folder(converted_folder(folder), device=device, dtype=dtype)
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
            folder = hub_folder(repo_id, revision or at_revision, local_files_only=local_files_only, token=token,
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

    from .integrity import verify_checksums

    verify_checksums(folder)  # when save_pretrained wrote SHA256SUMS: a bit flip is refused, not loaded
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
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    if dtype is not None:
        model.to(dtype)
    model.to(device if device is not None else default_device())
    return model


#: The names ``dtype=`` accepts, as torch and as people write them.
DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "float": "float32", "f32": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float64": "float64", "fp64": "float64", "double": "float64", "f64": "float64",
}


def resolve_dtype(dtype: Any):
    """None, a floating ``torch.dtype``, or a name (``"fp16"``, ``"bfloat16"``, ``"torch.float32"``) -> a torch dtype."""
    if dtype is None:
        return None
    import torch

    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise InvalidArgumentError(f"dtype={dtype} is not a floating-point type; use one of {_dtype_hint()}")
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key in DTYPE_NAMES:
            return getattr(torch, DTYPE_NAMES[key])
    raise InvalidArgumentError(f"dtype={dtype!r} is not a dtype the zoo knows; use one of {_dtype_hint()}")


def _dtype_hint() -> str:
    return "torch.float32 / 'float32' / 'fp32', 'float16' / 'fp16' / 'half', 'bfloat16' / 'bf16', 'float64' / 'fp64'"


def resolve_device(device: Any):
    """None (the best available), a ``torch.device``, or a string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"``; refuses names torch does not know and devices this machine does not have."""
    if device is None:
        return None
    import torch

    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    try:
        parsed = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidArgumentError(
            f"device {device!r} is not a device name: use cpu, cuda, cuda:N or mps (or leave it out for the best "
            "available)"
        ) from None
    if parsed.type == "cpu" or parsed.type == "meta":
        return parsed
    backend = {"mps": getattr(torch.backends, "mps", None)}.get(parsed.type, getattr(torch, parsed.type, None))
    available = bool(backend is not None and getattr(backend, "is_available", lambda: False)())
    if available and parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise InvalidArgumentError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
        )
    if not available:
        build = "a CPU-only build of torch" if parsed.type == "cuda" and torch.version.cuda is None else "torch"
        raise InvalidArgumentError(
            f"device {device!r} is not available here ({build} {torch.__version__}, no {parsed.type} device found): "
            "use --device cpu, or leave it out for the best available"
        )
    return parsed


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
    if isinstance(weights, HubWeights) and weights.format is not None:
        return hub_folder(weights.repo, weights.revision, local_files_only=local_files_only, token=token,
                          converter=weights.format, sha256=weights.sha256, name=name, force_download=force_download)
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


# -- foreign checkpoint formats (converters registered by plugins) ------------------------------


def cache_dir() -> Path:
    """The zoo's own cache (converted checkpoints): ``ZOO_CACHE``, default ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo").expanduser()


def is_zoo_folder(folder: Path) -> bool:
    """A folder written by save_pretrained: its config.json names a family."""
    try:
        saved = json.loads((Path(folder) / CONFIG_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and "family" in saved and "config" in saved


def find_converter(folder: Path):
    """The first registered converter that recognizes ``folder``, or None."""
    from .plugins import converters

    for spec in converters().values():
        if spec.detects(Path(folder)):
            return spec
    return None


def converted_folder(folder: Path) -> Path:
    """``folder`` itself if it is a zoo folder; else its conversion (cached by the sha256 of its files)."""
    folder = Path(folder)
    if is_zoo_folder(folder):
        return folder
    spec = find_converter(folder)
    if spec is None:
        from .hub import UNSAFE_WEIGHT_SUFFIXES

        unsafe = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                        if p.name.lower().endswith(UNSAFE_WEIGHT_SUFFIXES))
        if unsafe and not any(folder.rglob("*.safetensors")):
            raise WeightsError(
                f"{folder} holds only pickled weights ({', '.join(unsafe)}); the zoo loads safetensors only, "
                "because unpickling runs arbitrary code. Ask the author for safetensors weights."
            )
        return folder  # load_folder explains what is missing
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + sha256_file(path).encode())
    return convert_cached(spec, folder, key=f"local-{digest.hexdigest()[:32]}", source=str(folder), revision=None)


def convert_cached(spec, src: Path, *, key: str, source: str, revision: Optional[str]) -> Path:
    """Run the converter once into ``cache_dir()/converted/<converter>/<key>`` and return that folder."""
    out = cache_dir() / "converted" / spec.name / key
    if is_zoo_folder(out) and (out / WEIGHTS_NAME).is_file():
        return out
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        spec.run(src, partial, source=source, revision=revision)
        (partial / "zoo-source.json").write_text(json.dumps(
            {"converter": spec.name, "source": source, "revision": revision}, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)  # atomic: a crash never leaves a half-converted folder behind
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def hub_folder(repo_id: str, revision: Optional[str], *, local_files_only=None, token=None,
               converter: Optional[str] = None, sha256: Optional[dict] = None, name: Optional[str] = None,
               force_download: bool = False) -> Path:
    """A Hub repo as a zoo folder: a zoo repo as downloaded, a foreign one converted (once per commit).

    ``converter`` names the format (a catalog entry's ``format``); None accepts any registered one.
    Offline, a repo converted before loads from the cache without any conversion or network.
    """
    from . import hub
    from .plugins import converters, get_converter

    specs = [get_converter(converter)] if converter else list(converters().values())
    files = tuple(pattern for spec in specs for pattern in spec.files)
    try:
        folder = hub.snapshot(repo_id, revision, local_files_only=local_files_only, token=token, extra_files=files,
                              accept=lambda f: any(spec.detects(f) for spec in specs), force_download=force_download)
    except hub.NotCachedError:
        if name is None:
            raise
        raise hub.NotCachedError(
            f"{name} ({repo_id}@{revision}) is not in the local cache and downloads are off (HF_HUB_OFFLINE=1 or "
            f"local_files_only=True): run `zoo pull {name}` once while online, then it loads offline") from None
    except hub.HubConnectionError as error:
        if name is None:
            raise
        raise hub.HubConnectionError(
            f"{name} needs {repo_id}@{revision} from the Hub at {hub.endpoint()}, which could not be reached, and it "
            f"is not in the local cache: run `zoo pull {name}` once while online") from error
    if converter is None and is_zoo_folder(folder) and (folder / WEIGHTS_NAME).is_file():
        return folder
    for file_name, expected in (sha256 or {}).items():
        actual = sha256_file(folder / file_name) if (folder / file_name).is_file() else "missing"
        if actual != expected:
            raise WeightsError(f"{name or repo_id}: {file_name} in {folder} has sha256 {actual}, but the catalog "
                               f"expects {expected}; the file is corrupt or the repo changed")
    spec = next((s for s in specs if s.detects(folder)), None)
    if spec is None:
        raise WeightsError(f"{repo_id}@{folder.name} is not in the {converter} format that the catalog names")
    commit = folder.name  # the snapshot folder is named by the commit sha
    return convert_cached(spec, folder, key=f"{repo_id.replace('/', '--')}--{commit}", source=repo_id, revision=commit)


def resolved_source(folder: Path) -> Optional[dict]:
    """For a converted folder: the converter, source and commit it was converted from."""
    try:
        return json.loads((Path(folder) / "zoo-source.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None


def convert(src: str | os.PathLike, out: str | os.PathLike, *, converter: Optional[str] = None,
            revision: Optional[str] = None, token: Optional[str] = None) -> tuple[Path, str, str, Optional[str]]:
    """``zoo convert``: write the zoo folder ``out`` from a foreign checkpoint (a local folder, or a Hub
    repo id ``org/name[@revision]``). Returns (out, converter name, source, commit or None)."""
    from . import hub
    from .plugins import converters, get_converter

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; choose a new folder")
    text = os.fspath(src)
    if os.path.isdir(text) or isinstance(src, os.PathLike) or text.startswith((".", "/", "~")):
        folder, source, commit = Path(text).expanduser(), text, None
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
    else:
        parsed = hub.parse_repo_id(text)
        if parsed is None:
            raise FileNotFoundError(f"{text} is neither a folder nor a Hub repo id (org/name[@revision])")
        repo_id, at_revision = parsed
        specs = [get_converter(converter)] if converter else list(converters().values())
        folder = hub.snapshot(repo_id, revision or at_revision, token=token,
                              extra_files=tuple(p for spec in specs for p in spec.files),
                              accept=lambda f: any(spec.detects(f) for spec in specs))
        source, commit = repo_id, folder.name
    spec = get_converter(converter) if converter else find_converter(folder)
    if spec is None or not spec.detects(folder):
        known = ", ".join(f"{name} ({c.description})" for name, c in converters().items()) or "none installed"
        raise WeightsError(f"no converter recognizes {text}; registered converters: {known}")
    spec.run(folder, out, source=source, revision=commit)
    return out, spec.name, source, commit
