"""The MONAI transforms a model package declares, and their exact inversion onto the input grid."""

from __future__ import annotations

import functools
import logging
import re

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    Invertd,
    NormalizeIntensity,
    NormalizeIntensityd,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)

from medseg.array_order import c_order
from medseg.errors import InputError
from medseg.memory_guard import (  # torch-free, run on a header before the voxels are read; importable from here
    _RAS_LABELS,
    _spacings_text,
    check_grid_size,
    check_resampling_size,
    grid_memory,
    grid_model_shape,
    model_space_shape,
    warn_over_cgroup,
)
from medseg.slab_resample import slab_resampling
from medseg.volume import Volume

log = logging.getLogger(__name__)

__all__ = ["apply_transforms", "build_transforms", "check_finite", "check_grid_size", "check_not_constant",
           "check_resampling_size", "check_slices_fit", "grid_memory", "grid_model_shape", "invert_labels",
           "label_like_note", "model_space_shape", "spatial_transforms", "to_model_space", "warn_over_cgroup",
           "without_voxels"]


def spatial_transforms(pre: dict, keys: tuple[str, ...] = ("image",), modes=("bilinear",)) -> list:
    """Orientation and spacing transforms (invertible) for ``keys``."""
    transforms: list = []
    if pre.get("orientation"):
        transforms.append(Orientationd(keys=keys, axcodes=pre["orientation"], labels=_RAS_LABELS))
    if pre.get("spacing_mm"):
        pixdim = [float(v) if v else 0.0 for v in pre["spacing_mm"]]  # 0 keeps that axis' spacing
        if any(pixdim):
            # float32 resampling (MONAI's default is float64): a 512×512×150 CT resampled to 1 mm peaked at 1.7 GB
            # over the input instead of 0.6 GB; intensities differ by about 5e-5 of their range
            transforms.append(Spacingd(keys=keys, pixdim=pixdim, mode=modes, padding_mode="border",
                                       dtype=torch.float32))
    return transforms


class InPlaceZScore(NormalizeIntensity):
    """MONAI's channel-wise z-score computed in the channel's own memory.

    MONAI computes ``(x - mean) / std`` into two new full-size tensors and then copies the result back into the
    image (channel-wise it writes into its input anyway): two transient copies of the volume, 300 MB for a
    512×512×150 CT. ``sub_`` and ``div_`` with the same Python scalars run the same float32 kernels, so every
    value is bit for bit MONAI's. Masked (``nonzero``) or given subtrahend/divisor fall back to MONAI.
    """

    def _normalize(self, img, sub=None, div=None):
        if (self.nonzero or not self.channel_wise or sub is not None or div is not None
                or not isinstance(img, torch.Tensor) or img.dtype != torch.float32):
            return super()._normalize(img, sub, div)
        mean, std = self._mean(img), self._std(img)
        return img.sub_(mean).div_(std if std != 0.0 else 1.0)


class InPlaceZScored(NormalizeIntensityd):
    """:class:`NormalizeIntensityd` (channel-wise) with :class:`InPlaceZScore` as its array transform."""

    def __init__(self, keys, nonzero: bool = False) -> None:
        super().__init__(keys=keys, nonzero=nonzero, channel_wise=True)
        self.normalizer = InPlaceZScore(nonzero=nonzero, channel_wise=True)


def intensity_transform(pre: dict, key: str = "image"):
    """The intensity normalisation declared in ``pre['intensity']``, or None."""
    spec = pre["intensity"]
    if spec["kind"] == "zscore":
        return InPlaceZScored(keys=key, nonzero=spec.get("nonzero", False))
    if spec["kind"] == "window":
        return ScaleIntensityRanged(keys=key, a_min=spec["min"], a_max=spec["max"], b_min=0.0, b_max=1.0, clip=True)
    return None


def build_transforms(pre: dict, with_label: bool = False, channels: int = 1) -> Compose:
    """Channel-first, orientation, spacing and intensity transforms for ``image`` (and ``label``). ``channels`` > 1:
    the image is ``(X, Y, Z, C)``, its modalities on the last axis, each normalised on its own (z-score is
    channel-wise; a window applies to each channel alike)."""
    keys = ("image", "label") if with_label else ("image",)
    modes = ("bilinear", "nearest") if with_label else ("bilinear",)
    if channels > 1:
        transforms = [EnsureChannelFirstd(keys="image", channel_dim=-1)]
        if with_label:
            transforms.append(EnsureChannelFirstd(keys="label", channel_dim="no_channel"))
    else:
        transforms = [EnsureChannelFirstd(keys=keys, channel_dim="no_channel")]
    transforms += spatial_transforms(pre, keys, modes)
    intensity = intensity_transform(pre)
    if intensity is not None:
        transforms.append(intensity)
    return Compose(transforms)


def check_slices_fit(volume: Volume, pre: dict, axes: list[int]) -> None:
    """Refuse a volume one voxel thick across the model's slices (a 2D image in another plane than the one the
    model segments): each slice would be a strip one voxel wide, and the labels nonsense."""
    model_shape = model_space_shape(volume, pre)
    for axis in axes:
        thin = [a for a in range(3) if a != axis and model_shape[a] == 1]
        if thin and min(volume.shape) > 1:  # a volume, made thin by its voxel size
            spacing, wanted = _spacings_text(volume, pre)
            extent = " × ".join(f"{n * v:.3g}" for n, v in zip(volume.shape, volume.spacing_mm))
            raise InputError(f"{volume.source}: its {'×'.join(map(str, volume.shape))} voxels of {spacing} mm span "
                             f"{extent} mm, {'×'.join(map(str, model_shape))} voxels of the model's "
                             f"{wanted or 'own'} mm, too thin to segment slices across axis {axis}; give a thicker "
                             "volume, or check the voxel size in the header")
        if thin:
            names = "RAS" if pre.get("orientation") else "ijk"
            raise InputError(f"{volume.source}: one voxel thick along model-space axis {thin[0]} ({names[thin[0]]}; "
                             f"{'×'.join(map(str, model_shape))} in model space), but the model segments slices "
                             f"across axis {axis} ({names[axis]}); give a volume, or a 2D image in the model's slice "
                             "plane")




def check_not_constant(volume: Volume, nothing: str = "there is nothing to segment",
                       intensity: dict | None = None) -> None:
    """Refuse an image whose voxels all hold one value (a blank or failed export): normalised, it is the same input
    everywhere, and the model's answer (often one label for the whole volume) says nothing about it; a network
    trained on it learns nothing from it. So is one whose voxels all lie outside ``intensity``'s window (the
    package's ``preprocessing.intensity``), which clips them all to one value: an MR given a CT window. ``nothing``:
    what that means for the caller."""
    array = volume.array
    channels = [array[..., index] for index in range(volume.channels)] if volume.channels > 1 else [array]
    for index, channel in enumerate(channels):
        if not channel.size:
            continue
        lowest, highest = float(channel.min()), float(channel.max())
        which = (f" of channel {index} (modality {index + 1} of {volume.channels})" if volume.channels > 1 else "")
        if lowest == highest:  # a blank modality: each is normalised on its own, and one of them says nothing
            raise InputError(f"{volume.source}: every voxel{which} holds {float(channel.flat[0]):g}: {nothing} (a "
                             "blank or failed export?)")
        if (intensity or {}).get("kind") == "window":
            low, high = intensity["min"], intensity["max"]
            side = "below" if highest <= low else "above" if lowest >= high else None
            if side is not None:
                raise InputError(f"{volume.source}: every voxel{which} lies {side} the intensity window "
                                 f"{low:g}..{high:g} of preprocessing.intensity (its values run {lowest:.4g} to "
                                 f"{highest:.4g}), so all of them become one value: {nothing} (a window meant for "
                                 "other images, or a wrong scaling in the header?)")


def label_like_note(volume: Volume, sample: int = 1 << 20, most: int = 16) -> str | None:
    """What makes ``volume`` look like a label image rather than a scan — only a few small whole numbers, 0 among
    them (judged on about ``sample`` voxels spread over the volume) — or None. A label file given as the input
    (swapped image and label folders, a sheet's columns the wrong way round) is otherwise segmented like any scan."""
    array = volume.array
    if not array.size or array.dtype.kind not in "biuf":
        return None
    # the same stride along every axis: one stride over the stored order could land on one face (all air)
    step = max(1, round((array.size / sample) ** (1 / array.ndim)))
    values = np.unique(array[tuple(slice(None, None, step) for _ in range(array.ndim))])
    if values.size > most or values.min() != 0 or values.max() > 255 or not np.all(values == np.round(values)):
        return None
    shown = ", ".join(f"{v:g}" for v in values.astype(float))
    return f"its voxels hold only the values {shown} (a sample across the volume): a label image given as the input?"


def to_model_space(volume: Volume, transforms: Compose, release_voxels: bool = False) -> dict:
    """Apply ``transforms`` to ``volume``; the result's ``image`` is a (1, X, Y, Z) MetaTensor, and ``volume.array``
    is left as it was (unless ``release_voxels``). A transform's
    failure is one line naming the input, the transform and the cause (MONAI wraps it as "applying transform
    <object at 0x…>").

    With ``release_voxels`` the volume hands its voxels over: ``volume.array`` becomes a placeholder of the same
    shape and dtype that holds no data (it reads as zeros), so that the input is not kept in memory beside its
    model-space copy; shape, affine, header and source stay usable for the outputs. NIfTI voxels come in Fortran
    order, so the C-ordered copy the transforms need is a second full volume until then.
    """
    peak = _abs_peak(volume.array)  # now: normalising works in place, and the voxels may be released
    # the input dict is made in a call of its own: no local here keeps the C-ordered copy alive after the first step
    data = apply_transforms(transforms, _transform_input(volume, release_voxels), volume.source, "preprocessing")
    check_finite(data["image"], volume, peak)
    return data


def _transform_input(volume: Volume, release_voxels: bool) -> dict:
    """``{"image": MetaTensor}`` of ``volume``'s voxels in C order, the volume's own array released if asked; kept,
    it is never the array the transforms write into (a C-ordered float32 array, as a caller's own, would be
    z-scored in place). The copy into C order is made a band of planes at a time (:mod:`medseg.array_order`:
    ``np.ascontiguousarray`` of a Fortran-ordered 512×512×300 CT took 1.4-2.1 s of CPU, 0.2 s so)."""
    array = c_order(volume.array)
    if release_voxels:
        volume.array = _released(volume.array)
    elif np.may_share_memory(array, volume.array):
        array = array.copy()
    return {"image": MetaTensor(torch.from_numpy(array), affine=torch.from_numpy(volume.affine))}


def _abs_peak(array: np.ndarray) -> float:
    """The largest absolute value, without the full-size temporary of ``np.abs`` (nor int16's overflow of it)."""
    if not array.size:
        return 0.0
    return max(abs(float(array.min())), abs(float(array.max())))


def _released(array: np.ndarray) -> np.ndarray:
    """A read-only array of ``array``'s shape and dtype backed by one zero: a volume whose voxels were handed over."""
    return np.broadcast_to(np.zeros((), dtype=array.dtype), array.shape)


def without_voxels(data: dict) -> dict:
    """``data`` with its model-space image reduced to what :func:`invert_labels` reads (its meta data and applied
    operations), so that the float32 volume is not held while the labels are inverted (beside a resampling grid)."""
    image = data["image"]
    stub = MetaTensor(torch.empty(0, dtype=image.dtype), meta=dict(image.meta))
    stub.applied_operations = list(image.applied_operations)
    return {"image": stub}


def apply_transforms(transforms: Compose, data: dict, source, stage: str = "preprocessing") -> dict:
    """``transforms`` one at a time (as Compose runs them): each step's input is freed as soon as its output exists,
    where one Compose call holds its argument, a full copy of the volume, until the last transform is done. A
    failure is one line naming ``source`` (:class:`InputError`)."""
    with slab_resampling():  # MONAI's resampling, with its sampling grid made a slab at a time
        for index in range(len(transforms.transforms)):
            data = _apply(functools.partial(transforms, start=index, end=index + 1), data, source, stage)
    return data


def _apply(transform, data: dict, source, stage: str) -> dict:
    try:
        return transform(data)
    except (RuntimeError, MemoryError) as error:
        cause, name = error, None
        while "applying transform" in str(cause) and cause.__cause__ is not None:
            found = re.search(r"<([\w.]+) object at ", str(cause))  # "applying transform <monai...Spacingd object at"
            name = found.group(1).rsplit(".", 1)[-1] if found else name
            cause = cause.__cause__
        what = " ".join(str(cause).split()) or type(cause).__name__
        where = f" in {name}" if name else ""
        raise InputError(f"{source}: {stage} failed{where} ({type(cause).__name__}: {what})") from error


def check_finite(image: torch.Tensor, volume: Volume, peak: float | None = None) -> None:
    """Refuse a volume whose preprocessed ``image`` holds NaN or infinity (intensities that overflow float32).

    ``peak`` is the volume's largest absolute intensity, when taken before transforms that work in place."""
    if not _all_finite(image):
        if peak is None:
            peak = float(np.abs(volume.array).max()) if volume.array.size else 0.0
        raise InputError(f"{volume.source}: preprocessing gave non-finite values (intensities up to {peak:.3g} "
                         "overflow float32); rescale the image")


def _all_finite(image: torch.Tensor, block_voxels: int = 1 << 22) -> bool:
    """``torch.isfinite(image).all()`` a block of planes (along dim 1) at a time: on a whole volume it makes a
    float32 ``|x|`` and two boolean volumes, 260 MB beside a 512×512×150 CT."""
    image = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image)
    if image.ndim < 2 or image.numel() == 0:
        return bool(torch.isfinite(image).all())
    step = max(1, block_voxels * image.shape[1] // image.numel())
    return all(bool(torch.isfinite(block).all()) for block in torch.split(image, step, dim=1))


def invert_labels(labels: torch.Tensor, data: dict, transforms: Compose, shape: tuple[int, ...],
                  source: object = "the labels") -> np.ndarray:
    """Bring model-space ``labels`` (X', Y', Z') back onto the input grid with nearest interpolation; ``source``
    names the input in errors."""
    if not data["image"].applied_operations:  # no orientation or spacing to undo: the labels are on the input grid
        result = np.asarray(labels.detach().cpu().numpy())
        if tuple(result.shape) != tuple(shape):
            raise RuntimeError(f"labels have shape {result.shape}, expected {shape}")
        return result
    pred = MetaTensor(labels[None], meta=dict(data["image"].meta))
    pred.applied_operations = list(data["image"].applied_operations)
    invert = Invertd(keys="pred", transform=transforms, orig_keys="image", nearest_interp=True)
    with slab_resampling():
        inverted = _apply(invert, {"pred": pred, "image": data["image"]}, source, "inverting the labels")["pred"]
    result = np.asarray(inverted[0].detach().cpu().numpy())
    if tuple(result.shape) != tuple(shape):
        raise RuntimeError(f"inverted labels have shape {result.shape}, expected {shape}")
    if result.dtype.kind == "f":  # resampled (MONAI interpolates in float32): rounded in place, no second copy
        result = np.rint(result, out=result if result.flags.writeable else None)
    return result.astype(labels.numpy().dtype if labels.dtype != torch.uint8 else np.uint8, copy=False)

