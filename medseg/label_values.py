"""The distinct values a label image holds, read without reordering its voxels.

``np.unique(array)`` first copies the array in C order; a NIfTI volume is read in Fortran order, and that copy
(a transposing one) took three quarters of ``np.unique``'s time: 1.5 of 2.0 s for 512×512×300 uint8 voxels, done
four times per ``medseg evaluate``. :func:`label_values` gives the same values, of the same type, from the voxels in
the order memory holds them: for 8- and 16-bit unsigned labels by marking each value seen, a slab at a time (no copy
of the volume); for others by ``np.unique`` of the array flattened in memory order (a view where the array is
contiguous either way).
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_values"]

BLOCK = 1 << 18  # voxels marked at a time (numpy indexes with a copy of them as 8-byte integers)


def label_values(array) -> np.ndarray:
    """``np.unique(array)``: the sorted distinct values of ``array``, of its type (NaN last, once, as ``np.unique``
    gives it), found without copying the array into C order."""
    array = np.asarray(array)
    if array.dtype.kind == "u" and array.dtype.itemsize <= 2 and array.size:
        seen = np.zeros(1 << (8 * array.dtype.itemsize), dtype=bool)
        flat = array.ravel(order="K")  # a view where the array is contiguous in C or Fortran order
        for start in range(0, flat.size, BLOCK):
            seen[flat[start:start + BLOCK]] = True
        return np.flatnonzero(seen).astype(array.dtype)
    return np.unique(array.ravel(order="K"))
