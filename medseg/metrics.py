"""Per-case, per-label overlap, surface distance and volume metrics.

Empty-mask policy (applied everywhere, and stated in reports; see :data:`EMPTY_MASK_POLICY`):

* reference and prediction both empty: Dice, HD95 and ASSD are NaN (undefined, written as JSON ``null``),
  status ``both_empty``;
* reference empty, prediction not: Dice 0, distances NaN, status ``false_positive``;
* prediction empty, reference not: Dice 0, distances NaN, status ``empty_prediction``;
* otherwise Dice (2·|P∩R| / (|P| + |R|) from exact voxel counts), HD95 and ASSD (MONAI's surface distances),
  status ``ok``.

Surfaces and distances (see :data:`SURFACE_DEFINITION`): a mask's surface is its foreground voxels with a
6-neighbour outside it (voxels on the volume's faces count as surface; an image one voxel thick along one axis
is scored in 2D, its surface being the contour with a 4-neighbour outside it); distances are between voxel
centres in mm, with the voxel size along each array axis taken from the affine's column norms (right for
oblique grids); on a sheared grid (a tilted CT gantry) they are measured between the voxel centres' world
positions instead, since per-axis voxel sizes would misstate them. HD95 is the larger
of the two directed 95th percentiles; ASSD is the mean of both directions' distances pooled. Volumes are
in ml: voxel count × the voxel's volume (:meth:`Volume.voxel_volume_ml`: the product of the voxel sizes as the
header holds them on a grid whose axes are at right angles, |det(affine)| on a sheared one) / 1000.

Prediction and reference must share a grid: same shape, and no voxel centre placed further apart by the two
affines than :func:`grid_tolerance_mm` (``GRID_TOLERANCE_MM``, or ``GRID_TOLERANCE_VOXELS`` of the smallest voxel
size when that is less: on a 5 µm grid 0.01 mm is two voxels); otherwise :class:`~medseg.errors.GeometryError`
and nothing is scored. A reference that holds the same voxel centres in another order (axes swapped or reversed, as
between two DICOM converters) is first re-indexed onto the prediction's grid, which moves no voxel and
interpolates nothing (:func:`reorder_onto_grid`); the record says so. A reference that is a box of the prediction's
voxel lattice (3D Slicer saves a segmentation cropped to its segments) is zero-padded onto it, cropped to the grid
where it reaches past it with label 0 in every voxel out there (refused where any is labelled)
(:func:`place_onto_grid`, :func:`sub_box_placement`); the record gives the box (``reference_sub_box``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping

import numpy as np

from medseg.caller_warnings import NOT_SCORED, warn
from medseg.errors import InputError
from medseg.grid_match import (  # the grid matching's public names, importable from here as before
    GRID_TOLERANCE_MM,
    GRID_TOLERANCE_VOXELS,
    box_on_grid,
    check_header_shape,
    check_same_grid,
    grid_displacement_mm,
    grid_offset_mm,
    grid_reordering,
    grid_tolerance_mm,
    on_tilt_grid,
    place_onto_grid,
    reorder_onto_grid,
    sub_box_placement,
)
from medseg.io.files import absolute_path, type_text
from medseg.record_time import record_time
from medseg.surface_metrics import _surface_metrics
from medseg.volume import Volume, bottom_row_text, header_precision, singular_affine_text, volume_ml

__all__ = [
    "EMPTY_MASK_POLICY",
    "GRID_TOLERANCE_MM",
    "GRID_TOLERANCE_VOXELS",
    "METRICS_SCHEMA",
    "METRIC_KEYS",
    "SURFACE_DEFINITION",
    "both_empty_entry",
    "box_on_grid",
    "check_header_shape",
    "check_same_grid",
    "checked_case_id",
    "evaluate_volumes",
    "grid_displacement_mm",
    "grid_offset_mm",
    "grid_reordering",
    "grid_tolerance_mm",
    "jsonable",
    "metrics_json",
    "metrics_rows",
    "on_tilt_grid",
    "place_onto_grid",
    "reorder_onto_grid",
    "sub_box_placement",
]

log = logging.getLogger(__name__)

METRICS_SCHEMA = "medseg-metrics/1"
METRIC_KEYS = ("dice", "hd95_mm", "assd_mm", "pred_volume_ml", "ref_volume_ml", "false_positive_ml",
               "false_negative_ml")

EMPTY_MASK_POLICY = (
    "Both prediction and reference empty: Dice, HD95 and ASSD undefined (null), status both_empty, left out of "
    "their statistics (the volumes, 0 ml, count in the volume statistics). Reference empty but prediction not: "
    "Dice 0, distances undefined, status false_positive. Prediction empty but reference not: Dice 0, distances "
    "undefined, status empty_prediction."
)
SURFACE_DEFINITION = (
    "Surface: foreground voxels with a 6-neighbour outside the mask (voxels on the volume's faces count; an image "
    "one voxel thick along an axis is scored in 2D: its contour, pixels with a 4-neighbour outside). "
    "Distances between voxel centres in mm (voxel size from the affine's column norms; on a sheared grid, between "
    "the voxel centres' world positions). HD95: the larger of the "
    "two directed 95th percentiles of surface distances. ASSD: mean of the surface distances of both directions "
    "pooled. Volumes in ml."
)

TILT_GRID_NOTE = ("on the unsheared grid ITK-based tools (ITK-SNAP, 3D Slicer) read a gantry-tilted series on, "
                  "slices stacked along their normal: the same voxels as the segmentation's, which keeps the tilt's "
                  "exact placement, and scored on it")


def _bounding_box(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    """Slices of the foreground's bounding box grown by ``margin`` voxels (clipped to the array)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(i for i in range(mask.ndim) if i != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def sub_box_note(box: dict) -> str:
    """What a record says of a reference placed from a box of the prediction's grid (``reference_sub_box``)."""
    shape = "×".join(str(n) for n in box["shape"])
    offset = ", ".join(str(n) for n in box["offset_voxels"])
    from medseg.numbers import counted  # (evaluate_volumes' counts are a local of that name)

    outside = box.get("voxels_outside_grid")
    cropped = (f"; its {counted(outside, 'voxel')} outside the grid, all label 0, cropped off"
               if isinstance(outside, int) and outside else "")
    return (f"a box of {shape} voxels of the prediction's grid (as 3D Slicer crops a segmentation), its first voxel "
            f"at voxel ({offset}){cropped}; zero-padded onto the grid (label 0 outside the box), nothing resampled")


def both_empty_entry(name: str) -> dict:
    """A label's metrics where neither the prediction nor the reference holds a voxel of it (status ``both_empty``:
    Dice and distances NaN, every volume 0), as :func:`evaluate_volumes` records it."""
    nan = float("nan")
    return {"name": name, "dice": nan, "hd95_mm": nan, "assd_mm": nan, "status": "both_empty",
            "pred_volume_ml": 0.0, "ref_volume_ml": 0.0, "false_positive_ml": 0.0, "false_negative_ml": 0.0}


def checked_case_id(case_id: object) -> str | None:
    """``case_id`` as a metrics record holds it: text (a ``str`` subclass, as numpy's ``str_``, as a plain ``str``), or
    None for a record of no case (``null``). Any other type is an :class:`~medseg.errors.InputError` naming the value
    and its type: 7 was written as the number 7, which the report takes for no case id, and a ``Path`` or ``bytes``
    failed only as the record was written, as no JSON."""
    if case_id is None or type(case_id) is str:
        return case_id
    if isinstance(case_id, str):
        return str.__str__(case_id)
    raise InputError(f"case_id {case_id!r} ({type(case_id).__name__}): a case id is text; give a str, or None for "
                     "none")


def evaluate_volumes(pred: Volume, ref: Volume, labels: dict[int, str], case_id: str | None = None) -> dict:
    """Metrics of ``pred`` against ``ref`` for every non-background label in ``labels``.

    ``labels`` maps label values to names; keys may be text, as a sidecar's or ``model.json``'s JSON gives them
    (``{"1": "anterior"}``). Returns a ``medseg-metrics/1`` record; undefined values are ``float('nan')`` (use
    :func:`metrics_json` to write it, which turns them into ``null``). Raises :class:`~medseg.errors.InputError`
    for what is not a ``Volume`` of whole label values from 0 with a 4×4 affine, or for ``labels`` that are not such
    a mapping, and :class:`~medseg.errors.GeometryError` for two grids that do not match. A reference of another
    shape on the prediction's voxel lattice (a box of it, as 3D Slicer crops a segmentation, or larger with only
    label 0 beyond it) is not refused: it is zero-padded or cropped onto the prediction's grid, and the record says
    so (``reference_sub_box`` and ``notes``); two label files of different cases with identity affines are such a
    pair. ``case_id`` is text or None (:func:`checked_case_id`).
    """
    case_id = checked_case_id(case_id)
    labels = _label_names(labels)
    pred, ref = _label_volume(pred, "prediction"), _label_volume(ref, "reference")
    # the reference is named first, as `medseg infer --reference` names it; arrays of no file by their role
    named_pred, named_ref = (volume if volume.source is not None else dataclasses.replace(volume, source=f"the {role}")
                             for volume, role in ((pred, "prediction"), (ref, "reference")))
    ref = dataclasses.replace(place_onto_grid(named_ref, named_pred), source=ref.source)
    check_same_grid(named_pred, ref if ref.source is not None else dataclasses.replace(ref, source="the reference"))
    from medseg.io.nifti import is_sheared

    spacing = pred.spacing_mm
    sheared = pred.affine[:3, :3] if is_sheared(pred.affine) else None
    voxel_ml = pred.voxel_volume_ml
    pred_array, ref_array = np.asarray(pred.array), np.asarray(ref.array)
    counted = _LabelCounts(pred_array, ref_array, [value for value in labels if value != 0])
    confused = _false_positives_in_labels(pred_array, ref_array, set(labels) - {0})
    shared = _shared_faces(ref_array, {_pair(a, b) for a, found in confused.items() for b in found})
    results: dict[str, dict] = {}
    for value, name in sorted(labels.items()):
        if value == 0:
            continue
        n_p, n_r, tp = counted.counts(value)
        if n_p == 0 and n_r == 0:
            results[str(value)] = both_empty_entry(name)
            continue
        entry: dict[str, object] = {"name": name}
        nan = float("nan")
        if n_r == 0:
            entry.update(dice=0.0, hd95_mm=nan, assd_mm=nan, status="false_positive")
        elif n_p == 0:
            entry.update(dice=0.0, hd95_mm=nan, assd_mm=nan, status="empty_prediction")
        else:
            # the same voxels (every one of either mask in both): each surface voxel is on the other's surface, every
            # distance 0, as MONAI's would give them, without finding the edges or importing MONAI
            hd95, assd = (0.0, 0.0) if n_p == n_r == tp else _surface_metrics(
                pred_array, ref_array, value, counted.box(value), spacing, sheared)
            # Dice from the exact voxel counts (float32 masks, as in MONAI's compute_dice, put 14/20 below 0.7)
            entry.update(dice=2.0 * tp / (n_p + n_r), hd95_mm=hd95, assd_mm=assd, status="ok")
        entry.update(
            pred_volume_ml=volume_ml(n_p, voxel_ml),
            ref_volume_ml=volume_ml(n_r, voxel_ml),
            false_positive_ml=volume_ml(n_p - tp, voxel_ml),
            false_negative_ml=volume_ml(n_r - tp, voxel_ml),
        )
        if confused.get(value):  # its false positives where the reference has another label: a swap, a leak
            entry["false_positive_in_ml"] = {str(other): volume_ml(n, voxel_ml) for other, n in sorted(
                confused[value].items(), key=lambda item: (-item[1], item[0]))}
            # how deep past the boundary the two labels share in the reference, in voxel layers: a boundary placed a
            # voxel or two off (1.8-3.1 in the hippocampus cases flagged 10-20 %) from a leak; None, none shared
            entry["false_positive_in_layers"] = {
                str(other): (round(n / shared[_pair(value, other)], 2) if shared[_pair(value, other)] else None)
                for other, n in sorted(confused[value].items(), key=lambda item: (-item[1], item[0]))}
        results[str(value)] = entry
    record: dict[str, object] = {
        "schema": METRICS_SCHEMA,
        "case_id": case_id,
        "prediction": str(absolute_path(pred.source)) if pred.source is not None else None,
        # the file scored: the report matches it against the segmentation its sidecar describes
        "prediction_sha256": pred.source_sha256,
        "reference": str(absolute_path(ref.source)) if ref.source is not None else None,
        # the reference file scored against: a label re-drawn later at the same path is not the one scored
        "reference_sha256": ref.source_sha256,
        "reference_reordered": bool(ref.info.get("reordered", False)),
        "spacing_mm": [header_precision(s) for s in spacing],
        "policy": EMPTY_MASK_POLICY,
        # what computed the figures (medseg's code on numpy and scipy; nothing of MONAI): a record rescored months
        # later with another release can be told apart
        "versions": _metric_versions(),
        # when the figures were computed (UTC), as a sidecar's `created` says when its segmentation was made: a record
        # rescored later, or one of an audit trail, has its own time; $SOURCE_DATE_EPOCH's where it is set, so that
        # the same scoring run again writes the same record
        "created": record_time("the metrics record"),
        "labels": results,
    }
    # a voxel size the file does not give (a single slice without a thickness): the volumes rest on what was assumed;
    # a DICOM SEG placed on a source series that changed since the prediction was made, or stating another frame of
    # reference than its series' images (a QA team reads the record and the report, not the log)
    notes = [f"{role}: {volume.info[key]}" for role, volume in (("prediction", pred), ("reference", ref))
             for key in ("thickness_note", "source_note", "frame_of_reference_note")
             if isinstance(volume.info.get(key), str)]
    for role, volume in (("prediction", pred), ("reference", ref)):
        mismatch = volume.info.get("frame_of_reference_mismatch")
        if isinstance(mismatch, dict):
            record[f"{role}_frame_of_reference_mismatch"] = dict(mismatch)
    if ref.info.get("tilt_grid"):
        notes.append(f"reference: {TILT_GRID_NOTE}")
    box = ref.info.get("sub_box")
    if isinstance(box, dict):
        record["reference_sub_box"] = box
        notes.append(f"reference: {sub_box_note(box)}")
    other_thickness = _flat_thickness_differs(pred, ref)
    if other_thickness is not None:
        warn(f"{ref.source}: {other_thickness}", log,  # raised: its first clause, without what was done
             raised=f"{ref.source}: {other_thickness.split('; its volumes are computed')[0]}; {NOT_SCORED}")
        notes.append(f"reference: {other_thickness}")
    if notes:
        record["notes"] = notes
    return record


class _LabelCounts:
    """Each label's voxel counts in a prediction and a reference (and where they agree), and the box around both of
    its masks, from one pass over each array for all labels at once where the label values are small (a pass per
    label and per count took half of the time for 100 labels); per label otherwise (atlas ids beyond 65535).

    The boxes are found first (scipy's find_objects, a pass over each array); where the labels' boxes together hold
    fewer voxels than the volume (organs in a CT: 512×512×300 voxels, three labels in 5 % of them), each label is
    counted inside its boxes, which hold all of its voxels, instead of in the whole volume (np.bincount casts every
    voxel to int64: 1.1 of 1.6 s there)."""

    BLOCK = 1 << 20  # voxels counted at a time
    BOXED_SHARE = 1.0  # counted inside the boxes where these together hold up to this share of the volume's voxels

    def __init__(self, pred: np.ndarray, ref: np.ndarray, values: list[int], most: int = 65535):
        self.pred, self.ref = pred, ref
        top = max([0, *values])
        # (np.bincount takes no uint64; a uint64 file of small values is counted per label)
        self.fast = top <= most and all(a.dtype.kind == "i" or (a.dtype.kind == "u" and a.dtype.itemsize <= 4)
                                        for a in (pred, ref))
        highest = 0
        for a in (pred, ref) if self.fast else ():  # each array's extremes read once (a whole-volume pass each)
            high = int(a.max(initial=0))
            self.fast = self.fast and high <= most and (a.dtype.kind == "u" or int(a.min(initial=0)) >= 0)
            highest = max(highest, high)
        if not self.fast:
            return
        self.pred_boxes, self.ref_boxes = _label_boxes(pred), _label_boxes(ref)
        wanted = sorted({value for value in values if value > 0})
        self.boxed = sum(math.prod(s.stop - s.start for s in box) for value in wanted
                         for box in (self._box_of(self.pred_boxes, value), self._box_of(self.ref_boxes, value))
                         if box is not None) <= self.BOXED_SHARE * pred.size
        if self.boxed:
            self.counted = {value: self._count_in_boxes(value) for value in wanted}
            return
        size = max(top, highest) + 1
        self.n_pred, self.n_ref, self.n_both = (np.zeros(size, dtype=np.int64) for _ in range(3))
        # a slab at a time: np.bincount casts what it counts to int64, 8 bytes a voxel (840 MB for 105 million uint8
        # voxels, where a label's masks took 3 bytes a voxel), and a Fortran-ordered array's ravel() is a copy
        for p, r in _slabs(pred, ref, self.BLOCK):
            order = "F" if p.flags.f_contiguous and not p.flags.c_contiguous else "C"  # one order for both
            p, r = p.ravel(order=order), r.ravel(order=order)
            self.n_pred += np.bincount(p, minlength=size)
            self.n_ref += np.bincount(r, minlength=size)
            self.n_both += np.bincount(p[(p == r) & (p != 0)], minlength=size)

    @staticmethod
    def _box_of(boxes: list, value: int) -> tuple[slice, ...] | None:
        """find_objects' box of ``value`` (None where the array holds none)."""
        return boxes[value - 1] if 0 < value <= len(boxes) else None

    def _count_in_boxes(self, value: int) -> tuple[int, int, int]:
        """:meth:`counts` of ``value`` inside its boxes (each holds all of its voxels in its array; the voxels in both
        lie where the boxes meet), a slab at a time (a box may span the volume: a stray voxel far from the organ)."""
        found = []
        for array, box in ((self.pred, self._box_of(self.pred_boxes, value)),
                           (self.ref, self._box_of(self.ref_boxes, value))):
            found.append(0 if box is None else sum(int(np.count_nonzero(p == value))
                                                   for p, _ in _slabs(array[box], array[box], self.BLOCK)))
        both = 0
        p_box, r_box = self._box_of(self.pred_boxes, value), self._box_of(self.ref_boxes, value)
        if p_box is not None and r_box is not None:
            meet = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(p_box, r_box))
            if all(s.start < s.stop for s in meet):
                both = sum(int(np.count_nonzero((p == value) & (r == value)))
                           for p, r in _slabs(self.pred[meet], self.ref[meet], self.BLOCK))
        return found[0], found[1], both

    def counts(self, value: int) -> tuple[int, int, int]:
        """Voxels of ``value`` in the prediction, in the reference, and in both."""
        if self.fast and self.boxed:
            return self.counted[value] if value in self.counted else self._count_in_boxes(value)
        if self.fast:
            if value < 0:  # none in arrays counted so (and n_pred[-1] is the largest value's count)
                return 0, 0, 0
            return int(self.n_pred[value]), int(self.n_ref[value]), int(self.n_both[value])
        p, r = self.pred == value, self.ref == value
        return int(p.sum()), int(r.sum()), int(np.logical_and(p, r).sum())

    def box(self, value: int) -> tuple[slice, ...]:
        """The box around ``value``'s voxels in both arrays (present in both), grown by a voxel: cropping to it
        changes no surface (the faces of the volume stay faces, and an axis of more than one voxel stays so)."""
        pred_box, ref_box = ((self._box_of(self.pred_boxes, value), self._box_of(self.ref_boxes, value)) if self.fast
                             else (None, None))
        if pred_box is None or ref_box is None:  # not counted so (or, never asked, absent from one): from the arrays
            return _bounding_box((self.pred == value) | (self.ref == value))
        return tuple(slice(max(min(a.start, b.start) - 1, 0), min(max(a.stop, b.stop) + 1, n))
                     for a, b, n in zip(pred_box, ref_box, self.pred.shape))


def _false_positives_in_labels(pred: np.ndarray, ref: np.ndarray, values: set[int]) -> dict[int, dict[int, int]]:
    """For each label of ``values``, the voxels predicted as it where the reference has another of ``values``, by
    that label: ``{predicted: {reference: voxels}}`` (background and values not named left out); a slab at a time."""
    found: dict[int, dict[int, int]] = {}
    for p, r in _slabs(pred, ref, _LabelCounts.BLOCK):
        where = (p != r) & (p != 0) & (r != 0)
        if not where.any():
            continue
        for (predicted, referenced), n in _pair_counts(p[where].astype(np.int64), r[where].astype(np.int64)):
            if predicted in values and referenced in values:
                found.setdefault(predicted, {})
                found[predicted][referenced] = found[predicted].get(referenced, 0) + n
    return found


def _pair(a: int, b: int) -> tuple[int, int]:
    """Two labels in order, smaller first: a key of :func:`_shared_faces`."""
    return (a, b) if a <= b else (b, a)


def _shared_faces(ref: np.ndarray, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """The voxel faces two labels share in ``ref`` for each pair ``(a, b)``, ``a < b``, of ``pairs``: along each axis,
    the neighbours one of which is ``a`` and the other ``b``; a slab at a time (nothing read without pairs)."""
    found = dict.fromkeys(pairs, 0)
    if not pairs:
        return found
    if ref.flags.f_contiguous and not ref.flags.c_contiguous:  # slabs across the axis slowest in memory (a NIfTI
        ref = ref.T  # file's array is Fortran-ordered); the faces are the same
    step = max(1, _LabelCounts.BLOCK // max(1, ref[0].size))
    for start in range(0, ref.shape[0], step):
        block = ref[start:start + step + 1]  # one slice more: the faces across the seam with the next slab
        inner = block[:step]
        labelled = block != 0
        inside = labelled[:step]
        for x, y, both in ((block[:-1], block[1:], labelled[:-1] & labelled[1:]),
                           (inner[:, :-1], inner[:, 1:], inside[:, :-1] & inside[:, 1:]),
                           (inner[:, :, :-1], inner[:, :, 1:], inside[:, :, :-1] & inside[:, :, 1:])):
            where = both & (x != y)
            if not where.any():
                continue
            a, b = x[where].astype(np.int64), y[where].astype(np.int64)
            for pair, n in _pair_counts(np.minimum(a, b), np.maximum(a, b)):
                if pair in found:
                    found[pair] += n
    return found


def _pair_counts(first: np.ndarray, second: np.ndarray):
    """The distinct pairs ``(first[i], second[i])`` of two int64 arrays of values from 0, and how often each is
    there: each pair as one number where the values allow it (np.unique over the pairs as columns sorts them as
    records, several times slower)."""
    base, span = int(first.min()), int(second.max()) + 1  # (second's values need not be above first's)
    if (int(first.max()) - base + 1) * span >= 1 << 62:  # atlas ids up to 2**32: no room for one number
        pairs, counts = np.unique(np.stack([first, second]), axis=1, return_counts=True)
        return zip(map(tuple, pairs.T.tolist()), counts.tolist())
    codes, counts = np.unique((first - base) * span + second, return_counts=True)
    return (((code // span + base, code % span), n) for code, n in zip(codes.tolist(), counts.tolist()))


def _label_boxes(labels: np.ndarray) -> list[tuple[slice, ...] | None]:
    """``scipy.ndimage.find_objects(labels)``: each value's box (None for a value not there), found in the order the
    voxels lie in memory: find_objects walks an array in C order, and across a Fortran-ordered one (as a NIfTI file
    is read) it took 1.5 s of 512×512×300 voxels where its transpose, the same memory, took 0.4 s."""
    from scipy import ndimage

    if labels.flags.f_contiguous and not labels.flags.c_contiguous:
        return [None if box is None else box[::-1] for box in ndimage.find_objects(labels.T)]
    return ndimage.find_objects(labels)


def _slabs(a: np.ndarray, b: np.ndarray, block: int):
    """Matching slabs of two arrays of one shape, of about ``block`` voxels each, cut across the axis that varies
    slowest in ``a``'s memory (so that a slab of ``a`` is a view; the longest axis where that one has a single
    voxel)."""
    axis = a.ndim - 1 if a.flags.f_contiguous and not a.flags.c_contiguous else 0
    if a.shape[axis] == 1:
        axis = int(np.argmax(a.shape))
    per_index = max(a.size // max(a.shape[axis], 1), 1)
    step = max(block // per_index, 1)
    for start in range(0, a.shape[axis], step):
        cut = (slice(None),) * axis + (slice(start, start + step),)
        yield a[cut], b[cut]


def _metric_versions() -> dict[str, str]:
    """The versions of medseg and of the libraries its metrics rest on (numpy; scipy's erosion for the surface edges,
    its k-d tree and feature transform for their distances; MONAI, whose values they are, takes no part): those of the
    modules this process runs, not an installed package's metadata, which a stale or shadowing ``.dist-info`` (a
    ``PYTHONPATH`` entry, ``pip install --target``) makes name another release."""
    import scipy

    import medseg
    from medseg.checkout import source_commit

    commit = source_commit()  # a checkout's commit: the version number is one for every commit between releases
    return {"medseg": medseg.__version__, **({"medseg_commit": commit} if commit else {}),
            "numpy": np.__version__, "scipy": scipy.__version__}


def _label_volume(volume: Volume, role: str) -> Volume:
    """``volume`` checked as a 3D array of label values (whole numbers from 0) with a finite, invertible 4×4 affine (a
    caller's arrays are not read from files, whose reader checks them: fractional or NaN voxels, or text, matched no
    label and scored 0 or NaN), the array and the affine as numpy arrays (nested lists will do)."""
    if not isinstance(volume, Volume):  # an array or a nibabel image failed on a missing attribute
        raise InputError(f"{type_text(volume)} given as the {role}; give a Volume(array, affine) (for a nibabel "
                         "image, Volume(np.asarray(image.dataobj), image.affine))")
    name = volume.source if volume.source is not None else f"the {role}"
    array = np.asarray(volume.array)
    if array.ndim == 0 and array.dtype.kind == "O":  # a nibabel image, or None, in place of the array
        raise InputError(f"{name}: {type_text(volume.array)} in place of the voxel array; give the labels as an "
                         f"array (a nibabel image's: np.asarray(image.dataobj)), given as the {role}")
    if array.ndim != 3 or not array.size:
        raise InputError(f"{name}: an array of shape {array.shape}; give 3D label volumes (a 2D image as X×Y×1), "
                         f"given as the {role}")
    if array.dtype.kind not in "biuf":  # text, objects (a nibabel image in place of its array), complex numbers
        raise InputError(f"{name}: voxels of type {array.dtype}; give label values (an integer array), given as the "
                         f"{role}")
    _check_label_values(array, name, role)
    if np.shape(volume.affine) != (4, 4):
        raise InputError(f"{name}: an affine of shape {np.shape(volume.affine)}; give the 4×4 voxel-to-RAS+ (mm) "
                         f"matrix, given as the {role}")
    try:
        affine = np.asarray(volume.affine, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name}: the affine is not a 4×4 matrix of numbers ({error}), given as the {role}") from None
    if singular_affine_text(affine) is not None:  # measured as segment_volume and the NIfTI reader measure it
        raise InputError(f"{name}: {singular_affine_text(affine)}, given as the {role}")
    if bottom_row_text(affine) is not None:
        raise InputError(f"{name}: {bottom_row_text(affine)}, given as the {role}")
    if array is volume.array and affine is volume.affine:
        return volume
    return dataclasses.replace(volume, array=array, affine=affine)


def _label_names(labels) -> dict[int, str]:
    """``labels`` with whole-number keys ("1" compared with voxels matched none)."""
    if not isinstance(labels, Mapping):
        raise InputError(f"labels {labels!r}: give a mapping of label values to names, as {{1: 'liver'}}")
    named = {}
    for value, name in labels.items():
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        fraction = isinstance(value, (float, np.floating)) and not float(value).is_integer()
        if number is None or fraction or isinstance(value, bool):
            raise InputError(f"labels: {value!r} is no label value; give whole numbers as the keys, as {{1: 'liver'}}")
        named[number] = str(name)
    return named


def _check_label_values(array: np.ndarray, name, role: str) -> None:
    """Label values are whole numbers from 0, as :func:`medseg.io.label_images.read_reference` requires of a file."""
    from medseg.label_values import label_values
    from medseg.numbers import odd_values

    if array.dtype.kind in "bu" or not array.size:
        return
    if array.dtype.kind == "i":
        whole = array.min() >= 0
    else:  # a slab at a time: the rounded copy of a whole float64 volume took as much memory again
        with np.errstate(invalid="ignore"):
            whole = all(bool(np.all(slab >= 0) and np.all(slab == np.round(slab)) and np.isfinite(slab).all())
                        for slab, _ in _slabs(array, array, 1 << 22))
    if not whole:
        raise InputError(f"{name}: not a label image (values must be non-negative integers; it holds "
                         f"{odd_values(label_values(array), negative=True)}), given as the {role}")


def _flat_thickness_differs(pred: Volume, ref: Volume) -> str | None:
    """What the reference's header says of a single slice's thickness where it differs from the prediction's.

    One slice's voxel centres do not depend on its thickness, so the grid check passes either way; the volumes are
    computed with the prediction's voxel size, and the reference's own header would give others."""
    text = None
    for axis, size in enumerate(pred.shape[:3]):
        if size != 1:
            continue
        mine, theirs = (float(np.linalg.norm(np.asarray(v.affine, dtype=np.float64)[:3, axis])) for v in (pred, ref))
        if not math.isclose(mine, theirs, rel_tol=1e-3):
            text = (f"its header gives the single slice a thickness of {theirs:.4g} mm where the prediction's gives "
                    f"{mine:.4g} mm; its volumes are computed with the prediction's (its own would make them "
                    f"{theirs / mine:.3g}× as large)" if mine > 0 else None)
    return text


def jsonable(value):
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``), recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def metrics_rows(metrics: dict) -> list[dict[str, str | int | float | None]]:
    """A ``medseg-metrics/1`` record (:func:`evaluate_volumes`, :func:`medseg.scoring.score_prediction`, a
    ``_metrics.json`` read back) as one flat row per label, for a table of many cases
    (``pandas.DataFrame([row for record in records for row in metrics_rows(record)])``, ``csv.DictWriter``): the
    record's ``case_id``, the ``label`` value as an int, then the label's values that are numbers or text (``name``,
    ``dice``, ``hd95_mm``, ``assd_mm``, ``status``, the volumes in ml …) as the record has them (NaN, or ``None``
    in a record read back from JSON, where a value is undefined); the breakdowns by other label
    (``false_positive_in_ml``) are left to the record. A record of no label (both masks empty and scored without label
    names, or labels given as background alone) is one row all the same, so that its case stays in the table:
    ``{"case_id": ..., "label": 0, "name": None, "dice": None, "hd95_mm": None, "assd_mm": None,
    "status": "no_labels"}``, label 0 (background, the one label it holds) and its ``status`` telling it apart: a
    ``None`` label made a DataFrame's label column floats (1.0, 2.0), an int in every row keeps it ints. An
    :class:`~medseg.errors.InputError` for what is no such record."""
    labels = metrics.get("labels") if isinstance(metrics, dict) else None
    if not isinstance(labels, dict):
        raise InputError(f"{type_text(metrics)} given as the metrics: not a medseg-metrics/1 record (a dict whose "
                         "'labels' maps each label value to its metrics)")
    if not labels:  # no row dropped the case from a table of many without a word
        return [{"case_id": metrics.get("case_id"), "label": 0, "name": None, "dice": None, "hd95_mm": None,
                 "assd_mm": None, "status": "no_labels"}]
    rows: list[dict[str, str | int | float | None]] = []
    for value, entry in labels.items():
        if not isinstance(entry, dict) or not str(value).strip().isdecimal():  # another tool's JSON, an edited one
            case = metrics.get("case_id")
            raise InputError(f"label {str(value)!r} of {'the metrics record' if case is None else f'case {case}'}: "
                             "not a medseg-metrics/1 record's label (a label value, a whole number, mapping to its "
                             "metrics)")
        row: dict[str, str | int | float | None] = {"case_id": metrics.get("case_id"), "label": int(value)}
        row.update((key, item) for key, item in entry.items()
                   if item is None or isinstance(item, (str, int, float)))
        rows.append(row)
    return rows


def metrics_json(metrics: dict) -> str:
    """A metrics record as strict JSON text (NaN as ``null``), ending with a newline."""
    return json.dumps(jsonable(metrics), indent=2, allow_nan=False) + "\n"

