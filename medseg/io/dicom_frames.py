"""The 2D images of one DICOM file (:class:`DicomFrame`: a single-frame file, or each frame of a multi-frame one),
with their geometry and rescale values read from its header, each value checked: an element that is there but is
not the numbers it should be is a :class:`~medseg.io.dicom_geometry.GeometryProblem` naming it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pydicom

from medseg.io.dicom_geometry import FrameGeometry, GeometryProblem

__all__ = ["DicomFrame"]

@dataclass(frozen=True)
class DicomFrame:
    """One 2D image of a series: a single-frame file, or frame ``frame`` (0-based) of a multi-frame file."""

    path: Path
    frame: int | None
    geometry: FrameGeometry
    slope: float
    intercept: float
    instance_number: int | None


def _frame_name(frame: DicomFrame) -> str:
    """A frame as a user finds it: the file name, with the frame number for a multi-frame file."""
    return frame.path.name if frame.frame is None else f"{frame.path.name} frame {frame.frame + 1}"


def _frames(path: Path, dataset: pydicom.Dataset) -> list[DicomFrame]:
    """The 2D images in one file, with their geometry and rescale values."""
    rows, columns = _count(dataset, "Rows"), _count(dataset, "Columns")
    count = _count(dataset, "NumberOfFrames", 1)
    instance = _int(dataset.get("InstanceNumber"))
    if "PerFrameFunctionalGroupsSequence" in dataset or "SharedFunctionalGroupsSequence" in dataset:
        shared = dataset.get("SharedFunctionalGroupsSequence")
        shared = shared[0] if shared else pydicom.Dataset()
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
        if len(per_frame) not in (0, count):
            raise GeometryProblem(f"{len(per_frame)} per-frame groups for {count} frames")
        frames = []
        for index in range(count):
            groups = per_frame[index] if per_frame else pydicom.Dataset()
            position = _functional(groups, shared, "PlanePositionSequence", "ImagePositionPatient")
            orientation = _functional(groups, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
            spacing = _functional(groups, shared, "PixelMeasuresSequence", "PixelSpacing")
            slope = _functional(groups, shared, "PixelValueTransformationSequence", "RescaleSlope")
            intercept = _functional(groups, shared, "PixelValueTransformationSequence", "RescaleIntercept")
            geometry = FrameGeometry(_floats(position, 3, "ImagePositionPatient"),
                                     _floats(orientation, 6, "ImageOrientationPatient"),
                                     _floats(spacing, 2, "PixelSpacing"), rows, columns)
            frames.append(DicomFrame(path, index, geometry, _slope(slope),
                                     _float(intercept, 0.0, "RescaleIntercept"), instance))
        return frames
    if count > 1:
        raise GeometryProblem(f"a multi-frame image ({count} frames) without per-frame geometry")
    geometry = FrameGeometry(
        _floats(dataset.get("ImagePositionPatient"), 3, "ImagePositionPatient"),
        _floats(dataset.get("ImageOrientationPatient"), 6, "ImageOrientationPatient"),
        _floats(dataset.get("PixelSpacing"), 2, "PixelSpacing"),
        rows,
        columns,
    )
    return [DicomFrame(path, None, geometry, _slope(dataset.get("RescaleSlope")),
                       _float(dataset.get("RescaleIntercept"), 0.0, "RescaleIntercept"), instance)]


def _functional(groups: pydicom.Dataset, shared: pydicom.Dataset, sequence: str, keyword: str):
    for source in (groups, shared):
        items = source.get(sequence)
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return None


def _floats(value, count: int, keyword: str) -> tuple[float, ...] | None:
    """``count`` numbers; ``None`` when the element is absent or empty; a problem naming the element when its
    value is there but is not ``count`` finite numbers (an image with an unreadable geometry is not one
    "without" it)."""
    if value is None or value == "":
        return None
    values = [value] if isinstance(value, (str, bytes, int, float)) else list(value)  # DSfloat is a float
    if not values:
        return None
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        shown = "\\".join(str(v) for v in values)  # as DICOM writes a multi-valued element
        raise GeometryProblem(f"{keyword} '{shown}' is not {count} numbers")
    return numbers


def _float(value, default: float, keyword: str = "value") -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GeometryProblem(f"{keyword} {str(value)!r} is not a number") from None
    if not math.isfinite(number):
        raise GeometryProblem(f"{keyword} {str(value)!r} is not a finite number")
    return number


def _slope(value) -> float:
    """RescaleSlope (absent: 1). Zero is refused: every pixel would read as the intercept, a blank image that
    would be segmented without a word."""
    slope = _float(value, 1.0, "RescaleSlope")
    if slope == 0:
        raise GeometryProblem(f"RescaleSlope {str(value)!r} is zero: every pixel would read as RescaleIntercept")
    return slope


def _image_type(dataset: pydicom.Dataset) -> tuple[str, ...]:
    """ImageType values upper-cased; a single value (a string) is one value, not its characters."""
    value = dataset.get("ImageType") or ()
    values = [value] if isinstance(value, (str, bytes)) else list(value)
    return tuple(str(v).upper() for v in values)


def _count(dataset: pydicom.Dataset, keyword: str, default: int | None = None) -> int:
    """A size or count element as a positive whole number (``default`` when absent, empty or 0); a problem naming
    the element otherwise (an empty, multi-valued or non-numeric value used to raise a bare TypeError)."""
    value = dataset.get(keyword)
    if default is not None and (value is None or value == "" or value == 0):
        return default  # an empty or zero NumberOfFrames on a single-frame file: pydicom, too, assumes one
    if value is None or value == "":
        raise GeometryProblem(f"{keyword} is empty" if keyword in dataset else f"no {keyword}")
    number = _int(value) if isinstance(value, (int, str, bytes)) else None
    if number is None or number < 1:
        single = isinstance(value, (int, float, str, bytes))
        shown = str(value) if single else "\\".join(str(v) for v in value)
        raise GeometryProblem(f"{keyword} '{shown}' is not a positive whole number")
    return number


def _int(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
