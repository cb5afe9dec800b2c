"""A volume: voxels and the geometry that places them, travelling together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from medseg.io.dicom import DicomSource

__all__ = ["SLICER_SEGMENTATION_ENDINGS", "Volume", "bottom_row_text", "header_precision", "singular_affine_text",
           "slicer_segmentation_ending", "stem", "volume_ml"]

# 3D Slicer's segmentation file, its header attached (case.seg.nrrd) or detached (case.seg.nhdr, which names its data
# file): case.seg.nrrd is case's, a label image, never an image to segment
SLICER_SEGMENTATION_ENDINGS = (".seg.nrrd", ".seg.nhdr")


@dataclass
class Volume:
    """A 3D image on a grid, of one channel or several (the modalities of a multi-modal case).

    ``array`` is indexed (i, j, k) like the file's voxels, ``(X, Y, Z)``, or with ``channel_axis`` ``(X, Y, Z, C)``
    for ``C`` channels on one grid (a 4D NIfTI of modalities, or nnU-Net's channel files stacked: the readers of a
    multi-modal input set it); ``shape`` is then the grid's, 3D (an array of other axes, without ``channel_axis``,
    keeps its own shape, for the checks that refuse it); ``affine`` maps voxel indices to RAS+ world coordinates in
    mm (the NIfTI convention, also MONAI's). ``header`` is the NIfTI header the volume came from, kept so that
    outputs reproduce its sform/qform exactly; DICOM inputs have none.
    ``source`` is the file or folder read, ``source_sha256`` its content hash. ``dicom`` is set for DICOM
    inputs: the source images in slice order (:class:`medseg.io.dicom.DicomSource`), for DICOM SEG output.
    """

    array: np.ndarray
    affine: np.ndarray
    source: Path | str | None = None  # a file or folder read, or a caller's name for an array ("case7")
    header: object | None = None
    source_sha256: str | None = None
    info: dict = field(default_factory=dict)
    dicom: DicomSource | None = field(default=None, repr=False, compare=False)
    channel_axis: bool = False  # the array's fourth axis holds channels (modalities) of one grid

    def __repr__(self) -> str:
        """One line of what places the voxels, as TorchIO shows an image: numpy's print of the voxels (4 KB for a
        small crop) and a header object's address told nothing a notebook user looks for."""
        array = self.array if hasattr(self.array, "shape") else np.asarray(self.array)  # a list of lists, say
        shape = tuple(int(n) for n in array.shape)
        parts = [f"shape={shape[:3] if self.channel_axis else shape}"]
        if self.channel_axis:
            parts.append(f"channels={shape[3] if len(shape) == 4 else 1}")
        parts.append(f"dtype={str(array.dtype).removeprefix('torch.')}")
        try:
            affine = np.asarray(self.affine, dtype=np.float64)
            if affine.shape != (4, 4):
                raise ValueError
        except (TypeError, ValueError):  # a caller's affine that the checks refuse: shown as given
            parts.append(f"affine={self.affine!r}" if self.affine is None or np.ndim(self.affine) == 0
                         else f"affine of shape {np.shape(self.affine)}")
        else:
            import nibabel as nib

            parts.append(f"spacing_mm={tuple(header_precision(v) for v in self.spacing_mm)}")
            if singular_affine_text(affine) is None:
                parts.append(f"orientation={''.join(nib.aff2axcodes(affine))}")
        if self.source is not None:
            parts.append(f"source={str(self.source)!r}")
        return f"Volume({', '.join(parts)})"

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape: the array's, or with ``channel_axis`` its first three axes (the channels are
        :attr:`channels`)."""
        return tuple(self.array.shape[:3]) if self.channel_axis else tuple(self.array.shape)

    @property
    def channels(self) -> int:
        """How many channels (modalities) each voxel holds: ``C`` of an ``(X, Y, Z, C)`` array with
        ``channel_axis``, else 1."""
        return int(self.array.shape[3]) if self.channel_axis and self.array.ndim == 4 else 1

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along each array axis, from the affine's column norms."""
        x, y, z = (float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))
        return x, y, z

    @property
    def voxel_volume_ml(self) -> float:
        """A voxel's volume: on a grid whose axes are at right angles, the product of its sizes as the header holds
        them (:func:`header_precision`: 0.7 mm stored as float32 makes 0.00147 ml, not 0.00146999993); else
        |det(affine)| to float32's 7 significant digits (a sheared grid's 1.2 mm³, not the 1.20000006 of its float32
        header: a DICOM series' segmentation scored from its NIfTI read other volumes than when it was segmented)."""
        columns = np.asarray(self.affine, dtype=np.float64)[:3, :3]
        sizes = np.linalg.norm(columns, axis=0)
        with np.errstate(all="ignore"):
            cosines = (columns.T @ columns) / np.outer(sizes, sizes)
        if np.all(np.isfinite(cosines)) and np.abs(cosines - np.eye(3)).max() < 1e-6:
            return float(np.prod([header_precision(size) for size in sizes])) / 1000.0
        return float(f"{abs(np.linalg.det(columns)):.7g}") / 1000.0

    @property
    def name(self) -> str:
        """Case name: the file name without its image extension, or the folder name."""
        if self.source is None:
            return "volume"
        return stem(self.source)


def bottom_row_text(affine: np.ndarray) -> str | None:
    """A message part naming an affine's bottom row where it is not 0 0 0 1 (to within 1e-6), None where it is: such
    a matrix is projective, not a voxel-to-world affine, and every voxel's position computed from its top three rows
    alone was wrong by the factor its last row gives."""
    row = np.asarray(affine, dtype=np.float64)[3]
    if np.all(np.abs(row - (0.0, 0.0, 0.0, 1.0)) <= 1e-6):
        return None
    return (f"the affine's bottom row is {' '.join(f'{v:.6g}' for v in row)}, not 0 0 0 1: a projective matrix, not a "
            "voxel-to-world affine")


def singular_affine_text(affine: np.ndarray) -> str | None:
    """A message part naming an affine (a 4×4 float array) by its top three rows where it is not finite or its voxel
    axes are (nearly) degenerate, None where it places the voxels: a zero axis, or axes (nearly) in one plane, measured
    against the voxel size, so that a grid of 0.1 µm voxels (a determinant of 1e-12 mm³) is not taken for one."""
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    if np.isfinite(affine).all() and np.all(sizes > 0) \
            and not abs(np.linalg.det(affine[:3, :3])) / float(np.prod(sizes)) < 1e-6:
        return None
    rows = "; ".join(" ".join(f"{v:.6g}" for v in row) for row in affine[:3])
    return f"the affine is singular or not finite (rows {rows})"


def slicer_segmentation_ending(path: Path | str) -> str | None:
    """The ending (``.seg.nrrd`` or ``.seg.nhdr``, in lower case) by which ``path`` is named as 3D Slicer's
    segmentation file, in any letter case; None where it is not so named."""
    name = Path(path).name.lower()
    return next((ending for ending in SLICER_SEGMENTATION_ENDINGS if name.endswith(ending)), None)


def stem(path: Path | str) -> str:
    """File name without ``.nii.gz`` / ``.nii`` / other image extensions; a folder's own name."""
    name = Path(path).name
    # .seg.nrrd, .seg.nhdr: 3D Slicer's segmentation file (case.seg.nrrd is case's, as a reference pairs with its
    # prediction)
    for suffix in (".nii.gz", ".nii.bz2", ".nii.zst", ".nii", *SLICER_SEGMENTATION_ENDINGS, ".nrrd", ".nhdr", ".mha",
                   ".mhd", ".dcm", ".img.gz", ".hdr.gz", ".img", ".hdr", ".mgz", ".mgh"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def volume_ml(voxels: int, voxel_ml: float) -> float:
    """``voxels`` × ``voxel_ml`` to 12 significant digits: no binary noise in the JSON (0.174, not
    0.17400000000000002; with :attr:`Volume.voxel_volume_ml`, 1.90218, not the 1.90217993521 that 0.7 mm stored as
    float32 made), and no rounding to decimals either (20 µm voxels make real labels of a few nanolitres,
    0.0000066 ml, which 4 decimals wrote as 0 and the report then flagged as empty predictions)."""
    return float(f"{float(voxels) * voxel_ml:.12g}")


def header_precision(value: float) -> float:
    """A voxel size as the header holds it: a float32 value as the shortest decimal that reads back as it (0.7
    stored is 0.699999988079071; 0.48828125 stays exact); any other (an oblique grid's column norm, 0.70000005) to
    float32's 7 significant digits."""
    single = np.float32(value)
    if float(single) == float(value):
        return float(np.format_float_positional(single, unique=True, trim="-"))
    return float(f"{float(value):.7g}")
