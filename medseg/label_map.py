"""The map between a model's output classes and the label values it declares.

A model package declares a set of label values (``labels``: value → name), background 0 among them; its network
has one output class per declared value, class ``k`` standing for the ``k``-th smallest value. A package labelled
0..N-1 maps each class to itself (:attr:`LabelMap.identity`); one labelled 0, 1, 2, 4 (BraTS) maps class 3 to 4;
one labelled with FreeSurfer's values (0, 2, 17, 41, 53 …) maps its classes onto them. Everything that turns a class
index into a value a user sees (the written segmentation, sidecars, metrics) or a label file's values into classes
(training) goes through here; label images given as references always hold values, never class indices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_LABEL_VALUE", "LabelMap", "classes_note", "label_map", "values_dtype"]

MAX_LABEL_VALUE = 65535  # the largest value a written segmentation (uint16) holds
NOTE_WHOLE_UP_TO = 12  # labels whose every class classes_note shows; of more, the first NOTE_FIRST and the last
NOTE_FIRST = 8
_BLOCK = 1 << 18  # voxels turned into class indices at a time (their temporaries: about 6 MB)


def values_dtype(largest: int) -> np.dtype:
    """The unsigned type a segmentation whose largest label value is ``largest`` is written in: uint8 up to 255,
    uint16 beyond."""
    return np.dtype(np.uint8) if int(largest) <= 255 else np.dtype(np.uint16)


@dataclass(frozen=True)
class LabelMap:
    """Class index ↔ label value for one model: ``values[k]`` is class ``k``'s value (sorted, 0 first)."""

    values: tuple[int, ...]

    @property
    def n_classes(self) -> int:
        """How many output classes the network has: one per declared value."""
        return len(self.values)

    @property
    def identity(self) -> bool:
        """Whether each class index is its own value (labels 0..N-1, as every package before value maps)."""
        return self.values == tuple(range(len(self.values)))

    @property
    def largest(self) -> int:
        """The largest declared value."""
        return self.values[-1]

    @property
    def dtype(self) -> np.dtype:
        """The type a segmentation of this model is written in (:func:`values_dtype` of the largest value)."""
        return values_dtype(self.largest)

    def value_of(self, index: int) -> int:
        """The label value of class ``index``."""
        return self.values[int(index)]

    def class_of(self, value: int) -> int:
        """The class index of the declared label ``value`` (a ``KeyError`` for a value not declared)."""
        return self._classes()[int(value)]

    def classes_of(self, values: Iterable[int]) -> list[int]:
        """:meth:`class_of` of each of ``values``."""
        return [self.class_of(value) for value in values]

    def _classes(self) -> dict[int, int]:
        return {value: index for index, value in enumerate(self.values)}

    def to_values(self, classes) -> np.ndarray:
        """An array of class indices (numpy or torch) as label values, in :attr:`dtype`; for an identity map only
        the type changes (no copy where it is already that type)."""
        classes = classes.numpy() if hasattr(classes, "numpy") and not isinstance(classes, np.ndarray) else classes
        classes = np.asarray(classes)
        if self.identity:
            return classes.astype(self.dtype, copy=False)
        table = np.asarray(self.values, dtype=self.dtype)
        return table[classes]

    def to_classes(self, values) -> np.ndarray:
        """An array of declared label values as class indices (uint8 up to 256 classes, else uint16). A value that
        is not declared is a ``ValueError`` (callers check the files' values first and say which file holds it)."""
        values = np.asarray(values)
        dtype = np.uint8 if self.n_classes <= 256 else np.uint16
        if self.identity:
            if values.size and (values.min() < 0 or values.max() > self.largest):
                raise ValueError(f"label values outside {list(self.values)}")
            return values.astype(dtype, copy=False)
        lookup = np.full(self.largest + 1, self.n_classes, dtype=np.int64)
        lookup[list(self.values)] = np.arange(self.n_classes)
        order = "F" if values.flags.f_contiguous and not values.flags.c_contiguous else "C"  # a NIfTI's is F
        classes = np.empty(values.shape, dtype=dtype, order=order)
        # both flattened in that order: views (the values copied only where contiguous in neither order)
        flat, out = values.ravel(order=order), classes.ravel(order=order)
        # a block at a time: the whole-volume int64 copy and lookup took 16 bytes a voxel (1.2 GB for a 512×512×300
        # label file), where the classes take one
        for start in range(0, flat.size, _BLOCK):
            whole = flat[start:start + _BLOCK].astype(np.int64)
            if whole.min() < 0 or whole.max() > self.largest:
                raise ValueError(f"label values outside {list(self.values)}")
            found = lookup[whole]
            if found.max() >= self.n_classes:
                raise ValueError(f"label values outside {list(self.values)}")
            out[start:start + _BLOCK] = found
        return classes


def label_map(labels: Mapping | Iterable) -> LabelMap:
    """The map of a package's ``labels`` (value → name, keys as text or numbers), or of its declared values."""
    return LabelMap(tuple(sorted({int(value) for value in labels})))


def classes_note(labels: Mapping | Iterable) -> str:
    """What a model card and ``medseg models`` add after the labels of a model whose values skip, on one line: each
    output class and its label value, `` (output class → label: 0→0, 1→1, 2→2, 3→4)``; for more than
    :data:`NOTE_WHOLE_UP_TO` labels, the first :data:`NOTE_FIRST` and the last (``…, 43→2035``). Empty for labels
    0..N-1, each their own class."""
    mapped = label_map(labels)
    if mapped.identity:
        return ""
    pairs = [f"{index}→{value}" for index, value in enumerate(mapped.values)]
    if len(pairs) > NOTE_WHOLE_UP_TO:
        pairs = [*pairs[:NOTE_FIRST], "…", pairs[-1]]
    return f" (output class → label: {', '.join(pairs)})"
