"""Per-case overlay: three orthogonal slices through the structure, with prediction (solid) and reference
(dashed) contours over the image.

Arrays are reoriented to the closest RAS+ axes first, so the panels are sagittal, coronal and axial
whatever the file's voxel order; each panel is drawn in mm, so anisotropic voxels keep their true shape. Coronal and
axial panels are shown in the radiological convention (the patient's right on the image's left, as if facing the
patient or looking up from the feet), the sagittal one anterior on the image's left (the patient facing the viewer's
left, as 3D Slicer, ITK-SNAP and OHIF show it); each is lettered at its four edges with
the directions the affine gives (R/L, A/P, S/I: those of the nearest axes for an oblique affine).

Its parts are modules of their own: :mod:`medseg.report.overlay_arrays` (a case's segmentation, image and reference
read for its overlay) and :mod:`medseg.report.overlay_image` (the image read where it is drawn, and its contrast
window). The public names this module listed before they moved there are still importable from here (``__all__``).
"""

from __future__ import annotations

import io
import math

import numpy as np

from medseg.report.figures import label_colours
from medseg.report.overlay_arrays import CaseArrays, load_case_arrays
from medseg.report.overlay_image import (
    DEFAULT_CT_WINDOW,
    ImageFile,
    ItkImageFile,
    SeriesImage,
    _shift,
    _window,
    ct_window_hu,
    display_window,
    taken_for_ct,
)

__all__ = ["CaseArrays", "ImageFile", "ItkImageFile", "SeriesImage", "load_case_arrays", "render_overlay"]

# voxels of a mask whose distances to its centroid are held at once (8 bytes each, twice)
_FOCUS_BLOCK_VOXELS = 1 << 20


class _BlockMask:
    """A boolean volume made a block of slices at a time by ``block(index)`` (``index`` selects the block along
    ``axis``), and the counts of its voxels per slice along each axis (made once, when first asked for)."""

    def __init__(self, shape: tuple[int, ...], block, axis: int):
        self.shape, self.block, self.axis = tuple(shape), block, axis
        self._counts: list[np.ndarray] | None = None

    @classmethod
    def of(cls, mask: np.ndarray) -> _BlockMask:
        return cls(mask.shape, mask.__getitem__, _block_axis(mask))

    def blocks(self):
        """``(start, block)`` along the axis, about :data:`_FOCUS_BLOCK_VOXELS` voxels each."""
        n = self.shape[self.axis]
        step = max(1, _FOCUS_BLOCK_VOXELS // max(1, math.prod(self.shape) // max(1, n)))
        for start in range(0, n, step):
            index = [slice(None)] * 3
            index[self.axis] = slice(start, start + step)
            yield start, self.block(tuple(index))

    def counts(self) -> list[np.ndarray]:
        """Per axis, the voxels of the mask in each slice across it."""
        if self._counts is None:
            counts = [np.zeros(n, np.int64) for n in self.shape]
            for start, block in self.blocks():
                for axis in range(3):
                    found = np.count_nonzero(block, axis=tuple(a for a in range(3) if a != axis))
                    if axis == self.axis:
                        counts[axis][start:start + found.size] = found
                    else:
                        counts[axis] += found
            self._counts = counts
        return self._counts

    def nearest_to_centroid(self) -> tuple[int, int, int]:
        counts = self.counts()
        count = int(counts[0].sum())
        centre = np.array([np.dot(counts[axis], np.arange(n, dtype=np.int64))
                           for axis, n in enumerate(self.shape)]) / count
        # squared distances per axis, summed in the order a voxel's coordinates would be: the same values
        squares = [(np.arange(n) - c) ** 2 for n, c in zip(self.shape, centre)]
        best, best_distance = None, np.inf
        for start, block in self.blocks():
            if not block.any():
                continue
            parts = list(squares)
            parts[self.axis] = parts[self.axis][start:start + block.shape[self.axis]]
            distances = np.where(block, parts[0][:, None, None] + parts[1][None, :, None] + parts[2][None, None, :],
                                 np.inf)
            nearest = int(np.argmin(distances))  # the first of equals in the block, in the array's order
            voxel = [int(v) for v in np.unravel_index(nearest, block.shape)]
            voxel[self.axis] += start
            distance = distances.flat[nearest]
            # of equals in different blocks, the first in the array's order
            if distance < best_distance or (distance == best_distance and tuple(voxel) < best):
                best, best_distance = tuple(voxel), distance
        return best


def _block_axis(array: np.ndarray) -> int:
    """The axis whose slices lie furthest apart in memory: blocks across it read the array in runs."""
    return int(np.argmax(np.abs(array.strides))) if array.ndim == 3 else 0


def _focus(masks: list[_BlockMask]) -> tuple[int, int, int]:
    """The foreground voxel nearest the centroid of the first non-empty mask (the grid's centre if none); of
    voxels as near, the first in the array's order. Worked a block of slices at a time: the coordinates of every
    voxel of a body-sized label (28 million on a 512×512×300 CT) took 2 GB at once."""
    for mask in masks:
        if mask.counts()[0].any():
            return mask.nearest_to_centroid()
    return tuple(n // 2 for n in masks[0].shape)


def _faces_block(prediction: np.ndarray, ornt: np.ndarray, value: int, faces: tuple[str, ...]):
    """A block of the voxels of ``prediction == value`` on the grid's faces ``faces`` (``i-`` the first slice along
    i, ``k+`` the last along k) as :func:`render_overlay` reorients it, for a :class:`_BlockMask` (``prediction``
    already reoriented by ``ornt``)."""

    def block(index):
        cut = {axis: range(*part.indices(n)) for axis, (part, n) in enumerate(zip(index, prediction.shape))}
        shape = [len(cut[axis]) for axis in range(3)]
        out = np.zeros(shape, bool)
        for face in faces:
            file_axis = "ijk".index(face[0])
            axis, kept = int(ornt[file_axis, 0]), ornt[file_axis, 1] > 0
            at = 0 if face[1] == "-" else prediction.shape[axis] - 1
            at = at if kept else prediction.shape[axis] - 1 - at
            if at not in cut[axis]:
                continue
            into, source = [slice(None)] * 3, list(index)
            into[axis], source[axis] = at - cut[axis].start, at
            out[tuple(into)] = prediction[tuple(source)] == value
        return out

    return block


def render_overlay(
    arrays: CaseArrays,
    labels: list[tuple[str, str]],
    focus_label: str | None = None,
    panel_px: int = 230,
    focus_faces: tuple[str, ...] = (),
    focus_within: str | None = None,
    ct_window: str = DEFAULT_CT_WINDOW,
) -> bytes:
    """PNG of three orthogonal slices through ``focus_label`` (prediction or reference) — through its predicted
    voxels on ``focus_faces`` (``i-``, ``k+``, … in the file's voxel axes) when given and there are some: where it
    touches the border; through its predicted voxels where the reference has ``focus_within`` when given and there are
    some: where it leaks into that label or took its place — cropped around every labelled voxel. ``labels`` is
    [(value, name)] in legend order; colours follow that order.

    Drawn with numpy and Pillow (about twenty times faster than matplotlib): every voxel becomes a block of
    pixels of its size in mm (the largest field of view is ``panel_px`` pixels, or more where a voxel would get
    less than a pixel: the smallest voxel is a pixel or more, up to :data:`MAX_PANEL_PX` pixels, past which a whole
    number of the smallest voxels shares a pixel and the panel's title says so; where that cap cut the panels' one
    scale, each panel gets the scale it alone would, and its own scale bar), the prediction's outline is
    drawn solid just inside each label, the reference's dashed just outside it, so both stay visible where
    they agree; where they disagree the voxels are shaded in the label's colour (predicted only: solid shade;
    reference only: striped). Each panel is titled with the slice as the file numbers it, carries the letters
    of the anatomical directions at its four edges and a scale bar; coronal and axial panels show the patient's
    right on the image's left (radiological convention), the sagittal one anterior on the image's left. A CT in
    Hounsfield units is drawn in the window named ``ct_window`` (one of
    :data:`~medseg.report.overlay_image.CT_WINDOWS_HU`; another name is an :class:`~medseg.errors.InputError`);
    ``arrays`` then records the crop's percentiles and whether they made the image a CT (``drawn_as_ct``).
    """
    import nibabel as nib
    from PIL import Image, ImageDraw, ImageFont

    ct_hu = ct_window_hu(ct_window)  # a name it does not know is refused before any file is read
    affine = _drawn_affine(arrays)
    ornt = nib.orientations.io_orientation(affine)  # row i: (output axis of input axis i, flip)
    spacing = np.empty(3)
    spacing[ornt[:, 0].astype(int)] = np.linalg.norm(affine[:3, :3], axis=0)

    def reorient(array):
        return None if array is None else nib.orientations.apply_orientation(array, ornt)

    prediction, reference = reorient(arrays.prediction), reorient(arrays.reference)
    # the masks are worked a block of slices at a time, never held whole: the union of a 512×512×1000 case and its
    # focus label's mask, with the temporaries that made them, took 1 GB
    axis = _block_axis(prediction)

    def union_block(index):
        inside = prediction[index] > 0
        return inside if reference is None else inside | (reference[index] > 0)

    union = _BlockMask(prediction.shape, union_block, axis)
    masks = []
    if focus_label is not None and focus_faces:
        masks.append(_BlockMask(prediction.shape, _faces_block(prediction, ornt, int(focus_label), focus_faces), axis))
    if focus_label is not None and focus_within is not None and reference is not None:
        def confused_block(index, value=int(focus_label), other=int(focus_within)):
            return (prediction[index] == value) & (reference[index] == other)

        masks.append(_BlockMask(prediction.shape, confused_block, axis))
    if focus_label is not None:
        value = int(focus_label)

        def label_block(index, value=value):
            inside = prediction[index] == value
            return inside if reference is None else inside | (reference[index] == value)

        masks.append(_BlockMask(prediction.shape, label_block, axis))
    masks.append(union)
    centre = _focus(masks)
    box = _box_of(union, spacing, centre)
    shared_px_per_mm = _pixels_per_mm(box, spacing, panel_px)
    # the image is read where it is drawn: the crop box (the contrast window too) and the planes through the
    # centre, which lie in the box unless the focus label is no foreground value
    region = tuple(slice(min(b.start, c), max(b.stop, c + 1)) for b, c in zip(box, centre))
    image, window = _image_planes(arrays, ornt, region, box, centre)
    if image is not None:  # what the report tells of a CT window not used for an image that is no CT
        arrays.image_percentiles, arrays.drawn_as_ct = window, taken_for_ct(window, arrays.modality)
    window = display_window(window, ct_hu, arrays.modality)  # a CT's chosen window, else the crop's percentiles
    colours = [_rgb(colour) for colour in label_colours([value for value, _ in labels])]  # by value, as the legend

    panels = []
    # every panel mirrored left to right: coronal and axial with the patient's right (+R) on the image's left
    # (radiological), sagittal with anterior (+A) on the image's left (facing the viewer's left, as viewers show it)
    for name, axis, (u, v), mirror in (("sagittal", 0, (1, 2), True), ("coronal", 1, (0, 2), True),
                                       ("axial", 2, (0, 1), True)):
        index = [slice(None)] * 3
        index[axis] = centre[axis]
        index[u], index[v] = box[u], box[v]
        px_per_mm = _panel_pixels_per_mm(box, spacing, panel_px, shared_px_per_mm, (u, v))
        groups = (_pixel_groups(box[u], spacing[u], px_per_mm), _pixel_groups(box[v], spacing[v], px_per_mm))
        # a thin stack (3 CT slices across a 330 mm field) would be a strip a few pixels high: stretched to a
        # readable size along that axis, and the title says by how much
        stretch = [max(1, math.ceil(MIN_PANEL_PX / int(r.sum()))) for _, r in groups]
        groups = tuple((starts, r * k) for (starts, r), k in zip(groups, stretch))

        def plane(array, value=None, index=tuple(index), groups=groups, mirror=mirror):
            # (u, v) voxels -> (rows: v upwards, columns: u rightwards, or leftwards where mirrored) pixels; voxels
            # that share a pixel are one: a label's where any of them has it (a one-voxel label stays drawn), the
            # image their mean
            cut = array[index] if value is None else array[index] == value
            for along, (starts, repeats) in enumerate(groups):
                if starts.size < cut.shape[along]:
                    if value is None:
                        sizes = np.diff(np.append(starts, cut.shape[along])).reshape((-1, 1) if along == 0 else (1, -1))
                        cut = np.add.reduceat(cut.astype(np.float32), starts, axis=along) / sizes
                    else:
                        cut = np.logical_or.reduceat(cut, starts, axis=along)
                cut = np.repeat(cut, repeats, axis=along)
            cut = cut.T[::-1]
            return cut[:, ::-1] if mirror else cut

        if image is not None:
            grey = np.clip((plane(image[axis], index=()).astype(np.float32) - window[0]) / (window[1] - window[0]),
                           0, 1)
            rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
        else:
            rgb = np.full((int(groups[1][1].sum()), int(groups[0][1].sum()), 3), 40, np.uint8)
        rows, cols = np.indices(rgb.shape[:2])
        dashes = ((rows + cols) // 4) % 2 == 0
        stripes = ((rows - cols) // 3) % 2 == 0
        for (value, _), colour in zip(labels, colours):
            predicted = plane(prediction, int(value))
            if reference is not None:
                referenced = plane(reference, int(value))
                # where they disagree, shaded: predicted only solid, reference only striped (a one-voxel rim of
                # over-segmentation is otherwise two lines a pixel apart)
                for where in (predicted & ~referenced, referenced & ~predicted & stripes):
                    rgb[where] = (0.55 * rgb[where] + 0.45 * np.asarray(colour)).astype(np.uint8)
                rgb[_outline(referenced, outside=True) & dashes] = colour
            rgb[_outline(predicted, outside=False)] = colour
        # the slice as the file numbers it (a viewer opens that one), and which way the panel looks
        file_axis = int(np.flatnonzero(ornt[:, 0] == axis)[0])
        n = arrays.prediction.shape[file_axis]
        file_index = centre[axis] if ornt[file_axis, 1] > 0 else n - 1 - centre[axis]
        title = [f"{name}, file {'ijk'[file_axis]} {file_index}"]
        if stretch[0] > 1 or stretch[1] > 1:
            title.append(f"(stretched x{max(stretch)})")  # the default font has no ×
        shared = [np.diff(np.append(starts, box[w].stop - box[w].start)) for (starts, _), w in zip(groups, (u, v))]
        most = max(int(sizes.max()) for sizes in shared)
        if most > 1:  # past MAX_PANEL_PX: to scale still, a whole number of the smallest voxels a pixel
            even = all(sizes.size < 2 or sizes[:-1].min() == sizes.max() for sizes in shared if sizes.max() > 1)
            title.append(f"({'' if even else 'up to '}{most} voxels a pixel)")
        # the directions at the left, right, top and bottom edges
        left, right = (_AXIS_LETTERS[u], _OPPOSITE_LETTERS[u]) if mirror else (_OPPOSITE_LETTERS[u], _AXIS_LETTERS[u])
        panels.append((title, rgb, (left, right, _AXIS_LETTERS[v], _OPPOSITE_LETTERS[v]),
                       px_per_mm if stretch[0] == 1 else None))

    font = ImageFont.load_default(size=FONT_PX)
    slots = panel_slots([(title, rgb.shape[1]) for title, rgb, _, _ in panels], font)
    title_px = TITLE_LINE_PX * max(len(title) for title, _, _, _ in panels)
    width = slots[-1][0] + slots[-1][1]
    height = max(p.shape[0] for _, p, _, _ in panels) + title_px
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for (title, rgb, (left, right, up, down), bar_px_per_mm), (x, _) in zip(panels, slots):
        canvas.paste(Image.fromarray(rgb), (x, title_px))
        for line, words in enumerate(title):  # rows 3-15 of each line: clear of the panel
            draw.text((x + 2, TITLE_LINE_PX * line), words, fill=(40, 40, 40), font=font)
        h, w = rgb.shape[:2]
        # white letters outlined in black: the yellow they had was the second label's colour
        letters = {"fill": (255, 255, 255), "stroke_width": 1, "stroke_fill": (0, 0, 0), "font": font}
        draw.text((x + 2, title_px + h // 2 - 7), left, **letters)
        draw.text((x + w - 12, title_px + h // 2 - 7), right, **letters)
        draw.text((x + w // 2 - 4, title_px + 2), up, **letters)
        # the bar measures the columns, which are to scale unless stretched; on a narrow panel its length, written
        # from the left edge, reaches the middle: the bottom letter then goes just right of it
        bar_end = x if bar_px_per_mm is None else _scale_bar(draw, x + 4, title_px + h - 6, w, bar_px_per_mm, font)
        draw.text((min(max(x + w // 2 - 4, bar_end + 4), x + w - 10), title_px + h - 17), down, **letters)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _drawn_affine(arrays: CaseArrays) -> np.ndarray:
    """The affine the overlay orients its panels by: ``arrays``' own, or, where its column for an axis of one voxel
    (a 2D image's slice) is zero, that axis placed along the normal to the other two, 1 mm long, as medseg's NIfTI
    reading places it (nibabel's orientation of a zero column failed on an index out of bounds), noted. An affine
    that places no voxel otherwise is an :class:`~medseg.errors.InputError` naming the segmentation."""
    from medseg.errors import InputError
    from medseg.io.nifti_geometry import flat_axis, flat_axis_filled
    from medseg.volume import singular_affine_text

    affine = np.asarray(arrays.affine, dtype=np.float64)
    axis = flat_axis(affine, arrays.prediction.shape)
    if axis is not None:
        affine = flat_axis_filled(affine, axis, 1.0)
        arrays.notes.append(f"its affine gives the axis of one voxel ({'ijk'[axis]}) no direction: drawn 1 mm thick "
                            "along the normal to the other two")
    problem = singular_affine_text(affine)
    if problem is not None:
        raise InputError(f"{arrays.path or 'the segmentation'}: no overlay can be drawn: {problem}")
    return affine


def panel_slots(panels: list[tuple[list[str], int]], font, gap: int = 8) -> list[tuple[int, int]]:
    """Where each panel goes across the picture, and the width it takes: its own, or its title's where that is
    wider (a narrow panel's title ran into the next one's and was cut off at the edge). ``panels`` holds each
    one's title lines and width in pixels."""
    slots, x = [], 0
    for lines, width in panels:
        width = max(width, *(math.ceil(font.getlength(line)) + 4 for line in lines))
        slots.append((x, width))
        x += width + gap
    return slots


_AXIS_LETTERS = ("R", "A", "S")  # the + direction of each RAS+ axis
_OPPOSITE_LETTERS = ("L", "P", "I")  # its - direction
MIN_PANEL_PX = 60  # a panel side below this is stretched (thin stacks), and says so
MAX_PANEL_PX = 512  # a field of view wider than this in pixels has voxels share a pixel, and says so
TITLE_LINE_PX = 16  # a line of a panel's title
FONT_PX = 13  # titles, orientation letters and scale bars (the 10-px bitmap font was hard to read)


def _scale_bar(draw, x: int, y: int, panel_width: int, px_per_mm: float, font) -> int:
    """A bar of a round length in mm (at most 40 % of the panel), with its length written above it; the column
    just right of what it drew (``x`` where no round length fits)."""
    fits = [mm for mm in (1, 2, 5, 10, 20, 50, 100, 200) if mm * px_per_mm <= 0.4 * panel_width]
    if not fits:
        return x
    mm = fits[-1]
    length = int(round(mm * px_per_mm))
    draw.rectangle((x - 1, y - 1, x + length + 1, y + 2), fill=(0, 0, 0))
    draw.rectangle((x, y, x + length, y + 1), fill=(255, 255, 255))
    text = f"{mm} mm"
    draw.text((x, y - 15), text, fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0), font=font)
    return int(math.ceil(max(x + length + 2, draw.textbbox((x, y - 15), text, font=font, stroke_width=1)[2])))


def _pixels_per_mm(box: list[slice], spacing: np.ndarray, panel_px: int) -> float:
    """The pixels a mm of every panel: the largest field of view in ``panel_px`` pixels, or more where a voxel would
    then be under a pixel (a 512 x 512 CT at 0.8 mm: 1.25 pixels a mm, each voxel a pixel); but a field of view at most
    :data:`MAX_PANEL_PX` pixels (or ``panel_px``, where larger): past it, a whole number of the smallest voxels a
    pixel (a 1024 x 1024 MR drew panels 1024 pixels wide, a 0.01 mm slice spacing 25,600)."""
    field_mm = max((b.stop - b.start) * s for b, s in zip(box, spacing))
    smallest_mm = float(spacing.min())
    px_per_mm = max(panel_px / field_mm, 1.0 / smallest_mm)
    cap = max(MAX_PANEL_PX, panel_px)
    if field_mm * px_per_mm > cap:
        px_per_mm = 1.0 / (smallest_mm * math.ceil(field_mm / (smallest_mm * cap) - 1e-9))
    return px_per_mm


def _panel_pixels_per_mm(box: list[slice], spacing: np.ndarray, panel_px: int, shared: float,
                         axes: tuple[int, int]) -> float:
    """The pixels a mm of the panel across ``axes``: the ``shared`` scale of every panel (:func:`_pixels_per_mm`),
    unless :data:`MAX_PANEL_PX` cut it: then the scale the panel's own field would get, at most the shared one uncut
    and at least ``shared``. On thick slices (0.1 x 0.1 x 5 mm) the tall through-slice field set the cap for all
    three, and a 512-voxel axial panel was drawn 128 pixels wide; each panel has its own scale bar."""
    field_mm = max((b.stop - b.start) * s for b, s in zip(box, spacing))
    uncut = max(panel_px / field_mm, 1.0 / float(spacing.min()))
    if shared >= uncut * (1 - 1e-9):
        return shared
    own = _pixels_per_mm([box[axis] for axis in axes], spacing[list(axes)], panel_px)
    return max(shared, min(uncut, own))


def _pixel_groups(extent: slice, spacing_mm: float, px_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis: the first voxel of each run of voxels drawn as one, and the pixels each run gets. Voxels of a
    pixel or more are each their own run, their edges on rounded mm positions (at least a pixel each); smaller ones
    share a pixel, as many as fit in it."""
    n = extent.stop - extent.start
    scale = spacing_mm * px_per_mm
    if scale >= 1 - 1e-9:
        edges = np.round(np.arange(n + 1) * scale).astype(int)
        return np.arange(n), np.maximum(np.diff(edges), 1)
    pixel = np.floor(np.arange(n) * scale + 1e-6).astype(int)
    starts = np.flatnonzero(np.diff(pixel, prepend=-1) > 0)
    return starts, np.ones(starts.size, int)


def _outline(mask: np.ndarray, outside: bool, width: int = 2) -> np.ndarray:
    """A ``width``-pixel ring just inside (or just outside) ``mask``."""
    from scipy import ndimage as ndi

    if not mask.any():
        return mask
    if outside:
        return ndi.binary_dilation(mask, iterations=width) & ~mask
    return mask & ~ndi.binary_erosion(mask, iterations=width, border_value=1)


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _box_of(union: _BlockMask, spacing: np.ndarray, centre: tuple[int, int, int]) -> list[slice]:
    """The labelled voxels' bounding box (or the centre) with a margin of 30 % of its size and at least
    15 mm, clipped to the grid."""
    counts = union.counts()  # the mask's projections on its axes: the coordinates of every voxel took 24 bytes each
    if counts[0].any():
        spans = [np.flatnonzero(count) for count in counts]
        low, high = np.array([span[0] for span in spans]), np.array([span[-1] for span in spans])
    else:
        low = high = np.array(centre)
    box = []
    for axis in range(3):
        margin_mm = max(15.0, 0.3 * (high[axis] - low[axis] + 1) * spacing[axis])
        margin = int(np.ceil(margin_mm / spacing[axis]))
        box.append(slice(max(int(low[axis]) - margin, 0), min(int(high[axis]) + margin + 1, union.shape[axis])))
    return box


def _image_planes(arrays: CaseArrays, ornt: np.ndarray, region: tuple[slice, ...], box: list[slice],
                  centre: tuple[int, int, int]) -> tuple[list[np.ndarray] | None, tuple[float, float]]:
    """The image's planes through ``centre`` across ``box`` (one per axis of the reoriented grid, 2D) and the
    contrast window over ``box``; an :class:`ImageFile` is read a slab at a time through ``region`` (a
    :class:`SeriesImage` a file at a time), and only the planes are kept."""
    import nibabel as nib

    from medseg.errors import MedsegError

    if isinstance(arrays.image, (ImageFile, ItkImageFile, SeriesImage)):
        shape = arrays.image.shape

        def in_file(parts, axis: int) -> slice:  # file axis ``axis`` of reoriented ``parts`` (ornt: to, flip)
            to, flip = ornt[axis].astype(int)
            part = parts[to]
            return part if flip > 0 else slice(shape[axis] - part.stop, shape[axis] - part.start)

        file_centre = tuple(in_file([slice(c, c + 1) for c in centre], axis).start for axis in range(3))
        try:
            seen = arrays.image.view(tuple(in_file(region, axis) for axis in range(3)),
                                     tuple(in_file(box, axis) for axis in range(3)), file_centre)
        except MedsegError as error:  # a file of the slices drawn that cannot be decoded: left out, as unreadable
            arrays.image = None
            arrays.notes.append(f"image not shown: {error}")
            return None, _window(None, [])
        if seen is not None:
            planes, window = seen
            reoriented = [None] * 3
            for file_axis, plane in enumerate(planes):
                axis = int(ornt[file_axis, 0])
                reoriented[axis] = nib.orientations.apply_orientation(plane, ornt)[
                    tuple(0 if a == axis else slice(None) for a in range(3))]
            return reoriented, window
    image = _image_region(arrays, ornt, region)
    if image is None:
        return None, _window(None, [])
    in_region = [_shift(b, r.start) for b, r in zip(box, region)]
    planes = []
    for axis in range(3):
        index = list(in_region)
        index[axis] = centre[axis] - region[axis].start
        planes.append(image[tuple(index)])
    return planes, _window(image, in_region)


def _image_region(arrays: CaseArrays, ornt: np.ndarray, region: tuple[slice, ...]) -> np.ndarray | None:
    """The image's voxels in ``region`` of the reoriented grid, reoriented; an :class:`ImageFile` is read there only.
    An image file that turns out unreadable is left out, with a note, as :func:`load_case_arrays` leaves it out."""
    import nibabel as nib

    from medseg.errors import MedsegError

    if arrays.image is None:
        return None
    if isinstance(arrays.image, np.ndarray):
        return nib.orientations.apply_orientation(arrays.image, ornt)[region]
    shape = arrays.image.shape
    in_file = []  # ornt row i: (reoriented axis of file axis i, flip)
    for axis, (to, flip) in enumerate(ornt.astype(int)):
        part = region[to]
        in_file.append(part if flip > 0 else slice(shape[axis] - part.stop, shape[axis] - part.start))
    try:
        voxels = arrays.image.read(tuple(in_file))
    except MedsegError as error:
        arrays.image = None
        arrays.notes.append(f"image not shown: {error}")
        return None
    return nib.orientations.apply_orientation(voxels, ornt)
