"""The image under an overlay, read where it is drawn: a NIfTI file (:class:`ImageFile`, its first channel for a
multi-modal model's 4D input), an NRRD or MetaImage file (:class:`ItkImageFile`) or a DICOM series
(:class:`SeriesImage`) on the segmentation's grid, read in the crop the overlay shows, a slab (or a slice's file) at a
time; which reading an input file takes, told from its header (:func:`_image_file`); and the image's contrast window,
the 0.5 and 99.5 percentiles of its voxels in the crop box as ``np.percentile`` finds them (the same numbers, bit for
bit), gathered a slab at a time without holding the voxels (:class:`_WindowValues`, :func:`_window`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["CT_WINDOWS_HU", "CT_WINDOW_HU", "DEFAULT_CT_WINDOW", "ImageFile", "ItkImageFile", "SeriesImage",
           "ct_window_hu", "ct_window_text", "display_window", "read_image_channels", "taken_for_ct"]

# voxels of an image read at once (stored, as float32, and checked: about 11 bytes each for an int16 CT)
_IMAGE_SLAB_VOXELS = 1 << 20
# the most memory the contrast window of a DICOM input takes as counts of stored values, one array of them per
# rescaling of the slices drawn (8 bytes per 16-bit value: 512 KB each); beyond it, the voxels' order (1.5 MB)
_WINDOW_COUNT_BYTES = 4 << 20


class ImageFile:
    """A NIfTI input on the segmentation's grid, read where it is drawn: :func:`~medseg.report.overlay.render_overlay`
    reads the crop it shows, as :func:`~medseg.io.images.read_image` reads it (float32, bit for bit). Read whole as
    float32, a 512×512×800 CT took 0.8 GB of the report's memory to draw three slices of a crop around its labels. With
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
    """An NRRD / MetaImage input on the segmentation's grid, read where it is drawn:
    :func:`~medseg.report.overlay.render_overlay` reads the region it shows
    (:func:`~medseg.io.itk_image.read_itk_region`: an NRRD's bytes, or SimpleITK; float32 as
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


# the CT windows a radiologist reads in, by name: (lowest, highest) HU, from width W and level L as L ∓ W / 2
CT_WINDOWS_HU = {
    "soft-tissue": (-160.0, 240.0),  # W400 L40: an abdomen's organs, muscle and fat
    "bone": (-500.0, 1300.0),  # W1800 L400: cortex and marrow
    "lung": (-1350.0, 150.0),  # W1500 L-600: the parenchyma, airways and vessels
    "brain": (0.0, 80.0),  # W80 L40: grey and white matter
}
DEFAULT_CT_WINDOW = "soft-tissue"
# the soft-tissue window a radiologist reads an abdomen in (width 400, level 40 HU)
CT_WINDOW_HU = CT_WINDOWS_HU[DEFAULT_CT_WINDOW]


def ct_window_hu(name: str) -> tuple[float, float]:
    """The (lowest, highest) HU of the CT window ``name`` (:data:`CT_WINDOWS_HU`); another name is an
    :class:`~medseg.errors.InputError` naming the choices."""
    from medseg.errors import InputError

    if name not in CT_WINDOWS_HU:
        raise InputError(f"CT window {name!r}: give one of {', '.join(CT_WINDOWS_HU)}")
    return CT_WINDOWS_HU[name]


def ct_window_text(name: str) -> str:
    """The window ``name`` as the legend words it: ``bone window, W1800 L400 (−500 to 1300 HU)``."""
    low, high = ct_window_hu(name)
    numbers = f"W{high - low:g} L{(low + high) / 2:g} ({low:g} to {high:g} HU)".replace("-", "\u2212")
    return f"{name} window, {numbers}"


def display_window(percentiles: tuple[float, float], ct_window: tuple[float, float] = CT_WINDOW_HU,
                   modality: str | None = None) -> tuple[float, float]:
    """The grey scale an overlay draws its image in, from the 0.5th and 99.5th percentiles of the crop: a CT in
    Hounsfield units (air, lung or bowel gas in the crop: a low percentile from -500 down to -3100, a scanner's
    padding, and a high one up to 4000) in ``ct_window`` (HU; the soft-tissue :data:`CT_WINDOW_HU` unless the report
    chose another), which tells the organs apart, where its percentiles, air to bone, made every soft tissue one
    grey; any other image (an MR, a z-scored one) by its percentiles. ``modality``: as :func:`taken_for_ct`."""
    low, high = percentiles
    return ct_window if taken_for_ct(percentiles, modality) else (low, high)


def taken_for_ct(percentiles: tuple[float, float], modality: str | None = None) -> bool:
    """Whether a crop whose 0.5th and 99.5th percentiles are ``percentiles`` is taken for a CT in Hounsfield units,
    and drawn in a CT window (:func:`display_window`). Where a record gives the image's ``modality`` (a DICOM series'
    Modality, dcm2niix's JSON), a CT is one whose crop lies in Hounsfield units' range (-3100 to 4000: a crop of soft
    tissue and bone alone too, as a head CT's inside the skull), any other modality none; where nothing says, a crop
    with air or gas in it (its 0.5th percentile from -3100 to -500) and nothing above 4000."""
    low, high = percentiles
    if modality is not None:
        return modality.upper() == "CT" and -3100.0 <= low and high <= 4000.0
    return -3100.0 <= low <= -500.0 and high <= 4000.0


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
