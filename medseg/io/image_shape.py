"""The shape medseg reads an image as: one 3D volume (a 2D image as one slice, a 4D or 5D image holding one volume
squeezed), or a multi-channel reading's volume of channels; and the error for an image that is not one volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["as_3d", "channel_shape", "shape_3d"]


def shape_3d(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape medseg reads an image as: a 2D image as one slice ``(X, Y, 1)``; trailing axes of size 1 beyond
    the third dropped (a 4D or 5D image holding one volume). Any other shape is returned as it is, for the
    caller to refuse."""
    shape = tuple(int(n) for n in shape)
    if len(shape) == 2:
        return (*shape, 1)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def channel_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a multi-channel reading takes an image as: :func:`shape_3d`'s, but a 4D image of several volumes
    ``(X, Y, Z, C)`` kept, and NIfTI's vector layout ``(X, Y, Z, 1, C)`` read as ``(X, Y, Z, C)``. Any other shape
    is returned as :func:`shape_3d` gives it, for the caller to refuse."""
    shape = shape_3d(shape)
    if len(shape) == 5 and shape[3] == 1:
        return (*shape[:3], shape[4])
    return shape


def _not_one_volume_text(path: Path | str, shape: tuple[int, ...]) -> str:
    """The error for an image of ``shape`` that is not one 3D volume (a 4D or 5D image holds several: time points,
    channels or echoes; a model of one image a case takes one channel, and a label file is one volume)."""
    text = f"{path}: expected a 3D volume, got shape {tuple(shape)}"
    volumes = int(np.prod(shape[3:])) if len(shape) > 3 else 0
    if volumes > 1:
        text += (f": {volumes} volumes (time points or channels); a label image, or the input of a model of one "
                 "image a case, is one volume per file (a model declaring that many modalities takes a 4D NIfTI's "
                 "volumes as its channels), so save the one meant as a file of its own")
    return text


def as_3d(array: np.ndarray) -> np.ndarray:
    """``array`` in the shape of :func:`shape_3d` (a view: only axes of size 1 are added or dropped)."""
    return array.reshape(shape_3d(array.shape))
