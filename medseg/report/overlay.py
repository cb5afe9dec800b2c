"""Per-case overlay: three orthogonal slices through the structure, with prediction (solid) and reference
(dashed) contours over the image.

Arrays are reoriented to the closest RAS+ axes first, so the panels are sagittal, coronal and axial
whatever the file's voxel order; each panel is drawn in mm, so anisotropic voxels keep their true shape.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.report.case_result import CaseResult
from medseg.report.figures import label_colour

__all__ = ["CaseArrays", "ImageFile", "ItkImageFile", "SeriesImage", "load_case_arrays", "render_overlay"]

log = logging.getLogger(__name__)


class ImageFile:
    """A NIfTI input on the segmentation's grid, read where it is drawn: :func:`render_overlay` reads the crop it
    shows, as :func:`~medseg.io.images.read_image` reads it (float32, bit for bit). Read whole as float32, a
    512×512×800 CT took 0.8 GB of the report's memory to draw three slices of a crop around its labels. With
    ``first_channel``, a multi-modal model's 4D input (``(X, Y, Z, C)``, NIfTI's vector layout ``(X, Y, Z, 1, C)``
    too) whose first channel is drawn: only that channel's voxels are read (a BraTS case was read whole, 143 MB as
    float32, for a quarter of it)."""

    def __init__(self, path: Path, image, first_channel: bool = False):
        self.path, self._image = path, image
        stored = tuple(int(n) for n in image.shape)
        # the region of the first channel beyond the three spatial axes
        self._channel = (slice(0, 1),) * (len(stored) - 3) if first_channel else ()
        self.shape = stored[:3] if first_channel else stored

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The voxels of ``region`` (file voxel order); the whole file is read (and its errors raised, as
        :class:`~medseg.errors.MedsegError`) where the part read is not known to be what reading it whole gives."""
        from medseg.io.images import read_image
        from medseg.io.nifti_voxels import read_float_region

        part = read_float_region(self._image, (*region, *self._channel))
        if part is not None:
            return part.reshape(part.shape[:3]) if self._channel else part
        if self._channel:
            return read_image_channels(self.path).array[region][..., 0]
        return read_image(self.path, warn_skipped=False).array[region]

    def view(self, region: tuple[slice, ...], box: tuple[slice, ...], centre: tuple[int, ...]
             ) -> tuple[list[np.ndarray], tuple[float, float]] | None:
        """What an overlay draws of the file, read a slab at a time through ``region`` (file voxel order): for each
        axis, the plane through ``centre`` across ``box`` (3D, one voxel thick along that axis, float32 as
        :meth:`read` gives it), and the contrast window over ``box`` (float voxels: read twice). None where the file
        is to be read whole (:meth:`read` of the region then gives its values, or its error). The region itself is
        never held: a 512×512×1000 CT whose labels span it took 2.5 GB (stored, float32 and a sorted copy) to draw
        three slices."""
        from medseg.io.nifti_voxels import float_region_slabs, scaled_float32

        if self._channel:  # one channel's region is read at once (:meth:`read`)
            return None
        window = _WindowValues()
        slab_axis = 2 if self._image.dataobj.order == "F" else 0  # as float_region_slabs reads it
        planes = _slab_planes(float_region_slabs(self._image, region, _IMAGE_SLAB_VOXELS), slab_axis, region, box,
                              centre, window)
        if planes is None:
            return None
        if window.second_reading:  # float voxels: their order is found in two readings of the box
            for item in float_region_slabs(self._image, box, _IMAGE_SLAB_VOXELS):
                if item is None:
                    return None
                window.add_again(item[2])
        return planes, window.percentiles(lambda _, stored: scaled_float32(stored, self._image.dataobj))


class ItkImageFile:
    """An NRRD / MetaImage input on the segmentation's grid, read where it is drawn: :func:`render_overlay` reads
    the region it shows (:func:`~medseg.io.itk_image.read_itk_region`: an NRRD's bytes, or SimpleITK; float32 as
    :func:`~medseg.io.images.read_image` reads it, bit for bit). Read whole, a 512×512×300 int16 MetaImage took
    1.2 GB of the report's memory (its voxels, float32 and the file's hash) to draw three slices of a crop."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape = path, tuple(int(n) for n in shape)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The voxels of ``region`` (file voxel order); the whole file is read (and its errors raised, as
        :class:`~medseg.errors.MedsegError`) where the part read is not known to be what reading it whole gives."""
        from medseg.io.images import read_image
        from medseg.io.itk_image import read_itk_region

        part = read_itk_region(self.path, region)
        return part if part is not None else read_image(self.path, warn_skipped=False).array[region]

    def view(self, region: tuple[slice, ...], box: tuple[slice, ...], centre: tuple[int, ...]) -> None:
        """None: the region is read at once (:meth:`read`); teem reads an NRRD of other encodings than raw and gzip
        whole for any part of it, so a slab at a time would read it once per slab."""
        return None


class SeriesImage:
    """A DICOM series input on the segmentation's grid, read where it is drawn: :meth:`view` decodes the files of
    the slices it shows, one at a time, into the float32 voxels :func:`~medseg.io.images.read_image` gives (bit for
    bit). Read whole as float32 (and placed on the whole grid) to draw three slices, a 512×512×600 CT took
    1.2 GB of the report's memory."""

    def __init__(self, grid, series: str | None):
        self.grid, self.series = grid, series
        self.shape = tuple(int(n) for n in grid.shape)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The voxels of ``region``, from the series read whole (its errors raised, as
        :class:`~medseg.errors.MedsegError`)."""
        from medseg.io.images import read_image

        return read_image(self.grid.source, self.series, warn_skipped=False).array[region]

    def view(self, region: tuple[slice, ...], box: tuple[slice, ...], centre: tuple[int, ...]
             ) -> tuple[list[np.ndarray], tuple[float, float]] | None:
        """As :meth:`ImageFile.view`: the planes through ``centre`` across ``box`` and the contrast window over
        ``box``, from the slices (files) of ``region`` decoded one at a time; the window from counts of the stored
        values under each slice's rescaling, or, where the slices drawn are rescaled in so many ways that those
        counts would hold more than :data:`_WINDOW_COUNT_BYTES` (a PET series rescales every slice: 512 KB of counts
        a slice of 16-bit values, 157 MB for 300), from the float32 voxels' order, the box's slices decoded twice.
        None (the series then read whole, and its errors raised there) where the stored values are not integers of
        up to 16 bits, or a rescaling could take them beyond float32."""
        if not self._integers():
            return None
        window = _WindowValues()
        bounds = region[:2]
        scaling = self.grid.scaling()
        rescalings = len(set(scaling[region[2].start:region[2].stop]))
        by_counts = rescalings * 8 << self.grid.header_bits() <= _WINDOW_COUNT_BYTES

        def slabs():
            dtypes = set()
            for k, stored, voxels in self.grid.slices(region[2].start, region[2].stop):
                dtypes.add(stored.dtype)
                if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2 or len(dtypes) > 1:
                    yield None
                    return
                part = voxels[bounds][..., None]
                # the float32 voxels given as the stored values: the window takes their order (read twice)
                yield k - region[2].start, stored[bounds][..., None] if by_counts else part, part

        planes = _slab_planes(slabs(), 2, region, box, centre, window,
                              key=lambda start: scaling[start + region[2].start])
        if planes is None:
            return None
        if window.second_reading:
            for _, _, voxels in self.grid.slices(box[2].start, box[2].stop):
                window.add_again(voxels[box[:2]])

        def scaled(key, stored):
            slope, intercept = key
            return (stored.astype(np.float64) * slope + intercept).astype(np.float32)

        return planes, window.percentiles(scaled)

    def _integers(self) -> bool:
        """Whether the headers say every file stores integers of up to 16 bits, and every slice's rescaling keeps
        them finite as float32 (a whole reading refuses NaN or infinite voxels)."""
        bits = self.grid.header_bits()
        if bits is None or bits > 16:
            return False
        most = float(np.finfo(np.float32).max) / 2
        return all(math.isfinite(slope) and math.isfinite(intercept) and 65536 * abs(slope) + abs(intercept) < most
                   for slope, intercept in self.grid.scaling())


def _slab_planes(slabs, slab_axis: int, region: tuple[slice, ...], box: tuple[slice, ...], centre: tuple[int, ...],
                 window: _WindowValues, key=None) -> list[np.ndarray] | None:
    """What :meth:`ImageFile.view` draws, from ``slabs``: ``(start, stored, part)`` along ``slab_axis`` (``start``
    in ``region``'s voxels; ``stored`` the slab's stored values, ``part`` its float32 voxels, across the whole of
    ``region`` on the other axes), or None where the region is to be read whole. The planes through ``centre``
    across ``box`` (3D, one voxel thick along each axis) are returned; the box's voxels go to ``window``, each slab
    under ``key(start)`` (its rescaling; None: one for all). None where a slab is None."""
    in_region = [_shift(b, r.start) for b, r in zip(box, region)]
    at = [c - r.start for c, r in zip(centre, region)]
    planes = []
    for axis in range(3):
        shape = [b.stop - b.start for b in box]
        shape[axis] = 1
        planes.append(np.empty(shape, np.float32))
    for item in slabs:
        if item is None:
            return None
        start, stored, part = item
        stop = start + part.shape[slab_axis]
        # the slab's share of the box, in the slab's and in the box's voxels
        low, high = max(start, in_region[slab_axis].start), min(stop, in_region[slab_axis].stop)
        in_slab, in_box = list(in_region), [slice(None)] * 3
        in_slab[slab_axis] = slice(low - start, high - start)
        in_box[slab_axis] = slice(low - in_region[slab_axis].start, high - in_region[slab_axis].start)
        if low < high:
            window.add(stored[tuple(in_slab)], part[tuple(in_slab)], None if key is None else key(start))
        for axis in range(3):
            # the plane across the slab axis lies in one slab (in or beside the box); the others cross the box
            if not (start <= at[axis] < stop if axis == slab_axis else low < high):
                continue
            index = list(in_slab)
            index[axis] = slice(at[axis] - (start if axis == slab_axis else 0),
                                at[axis] - (start if axis == slab_axis else 0) + 1)
            target = list(in_box)
            target[axis] = slice(None)
            planes[axis][tuple(target)] = part[tuple(index)]
    return planes


@dataclass
class CaseArrays:
    """A case's label arrays (and image, when it could be read) on one grid."""

    prediction: np.ndarray
    affine: np.ndarray
    image: np.ndarray | ImageFile | ItkImageFile | SeriesImage | None = None
    reference: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # why the image or the reference is not shown, or how it is

    def shown(self) -> str:
        """What an overlay of these arrays draws, for its alternative text."""
        return (f"slices of {'the input' if self.image is not None else 'the grid (no image)'} with the predicted "
                f"labels{' and the reference' if self.reference is not None else ''}")


def load_case_arrays(case: CaseResult, tolerance_mm: float | None = None) -> CaseArrays | None:
    """Read the segmentation, and the input image and reference when they can be found and share its grid (a
    reference holding the same voxels in another order is re-indexed, as scoring does). Grid problems are
    flagged by :func:`medseg.report.checks.check_segmentation` for every case; here they only leave a layer out."""
    from medseg.errors import GeometryError, MedsegError
    from medseg.grid_match import grid_displacement_mm, grid_tolerance_mm, place_onto_grid, reorder_onto_grid
    from medseg.io.dicom import SeriesGrid, read_dicom_grid
    from medseg.io.files import os_reason
    from medseg.io.images import read_image
    from medseg.report.checks import read_case_labels, read_segmentation
    from medseg.volume import Volume

    path = case.segmentation_path()
    if path is None:
        return None
    prediction, affine, source = read_segmentation(case, path)
    arrays = CaseArrays(prediction=prediction, affine=affine)
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(affine)

    def same_grid(shape, other_affine) -> bool:
        return tuple(shape) == prediction.shape and grid_displacement_mm(shape, affine, other_affine) <= tolerance_mm

    image_path = case.input_path()
    modalities = (case.sidecar or {}).get("modalities")
    if isinstance(modalities, list) and len(modalities) > 1 and image_path is not None:
        # a multi-modal model's input: its first modality is drawn (a 4D file's first channel, or nnU-Net's _0000)
        arrays.notes.append(f"image: the first of the input's {len(modalities)} modalities ({modalities[0]}) is "
                            "shown")
    if source is not None:  # a DICOM SEG: its source series, whose headers placed it, is the image
        arrays.image = SeriesImage(source, case.input_series()) if isinstance(source, SeriesGrid) else source.array
    elif image_path is None:
        recorded = (case.sidecar or {}).get("input")
        arrays.notes.append(f"image not shown: {recorded} not found" if recorded else "image not shown: unknown input")
    elif image_path.is_file() and _four_dimensional(image_path, modalities) and not _header_on_grid(
            image_path, lambda shape, other_affine: same_grid(_channel_grid(shape), other_affine)):
        # told from its header, as a 3D input's is: a sidecar naming another 4D image was read whole to be left out
        arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    elif image_path.is_file() and _four_dimensional(image_path, modalities) and (
            lazy := _image_file(image_path, prediction.shape, first_channel=True)) is not None:
        arrays.image = lazy  # its first channel read where drawn
    elif image_path.is_file() and _four_dimensional(image_path, modalities):  # read whole; its first channel drawn
        try:
            volume = read_image_channels(image_path)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(volume.shape, volume.affine):
                arrays.image = np.ascontiguousarray(volume.array[..., 0])
            else:
                arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    elif image_path.is_file() and not _header_on_grid(image_path, same_grid):
        # told from its header, before its voxels are read: a sidecar naming another image (a 4 MB gzip file can
        # declare 16 GiB of float32 voxels) had it read whole, to be left out
        arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    elif image_path.is_file() and (lazy := _image_file(image_path, prediction.shape)) is not None:
        arrays.image = lazy  # read where drawn
    elif image_path.is_dir():  # a DICOM series: placed by its headers, its files decoded where drawn
        try:
            grid = read_dicom_grid(image_path, case.input_series(), warn_skipped=False)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(grid.shape, grid.affine):
                arrays.image = SeriesImage(grid, case.input_series())
            else:
                arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    else:
        try:
            volume = read_image(image_path, case.input_series() if image_path.is_dir() else None, warn_skipped=False)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(volume.shape, volume.affine):
                arrays.image = volume.array
            else:
                arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    reference_path = case.reference_path()
    failure = case.failure or {}
    refused = failure.get("stage") == "evaluate" and failure.get("error_type") != "WorkerDiedError"
    if reference_path is not None and refused:
        # scoring refused this reference (labels the model does not have, another grid): drawing it in the
        # model's colours would present it as comparable
        arrays.notes.append(f"reference not shown: scoring refused {reference_path.name} (see the failure)")
    elif reference_path is not None:
        try:
            reference, reference_affine = read_case_labels(case, reference_path, (prediction.shape, affine, path))
        except Exception as error:  # an unreadable reference is reported on the page, never raised
            log.debug("%s: reference not shown", reference_path, exc_info=True)  # where in the code, at -vv
            why = f"cannot read ({os_reason(error)})" if isinstance(error, OSError) and error.strerror else error
            arrays.notes.append(f"reference not shown: {reference_path.name}: {why}")
        else:
            # a box of the grid (3D Slicer's cropped segmentation) zero-padded where scoring did so; a reference
            # cropped since it was scored is not drawn as the one scored
            box = (case.metrics or {}).get("reference_sub_box")
            place = place_onto_grid if isinstance(box, dict) and list(box.get("shape") or ()) == list(
                np.shape(reference)) else reorder_onto_grid
            try:
                moved = place(Volume(reference, reference_affine, source=reference_path),
                              Volume(prediction, affine, source=path), tolerance_mm)
            except GeometryError:  # a box reaching past the grid that now labels voxels out there
                moved = None
            if moved is not None and same_grid(moved.shape, moved.affine):
                arrays.reference = moved.array
            else:
                arrays.notes.append(f"reference not shown: {reference_path.name} is not on the segmentation's grid")
    elif case.metrics is not None:
        arrays.notes.append(f"reference not shown: {case.metrics.get('reference')} not found")
    return arrays


def read_image_channels(path: Path):
    """A multi-channel NIfTI input as :func:`~medseg.io.nifti.read_nifti` reads it for a multi-modal model."""
    from medseg.io.nifti import read_nifti

    return read_nifti(path, hash_input=False, channels=True)


def _channel_grid(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The grid of a multi-channel image's header shape: its first three axes (NIfTI's vector layout too)."""
    from medseg.io.image_shape import channel_shape

    shape = channel_shape(shape)
    return tuple(shape[:3]) if len(shape) == 4 else tuple(shape)


def _four_dimensional(path: Path, modalities) -> bool:
    """Whether ``path`` is a multi-modal model's 4D input (its sidecar records the model's ``modalities``; its header
    has a fourth axis longer than 1)."""
    from medseg.errors import MedsegError
    from medseg.io.image_shape import channel_shape
    from medseg.io.images import read_grid

    if not isinstance(modalities, list) or len(modalities) < 2:
        return False
    try:
        return len(channel_shape(read_grid(path)[0])) == 4  # NIfTI's vector layout (X, Y, Z, 1, C) too
    except (MedsegError, OSError, ValueError):
        return False


def _header_on_grid(path: Path, same_grid) -> bool:
    """Whether an image file's header puts it on the segmentation's grid; True where the header cannot be read
    (reading the image then names the problem on the page)."""
    from medseg.errors import MedsegError
    from medseg.io.images import read_grid

    try:
        shape, affine = read_grid(path)
        return bool(same_grid(shape, affine))
    except (MedsegError, OSError, ValueError, ArithmeticError, np.linalg.LinAlgError):
        return True


def _image_file(path: Path, shape: tuple[int, ...], first_channel: bool = False) -> ImageFile | ItkImageFile | None:
    """``path`` to be read in part, or None where it is to be read whole (its header found on the grid): a 3D
    NIfTI (or Analyze) file of grey-level voxels whose header nibabel reads as :func:`read_image` would, or an NRRD /
    MetaImage file (SimpleITK reads the part drawn). ``first_channel``: a multi-modal model's 4D NIfTI input, whose
    first channel is drawn."""
    import nibabel as nib

    from medseg.io.itk_image import is_itk_name
    from medseg.io.nifti_files import check_voxels_fit, load_image

    if is_itk_name(path):  # its header, read by SimpleITK, was found on the grid
        return ItkImageFile(path, shape) if not first_channel else None
    try:
        image = load_image(path, mmap=False)  # mapped, a file rewritten while in use ends the process
        check_voxels_fit(path, image)
        # one file: its voxels follow the header (an offset into it is refused by read_image)
        inside = isinstance(image, nib.Nifti1Image) and (float(getattr(image.dataobj, "offset", 0))
                                                         < image.header.single_vox_offset)
        grid = _channel_grid(image.shape) if first_channel else tuple(image.shape)
        if tuple(grid) != tuple(shape) or np.dtype(image.get_data_dtype()).kind not in "biuf" or inside:
            return None
    except Exception:  # anything nibabel cannot read: reading it whole names the problem
        return None
    return ImageFile(path, image, first_channel)


# voxels of a mask whose distances to its centroid are held at once (8 bytes each, twice), and of an image read at
# once (stored, as float32, and checked: about 11 bytes each for an int16 CT)
_FOCUS_BLOCK_VOXELS = 1 << 20
_IMAGE_SLAB_VOXELS = 1 << 20
# the most memory the contrast window of a DICOM input takes as counts of stored values, one array of them per
# rescaling of the slices drawn (8 bytes per 16-bit value: 512 KB each); beyond it, the voxels' order (1.5 MB)
_WINDOW_COUNT_BYTES = 4 << 20


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
) -> bytes:
    """PNG of three orthogonal slices through ``focus_label`` (prediction or reference) — through its predicted
    voxels on ``focus_faces`` (``i-``, ``k+``, … in the file's voxel axes) when given and there are some: where it
    touches the border — cropped around every labelled voxel. ``labels`` is [(value, name)] in legend order;
    colours follow that order.

    Drawn with numpy and Pillow (about twenty times faster than matplotlib): every voxel becomes a block of
    pixels of its size in mm (the largest field of view is ``panel_px`` pixels), the prediction's outline is
    drawn solid just inside each label, the reference's dashed just outside it, so both stay visible where
    they agree; where they disagree the voxels are shaded in the label's colour (predicted only: solid shade;
    reference only: striped). Each panel is titled with the slice as the file numbers it, carries the letters
    of the directions it looks along (right and up) and a scale bar.
    """
    import nibabel as nib
    from PIL import Image, ImageDraw, ImageFont

    ornt = nib.orientations.io_orientation(arrays.affine)  # row i: (output axis of input axis i, flip)
    spacing = np.empty(3)
    spacing[ornt[:, 0].astype(int)] = np.linalg.norm(arrays.affine[:3, :3], axis=0)

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
    if focus_label is not None:
        value = int(focus_label)

        def label_block(index, value=value):
            inside = prediction[index] == value
            return inside if reference is None else inside | (reference[index] == value)

        masks.append(_BlockMask(prediction.shape, label_block, axis))
    masks.append(union)
    centre = _focus(masks)
    box = _box_of(union, spacing, centre)
    px_per_mm = panel_px / max((b.stop - b.start) * s for b, s in zip(box, spacing))
    # the image is read where it is drawn: the crop box (the contrast window too) and the planes through the
    # centre, which lie in the box unless the focus label is no foreground value
    region = tuple(slice(min(b.start, c), max(b.stop, c + 1)) for b, c in zip(box, centre))
    image, window = _image_planes(arrays, ornt, region, box, centre)
    colours = [_rgb(label_colour(position)) for position in range(len(labels))]

    panels = []
    for name, axis, (u, v) in (("sagittal", 0, (1, 2)), ("coronal", 1, (0, 2)), ("axial", 2, (0, 1))):
        index = [slice(None)] * 3
        index[axis] = centre[axis]
        index[u], index[v] = box[u], box[v]
        repeats = (_pixel_counts(box[u], spacing[u], px_per_mm), _pixel_counts(box[v], spacing[v], px_per_mm))
        # a thin stack (3 CT slices across a 330 mm field) would be a strip a few pixels high: stretched to a
        # readable size along that axis, and the title says by how much
        stretch = [max(1, math.ceil(MIN_PANEL_PX / int(r.sum()))) for r in repeats]
        repeats = (repeats[0] * stretch[0], repeats[1] * stretch[1])

        def plane(array, index=tuple(index), repeats=repeats):
            # (u, v) voxels -> (rows: v upwards, columns: u) pixels
            cut = np.repeat(np.repeat(array[index], repeats[0], axis=0), repeats[1], axis=1)
            return cut.T[::-1]

        if image is not None:
            grey = np.clip((plane(image[axis], ()).astype(np.float32) - window[0]) / (window[1] - window[0]), 0, 1)
            rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
        else:
            rgb = np.full((int(repeats[1].sum()), int(repeats[0].sum()), 3), 40, np.uint8)
        rows, cols = np.indices(rgb.shape[:2])
        dashes = ((rows + cols) // 4) % 2 == 0
        stripes = ((rows - cols) // 3) % 2 == 0
        for (value, _), colour in zip(labels, colours):
            predicted = plane(prediction) == int(value)
            if reference is not None:
                referenced = plane(reference) == int(value)
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
        panels.append((title, rgb, (_AXIS_LETTERS[u], _AXIS_LETTERS[v]), stretch[0] == 1))

    font = ImageFont.load_default(size=FONT_PX)
    slots = panel_slots([(title, rgb.shape[1]) for title, rgb, _, _ in panels], font)
    title_px = TITLE_LINE_PX * max(len(title) for title, _, _, _ in panels)
    width = slots[-1][0] + slots[-1][1]
    height = max(p.shape[0] for _, p, _, _ in panels) + title_px
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for (title, rgb, (right, up), to_scale), (x, _) in zip(panels, slots):
        canvas.paste(Image.fromarray(rgb), (x, title_px))
        for line, words in enumerate(title):  # rows 3-15 of each line: clear of the panel
            draw.text((x + 2, TITLE_LINE_PX * line), words, fill=(40, 40, 40), font=font)
        h, w = rgb.shape[:2]
        # white letters outlined in black: the yellow they had was the second label's colour
        letters = {"fill": (255, 255, 255), "stroke_width": 1, "stroke_fill": (0, 0, 0), "font": font}
        draw.text((x + w - 12, title_px + h // 2 - 7), right, **letters)  # + direction of the columns
        draw.text((x + w // 2 - 4, title_px + 2), up, **letters)  # + direction of the rows
        if to_scale:  # the bar measures the columns, which are to scale unless stretched
            _scale_bar(draw, x + 4, title_px + h - 6, w, px_per_mm, font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


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
MIN_PANEL_PX = 60  # a panel side below this is stretched (thin stacks), and says so
TITLE_LINE_PX = 16  # a line of a panel's title
FONT_PX = 13  # titles, orientation letters and scale bars (the 10-px bitmap font was hard to read)


def _scale_bar(draw, x: int, y: int, panel_width: int, px_per_mm: float, font) -> None:
    """A bar of a round length in mm (at most 40 % of the panel), with its length written above it."""
    fits = [mm for mm in (1, 2, 5, 10, 20, 50, 100, 200) if mm * px_per_mm <= 0.4 * panel_width]
    if not fits:
        return
    mm = fits[-1]
    length = int(round(mm * px_per_mm))
    draw.rectangle((x - 1, y - 1, x + length + 1, y + 2), fill=(0, 0, 0))
    draw.rectangle((x, y, x + length, y + 1), fill=(255, 255, 255))
    draw.text((x, y - 15), f"{mm} mm", fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0), font=font)


def _pixel_counts(extent: slice, spacing_mm: float, px_per_mm: float) -> np.ndarray:
    """Pixels per voxel along one axis so that voxel edges land on rounded mm positions (at least 1)."""
    edges = np.round(np.arange(extent.stop - extent.start + 1) * spacing_mm * px_per_mm).astype(int)
    return np.maximum(np.diff(edges), 1)


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


def _shift(index: int | slice, by: int) -> int | slice:
    return slice(index.start - by, index.stop - by) if isinstance(index, slice) else index - by


_PERCENTILES = (0.5, 99.5)  # the contrast window: these percentiles of the image's voxels in the crop box


class _WindowValues:
    """The voxels whose percentiles make the contrast window, gathered a slab at a time: an image stored as integers
    of up to 16 bits as counts of its stored values under each rescaling (a 512×512×1000 CT in 512 KB), any other
    by the float32 values' order (:class:`_FloatOrder`, which takes a second reading of the slabs)."""

    def __init__(self):
        self.filled = 0
        self.counts: dict[object, np.ndarray] | None = None  # rescaling: counts of each stored value
        self.stored_dtype: np.dtype | None = None
        self.floats: _FloatOrder | None = None

    def add(self, stored: np.ndarray, part: np.ndarray, key=None) -> None:
        """A slab's ``stored`` values and their float32 voxels ``part``, rescaled by ``key`` (one for all: None)."""
        if self.floats is None and self.counts is None:
            self.stored_dtype = stored.dtype
            if stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2:
                self.counts = {}
            else:
                self.floats = _FloatOrder()
        if self.counts is not None and stored.size:
            if key not in self.counts:
                self.counts[key] = np.zeros(1 << (8 * self.stored_dtype.itemsize), np.int64)
            low = int(stored.min())
            found = np.bincount(stored.ravel().astype(np.int32) - low)  # as long as the slab's range of values
            at = low - int(np.iinfo(self.stored_dtype).min)
            self.counts[key][at:at + found.size] += found
        elif self.floats is not None:
            self.floats.first(part)
        self.filled += part.size

    @property
    def second_reading(self) -> bool:
        """Whether the slabs are to be given again, to :meth:`add_again`."""
        return self.floats is not None and self.filled > 0

    def add_again(self, part: np.ndarray) -> None:
        self.floats.second(part)

    def percentiles(self, scaled) -> tuple[float, float]:
        """The window, as :func:`np.percentile` finds it in the float32 voxels (the same numbers, bit for bit);
        ``scaled(key, stored)`` gives the float32 voxels of stored values under a slab's rescaling ``key``."""
        if not self.filled:
            return _window_of(None)
        if self.floats is not None:
            return _window_of(self.floats.percentiles(_PERCENTILES))
        values, counts = [], []
        for key, counted in self.counts.items():
            found = np.flatnonzero(counted)
            stored = (found + int(np.iinfo(self.stored_dtype).min)).astype(self.stored_dtype)
            values.append(scaled(key, stored))  # scaled as the voxels were: in order, unless the slope is negative
            counts.append(counted[found])
        values, counts = np.concatenate(values), np.concatenate(counts)
        order = np.argsort(values, kind="stable")
        return _window_of(_percentiles_of_counts(values[order], counts[order], _PERCENTILES))


class _FloatOrder:
    """Exact order statistics of float32 values given a slab at a time, twice, without holding them: first counts of
    the top 16 bits of keys that sort as the values do, then, in the bins the wanted ranks fall in, counts of the low
    16 bits. 1.5 MB at most, where the values of a 512×512×1000 crop took 1 GB (and np.percentile's copy as much)."""

    def __init__(self):
        self.top = np.zeros(1 << 16, np.int64)
        self.low: dict[int, np.ndarray] = {}
        self.n = 0

    @staticmethod
    def keys(values: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(values, dtype=np.float32).ravel().view(np.uint32)
        return np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))  # negative: all bits flipped; else the sign

    def first(self, values: np.ndarray) -> None:
        self.top += np.bincount(self.keys(values) >> 16, minlength=1 << 16)
        self.n += values.size

    def _bins(self, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ends = np.cumsum(self.top)
        bins = np.searchsorted(ends, ranks, "right")
        return bins, ranks - np.where(bins > 0, ends[bins - 1], 0)

    def second(self, values: np.ndarray) -> None:
        if not self.low:
            self.low = {int(b): np.zeros(1 << 16, np.int64) for b in self._bins(self._wanted())[0]}
        keys = self.keys(values)
        top = keys >> 16
        for b, counts in self.low.items():
            counts += np.bincount(keys[top == b] & 0xFFFF, minlength=1 << 16)

    def _wanted(self) -> np.ndarray:
        return np.concatenate(_positions(self.n, _PERCENTILES)[:2])

    def value(self, ranks: np.ndarray) -> np.ndarray:
        bins, within = self._bins(ranks)
        keys = np.array([(int(b) << 16) | int(np.searchsorted(np.cumsum(self.low[int(b)]), r, "right"))
                         for b, r in zip(bins, within)], np.uint32)
        bits = np.where(keys >> 31, keys & np.uint32(0x7FFFFFFF), ~keys)
        return bits.view(np.float32)

    def percentiles(self, q) -> np.ndarray:
        return _percentiles(self.n, self.value, q)


def _positions(n: int, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted positions np.percentile (linear) interpolates between for ``q`` of ``n`` values, and the weight."""
    virtual = (n - 1) * np.true_divide(np.asanyarray(q, dtype=np.float64), 100)
    previous = np.floor(virtual)
    following = previous + 1
    previous[virtual >= n - 1] = following[virtual >= n - 1] = -1
    previous[virtual < 0] = following[virtual < 0] = 0
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    gamma = np.asanyarray(virtual - previous)
    return np.where(previous < 0, n + previous, previous), np.where(following < 0, n + following, following), gamma


def _percentiles(n: int, value_at, q) -> np.ndarray:
    """``np.percentile`` (linear) of ``n`` values whose sorted values ``value_at(positions)`` gives (float32),
    computed as numpy computes it (its ``_quantile`` and ``_lerp``): the same numbers, bit for bit."""
    previous, following, gamma = _positions(n, q)
    a, b = value_at(previous), value_at(following)
    difference = b - a
    result = np.add(a, difference * gamma)
    np.subtract(b, difference * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe",
                dtype=type(result.dtype))
    return result


def _percentiles_of_counts(values: np.ndarray, counts: np.ndarray, q) -> np.ndarray:
    """``np.percentile`` of the sorted ``values`` each repeated ``counts`` times (see :func:`_percentiles`)."""
    ends = np.cumsum(counts)  # sorted position of each value's last copy, plus one
    return _percentiles(int(ends[-1]), lambda at: values[np.searchsorted(ends, at, "right")], q)


def _window_of(percentiles) -> tuple[float, float]:
    if percentiles is None:
        return 0.0, 1.0
    low, high = percentiles
    return float(low), float(high if high > low else low + 1)


def _window(image: np.ndarray | None, box: list[slice]) -> tuple[float, float]:
    """The 0.5 and 99.5 percentiles of ``image`` in ``box``, as np.percentile finds them; float32 voxels are taken a
    block at a time, without np.percentile's copy of them all."""
    if image is None:
        return 0.0, 1.0
    values = image[tuple(box)]
    if not values.size:
        return _window_of(None)
    if values.dtype != np.float32:
        return _window_of(np.percentile(values, _PERCENTILES))
    order = _FloatOrder()
    step = max(1, _IMAGE_SLAB_VOXELS // max(1, values[0].size))
    for reading in (order.first, order.second):
        for start in range(0, values.shape[0], step):
            reading(values[start:start + step])
    return _window_of(order.percentiles(_PERCENTILES))
