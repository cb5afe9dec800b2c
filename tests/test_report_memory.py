"""The memory the cohort's report job asks for: its libraries, each case, the overlays it may draw and the largest
input's voxels (headers written in code; no voxel data is read)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.cohort import Sample
from medseg.cohort.report_memory import largest_voxels, report_memory_mb


def _header_only_nifti(path: Path, shape: tuple[int, ...]) -> Path:
    """A NIfTI file whose header declares ``shape``, its voxels zeros on no disk space (a sparse file: only the header
    is read, and the file's size, which must hold them)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    with open(path, "wb") as file:
        file.write(header.binaryblock + b"\0" * 4)
        file.truncate(352 + 2 * int(np.prod(shape)))
    return path


def test_the_report_memory_grows_with_cases_overlays_and_the_largest_volume(tmp_path):
    """The report job asked 4000 MB whatever the cohort: too little for a cohort of large CTs with many overlays,
    where a retry killed for memory got 8000 and 12000, and twenty times what 200 small cases take (185 MiB)."""
    small = _header_only_nifti(tmp_path / "small.nii", (48, 48, 16))
    large = _header_only_nifti(tmp_path / "large.nii", (512, 512, 300))
    reference = tmp_path / "label.nii.gz"
    cases = [Sample(f"c{i}", small, reference if i < 60 else None) for i in range(100)]
    # 800 + 0.25 x 100 cases + 1.5 x (50 scored + 40 without a reference) overlays + 8 B x 36,864 voxels
    assert report_memory_mb(cases, max_overlays=50) == 1000
    assert report_memory_mb(cases, max_overlays=0) == 900
    # one large CT: 8 B x 78.6 M voxels = 629 MB more (1591 MB, rounded up to 100 MB)
    assert report_memory_mb([*cases, Sample("ct", large, reference)], max_overlays=50) == 1600
    assert report_memory_mb(cases, max_overlays=50, voxels=10**9) == 9000
    # 10 and 1000 small cases with the workflow's default max_overlays: 900 and 1300 MB
    assert report_memory_mb(cases[:10], max_overlays=50) == 900
    assert report_memory_mb(cases * 10, max_overlays=50) == 1300


def test_the_largest_input_is_the_one_counted(tmp_path):
    from dicom_factory import slice_positions, stored_values, write_series

    series = tmp_path / "dicom"
    write_series(series, stored_values((24, 20, 6)), slice_positions(6, 2.0))
    samples = [Sample("a", _header_only_nifti(tmp_path / "a.nii", (320, 256, 40))), Sample("dicom", series),
               Sample("gone", tmp_path / "gone.nii.gz")]
    assert largest_voxels(samples) == 320 * 256 * 40
    assert largest_voxels([]) == 0
