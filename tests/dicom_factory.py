"""Synthetic DICOM series written with pydicom, for the DICOM reader's tests.

``write_series`` writes one single-frame file per slice from a (columns, rows, slices) array of stored
values, with any orientation, positions, rescale and transfer syntax; file names are shuffled so that
nothing can rely on their order. ``make_series`` writes one of ``SHAPE`` with 2 mm slices, the DICOM test modules'
default, and ``_raw`` stores an element's bytes as a non-conformant writer would.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
FRAME_OF_REFERENCE = "1.2.826.0.1.3680043.8.498.2"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
SHAPE = (10, 8, 6)  # the default of make_series: columns, rows, slices


def stored_values(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """An asymmetric (columns, rows, slices) int16 volume: a ramp plus noise, so flips change it."""
    rng = np.random.default_rng(seed)
    i, j, k = np.indices(shape)
    return (i * 3 + j * 7 + k * 101 + rng.integers(0, 50, shape)).astype(np.int16)


def slice_positions(n: int, step_mm: float, origin=(-10.0, -20.0, 30.0), orientation=AXIAL,
                    inplane_shift=(0.0, 0.0, 0.0)) -> list[np.ndarray]:
    """Positions of ``n`` slices stacked along the orientation's normal (plus an optional in-plane shift per
    slice, which is what a gantry tilt does)."""
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, col)
    return [np.asarray(origin) + k * step_mm * normal + k * np.asarray(inplane_shift) for k in range(n)]


def write_series(folder: Path, values: np.ndarray, positions, *, orientation=AXIAL, pixel_spacing=(0.8, 0.6),
                 slope: float = 1.0, intercept: float = -1024.0, modality: str = "CT", series_number: int = 3,
                 description: str = "synthetic", series_uid: str | None = None, image_type=("ORIGINAL", "PRIMARY",
                 "AXIAL"), transfer_syntax=ExplicitVRLittleEndian, seed: int = 0, prefix: str = "",
                 extra: dict | None = None) -> list[Path]:
    """Write ``values[:, :, k]`` (stored values, indexed column, row) at ``positions[k]``; returns the paths
    in slice order. ``pixel_spacing`` is DICOM's (between rows, between columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    names = [f"{prefix}{index:04d}.dcm" for index in range(values.shape[2])]
    random.Random(seed).shuffle(names)
    paths = []
    for k in range(values.shape[2]):
        ds = _base(modality, series_uid, series_number, description, image_type)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in positions[k]]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        plane = np.ascontiguousarray(values[:, :, k].T)  # (rows, columns)
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if plane.dtype.kind == "i" else 0
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value)
        path = folder / names[k]
        if transfer_syntax == ExplicitVRLittleEndian:
            ds.PixelData = plane.tobytes()
        else:
            ds.compress(transfer_syntax, plane, encoding_plugin=_plugin(transfer_syntax))
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _plugin(transfer_syntax) -> str:
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    return {RLELossless: "pydicom", JPEGLSLossless: "pyjpegls", JPEG2000Lossless: "pylibjpeg"}.get(transfer_syntax, "")


def _base(modality: str, series_uid: str, series_number: int, description: str, image_type) -> pydicom.Dataset:
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.ImageType = list(image_type)
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYN001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = STUDY_UID
    ds.StudyID = "1"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "A1"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "medseg tests"
    ds.ContentDate = "20240101"
    ds.ContentTime = "120000"
    return ds


def dcm2niix_path() -> str | None:
    """The dcm2niix executable (the PyPI package installs it beside python), or None."""
    local = Path(sys.executable).with_name("dcm2niix")
    return str(local) if local.exists() else shutil.which("dcm2niix")


def to_reference_grid(array: np.ndarray, affine: np.ndarray, reference) -> tuple[np.ndarray, float]:
    """``array`` re-indexed onto ``reference``'s voxel order (a permutation / flip, checked to be one), and the
    largest difference between the two affines once the index change is accounted for (mm)."""
    change = np.linalg.inv(reference.affine) @ affine
    permutation = np.rint(change)
    assert np.abs(change - permutation).max() < 1e-3, f"the grids differ by more than a flip:\n{change}"
    index = np.indices(array.shape).reshape(3, -1)
    target = (permutation[:3, :3] @ index + permutation[:3, 3:]).astype(int)
    assert tuple(target.max(axis=1) + 1) == tuple(reference.shape[:3]) and target.min() == 0
    out = np.empty(reference.shape[:3], dtype=array.dtype)
    out[tuple(target)] = array.reshape(-1)
    return out, float(np.abs(affine - reference.affine @ permutation).max())


def make_series(folder, seed=0, shape=SHAPE, **kwargs):
    values = stored_values(shape, seed=seed)
    positions = kwargs.pop("positions", None) or slice_positions(shape[2], 2.0, orientation=kwargs.get(
        "orientation", AXIAL))
    paths = write_series(folder, values, positions, seed=seed, **kwargs)
    return values, paths


def _raw(path: Path, keyword: str, vr: str, value: bytes) -> None:
    """Store ``value`` as the element's bytes, as a non-conformant writer would (pydicom refuses to)."""
    from pydicom.dataelem import RawDataElement

    dataset = pydicom.dcmread(path)
    tag = pydicom.tag.Tag(pydicom.datadict.tag_for_keyword(keyword))
    dataset[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    dataset.save_as(path)
