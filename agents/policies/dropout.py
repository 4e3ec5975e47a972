"""Dropout with masks at a third of torch's cost or less: keep decisions from 16-bit integers.

``torch.nn.functional.dropout`` draws one Bernoulli per element (``bernoulli_``), which on a
CPU costs more than the matrix products of a small Transformer: a third of the pretraining
step of the README's recipe. Here one 64-bit random integer gives four 16-bit ones, and an
element is kept when its 16-bit integer ``u`` (uniform over ``-32768 .. 32767``) is at least
``k - 32768``, with ``k = round(p * 65536)``:

    P(drop) = k / 65536                      # |P(drop) - p| <= 2 ** -17
    out     = x * keep / (1 - k / 65536)     # E[out] = x exactly

The draws come from the generator given (else torch's default generator of the device), so a
seeded run repeats itself; they are other draws than ``F.dropout``'s, so a seeded run with
dropout differs from one with torch's dropout (in its numbers, not in its statistics).
Gradients flow through the multiply: kept elements get the output's gradient times the same
scale, dropped ones get zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LEVELS", "drop_levels", "dropout_multiplier", "fast_dropout"]

LEVELS = 1 << 16
"""Drop rates are multiples of ``1 / LEVELS``: the 16-bit integer's values."""


def drop_levels(p: float) -> int:
    """``k = round(p * LEVELS)``: the 16-bit values of ``LEVELS`` that drop an element.

    Args:
        p: drop rate in [0, 1).

    Returns:
        int in ``[0, LEVELS)``; ``P(drop) = k / LEVELS``.

    Raises:
        ValueError: for ``p`` outside [0, 1), or so close to 1 that nothing would be kept.

    >>> drop_levels(0.1), drop_levels(0.0), drop_levels(0.5)
    (6554, 0, 32768)
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p must be in [0, 1), got {p!r}")
    k = round(p * LEVELS)
    if k >= LEVELS:
        raise ValueError(f"dropout p={p!r} rounds to {k}/{LEVELS}: every element dropped")
    return k


def dropout_multiplier(shape: torch.Size | tuple[int, ...], p: float, *,
                       dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                       generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """The mask times its scale: 0 where an element drops, ``1 / (1 - k / LEVELS)`` where kept.

    Args:
        shape: the mask's shape.
        p: drop rate in [0, 1) (:func:`drop_levels`).
        dtype: floating dtype of the multiplier (the activations').
        device: its device.
        generator: the random source (on ``device``); ``None``: torch's default generator.

    Returns:
        tensor ``shape`` of ``dtype``, values in ``{0, LEVELS / (LEVELS - k)}``; the elements
        are independent, each 0 with probability ``k / LEVELS``.
    """
    k = drop_levels(p)
    n = math.prod(shape)
    # random_(min, None) draws all 64 bits; plain random_() on int64 leaves the sign bit 0,
    # which would keep every fourth element
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(torch.iinfo(torch.int64).min, None, generator=generator)
    bits = words.view(torch.int16)[:n].view(shape)
    multiplier = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(bits, k - LEVELS // 2, out=multiplier)
    return multiplier.mul_(LEVELS / (LEVELS - k))


def fast_dropout(x: Tensor, p: float, training: bool = True,
                 generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """Dropout as ``F.dropout(x, p, training)`` does it, with cheaper masks.

    Args:
        x: floating tensor of any shape.
        p: drop rate in [0, 1); the rate applied is ``drop_levels(p) / LEVELS``.
        training: ``False``: ``x`` itself (as ``F.dropout`` in eval mode).
        generator: the random source (on ``x``'s device); ``None``: torch's default generator.

    Returns:
        ``x`` itself when not ``training`` or when ``p`` rounds to no level (``p = 0``
        included); else ``x * dropout_multiplier(x.shape, p)``, a new tensor of ``x``'s shape
        and dtype.
    """
    if not training or drop_levels(p) == 0:
        return x
    return x * dropout_multiplier(x.shape, p, dtype=x.dtype, device=x.device,
                                  generator=generator)  # fmt: skip
