"""DICOM SEG output for DICOM inputs and DICOM SEG references read back: the public names, gathered from the modules
that hold them (:mod:`~medseg.io.seg_sources`, :mod:`~medseg.io.seg_writing`, :mod:`~medseg.io.seg_labels`,
:mod:`~medseg.io.seg_reading`, :mod:`~medseg.io.seg_volume`)."""

from __future__ import annotations

from medseg.io.seg_labels import check_segment_labels
from medseg.io.seg_reading import check_is_seg, read_dicom_seg
from medseg.io.seg_sources import seg_sources
from medseg.io.seg_volume import (
    find_recorded_source,
    read_seg_volume,
    read_seg_with_grid,
    read_seg_with_source,
    recorded_series,
)
from medseg.io.seg_writing import write_dicom_seg

__all__ = ["check_is_seg", "check_segment_labels", "find_recorded_source", "read_dicom_seg", "read_seg_volume",
           "read_seg_with_grid", "read_seg_with_source", "recorded_series", "seg_sources", "write_dicom_seg"]
