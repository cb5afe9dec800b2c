"""A volume: voxels and the geometry that places them, travelling together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Volume", "header_precision", "stem", "volume_ml"]


@dataclass
class Volume:
    """A 3D image on a grid.

    ``array`` is indexed (i, j, k) like the file's voxels; ``affine`` maps voxel indices to RAS+ world
    coordinates in mm (the NIfTI convention, also MONAI's). ``header`` is the NIfTI header the volume
    came from, kept so that outputs reproduce its sform/qform exactly; DICOM inputs have none.
    ``source`` is the file or folder read, ``source_sha256`` its content hash. ``dicom`` is set for DICOM
    inputs: the source images in slice order (:class:`medseg.io.dicom.DicomSource`), for DICOM SEG output.
    """

    array: np.ndarray
    affine: np.ndarray
    source: Path | None = None
    header: object | None = None
    source_sha256: str | None = None
    info: dict = field(default_factory=dict)
    dicom: object | None = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along each array axis, from the affine's column norms."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def name(self) -> str:
        """Case name: the file name without its image extension, or the folder name."""
        if self.source is None:
            return "volume"
        return stem(self.source)


def stem(path: Path | str) -> str:
    """File name without ``.nii.gz`` / ``.nii`` / other image extensions; a folder's own name."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii.bz2", ".nii.zst", ".nii", ".nrrd", ".mha", ".mhd", ".dcm", ".img.gz", ".hdr.gz",
                   ".img", ".hdr", ".mgz", ".mgh"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def volume_ml(voxels: int, voxel_ml: float) -> float:
    """``voxels`` × ``voxel_ml`` to 7 significant digits, what a header's float32 voxel sizes hold: no binary noise
    in the JSON (0.174, not 0.17400000000000002; 1.90218, not the 1.90217993521 that 0.7 mm stored as float32
    makes), and no rounding to decimals either (20 µm voxels make real labels of a few nanolitres, 0.0000066 ml,
    which 4 decimals wrote as 0 and the report then flagged as empty predictions)."""
    return float(f"{float(voxels) * voxel_ml:.7g}")


def header_precision(value: float) -> float:
    """``value`` as the shortest decimal that reads back as the same float32: what a NIfTI header's float32 voxel
    sizes hold (0.7 stored is 0.699999988079071; 0.48828125 stays exact)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))
