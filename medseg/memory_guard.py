"""The memory guard: what resampling an input into model space and segmenting it would hold, from its grid alone.

Run on a header before the voxels are read (a 512×512×1500 CT took 13 s and 2.3 GB to read before it was refused),
and so before torch or MONAI is imported: an input that cannot be read is told without them
(:mod:`medseg.segmenter_plan`). The model-space shape is computed as MONAI's ``Orientation`` and ``Spacing`` compute
it; :mod:`medseg.preprocess` applies those transforms, and re-exports these names.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from medseg.errors import InputError
from medseg.numbers import gib_text
from medseg.resources import cgroup_limit, physical_memory, resident_memory
from medseg.volume import Volume
from medseg.voxel_charge import charged_bytes

__all__ = ["check_grid_size", "check_resampling_size", "grid_memory", "grid_model_shape", "model_space_shape",
           "warn_over_cgroup"]

log = logging.getLogger(__name__)

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def model_space_shape(volume: Volume, pre: dict) -> tuple[int, ...]:
    """The shape ``volume`` takes in model space (orientation, then spacing), computed from its header the way
    MONAI's ``Orientation`` and ``Spacing`` compute it (with their own functions), so that an oblique or anisotropic
    grid is predicted to the voxel."""
    return grid_model_shape(volume.shape, volume.affine, pre)


def grid_model_shape(shape: tuple[int, ...], affine: np.ndarray, pre: dict) -> tuple[int, ...]:
    """:func:`model_space_shape` of a grid given by its shape and affine (from headers: :func:`read_grid`)."""
    import nibabel as nib

    shape, affine = tuple(int(n) for n in shape), np.asarray(affine, dtype=np.float64)
    if pre.get("orientation"):
        target = nib.orientations.axcodes2ornt(tuple(pre["orientation"]), labels=_RAS_LABELS)
        turn = nib.orientations.ornt_transform(nib.io_orientation(affine), target)
        affine = affine @ nib.orientations.inv_ornt_aff(turn, shape)
        turned = [0] * len(shape)
        for axis, (to, _) in enumerate(turn):
            turned[int(to)] = shape[axis]
        shape = tuple(turned)
    wanted = np.array([float(v) if v else 0.0 for v in pre.get("spacing_mm") or []], dtype=np.float64)
    if not wanted.any():
        return shape
    if len(shape) == 3 and len(wanted) == 3 and affine.shape == (4, 4):
        return _spacing_shape(shape, affine, wanted)  # a header's grid: without importing torch
    from monai.data.utils import AFFINE_TOL, affine_to_spacing, compute_shape_offset, zoom_affine

    original = affine_to_spacing(affine, len(shape), np.float64)
    wanted = np.where(np.abs(original - wanted) <= AFFINE_TOL, original, wanted)  # Spacing keeps a spacing this close
    out_shape, _ = compute_shape_offset(shape, affine, zoom_affine(affine, wanted, diagonal=False), scale_extent=False)
    return tuple(int(n) for n in out_shape)


# MONAI's AFFINE_TOL: Spacing keeps an axis' spacing this close to the one asked for
_AFFINE_TOL = 1e-3


def _spacing_shape(shape: tuple[int, int, int], affine: np.ndarray, wanted: np.ndarray) -> tuple[int, ...]:
    """The shape MONAI's ``Spacing`` gives a 3D grid (``spacing_mm`` ``wanted``, 0 keeping an axis' spacing), in
    numpy: its ``affine_to_spacing``, ``zoom_affine(diagonal=False)`` and ``compute_shape_offset`` (MONAI 1.x) as they
    act on a 4×4 affine, so that the guard runs on a header before torch is imported (MONAI's import is torch's, over
    2 CPU-s); tests hold it to MONAI's own functions on oblique, flipped and sheared grids."""
    rzs = affine[:3, :3]
    original = np.sqrt(np.sum(rzs * rzs, axis=0))
    original[original == 0] = 1.0
    wanted = np.where(np.abs(original - wanted) <= _AFFINE_TOL, original, wanted)
    scale = np.where(wanted > 0, wanted, original)  # MONAI's fall_back_tuple: a non-positive spacing kept
    scale[scale == 0] = 1.0
    zooms = np.linalg.cholesky(rzs.T @ rzs).T  # a degenerate affine: LinAlgError, as in MONAI
    rotation = rzs @ np.linalg.inv(zooms)
    out = np.eye(4)
    out[:3, :3] = rotation @ np.diag(np.sign(np.diag(zooms)) * np.abs(scale))
    corners = np.asarray(np.meshgrid(*[(0.0, n - 1.0) for n in shape], indexing="ij")).reshape((3, -1))
    corners = np.concatenate((corners, np.ones_like(corners[:1])))
    try:
        moved = np.linalg.solve(out, affine) @ corners
    except np.linalg.LinAlgError as error:
        raise ValueError(f"Affine {out} is not invertible") from error
    moved = moved[:-1] / moved[-1]
    return tuple(int(n) for n in np.round(np.ptp(moved, axis=1) + 1.0))


def check_resampling_size(volume: Volume, pre: dict, per_model_voxel: int = 0, doing: str | None = "segmenting it"
                          ) -> None:
    """Refuse, before any work, a volume whose resampling would need more memory than the machine has (a
    32³ image whose header says 50 mm voxels becomes 1600³ at 1 mm); the message names the header's spacing.
    ``doing``: what the cgroup warning (:func:`warn_over_cgroup`) says the memory is for; None: no such warning
    (training warns once for its whole set of cases)."""
    check_grid_size(volume.source, volume.shape[:3], volume.affine, pre, per_model_voxel, doing,
                    channels=volume.channels)


def grid_memory(shape: tuple[int, ...], affine: np.ndarray, pre: dict, per_model_voxel: int = 0,
                scoring: bool = False, channels: int = 1) -> tuple[int, tuple[int, ...]]:
    """Bytes the guard charges for a grid (see :func:`check_grid_size`) of ``channels`` modalities, and its shape
    in model space."""
    shape = tuple(int(n) for n in shape)
    resamples = any(float(v or 0) for v in pre.get("spacing_mm") or [])
    model_shape = grid_model_shape(shape, affine, pre) if resamples else shape
    return charged_bytes(math.prod(shape), math.prod(model_shape), resamples, per_model_voxel, scoring,
                         channels), model_shape


def check_grid_size(source, shape: tuple[int, ...], affine: np.ndarray, pre: dict, per_model_voxel: int = 0,
                    doing: str | None = "segmenting it", scoring: bool = False, channels: int = 1) -> None:
    """:func:`check_resampling_size` from a header's shape and affine (:func:`medseg.io.images.read_grid`), before
    the voxels are read. A model that resamples is charged ``RESAMPLE_BYTES_PER_VOXEL`` for each voxel of the input
    and of model space, and the inference's slab (``SLAB_BYTES_PER_VOXEL`` a model-space voxel of it); one that
    keeps the voxel size (``spacing_mm`` null) ``COPY_BYTES_PER_VOXEL`` for each input
    voxel (:mod:`medseg.voxel_charge`): a 512×512×1500 CT is charged 4.7 GB there (about 3.4 GB measured), not what
    resampling it would. ``per_model_voxel``: bytes the inference itself holds per model-space voxel
    beyond that (an ensemble over slicing axes keeps two float32 class-probability volumes: 8 bytes per class).
    ``scoring``: the volume is scored against a reference afterwards, charged at least ``SCORING_BYTES_PER_VOXEL``
    a voxel. ``channels``: the modalities each voxel holds (a 4D input of C of them is C volumes to read, resample
    and normalise: charged C times)."""
    memory = physical_memory()
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(v) for v in np.linalg.norm(np.asarray(affine, np.float64)[:3, :3], axis=0))
    wanted = [float(v) if v else 0.0 for v in pre.get("spacing_mm") or []]
    if len(wanted) == 3 and all(wanted):
        # the volume in mm³ over the model's voxel, in floats first: a voxel size of 1e30 mm in a header made the
        # grid's integer shape wrap around, and the check passed on a nonsense shape
        estimate = math.prod(float(n) for n in shape) * math.prod(spacing) / math.prod(wanted)
        # the longest line through the volume, in model voxels: beyond 2^53 the grid's integer shape is not exact
        across = math.hypot(*(n * s for n, s in zip(shape, spacing))) / min(wanted)
        if not math.isfinite(across) or across > 2**53:  # below, the grid's shape is computed exactly
            spacing_text, wanted_text = _spacings_text(spacing, pre)
            raise InputError(f"{source}: resampling its {'×'.join(map(str, shape))} voxels of {spacing_text} "
                             f"mm to the model's {wanted_text} mm gives about {estimate:.3g} voxels, more than any "
                             "machine's memory holds; check the voxel size in the header, and the model's spacing_mm")
    needed, model_shape = grid_memory(shape, affine, pre, per_model_voxel, scoring, channels)
    if memory is None or needed <= memory:
        if doing is not None:
            warn_over_cgroup(source, needed, memory, doing)
        return
    have = f"about {gib_text(needed)} of memory (this machine has {gib_text(memory)})"
    if any(wanted):
        spacing_text, wanted_text = _spacings_text(spacing, pre)
        raise InputError(f"{source}: resampling its {'×'.join(map(str, shape))} voxels of {spacing_text} mm "
                         f"to the model's {wanted_text} mm gives {'×'.join(map(str, model_shape))} voxels, {have}; "
                         "check the voxel size in the header, and the model's spacing_mm")
    raise InputError(f"{source}: segmenting its {'×'.join(map(str, shape))} voxels needs {have}; segment it on a "
                     "machine with more memory, or in parts")


def warn_over_cgroup(source, needed: int, memory: int | None, doing: str) -> None:
    """Warn where ``needed`` bytes fit the machine's ``memory`` but not this process's cgroup limit (a SLURM job's
    memory, a container's): the kernel kills the process without a message, and this line in the log says why.
    Not refused: the guard's charge is an upper bound (up to twice what resampling holds), and a job sized from
    experience must not be turned away by it."""
    limit = cgroup_limit()
    if limit is None or (memory is not None and limit.size >= memory):
        return
    held = resident_memory()
    told = (str(source), doing, limit)
    if needed + held > limit.size and told not in _TOLD_OVER_LIMIT:  # once: the header's check and the volume's
        _TOLD_OVER_LIMIT.add(told)
        log.warning("%s: %s needs up to about %s of memory beside the %s this process holds, more than the %s its "
                    "cgroup allows (%s): it may be killed for memory; give it more (a SLURM job's --mem, the "
                    "workflow's mem_mb)", source, doing, gib_text(needed), gib_text(held), gib_text(limit.size),
                    limit.file)


_TOLD_OVER_LIMIT: set[tuple] = set()


def _spacings_text(spacing, pre: dict) -> tuple[str, str]:
    """A voxel size (a volume's, or its ``spacing_mm``) and the model's (``kept`` for an axis it does not resample)
    as messages give them; ``its own`` for a model that resamples no axis."""
    spacing = spacing.spacing_mm if isinstance(spacing, Volume) else spacing
    wanted = pre.get("spacing_mm") or []
    return (" × ".join(f"{v:g}" for v in spacing),
            " × ".join(f"{float(v):g}" if v else "kept" for v in wanted) if any(wanted) else "")
