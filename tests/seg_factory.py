"""Helpers of the DICOM SEG tests: the synthetic series' shape and labels, coded concepts, enhanced multi-frame
sources, retagged files, another tool's SEG, and the CLI run in this process."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicom_factory import slice_positions, write_series

from medseg.cli import main

SHAPE = (24, 20, 7)
OBLIQUE = (0.0, 0.8, 0.6, 0.0, -0.6, 0.8)  # rows along +y tilted, columns going down in -y / +z
NAMES = {0: "background", 1: "odd", 2: "corner"}


def label_rule(values: np.ndarray) -> np.ndarray:
    """Labels as a function of the (rescaled) pixel values: 1 where the value is a multiple of 5, 2 where it is
    below a threshold that only the low-index corner of low slices reaches (an asymmetric region)."""
    labels = np.zeros(values.shape, np.uint8)
    labels[np.mod(values, 5) == 0] = 1
    labels[values < -1024 + 120] = 2
    return labels


def code(scheme: str, value: str, meaning: str) -> dict:
    return {"scheme": scheme, "value": value, "meaning": meaning}


ANATOMY = code("SCT", "91723000", "Anatomical Structure")
HIPPOCAMPUS = code("SCT", "5366008", "Hippocampus")


def write_enhanced(folder, values, scratch) -> None:
    """An oblique series converted to one legacy-enhanced multi-frame CT file ``folder/ct.dcm``."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    paths = write_series(scratch, values, slice_positions(values.shape[2], 2.0, orientation=OBLIQUE),
                         orientation=OBLIQUE, seed=3)
    enhanced = LegacyConvertedEnhancedCTImage([pydicom.dcmread(p) for p in paths], series_instance_uid=hd.UID(),
                                              series_number=9, sop_instance_uid=hd.UID(), instance_number=1)
    folder.mkdir()
    enhanced.save_as(folder / "ct.dcm")


def retag(paths, **changes) -> None:
    """Rewrite every file of a series with attributes changed (None: removed)."""
    for path in paths:
        dataset = pydicom.dcmread(path)
        for keyword, value in changes.items():
            if value is None:
                if keyword in dataset:
                    delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        dataset.save_as(path)


def csv_rows(path):
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle, delimiter="\t")


def foreign_seg(path, sources, masks, names, kind="BINARY", **kwargs):
    """A SEG as another tool writes one (highdicom directly): ``masks`` (slices, rows, columns, segments), or a
    label map (slices, rows, columns) for ``kind`` LABELMAP."""
    from pydicom.sr.codedict import codes

    descriptions = [hd.seg.SegmentDescription(
        segment_number=n + 1, segment_label=name, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type=getattr(hd.seg.SegmentationTypeValues, kind),
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="other", manufacturer_model_name="other", software_versions="1",
        device_serial_number="0", **kwargs)
    seg.save_as(str(path))


def run_main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code
