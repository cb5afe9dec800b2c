"""Placing a DICOM SEG on an image grid by the SEG's own geometry, for an image that is not its source series.

A conversion of a DICOM series (dcm2niix's NIfTI, an NRRD) no longer has the images a SEG's frames reference, but
it keeps their grid: each SEG frame states where it lies (its ImagePositionPatient, ImageOrientationPatient and
PixelSpacing, in the functional groups, in LPS), and a frame whose rows and columns run along two voxel axes of the
image, with the same spacing, and whose first pixel lies on a voxel centre, is a slice of the image's voxel lattice:
its pixels are put on those voxels, nothing resampled. The image's affine is RAS (as medseg reads NIfTI, NRRD and
DICOM alike); the SEG's LPS positions are turned into RAS (x and y negated) before they are compared.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.label_map import values_dtype
from medseg.numbers import counted

__all__ = ["ORIENTATION_TOLERANCE", "SPACING_TOLERANCE_MM", "read_seg_on_grid", "seg_label_names"]

log = logging.getLogger(__name__)

ORIENTATION_TOLERANCE = 1e-4  # direction cosines, as a SEG frame is compared with its source image elsewhere
SPACING_TOLERANCE_MM = 1e-4  # pixel spacing, likewise
_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def seg_label_names(path: Path | str, apart: bool = True) -> dict[int, str]:
    """Label value → name for a SEG scored where nothing names the labels (no model, no sidecar): each segment is
    its segment number (a LABELMAP SEG's pixel value), named by its SegmentLabel; segments whose labels are one
    regardless of case (two lesions, each a segment 'Lesion') are named apart, ``Lesion (segment 2)``
    (:func:`named_apart`; not ``apart``: their SegmentLabels, as a dataset.json's names are paired with)."""
    from medseg.io.seg_labels import _segment_label
    from medseg.io.seg_reading import open_seg

    seg, _ = open_seg(Path(path))
    names = {0: "background"}
    for item in seg.get("SegmentSequence", []):
        number = int(item.SegmentNumber)
        if number:
            names[number] = _segment_label(item.get("SegmentLabel", "")) or f"segment {number}"
    return named_apart(names) if apart else names


def named_apart(names: dict[int, str]) -> dict[int, str]:
    """``names`` (value → a segment's name) with those one regardless of case named apart: ``Lesion (segment 2)``."""
    shared = Counter(name.casefold() for value, name in names.items() if value)
    return {value: f"{name} (segment {value})" if value and shared[name.casefold()] > 1 else name
            for value, name in names.items()}


def read_seg_on_grid(path: Path | str, shape: tuple[int, ...], affine: np.ndarray, source, label_names: dict[int, str],
                     warn_missing: bool = True, label_codes: dict | None = None, outcome: str = "not scored",
                     by_number: bool = False, segment_values: dict[int, int] | None = None,
                     named_in: str = "the model", series: tuple[str, str] | None = None,
                     series_record: Path | str | None = None) -> np.ndarray:
    """The labels of the DICOM SEG ``path`` on the voxel grid ``shape`` / ``affine`` (RAS, mm) of ``source`` (named
    in messages), placed by the SEG's own frame geometry (see the module's docstring): no source image is read.

    Segments are matched to ``label_names`` as :func:`medseg.io.seg_reading.read_dicom_seg` matches them (by name,
    else by ``label_codes``), and overlapping segments are refused as there. Refused in one line naming both files
    (:class:`InputError`): frames whose rows or columns do not run along the grid's voxel axes (orientation), whose
    pixel spacing or spacing between slices differs from the grid's voxel sizes along those axes (spacing), a frame
    whose first pixel lies off the grid's voxel centres by more than a tenth of a pixel (at least 0.01 mm), a frame
    without a stated position, and labelled pixels of frames reaching past the grid (unlabelled ones are cropped
    off, as a cropped reference box is). Voxels without a frame are background. Each refusal ends with ``outcome``,
    what the caller then does not do. ``by_number``: each segment is read as its segment number (``label_names``
    those of :func:`seg_label_names`), not matched by name, or as the value ``segment_values`` gives it (segment
    number → label value, :func:`~medseg.io.seg_labels.pair_by_name`; ``label_names`` then name those values, and
    ``named_in``, the dataset.json's path, says in messages what names them). ``series``: the SeriesInstanceUID
    of the DICOM series the grid's image was made from and what records it (a conversion's sidecar, the prediction's):
    a SEG that references other series only is refused, as it is beside the series itself
    (:func:`~medseg.io.seg_reading.check_referenced_series`; ``series_record``: the conversion's JSON that records
    that UID, which the refusal says to move aside where the image holds that series' images re-exported under a new
    SeriesInstanceUID)."""
    from medseg.io.seg_labels import _segment_labels, put_segments, tell_segment_names
    from medseg.io.seg_reading import check_referenced_series, open_seg

    path = Path(path)
    shape = tuple(int(n) for n in shape[:3])
    affine = np.asarray(affine, dtype=np.float64)
    label_names = {int(value): str(name) for value, name in label_names.items()}
    seg, read = open_seg(path)
    if series is not None:
        # placed by its geometry alone, a SEG of another series of the patient (another session, on the same scanner
        # coordinates) was scored as this image's reference
        check_referenced_series(seg, path, series[0], source, series[1], outcome, series_record)
    try:
        frames = _frame_geometry(seg, path, source)
        placements = _placements(frames, affine, path, source)
    except InputError as error:
        raise InputError(f"{error}; {outcome}") from None
    tell_segment_names(seg, read, path, warn_missing)
    if by_number:  # nothing names the labels: segments that share a name are two labels, not one
        from medseg.io.seg_labels import _segment_label

        values = segment_values or {}
        segments = {int(item.SegmentNumber): (
            values.get(int(item.SegmentNumber), int(item.SegmentNumber)),
            _segment_label(item.get("SegmentLabel", "")) or f"segment {int(item.SegmentNumber)}")
            for item in seg.SegmentSequence if int(item.SegmentNumber)}
    else:
        segments = _segment_labels(seg, label_names, path, label_codes, warn=warn_missing)
    labelmap = str(seg.get("SegmentationType", "BINARY")) == "LABELMAP"
    numbers = _frame_segments(seg)
    _check_one_frame_per_slice(placements, [None] * len(numbers) if labelmap else numbers, path, source, outcome)
    outside = [0]

    def slabs(number: int) -> Iterator[tuple[tuple, np.ndarray]]:
        for index, placement in enumerate(placements):
            if not labelmap and numbers[index] != number:
                continue
            pixels = np.asarray(seg.get_stored_frame(index + 1))
            mask = pixels == number if labelmap else pixels > 0
            placed = _on_grid(mask, placement, shape)
            outside[0] += placed[2]
            if placed[0] is not None:
                yield placed[0], placed[1]

    labels = np.zeros(shape, dtype=values_dtype(max(label_names, default=0)))
    put_segments(labels, segments, slabs, path, label_names, warn_missing, named_in)
    if outside[0]:
        lie = "lies" if outside[0] == 1 else "lie"
        raise InputError(f"{path}: {counted(outside[0], 'labelled pixel')} of its frames {lie} outside the grid of "
                         f"{source} (shape {shape}): not a segmentation of that image; {outcome}")
    _tell_coarser_slices(frames, placements, affine, path, source, warn_missing)
    log.info("%s: placed on the voxel grid of %s by its frames' positions and orientation (%d frames); nothing "
             "resampled", path, source, len(placements))
    return labels


def _frame_geometry(seg, path: Path, source) -> list[dict]:
    """Each frame's pixel spacing, orientation and position (LPS), and its spacing between slices where stated, from
    its own functional groups, else the shared ones; a frame that states none of the first three is refused."""
    from medseg.io.seg_reading import _plane_geometry

    shared = (seg.get("SharedFunctionalGroupsSequence") or [{}])[0]
    per_frame = list(seg.get("PerFrameFunctionalGroupsSequence") or [])
    if not per_frame:
        raise InputError(f"{path}: states no position for its frames (no per-frame functional groups), so it cannot "
                         f"be placed on the grid of {source}")
    frames = []
    for index, groups in enumerate(per_frame):
        geometry = _plane_geometry(groups, shared)
        lacking = [key for key, value in geometry.items() if value is None]
        if lacking:
            raise InputError(f"{path}: frame {index + 1} states no {' or '.join(lacking)}, so it cannot be placed on "
                             f"the grid of {source}")
        # its own pixel measures, else the shared ones (a SEG may state them per frame)
        between = _functional_value(groups, "PixelMeasuresSequence", "SpacingBetweenSlices")
        if between is None:
            between = _functional_value(shared, "PixelMeasuresSequence", "SpacingBetweenSlices")
        if between is not None:
            geometry["SpacingBetweenSlices"] = between
        thickness = _functional_value(groups, "PixelMeasuresSequence", "SliceThickness")
        if thickness is None:
            thickness = _functional_value(shared, "PixelMeasuresSequence", "SliceThickness")
        geometry["SliceThickness"] = thickness
        frames.append(geometry)
    return frames


def _tell_coarser_slices(frames: list[dict], placements: list, affine: np.ndarray, path: Path, source,
                         warn: bool) -> None:
    """Warn (``warn``; else at info level), in one line naming the file, where a SEG stating no spacing between
    slices has its frames on one slice in n of the grid (n > 1: the slice indices of its frames, on three slices or
    more, share that step) and states a slice thickness above the grid's spacing between slices: an annotation of a
    coarser series, placed on every n-th slice, the slices between read as background. Not refused: frames a writer
    left out as empty, on a series of overlapping slices (thicker than their spacing), may fall so too."""
    if not placements or any(frame.get("SpacingBetweenSlices") is not None for frame in frames):
        return
    column_axis, _, row_axis, _, _ = placements[0]
    slice_axis = 3 - column_axis - row_axis
    indices = sorted({placement[4][slice_axis] for placement in placements})
    step = int(np.gcd.reduce(np.diff(indices))) if len(indices) > 2 else 0  # two share any step
    thicknesses = [frame["SliceThickness"] for frame in frames if frame.get("SliceThickness") is not None]
    spacing = float(np.linalg.norm(affine[:3, slice_axis]))
    if step < 2 or not thicknesses or max(thicknesses) <= spacing * (1 + 1e-3) + SPACING_TOLERANCE_MM:
        return
    log.log(logging.WARNING if warn else logging.INFO,
            "%s: its frames lie on one slice in %d of the grid of %s (%s = %d to %d) and state a slice thickness of "
            "%.6g mm, more than the grid's %.6g mm between slices, with no spacing between slices: an annotation of "
            "a coarser series? The slices between are read as background", path, step, source, "ijk"[slice_axis],
            indices[0], indices[-1], max(thicknesses), spacing)


def _functional_value(shared, sequence: str, keyword: str) -> float | None:
    items = shared.get(sequence) if hasattr(shared, "get") else None
    value = items[0].get(keyword) if items else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _frame_segments(seg) -> list[int | None]:
    """The segment number each frame of a BINARY SEG holds, from its own functional groups, else the shared ones
    (highdicom writes a SEG of one segment so); None where neither names one."""
    shared = (seg.get("SharedFunctionalGroupsSequence") or [{}])[0]
    shared_items = (shared.get("SegmentIdentificationSequence") if hasattr(shared, "get") else None) or []
    found = []
    for groups in seg.get("PerFrameFunctionalGroupsSequence", []):
        items = groups.get("SegmentIdentificationSequence") or shared_items
        found.append(int(items[0].ReferencedSegmentNumber) if items else None)
    return found


def _check_one_frame_per_slice(placements: list, numbers: list[int | None], path: Path, source, outcome: str
                               ) -> None:
    """Refuse two frames of one segment (of a LABELMAP SEG: any two) that fall on one slice of the grid: a SEG has a
    frame per segment and position, and which of the two to read (or their union) nothing says."""
    seen: dict[tuple, int] = {}
    for index, (column_axis, _, row_axis, _, origin) in enumerate(placements):
        slice_axis = 3 - column_axis - row_axis
        key = (numbers[index], slice_axis, origin[slice_axis])
        if key in seen:
            of = "" if numbers[index] is None else f" of segment {numbers[index]}"
            raise InputError(f"{path}: its frames {seen[key] + 1} and {index + 1}{of} fall on one slice of the grid "
                             f"of {source} ({'ijk'[slice_axis]} = {origin[slice_axis]}): a SEG has one frame per "
                             f"segment and position; {outcome}")
        seen[key] = index


def _numbers(values) -> str:
    return "[" + ", ".join(f"{float(v) + 0.0:.6g}" for v in values) + "]"  # + 0.0: no -0


def _placements(frames: list[dict], affine: np.ndarray, path: Path, source
                ) -> list[tuple[int, int, int, int, tuple[int, int, int]]]:
    """Where each frame lies on the grid: ``(column axis, column step, row axis, row step, origin)``, the grid
    axis (0, 1, 2) its columns and rows run along, +1 or -1 voxel per pixel, and the voxel index of its first pixel;
    refused (see :func:`read_seg_on_grid`) where a frame is no slice of the grid's lattice."""
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise InputError(f"{source}: its affine has a voxel size of 0 or not a number, so {path} cannot be placed on "
                         "its grid")
    units = affine[:3, :3] / sizes
    inverse = np.linalg.inv(affine)
    grid_words = f"the grid's voxel axes ({', '.join(_numbers(units[:, t] * _LPS_TO_RAS) for t in range(3))} in LPS)"
    found = []
    for index, frame in enumerate(frames):
        orientation = np.asarray(frame["ImageOrientationPatient"], dtype=np.float64)
        placed = []
        for direction in (orientation[:3], orientation[3:]):  # along a row (columns), along a column (rows)
            ras = direction * _LPS_TO_RAS
            dots = units.T @ ras
            axis = int(np.argmax(np.abs(dots)))
            sign = 1 if dots[axis] > 0 else -1
            if np.max(np.abs(ras - sign * units[:, axis])) > ORIENTATION_TOLERANCE:
                raise InputError(f"{path}: cannot be placed on the grid of {source}: the orientation of its frame "
                                 f"{index + 1}, {_numbers(orientation)} (LPS), does not run along {grid_words}; "
                                 "score it against the DICOM series it segments, or an image converted from it "
                                 "without resampling")
            placed.append((axis, sign))
        (column_axis, column_step), (row_axis, row_step) = placed  # pixels along a row: the column index grows
        if column_axis == row_axis:
            raise InputError(f"{path}: cannot be placed on the grid of {source}: the rows and columns of its frame "
                             f"{index + 1} ({_numbers(orientation)}, LPS) run along one voxel axis")
        row_spacing, column_spacing = (float(v) for v in frame["PixelSpacing"])  # DICOM: between rows, columns
        for spacing, axis, what in ((column_spacing, column_axis, "columns"), (row_spacing, row_axis, "rows")):
            if abs(spacing - sizes[axis]) > SPACING_TOLERANCE_MM:
                raise InputError(f"{path}: cannot be placed on the grid of {source}: its pixel spacing "
                                 f"{_numbers(frame['PixelSpacing'])} mm (rows, columns) differs from the grid's voxel "
                                 f"size along its {what}, {sizes[axis]:.6g} mm (spacing); resample one onto the "
                                 "other's grid first")
        slice_axis = 3 - column_axis - row_axis
        between = frame.get("SpacingBetweenSlices")
        if between is not None and abs(between - sizes[slice_axis]) > max(SPACING_TOLERANCE_MM,
                                                                          1e-3 * sizes[slice_axis]):
            raise InputError(f"{path}: cannot be placed on the grid of {source}: its spacing between slices, "
                             f"{between:.6g} mm, differs from the grid's voxel size across its frames, "
                             f"{sizes[slice_axis]:.6g} mm (spacing); resample one onto the other's grid first")
        position = np.asarray(frame["ImagePositionPatient"], dtype=np.float64) * _LPS_TO_RAS
        voxel = (inverse @ np.append(position, 1.0))[:3]
        whole = np.rint(voxel)
        off = float(np.linalg.norm(affine[:3, :3] @ (voxel - whole)))
        tolerance = max(0.01, 0.1 * min(row_spacing, column_spacing))
        if off > tolerance:
            raise InputError(f"{path}: cannot be placed on the grid of {source}: its frame {index + 1} lies {off:.3g} "
                             f"mm off the grid's voxel centres (off-lattice; tolerance {tolerance:.3g} mm): its first "
                             f"pixel, at {_numbers(frame['ImagePositionPatient'])} (LPS), falls at voxel "
                             f"{_numbers(np.round(voxel, 4))}; resample one onto the other's grid first")
        if found and slice_axis != 3 - found[0][0] - found[0][2]:  # crossing frames: one voxel in two frames
            raise InputError(f"{path}: cannot be placed on the grid of {source}: its frames are not parallel (frame "
                             f"1 a slice across the grid's {'ijk'[3 - found[0][0] - found[0][2]]} axis, frame "
                             f"{index + 1} across its {'ijk'[slice_axis]} axis)")
        found.append((column_axis, column_step, row_axis, row_step, tuple(int(v) for v in whole)))
    return found


def _on_grid(mask: np.ndarray, placement, shape: tuple[int, int, int]) -> tuple[tuple | None, np.ndarray, int]:
    """A frame's ``mask`` (rows, columns) as a block of the grid: ``(selector, block mask, labelled pixels outside
    the grid)``; the selector is None where no pixel of the frame is on the grid."""
    column_axis, column_step, row_axis, row_step, origin = placement
    block = mask.T  # (column, row)
    starts = [origin[column_axis], origin[row_axis]]
    if column_step < 0:
        block = block[::-1, :]
        starts[0] -= block.shape[0] - 1
    if row_step < 0:
        block = block[:, ::-1]
        starts[1] -= block.shape[1] - 1
    slice_axis = 3 - column_axis - row_axis
    axes = (column_axis, row_axis, slice_axis)
    starts.append(origin[slice_axis])
    extents = [block.shape[0], block.shape[1], 1]
    low = [max(0, -s) for s in starts]
    high = [max(lo, min(n, shape[a] - s)) for lo, n, a, s in zip(low, extents, axes, starts)]
    inside = block[low[0]:high[0], low[1]:high[1]]
    labelled_outside = int(np.count_nonzero(block)) - int(np.count_nonzero(inside))
    if any(hi <= lo for lo, hi in zip(low, high)):
        return None, inside, labelled_outside
    selector = [slice(None)] * 3
    for a, s, lo, hi in zip(axes, starts, low, high):
        selector[a] = slice(s + lo, s + hi)
    order = np.argsort(axes)  # the block's dimensions (column, row, slice) put in the grid's axis order
    placed = np.transpose(inside[:, :, None], order)
    return tuple(selector), placed, labelled_outside
