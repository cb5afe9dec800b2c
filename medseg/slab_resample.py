"""MONAI's resampling (``Spacing``, ``Orientation`` and their inversion) a slab of output planes at a time.

MONAI resamples a volume with ``torch.nn.functional.affine_grid`` and ``grid_sample`` over the whole output grid:
``affine_grid`` builds a homogeneous base grid (4 float32 a voxel) and multiplies it into the sampling grid
(3 float32 a voxel), 28 bytes for each output voxel at once: 1.4 GB for a 512×512×200 CT resampled to 1 mm, and
the same again over the input's grid when the labels are inverted onto it. :class:`SlabAffineTransform` builds
the same grid a slab of output planes at a time, as ``affine_grid`` builds it (its coordinates taken from the whole
grid's ``linspace``, the same matrix product), and samples each slab into the output: every value is bit for bit
MONAI's, with a few MB of grid at a time. :func:`slab_resampling` puts it in MONAI's place for the transforms run
inside it.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import torch
from monai.networks.layers import AffineTransform
from monai.networks.utils import to_norm_affine
from monai.utils import ensure_tuple

__all__ = ["SLAB_VOXELS", "SlabAffineTransform", "slab_resampling"]

# output voxels sampled at a time: 28 bytes each of grid (about 29 MB), the output slab's values beside it
SLAB_VOXELS = 1 << 20


class SlabAffineTransform(AffineTransform):
    """:class:`monai.networks.layers.AffineTransform` that builds its sampling grid and samples a slab of output
    planes (along the first spatial axis) at a time. A batch of one 3D image only; anything else, and an output
    of no more than ``slab_voxels``, is MONAI's own pass."""

    slab_voxels = SLAB_VOXELS

    def forward(self, src: torch.Tensor, theta: torch.Tensor, spatial_size=None) -> torch.Tensor:
        if not (isinstance(src, torch.Tensor) and isinstance(theta, torch.Tensor) and src.dim() == 5
                and src.shape[0] == 1 and theta.dim() in (2, 3) and (theta.dim() == 2 or theta.shape[0] == 1)
                and torch.is_floating_point(theta) and not (src.requires_grad or theta.requires_grad)):
            return super().forward(src, theta, spatial_size)
        dst_size = tuple(int(n) for n in src.shape)
        if self.spatial_size is not None:
            dst_size = dst_size[:2] + tuple(int(n) for n in self.spatial_size)
        if spatial_size is not None:
            dst_size = dst_size[:2] + tuple(int(n) for n in ensure_tuple(spatial_size))
        if len(dst_size) != 5 or math.prod(dst_size[2:]) <= self.slab_voxels:
            return super().forward(src, theta, spatial_size)
        normalised = self._normalised(theta, tuple(src.shape[2:]), dst_size[2:])
        if normalised is None:
            return super().forward(src, theta, spatial_size)
        theta = normalised
        # the base grid's coordinates along W, H and D, as affine_grid makes them (ATen's linspace_from_neg_one)
        w_range, h_range, d_range = (_linspace(n, self.align_corners, theta) for n in dst_size[:1:-1])
        planes, plane = dst_size[2], dst_size[3:]
        # slabs of about equal size: no last slab of a few rows, which torch multiplies by another kernel
        slabs = math.ceil(planes / max(1, self.slab_voxels // math.prod(plane)))
        step = math.ceil(planes / slabs)
        out = torch.empty(dst_size, dtype=src.dtype, device=src.device)
        src = src.contiguous()
        for start in range(0, planes, step):
            stop = min(planes, start + step)
            base = torch.empty((1, stop - start, *plane, 4), dtype=theta.dtype, device=theta.device)
            base[..., 0].copy_(w_range)
            base[..., 1].copy_(h_range[:, None])
            base[..., 2].copy_(d_range[start:stop, None, None])
            base[..., 3].fill_(1)
            grid = base.view(1, -1, 4).bmm(theta.transpose(1, 2)).view(1, stop - start, *plane, 3)
            del base
            out[:, :, start:stop] = torch.nn.functional.grid_sample(
                input=src, grid=grid, mode=self.mode, padding_mode=self.padding_mode, align_corners=self.align_corners)
        return out

    def _normalised(self, theta: torch.Tensor, src_size: tuple[int, ...], dst_size: tuple[int, ...]
                    ) -> torch.Tensor | None:
        """``theta`` as :meth:`AffineTransform.forward` turns it before ``affine_grid`` (padded to 4×4, normalised,
        its indexing reversed; the 3×4 rows ``affine_grid`` takes), or None where it is not a 3D affine."""
        if theta.dim() == 2:
            theta = theta[None]
        theta = theta.clone()
        if tuple(theta.shape[1:]) == (3, 4):
            theta = torch.cat([theta, torch.tensor([0, 0, 0, 1]).repeat(theta.shape[0], 1, 1).to(theta)], dim=1)
        if tuple(theta.shape[1:]) != (4, 4):
            return None
        if not self.normalized:
            theta = to_norm_affine(affine=theta, src_size=src_size, dst_size=dst_size,
                                   align_corners=self.align_corners, zero_centered=self.zero_centered)
        if self.reverse_indexing:
            rev_idx = torch.as_tensor(range(2, -1, -1), device=theta.device)
            theta[:, :3] = theta[:, rev_idx]
            theta[:, :, :3] = theta[:, :, rev_idx]
        return theta[:, :3]


def _linspace(steps: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """ATen's ``linspace_from_neg_one``: the normalised coordinates of ``steps`` voxels along one axis (one axis
    of them: ATen's 0 of an axis one voxel long is a scalar, which the slab's indexing cannot take)."""
    if steps <= 1:
        return torch.zeros((1,), dtype=like.dtype, device=like.device)
    values = torch.linspace(-1, 1, steps, dtype=like.dtype, device=like.device)
    return values if align_corners else values * (steps - 1) / steps


_swap_lock = threading.RLock()
_swap_depth = 0


@contextlib.contextmanager
def slab_resampling() -> Iterator[None]:
    """Within it, MONAI's ``spatial_resample`` (``Spacing``, ``Orientation``, their inversion by ``Invertd``)
    samples through :class:`SlabAffineTransform`: the same values, a slab of grid at a time."""
    global _swap_depth
    from monai.transforms.spatial import functional

    with _swap_lock:
        if _swap_depth == 0:
            functional.AffineTransform = SlabAffineTransform
        _swap_depth += 1
    try:
        yield
    finally:
        with _swap_lock:
            _swap_depth -= 1
            if _swap_depth == 0:
                functional.AffineTransform = AffineTransform
