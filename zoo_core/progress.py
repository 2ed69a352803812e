"""Progress bars for every long job (sampling, training, eval, render, convert), in one place.

Everything that loops for long wraps the loop in ``progress_bar``. Bars go to stderr, show the
time left, and are off when the user asked for quiet: ``--quiet`` on the command line
(``set_quiet(True)``), ``TQDM_DISABLE=1`` in the environment, or ``ZOO_QUIET=1``.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional

_quiet: Optional[bool] = None


def set_quiet(quiet: bool) -> None:
    """Turn every progress bar of this process off (``True``) or back to the environment's choice."""
    global _quiet
    _quiet = True if quiet else None


def is_quiet() -> bool:
    if _quiet:
        return True
    return any(os.environ.get(name, "").strip().lower() not in ("", "0", "false") for name in ("TQDM_DISABLE", "ZOO_QUIET"))


def progress_bar(iterable: Optional[Iterable[Any]] = None, *, total: Optional[int] = None, desc: Optional[str] = None,
                 unit: str = "it", leave: bool = False, disable: bool = False, **kwargs: Any):
    """A tqdm bar (``tqdm.auto``) that respects the quiet settings; ``disable=True`` also hides it."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                disable=disable or is_quiet(), **kwargs)
