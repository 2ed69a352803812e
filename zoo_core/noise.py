"""Random tensors drawn the way diffusers draws them, for every family's sampler.

A ``torch.Generator`` lives on one device. Users seed a CPU generator and expect it to work
whatever device the model is on, and to give the same numbers there; so the noise is drawn on the
generator's device and then moved to the model's. A list of generators gives one generator per
sample (row ``i`` comes from ``generator[i]``), so that one sample can be reproduced alone.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch

GeneratorArg = Union[None, torch.Generator, Sequence[torch.Generator]]


def randn_tensor(shape: Sequence[int], *, generator: GeneratorArg = None, device=None,
                 dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device`` (see the module's docstring for ``generator``)."""
    return _draw(torch.randn, shape, generator, device, dtype)


def rand_tensor(shape: Sequence[int], *, generator: GeneratorArg = None, device=None,
                dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Uniform ``[0, 1)`` noise of ``shape`` on ``device``, drawn like ``randn_tensor``."""
    return _draw(torch.rand, shape, generator, device, dtype)


def _draw(draw: Callable[..., torch.Tensor], shape, generator: GeneratorArg, device, dtype) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = dtype or torch.get_default_dtype()
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(
                f"got a list of {len(generator)} generators for {shape[0]} samples; pass one generator per "
                "sample, or a single generator"
            )
        rows = [_draw(draw, (1, *shape[1:]), g, device, dtype) for g in generator]
        return torch.cat(rows) if rows else torch.empty(shape, device=device, dtype=dtype)
    if generator is None:
        return draw(shape, device=device, dtype=dtype)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    # Draw where the generator lives (a CPU generator for a CUDA model), then move: a CPU seed gives
    # the same samples on every device.
    return draw(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
