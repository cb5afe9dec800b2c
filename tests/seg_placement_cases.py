"""A synthetic DICOM series and its SEG for the tests of a SEG placed on the grid of an image converted from its
series (``case``: the series, the SEG's labels as read on the series' own images, the SEG's path), a SEG of another
tool's making, and medseg's command line run in-process."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_factory import slice_positions, stored_values, write_series

from medseg.cli import main
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_reading import read_dicom_seg
from medseg.io.seg_writing import write_dicom_seg

SHAPE = (24, 20, 7)


NAMES = {0: "background", 1: "odd", 2: "corner"}


def label_rule(values: np.ndarray) -> np.ndarray:
    """1 where the stored value is a multiple of 5, 2 in the low-index corner (an asymmetric region)."""
    labels = np.zeros(values.shape, np.uint8)
    labels[np.mod(values, 5) == 0] = 1
    labels[values < 120] = 2
    return labels


@pytest.fixture(name="case")
def seg_case(tmp_path):
    """A synthetic axial series (0.8 × 0.6 mm pixels, slices 2 mm apart), its SEG (labels 1 and 2) and the labels
    that SEG reads as on the series' own images (today's placement)."""
    values = stored_values(SHAPE, seed=23)
    write_series(tmp_path / "series", values, slice_positions(SHAPE[2], 2.0), seed=2)
    volume = read_dicom_series(tmp_path / "series")
    write_dicom_seg(label_rule(values), volume, tmp_path / "ref.dcm", NAMES, "test-model")
    expected = read_dicom_seg(tmp_path / "ref.dcm", volume, NAMES)
    assert np.array_equal(expected, label_rule(values)) and set(np.unique(expected)) == {0, 1, 2}
    return volume, expected, tmp_path / "ref.dcm"


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    """``medseg ARGS``: exit code, stdout, stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    printed = capsys.readouterr()
    return int(exit_info.value.code or 0), printed.out, printed.err


def _foreign_seg(path, sources, pixels, names, kind):
    """A SEG as another tool writes one (highdicom directly): masks (slices, rows, columns, segments), or a label map
    (slices, rows, columns) for ``kind`` LABELMAP."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    descriptions = [hd.seg.SegmentDescription(
        segment_number=n + 1, segment_label=name, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names)]
    hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=getattr(hd.seg.SegmentationTypeValues, kind),
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="other", manufacturer_model_name="other", software_versions="1",
        device_serial_number="0").save_as(str(path))
