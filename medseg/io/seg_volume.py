"""A DICOM SEG written by ``medseg infer`` read back as a label :class:`~medseg.volume.Volume` on its source
series: the series its sidecar records (or the one given), found where it lies now."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.errors import InputError
from medseg.io.seg_reading import read_dicom_seg_with_info
from medseg.volume import Volume

if TYPE_CHECKING:
    from medseg.io.dicom import SeriesGrid

__all__ = ["find_recorded_source", "read_seg_volume", "read_seg_with_grid", "read_seg_with_source", "recorded_series"]

log = logging.getLogger(__name__)


def recorded_series(sidecar: dict) -> str | None:
    """The DICOM series a sidecar says its case was segmented from: its UID, or its key when the UID does not
    single it out (the parts of a split series share one; an anonymised series has none). Two series may share
    a number, so the key alone is not enough either. The UID is a :class:`~medseg.io.dicom_series.SeriesUID`,
    matched as a UID only."""
    info = sidecar.get("input_info") or {}
    split = any(str(flag).startswith("split:") for flag in info.get("flags") or [])
    if not split and info.get("series_uid"):
        from medseg.io.dicom_series import SeriesUID

        return SeriesUID(info["series_uid"])  # matched as a UID only: an edited "5" is not series number 5
    series = info.get("series_key")
    return str(series) if series else None


def find_recorded_source(path: Path | str, recorded: str) -> Path | None:
    """Where the input a sidecar records (``recorded``) lies for the DICOM SEG ``path``; None where it is not found.
    A relative path (sidecars before medseg recorded absolute ones) was relative to the folder the run started in:
    tried from here, from the SEG's folder and from the folder above it."""
    path = Path(path)
    candidates = [Path(recorded)] if Path(recorded).is_absolute() else [
        Path(recorded), path.parent / recorded, path.parent.parent / recorded]
    return next((c for c in candidates if c.exists()), None)


def read_seg_volume(path: Path | str, sidecar: dict, source_path: Path | str | None = None, warn_skipped: bool = True,
                    warn_missing: bool = True) -> Volume:
    """A DICOM SEG written by ``medseg infer`` as a label :class:`Volume` on its source series' grid: the source
    is the input its sidecar records (or ``source_path``, where it lies now), in the series it records. Only the
    source's headers are read (:func:`medseg.io.dicom.read_dicom_grid`): its pixels are not needed to place the
    frames. ``warn_skipped`` and ``warn_missing`` as for :func:`read_seg_with_source`."""
    return read_seg_with_grid(path, sidecar, source_path, warn_skipped, warn_missing)[0]


def read_seg_with_grid(path: Path | str, sidecar: dict, source_path: Path | str | None = None,
                       warn_skipped: bool = True, warn_missing: bool = True) -> tuple[Volume, SeriesGrid | Volume]:
    """As :func:`read_seg_volume`, with the source series' grid that placed it
    (:class:`~medseg.io.dicom.SeriesGrid`, whose :meth:`~medseg.io.dicom.SeriesGrid.slices` decode some of its
    voxels; a source that is no DICOM folder is read whole, to be refused as before)."""
    return _read_seg(path, sidecar, source_path, warn_missing, lambda where, series: _source_grid(
        where, series, warn_skipped))


def read_seg_with_source(path: Path | str, sidecar: dict, source_path: Path | str | None = None,
                         warn_skipped: bool = True, warn_missing: bool = True) -> tuple[Volume, Volume]:
    """As :func:`read_seg_volume`, with the source series' volume, voxels and all (for a caller that shows the
    image: it is read once; ``warn_skipped`` as for :func:`medseg.io.images.read_image`, ``warn_missing`` as for
    :func:`read_dicom_seg`). Segments are matched to the sidecar's labels by name, else by the ``label_codes`` it
    records."""
    from medseg.io.images import read_image

    return _read_seg(path, sidecar, source_path, warn_missing, lambda where, series: read_image(
        where, series=series, warn_skipped=warn_skipped))


def _source_grid(path: Path, series: str | None, warn_skipped: bool):
    """The grid of a SEG's source series from its headers; what is not a DICOM folder is read as before, to be
    refused as before (a missing path, a NIfTI file)."""
    from medseg.io.dicom import read_dicom_grid
    from medseg.io.images import read_image

    if Path(path).is_dir():
        return read_dicom_grid(path, series=series, warn_skipped=warn_skipped)
    return read_image(path, series=series, warn_skipped=warn_skipped)


def _read_seg(path: Path | str, sidecar: dict, source_path: Path | str | None, warn_missing: bool,
              read_source: Callable) -> tuple[Volume, Volume | SeriesGrid]:
    """A SEG placed on its source series, read by ``read_source(path, series)`` (its volume, or its grid alone),
    with what that gave."""
    path = Path(path)
    recorded = sidecar.get("input")
    labels = {int(k): str(v) for k, v in (sidecar.get("labels") or {}).items()}
    if not (source_path or recorded) or not labels:
        raise InputError(f"{path}: a DICOM SEG is placed on its source series, which its sidecar must name (with the "
                         "labels); none found")
    if source_path is None:
        source_path = find_recorded_source(path, recorded)
        if source_path is None:
            raise InputError(f"{path}: its source series {recorded} (recorded in its sidecar) is not found (moved or "
                             "renamed since the prediction was made?); the SEG is scored on the source images it "
                             "references: put the series back there, or write the folder where it lies now as the "
                             "sidecar's \"input\"")
    source = read_source(source_path, recorded_series(sidecar))
    if source.dicom is None:  # read_dicom_seg's words would tell to segment the series: its sidecar is what is wrong
        raise InputError(f"{path}: its sidecar's \"input\", {source_path}, is not a DICOM series: a DICOM SEG is "
                         "placed frame by frame on the images of the series it segments (a conversion of it, as to "
                         "NIfTI, no longer has them); write that series' folder as the sidecar's \"input\"")
    array, read = read_dicom_seg_with_info(path, source, labels, warn_missing=warn_missing,
                                           label_codes=sidecar.get("label_codes"))
    info = {"dicom_seg_source": str(source_path), **read}  # a FrameOfReferenceUID not its series': the record's
    made_from = sidecar.get("input_sha256")
    if isinstance(made_from, str) and made_from and source.source_sha256 and made_from != source.source_sha256:
        # the frames are placed by the images they reference, which were found: the geometry holds, the pixels may not
        info["source_note"] = (f"the source series {source_path} is not as it was when the prediction was made (its "
                               "SHA-256 differs from the sidecar's input_sha256: files changed, added or removed "
                               "since); placed on the series as it is now")
        log.log(logging.WARNING if warn_missing else logging.INFO, "%s: %s", path, info["source_note"])
    labels_volume = Volume(array=array, affine=source.affine, source=Path(path), info=info)
    return labels_volume, source
