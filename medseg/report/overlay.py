"""Per-case overlay: three orthogonal slices through the structure, with prediction (solid) and reference
(dashed) contours over the image.

Arrays are reoriented to the closest RAS+ axes first, so the panels are sagittal, coronal and axial
whatever the file's voxel order; each panel is drawn in mm, so anisotropic voxels keep their true shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from medseg.report.collect import CaseResult
from medseg.report.figures import label_colour, new_figure, png_bytes

__all__ = ["CaseArrays", "focus_voxel", "load_case_arrays", "render_overlay"]

log = logging.getLogger(__name__)


@dataclass
class CaseArrays:
    """A case's label arrays (and image, when it could be read) on one grid."""

    prediction: np.ndarray
    affine: np.ndarray
    image: np.ndarray | None = None
    reference: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)  # geometry problems found while loading
    notes: list[str] = field(default_factory=list)  # why the image or the reference is not shown


def load_case_arrays(case: CaseResult, tolerance_mm: float = 0.01) -> CaseArrays | None:
    """Read the segmentation, and the input image and reference when they can be found and share its grid."""
    from medseg.errors import MedsegError
    from medseg.io.images import read_image
    from medseg.metrics import grid_displacement_mm
    from medseg.report.checks import read_labels

    path = case.segmentation_path()
    if path is None:
        return None
    prediction, affine = read_labels(path)
    arrays = CaseArrays(prediction=prediction, affine=affine)

    def same_grid(shape, other_affine) -> bool:
        return tuple(shape) == prediction.shape and grid_displacement_mm(shape, affine, other_affine) <= tolerance_mm

    image_path = case.input_path()
    if image_path is None:
        recorded = (case.sidecar or {}).get("input")
        arrays.notes.append(f"image not shown: {recorded} not found" if recorded else "image not shown: unknown input")
    else:
        try:
            volume = read_image(image_path)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(volume.shape, volume.affine):
                arrays.image = volume.array
            else:
                arrays.problems.append(f"input image {image_path.name} is not on the segmentation's grid "
                                       f"(shape {volume.shape} vs {prediction.shape})")
    reference_path = case.reference_path()
    if reference_path is not None:
        try:
            reference, reference_affine = read_labels(reference_path)
        except Exception as error:  # an unreadable reference is reported on the page, never raised
            arrays.notes.append(f"reference not shown: {reference_path.name}: {error}")
        else:
            if same_grid(reference.shape, reference_affine):
                arrays.reference = reference
            else:
                arrays.problems.append(f"reference {reference_path.name} is not on the segmentation's grid")
    elif case.metrics is not None:
        arrays.notes.append(f"reference not shown: {case.metrics.get('reference')} not found")
    return arrays


def focus_voxel(masks: list[np.ndarray]) -> tuple[int, int, int]:
    """The foreground voxel nearest the centroid of the first non-empty mask (the grid's centre if none)."""
    for mask in masks:
        if mask is not None and mask.any():
            points = np.argwhere(mask)
            centre = points.mean(axis=0)
            return tuple(int(v) for v in points[np.argmin(((points - centre) ** 2).sum(axis=1))])
    shape = next(m.shape for m in masks if m is not None)
    return tuple(n // 2 for n in shape)


def render_overlay(
    arrays: CaseArrays,
    labels: list[tuple[str, str]],
    focus_label: str | None = None,
    dpi: int = 80,
) -> bytes:
    """PNG of three orthogonal slices through ``focus_label`` (prediction or reference), cropped around every
    labelled voxel. ``labels`` is [(value, name)] in legend order; colours follow that order."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(arrays.affine)
    spacing = np.linalg.norm(arrays.affine[:3, :3], axis=0)[ornt[:, 0].astype(int)]

    def reorient(array):
        return None if array is None else nib.orientations.apply_orientation(array, ornt)

    prediction, reference, image = reorient(arrays.prediction), reorient(arrays.reference), reorient(arrays.image)
    union = prediction > 0 if reference is None else (prediction > 0) | (reference > 0)
    masks = []
    if focus_label is not None:
        value = int(focus_label)
        masks.append(prediction == value if reference is None else (prediction == value) | (reference == value))
    masks.append(union)
    centre = focus_voxel(masks)
    box = _crop_box(union, spacing, centre)

    views = [("sagittal", 0, (1, 2)), ("coronal", 1, (0, 2)), ("axial", 2, (0, 1))]
    # each panel as wide as its field of view is in mm for a common height, so the PNG has no empty margins
    widths = [float(np.clip((box[u].stop - box[u].start) * spacing[u] / ((box[v].stop - box[v].start) * spacing[v]),
                            0.4, 3.0)) for _, _, (u, v) in views]
    height_in = 3.0
    figure = new_figure(height_in * sum(widths) * 1.04 + 0.2, height_in + 0.3)
    grid = figure.add_gridspec(1, 3, width_ratios=widths, left=0.01, right=0.99, top=0.91, bottom=0.01, wspace=0.05)
    window = _window(image, box)
    for column, (name, axis, (u, v)) in enumerate(views):
        axes = figure.add_subplot(grid[0, column])
        index = [slice(None)] * 3
        index[axis] = centre[axis]
        keep = [box[u], box[v]]

        def cut(array, index=index, keep=keep):
            return None if array is None else array[tuple(index)][keep[0], keep[1]]

        extent = [keep[0].start * spacing[u], keep[0].stop * spacing[u], keep[1].start * spacing[v],
                  keep[1].stop * spacing[v]]
        xs = (np.arange(keep[0].start, keep[0].stop) + 0.5) * spacing[u]
        ys = (np.arange(keep[1].start, keep[1].stop) + 0.5) * spacing[v]
        if image is not None:
            axes.imshow(cut(image).T, origin="lower", cmap="gray", extent=extent, vmin=window[0], vmax=window[1],
                        interpolation="nearest")
        else:
            axes.imshow(np.zeros((len(ys), len(xs))), origin="lower", cmap="gray", extent=extent, vmin=0, vmax=1)
        for position, (value, _) in enumerate(labels):
            colour = label_colour(position)
            for array, style, width in ((reference, "dashed", 1.1), (prediction, "solid", 1.4)):
                plane = cut(array)
                if plane is None:
                    continue
                mask = (plane == int(value)).T.astype(np.float32)
                if mask.any() and not mask.all() and min(mask.shape) > 1:
                    axes.contour(xs, ys, mask, levels=[0.5], colors=[colour], linestyles=style, linewidths=width)
        axes.set_aspect("equal")
        axes.set_title(f"{name} (slice {centre[axis]})", fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    return png_bytes(figure, dpi=dpi)


def _crop_box(union: np.ndarray, spacing: np.ndarray, centre: tuple[int, int, int]) -> list[slice]:
    """The labelled voxels' bounding box (or the centre) with a margin of 30 % of its size and at least
    15 mm, clipped to the grid."""
    if union.any():
        points = np.argwhere(union)
        low, high = points.min(axis=0), points.max(axis=0)
    else:
        low = high = np.array(centre)
    box = []
    for axis in range(3):
        margin_mm = max(15.0, 0.3 * (high[axis] - low[axis] + 1) * spacing[axis])
        margin = int(np.ceil(margin_mm / spacing[axis]))
        box.append(slice(max(int(low[axis]) - margin, 0), min(int(high[axis]) + margin + 1, union.shape[axis])))
    return box


def _window(image: np.ndarray | None, box: list[slice]) -> tuple[float, float]:
    if image is None:
        return 0.0, 1.0
    values = image[tuple(box)]
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    return float(low), float(high if high > low else low + 1)
