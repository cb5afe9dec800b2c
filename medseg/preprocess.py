"""The MONAI transforms a model package declares, and their exact inversion onto the input grid."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    Invertd,
    NormalizeIntensityd,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)

from medseg.errors import InputError
from medseg.volume import Volume

__all__ = ["build_transforms", "to_model_space", "invert_labels", "spatial_transforms"]

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def spatial_transforms(pre: dict, keys: tuple[str, ...] = ("image",), modes=("bilinear",)) -> list:
    """Orientation and spacing transforms (invertible) for ``keys``."""
    transforms: list = []
    if pre.get("orientation"):
        transforms.append(Orientationd(keys=keys, axcodes=pre["orientation"], labels=_RAS_LABELS))
    if pre.get("spacing_mm"):
        pixdim = [float(v) if v else 0.0 for v in pre["spacing_mm"]]  # 0 keeps that axis' spacing
        if any(pixdim):
            transforms.append(Spacingd(keys=keys, pixdim=pixdim, mode=modes, padding_mode="border"))
    return transforms


def intensity_transform(pre: dict, key: str = "image"):
    """The intensity normalisation declared in ``pre['intensity']``, or None."""
    spec = pre["intensity"]
    if spec["kind"] == "zscore":
        return NormalizeIntensityd(keys=key, nonzero=spec.get("nonzero", False), channel_wise=True)
    if spec["kind"] == "window":
        return ScaleIntensityRanged(keys=key, a_min=spec["min"], a_max=spec["max"], b_min=0.0, b_max=1.0, clip=True)
    return None


def build_transforms(pre: dict, with_label: bool = False) -> Compose:
    """Channel-first, orientation, spacing and intensity transforms for ``image`` (and ``label``)."""
    keys = ("image", "label") if with_label else ("image",)
    modes = ("bilinear", "nearest") if with_label else ("bilinear",)
    transforms = [EnsureChannelFirstd(keys=keys, channel_dim="no_channel")]
    transforms += spatial_transforms(pre, keys, modes)
    intensity = intensity_transform(pre)
    if intensity is not None:
        transforms.append(intensity)
    return Compose(transforms)


def to_model_space(volume: Volume, transforms: Compose) -> dict:
    """Apply ``transforms`` to ``volume``; the result's ``image`` is a (1, X, Y, Z) MetaTensor."""
    image = MetaTensor(torch.from_numpy(np.ascontiguousarray(volume.array)), affine=torch.from_numpy(volume.affine))
    data = transforms({"image": image})
    check_finite(data["image"], volume)
    return data


def check_finite(image: torch.Tensor, volume: Volume, peak: float | None = None) -> None:
    """Refuse a volume whose preprocessed ``image`` holds NaN or infinity (intensities that overflow float32).

    ``peak`` is the volume's largest absolute intensity, when taken before transforms that work in place."""
    if not bool(torch.isfinite(torch.as_tensor(image)).all()):
        if peak is None:
            peak = float(np.abs(volume.array).max()) if volume.array.size else 0.0
        raise InputError(f"{volume.source}: preprocessing gave non-finite values (intensities up to {peak:.3g} "
                         "overflow float32); rescale the image")


def invert_labels(labels: torch.Tensor, data: dict, transforms: Compose, shape: tuple[int, ...]) -> np.ndarray:
    """Bring model-space ``labels`` (X', Y', Z') back onto the input grid with nearest interpolation."""
    pred = MetaTensor(labels[None], meta=dict(data["image"].meta))
    pred.applied_operations = list(data["image"].applied_operations)
    inverted = Invertd(keys="pred", transform=transforms, orig_keys="image", nearest_interp=True)(
        {"pred": pred, "image": data["image"]}
    )["pred"]
    result = np.asarray(inverted[0].detach().cpu().numpy())
    if tuple(result.shape) != tuple(shape):
        raise RuntimeError(f"inverted labels have shape {result.shape}, expected {shape}")
    return np.rint(result).astype(labels.numpy().dtype if labels.dtype != torch.uint8 else np.uint8)
