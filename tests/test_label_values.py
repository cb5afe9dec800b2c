"""label_values gives np.unique's values and type, without copying a Fortran-ordered label volume into C order."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from medseg import label_values as label_values_module
from medseg.label_values import label_values


def _arrays():
    rng = np.random.default_rng(7)
    for dtype in ("uint8", "uint16", ">u2", "uint32", "uint64", "int8", "int16", "int64", "bool"):
        info = np.iinfo(dtype) if dtype != "bool" else None
        high = 2 if info is None else min(int(info.max), 70_000) + 1
        low = 0 if info is None else max(int(info.min), -300)
        base = rng.integers(low, high, size=(17, 13, 11)).astype(dtype)
        sparse = np.zeros((17, 13, 11), dtype)
        sparse[3, 4, 5] = 1
        yield from (base, sparse, np.zeros((0, 3, 4), dtype))
    floats = rng.integers(0, 5, size=(9, 8, 7)).astype(np.float32)
    floats[1, 2, 3], floats[4, 5, 6], floats[0, 0, 0] = np.nan, np.nan, -0.0
    yield floats
    yield floats.astype(np.float64) + 0.5
    yield np.array(5, np.uint8)  # a single value


@pytest.mark.parametrize("layout", ["C", "F", "strided", "transposed"])
def test_the_values_and_type_are_numpys_in_any_memory_layout(layout, monkeypatch):
    monkeypatch.setattr(label_values_module, "BLOCK", 100)  # several blocks in these small arrays
    for array in _arrays():
        if layout == "F":
            array = np.asfortranarray(array)
        elif layout == "strided" and array.ndim == 3:
            array = array[::2, 1:, ::3]
        elif layout == "transposed":
            array = array.T
        expected, found = np.unique(array), label_values(array)
        assert found.dtype == expected.dtype, (array.dtype, layout)
        np.testing.assert_array_equal(found, expected)


def test_a_fortran_ordered_uint8_volume_is_not_copied():
    # 16 MB of labels as a NIfTI reader gives them: np.unique allocates a C-ordered copy of the whole volume
    array = np.zeros((256, 256, 256), np.uint8, order="F")
    array[10:20, 30:60, 5:9], array[200, 3, 7] = 3, 250
    tracemalloc.start()
    try:
        found = label_values(array)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.tolist() == [0, 3, 250]
    assert peak < array.nbytes / 4
