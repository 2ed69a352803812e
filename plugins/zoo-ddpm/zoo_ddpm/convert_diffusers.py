"""Conversion from the diffusers layout of a DDPM (``UNet2DModel`` + a scheduler config) to a zoo folder.

Ho et al.'s checkpoints are published in this layout (``google/ddpm-cifar10-32``, ``google/ddpm-ema-*``).
Two repository layouts are read: *flat* (the UNet's ``config.json`` and
``diffusion_pytorch_model.safetensors`` at the root, optionally ``scheduler_config.json``) and
*pipeline* (``model_index.json`` with ``unet/`` and ``scheduler/``). Only safetensors are read: nothing
is ever unpickled. A config the zoo UNet cannot express exactly is refused, naming the field.

The zoo UNet holds the same tensors under other names; two differ in shape: the attention's q, k, v
projections (three ``Linear``s in diffusers, ``to_q/to_k/to_v`` or the legacy ``query/key/value``) are
one 1x1 convolution ``qkv`` here, and the output projection (``to_out.0`` or ``proj_attn``) a 1x1
convolution ``out``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional

from zoo_core.errors import InvalidConfigError, WeightsError

WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLED_WEIGHTS = "diffusion_pytorch_model.bin"
#: What a Hub repo in this format needs (both layouts); pickled weights are never downloaded.
HUB_FILES = ("config.json", WEIGHTS, "scheduler_config.json", "model_index.json",
             "unet/config.json", f"unet/{WEIGHTS}", "scheduler/scheduler_config.json")

#: UNet2DModel's defaults, for keys an older config.json does not write.
UNET_DEFAULTS: dict[str, Any] = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D", "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0, "act_fn": "silu",
    "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None, "num_class_embeds": None,
}
#: DDPMScheduler's defaults (a repo without a scheduler config gets Ho et al.'s schedule).
SCHEDULER_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "variance_type": "fixed_small", "prediction_type": "epsilon", "thresholding": False,
    "rescale_betas_zero_snr": False,
}
_BETA_SCHEDULES = {"linear": "linear", "squaredcos_cap_v2": "cosine"}
_VARIANCES = {"fixed_small": "beta_tilde", "fixed_large": "beta"}

#: Published numbers of the authors' checkpoints, for the card (never measured by the zoo).
AUTHORS_NUMBERS = {
    "google/ddpm-cifar10-32": "Ho et al. (2020), Table 1: FID 3.17 and Inception Score 9.46 on CIFAR-10 (unconditional); "
                              "the authors' numbers, not re-measured by the zoo.",
    **{f"google/ddpm-ema-{name}-256": f"Ho et al. (2020) trained this {data} model at 256x256 (EMA weights); the "
                                      "zoo has measured no sample quality for it." for name, data in
       [("celebahq", "CelebA-HQ"), ("church", "LSUN Church"), ("bedroom", "LSUN Bedroom"), ("cat", "LSUN Cat")]},
}


class UnsupportedCheckpointError(InvalidConfigError):
    """A diffusers checkpoint that the zoo UNet cannot express exactly; the message names the field."""


# -- layout ------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidConfigError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(data, dict):
        raise InvalidConfigError(f"{path} must hold a JSON object")
    return data


def _is_unet_config(path: Path) -> bool:
    try:
        return json.loads(path.read_text("utf-8")).get("_class_name") == "UNet2DModel"
    except (OSError, ValueError, AttributeError):
        return False


def locate(folder: Path) -> tuple[Path, Optional[Path]]:
    """(the UNet's folder, the scheduler config or None) of a flat or pipeline layout."""
    folder = Path(folder)
    if (folder / "model_index.json").is_file() and _is_unet_config(folder / "unet" / "config.json"):
        scheduler = folder / "scheduler" / "scheduler_config.json"
        return folder / "unet", scheduler if scheduler.is_file() else None
    if _is_unet_config(folder / "config.json"):
        scheduler = folder / "scheduler_config.json"
        return folder, scheduler if scheduler.is_file() else None
    raise InvalidConfigError(f"{folder} is not a diffusers UNet2DModel folder (no config.json with _class_name "
                             "UNet2DModel at its root or in unet/)")


def detect(folder) -> bool:
    """A diffusers UNet2DModel (flat or pipeline layout) with safetensors weights."""
    try:
        unet, _ = locate(Path(folder))
    except InvalidConfigError:
        return False
    return (unet / WEIGHTS).is_file()


# -- configs -----------------------------------------------------------------------------------


def _refuse(source: str, field: str, value: Any, why: str) -> UnsupportedCheckpointError:
    return UnsupportedCheckpointError(f"{source}: the zoo UNet cannot express {field}={value!r} ({why}); "
                                      "it converts DDPM UNets of Ho et al.'s design only")


def zoo_config(unet: dict, scheduler: Optional[dict], *, source: str) -> dict[str, Any]:
    """The zoo DDPMConfig (as a dict) equivalent to a diffusers UNet2DModel config and scheduler config."""
    u = {**UNET_DEFAULTS, **{k: v for k, v in unet.items() if not k.startswith("_")}}
    required = {"center_input_sample": False, "time_embedding_type": "positional", "flip_sin_to_cos": False,
                "mid_block_type": "UNetMidBlock2D", "mid_block_scale_factor": 1, "downsample_type": "conv",
                "upsample_type": "conv", "act_fn": "silu", "attn_norm_num_groups": None,
                "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
                "num_class_embeds": None}
    for field, expected in required.items():
        if u.get(field) != expected:
            raise _refuse(source, field, u.get(field), f"only {expected!r} is supported")
    for field in sorted(set(u) - set(UNET_DEFAULTS) - {"num_train_timesteps"}):
        if u[field] is not None:
            raise _refuse(source, field, u[field], "a UNet2DModel option the converter does not know")
    if u["in_channels"] != u["out_channels"]:
        raise _refuse(source, "out_channels", u["out_channels"], f"must equal in_channels={u['in_channels']}")
    size = u["sample_size"]
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise _refuse(source, "sample_size", size, "the zoo UNet takes square images")
        size = size[0]
    if not isinstance(size, int):
        raise _refuse(source, "sample_size", size, "an image size is needed")
    widths = list(u["block_out_channels"])
    base = widths[0]
    if any(w % base for w in widths):
        raise _refuse(source, "block_out_channels", widths, "every width must be a multiple of the first")
    groups = u["norm_num_groups"]
    if not groups or any(w % groups for w in widths):
        raise _refuse(source, "norm_num_groups", groups, f"it must divide every width in block_out_channels {widths}")
    if u["time_embedding_dim"] not in (None, 4 * base):
        raise _refuse(source, "time_embedding_dim", u["time_embedding_dim"], f"the zoo uses 4 x {base}")
    if u["freq_shift"] not in (0, 1):
        raise _refuse(source, "freq_shift", u["freq_shift"], "0 or 1 only")
    if u["downsample_padding"] not in (0, 1):
        raise _refuse(source, "downsample_padding", u["downsample_padding"], "0 (TF 'SAME') or 1 only")
    down, up = list(u["down_block_types"]), list(u["up_block_types"])
    if len(down) != len(widths) or len(up) != len(widths):
        raise _refuse(source, "down_block_types", down, f"one block per entry of block_out_channels {widths}")
    attention_levels = []
    for level, kind in enumerate(down):
        if kind not in ("DownBlock2D", "AttnDownBlock2D"):
            raise _refuse(source, f"down_block_types[{level}]", kind, "DownBlock2D and AttnDownBlock2D only")
        expected_up = "AttnUpBlock2D" if kind == "AttnDownBlock2D" else "UpBlock2D"
        if up[len(up) - 1 - level] != expected_up:
            raise _refuse(source, f"up_block_types[{len(up) - 1 - level}]", up[len(up) - 1 - level],
                          f"the zoo UNet mirrors the down path: {expected_up} here")
        if kind == "AttnDownBlock2D":
            attention_levels.append(level)
    head_dim = u["attention_head_dim"]
    attention_widths = {widths[level] for level in attention_levels} | {widths[-1]}
    if head_dim is not None and attention_widths != {head_dim}:
        raise _refuse(source, "attention_head_dim", head_dim,
                      f"the zoo's attention has one head: null or the width of every attention layer {sorted(attention_widths)}")
    if size % 2 ** (len(widths) - 1):
        raise _refuse(source, "sample_size", size, f"must be divisible by 2^{len(widths) - 1}")

    s = {**SCHEDULER_DEFAULTS, **{k: v for k, v in (scheduler or {}).items() if not k.startswith("_")}}
    if s["beta_schedule"] not in _BETA_SCHEDULES:
        raise _refuse(source, "beta_schedule", s["beta_schedule"], f"one of {sorted(_BETA_SCHEDULES)}")
    for field in ("trained_betas",):
        if s[field] is not None:
            raise _refuse(source, field, "[...]", "the zoo computes the schedule from its config")
    if s["variance_type"] not in _VARIANCES:
        raise _refuse(source, "variance_type", s["variance_type"], f"one of {sorted(_VARIANCES)}")
    if s["prediction_type"] != "epsilon":
        raise _refuse(source, "prediction_type", s["prediction_type"], "the zoo's eps_theta predicts the noise")
    for field in ("thresholding", "rescale_betas_zero_snr"):
        if s[field]:
            raise _refuse(source, field, s[field], "not part of Ho et al.'s sampler")
    return {
        "image_channels": u["in_channels"], "image_size": size,
        "num_train_timesteps": s["num_train_timesteps"], "beta_schedule": _BETA_SCHEDULES[s["beta_schedule"]],
        "beta_start": s["beta_start"], "beta_end": s["beta_end"], "variance": _VARIANCES[s["variance_type"]],
        "base_channels": base, "channel_mults": [w // base for w in widths], "num_res_blocks": u["layers_per_block"],
        "attention_resolutions": [size // 2 ** level for level in attention_levels],
        "dropout": u["dropout"], "norm_groups": groups, "norm_eps": u["norm_eps"],
        "frequency_shift": u["freq_shift"], "same_padding_downsample": u["downsample_padding"] == 0,
    }


# -- weights -----------------------------------------------------------------------------------


def module_pairs(config) -> Iterator[tuple[str, str, str]]:
    """(zoo module, diffusers module, kind) for every layer; kind is 'resnet', 'attention' or 'layer'."""
    levels, blocks = len(config.channel_mults), config.num_res_blocks
    attention = [config.image_size // 2 ** level in config.attention_resolutions for level in range(levels)]
    yield "unet.time_mlp.0", "time_embedding.linear_1", "layer"
    yield "unet.time_mlp.2", "time_embedding.linear_2", "layer"
    yield "unet.conv_in", "conv_in", "layer"
    k = 0
    for level in range(levels):
        for j in range(blocks):
            yield f"unet.down.{k}.0", f"down_blocks.{level}.resnets.{j}", "resnet"
            if attention[level]:
                yield f"unet.down.{k}.1", f"down_blocks.{level}.attentions.{j}", "attention"
            k += 1
        if level != levels - 1:
            yield f"unet.down.{k}.0", f"down_blocks.{level}.downsamplers.0.conv", "layer"
            k += 1
    yield "unet.mid.0", "mid_block.resnets.0", "resnet"
    yield "unet.mid.1", "mid_block.attentions.0", "attention"
    yield "unet.mid.2", "mid_block.resnets.1", "resnet"
    k = 0
    for i, level in enumerate(reversed(range(levels))):
        for j in range(blocks + 1):
            yield f"unet.up.{k}.0", f"up_blocks.{i}.resnets.{j}", "resnet"
            if attention[level]:
                yield f"unet.up.{k}.1", f"up_blocks.{i}.attentions.{j}", "attention"
            k += 1
        if level != 0:
            yield f"unet.up.{k}.1", f"up_blocks.{i}.upsamplers.0.conv", "layer"
            k += 1
    yield "unet.norm_out", "conv_norm_out", "layer"
    yield "unet.conv_out", "conv_out", "layer"


_RESNET = {"norm1": "norm1", "conv1": "conv1", "time_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
           "skip": "conv_shortcut"}
_ATTENTION_NAMES = {  # current and legacy (diffusers < 0.14) names of the attention's layers
    "current": {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "out": "to_out.0"},
    "legacy": {"norm": "group_norm", "q": "query", "k": "key", "v": "value", "out": "proj_attn"},
}


def convert_state_dict(source_state: dict, zoo_shapes: dict, config, *, source: str) -> dict:
    """The zoo state dict from a diffusers UNet2DModel's; every source tensor must be used exactly once."""
    import torch

    out, used = {}, set()

    def take(key: str):
        if key not in source_state:
            raise WeightsError(f"{source}: the diffusers weights lack {key}, which this config needs")
        used.add(key)
        return source_state[key]

    for zoo_module, theirs, kind in module_pairs(config):
        for suffix in ("weight", "bias"):
            if kind == "layer":
                out[f"{zoo_module}.{suffix}"] = take(f"{theirs}.{suffix}")
            elif kind == "resnet":
                for mine, their_name in _RESNET.items():
                    if f"{zoo_module}.{mine}.{suffix}" in zoo_shapes:
                        out[f"{zoo_module}.{mine}.{suffix}"] = take(f"{theirs}.{their_name}.{suffix}")
            else:
                style = "current" if f"{theirs}.to_q.weight" in source_state else "legacy"
                names = _ATTENTION_NAMES[style]
                out[f"{zoo_module}.norm.{suffix}"] = take(f"{theirs}.{names['norm']}.{suffix}")
                qkv = torch.cat([take(f"{theirs}.{names[p]}.{suffix}") for p in "qkv"])
                proj = take(f"{theirs}.{names['out']}.{suffix}")
                if suffix == "weight":  # Linear (c_out, c_in) -> 1x1 conv (c_out, c_in, 1, 1)
                    qkv, proj = qkv.reshape(*qkv.shape[:2], 1, 1), proj.reshape(*proj.shape[:2], 1, 1)
                out[f"{zoo_module}.qkv.{suffix}"], out[f"{zoo_module}.out.{suffix}"] = qkv, proj
    unused = sorted(set(source_state) - used)
    if unused:
        raise UnsupportedCheckpointError(
            f"{source}: the diffusers weights hold tensors the zoo UNet has no place for: {', '.join(unused[:8])}"
            + (f" and {len(unused) - 8} more" if len(unused) > 8 else ""))
    return {key: value.contiguous() for key, value in out.items()}


def _read_weights(path: Path, *, source: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file ({error}); re-download it "
                           f"(`zoo pull` or delete it from the cache)") from None


# -- the converter -----------------------------------------------------------------------------


def load_diffusers(folder, *, source: Optional[str] = None):
    """A zoo DDPM (float32, CPU, eval mode) holding the weights of a diffusers UNet2DModel folder."""
    import zoo
    from zoo_core.generator import load_weights

    folder = Path(folder)
    source = source or str(folder)
    unet_dir, scheduler_path = locate(folder)
    weights = unet_dir / WEIGHTS
    if not weights.is_file():
        pickled = [p.name for p in unet_dir.glob("*.bin")]
        if pickled:
            raise WeightsError(f"{source} offers only pickled weights ({', '.join(pickled)}); the zoo loads "
                               "safetensors only, because unpickling runs arbitrary code. Nothing was loaded.")
        raise WeightsError(f"{source} has no {WEIGHTS} in {unet_dir}")
    config = zoo_config(_read_json(unet_dir / "config.json"),
                        _read_json(scheduler_path) if scheduler_path else None, source=source)
    model = zoo.build("ddpm", config)
    state = convert_state_dict(_read_weights(weights, source=source), model.state_dict(), model.config, source=source)
    load_weights(model, state, source=f"the weights converted from {source}")
    return model.eval()


def convert(src_folder, out_folder, *, source: str, revision: Optional[str] = None) -> None:
    """Write the zoo folder (config.json, model.safetensors, README.md) of a diffusers checkpoint."""
    model = load_diffusers(src_folder, source=source)
    # no preview image: sampling a converted model (35.7M to 114M parameters) costs minutes on a CPU
    out = model.save_pretrained(out_folder, sample_image=False)
    where = f"{source} at revision {revision}" if revision else source
    lines = ["", "## Source", "",
             f"Converted from the diffusers checkpoint {where} by zoo-ddpm's `diffusers` converter "
             "(`zoo convert`); the outputs match diffusers' UNet2DModel (tests/test_ddpm_diffusers.py)."]
    if source in AUTHORS_NUMBERS:
        lines += ["", AUTHORS_NUMBERS[source]]
    if revision is not None and source.count("/") == 1:
        lines += ["", f"Commit of the source: `{revision}`. A catalog entry that follows a branch (unpinned) may "
                      "get other weights when the branch moves; `zoo info NAME` says whether an entry is pinned."]
    card = out / "README.md"
    card.write_text(card.read_text("utf-8").rstrip("\n") + "\n" + "\n".join(lines) + "\n")
