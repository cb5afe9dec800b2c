"""Training-time augmentation of 2D slices, a whole batch at a time.

The spatial part (random crop to the patch, rotation, scaling, translation, flips) is one random matrix per
slice and a single call of MONAI's batched :class:`~monai.networks.layers.AffineTransform` for the images
(bilinear) and one for the labels (nearest): one resampling per batch instead of pad + crop + affine per slice,
which made augmentation cost more than the network's forward pass on small slices. The intensity part is MONAI's
random intensity transforms per slice (noise, smoothing, scale, shift, gamma).

All randomness comes from the numpy generator passed in and the seeded MONAI transforms, so a training epoch is
reproducible from its seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["SliceAugment"]


class SliceAugment:
    """Augments a batch of 2D slices of varying size into fixed-size training patches."""

    def __init__(self, patch: tuple[int, int], settings: dict, seed: int) -> None:
        from monai.networks.layers import AffineTransform

        self.patch = tuple(int(v) for v in patch)
        self.prob = float(settings.get("prob", 0.8))
        self.rotate = math.radians(float(settings.get("rotate_deg", 0.0)))
        self.scale = float(settings.get("scale", 0.0))
        self.translate = float(settings.get("translate_px", 0))
        self.flip_axes = [int(a) for a in settings.get("flip_axes", [])]
        # theta maps output pixel indices to input pixel indices (scipy's convention), borders repeat
        self.warp_image = AffineTransform(self.patch, normalized=False, mode="bilinear", padding_mode="border",
                                          align_corners=True)
        self.warp_label = AffineTransform(self.patch, normalized=False, mode="nearest", padding_mode="border",
                                          align_corners=True)
        self.intensity = _intensity_transforms(settings, seed)

    def __call__(
        self, images: list[torch.Tensor], labels: list[torch.Tensor], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` (C, A, B) and ``labels`` (A, B) of any plane sizes → ``(N, C, h, w)`` and ``(N, 1, h, w)``."""
        height = max(max(i.shape[1] for i in images), self.patch[0])
        width = max(max(i.shape[2] for i in images), self.patch[1])
        # padding at the far edges keeps each slice's own pixel indices; the warp's border mode repeats edges
        image_batch = torch.stack([_pad_to(i, height, width) for i in images])
        label_batch = torch.stack([_pad_to(lbl[None].float(), height, width) for lbl in labels])
        theta = torch.from_numpy(np.stack([self._matrix(i.shape[1:], rng) for i in images])).float()
        warped = self.warp_image(image_batch, theta)
        targets = self.warp_label(label_batch, theta).round()
        if self.intensity is not None:
            warped = torch.stack([torch.as_tensor(self.intensity(sample)) for sample in warped])
        return warped, targets

    def _matrix(self, plane: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Output pixel → input pixel for one slice: a random crop centre plus rotation / scale / flips about it."""
        out_centre = (np.array(self.patch, dtype=float) - 1) / 2
        centre = np.empty(2)
        for axis in range(2):
            spare = plane[axis] - self.patch[axis]
            # a whole-pixel crop offset (no interpolation without a warp); smaller planes stay centred
            offset = int(rng.integers(spare + 1)) if spare >= 0 else -((-spare) // 2)
            centre[axis] = offset + out_centre[axis]
        linear = np.eye(2)
        if rng.random() < self.prob:
            angle = rng.uniform(-self.rotate, self.rotate)
            cos, sin = math.cos(angle), math.sin(angle)
            zoom = 1.0 + rng.uniform(-self.scale, self.scale, size=2)
            linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag(zoom)
            centre += rng.uniform(-self.translate, self.translate, size=2)
        for axis in self.flip_axes:
            if rng.random() < 0.5:
                linear[:, axis] *= -1
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = centre - linear @ out_centre
        return matrix


def _pad_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    pad = (0, width - image.shape[-1], 0, height - image.shape[-2])
    if not any(pad):
        return image
    return torch.nn.functional.pad(image[None], pad, mode="replicate")[0]


def _intensity_transforms(settings: dict, seed: int):
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandGaussianNoise,
        RandGaussianSmooth,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    prob = float(settings.get("prob", 0.8))
    transforms = []
    if settings.get("noise_std"):
        transforms.append(RandGaussianNoise(prob=prob / 2, std=float(settings["noise_std"])))
    if settings.get("smooth_prob"):
        transforms.append(RandGaussianSmooth(prob=float(settings["smooth_prob"]), sigma_x=(0.5, 1.0),
                                             sigma_y=(0.5, 1.0)))
    if settings.get("intensity_scale"):
        transforms.append(RandScaleIntensity(prob=prob / 2, factors=float(settings["intensity_scale"])))
    if settings.get("intensity_shift"):
        transforms.append(RandShiftIntensity(prob=prob / 2, offsets=float(settings["intensity_shift"])))
    if settings.get("gamma"):
        transforms.append(RandAdjustContrast(prob=prob / 2, gamma=tuple(settings["gamma"])))
    if not transforms:
        return None
    compose = Compose(transforms)
    compose.set_random_state(seed=seed)
    return compose
