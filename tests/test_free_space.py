"""The free-space check before a case is segmented: the lower bound of its outputs, and where it says nothing."""

from __future__ import annotations

import errno
import os

import pytest

from medseg.errors import OutputWriteError
from medseg.io.atomic import results_unwritable
from medseg.io.free_space import check_free_space, free_bytes, least_output_bytes


def fake_statvfs(monkeypatch, free: int, blocks: int = 1000, fragment: int = 1) -> None:
    real = os.statvfs

    def statvfs(path):
        status = real(path)
        return os.statvfs_result((1, fragment, blocks, free, free, *status[5:]))

    monkeypatch.setattr(os, "statvfs", statvfs)


def test_the_bound_is_the_voxels_as_far_as_deflate_compresses_and_1_kib_per_json():
    assert least_output_bytes(1032 * 100, 1, "nifti", 1) == 100 + 1024
    assert least_output_bytes(1032 * 100 + 1, 2, "nifti", 2) == 201 + 2048  # uint16 labels, rounded up; metrics
    assert least_output_bytes(512 * 512 * 600, 1, "dicom-seg", 1) == 1024  # a SEG's frames depend on what is found


def test_a_missing_output_folder_is_measured_on_the_folder_it_will_be_made_in(tmp_path, monkeypatch):
    fake_statvfs(monkeypatch, 5000)
    assert free_bytes(tmp_path / "new" / "deeper") == (tmp_path, 5000)
    target = tmp_path / "new" / "a_seg.nii.gz"
    with pytest.raises(OutputWriteError) as error:
        check_free_space([target, tmp_path / "new" / "a_seg.json"], (200, 200, 200), 1)
    needed = -(-200 ** 3 // 1032) + 1024
    assert str(error.value) == (f"{tmp_path / 'new'}: no room for a_seg.nii.gz and 1 JSON file: 5,000 bytes free on "
                                f"its file system, at least {needed:,} needed; nothing segmented: free some space, or "
                                "write the outputs elsewhere")
    assert results_unwritable(error.value)  # a batch stops writing there, as on a full disk
    assert error.value.__cause__.errno == errno.ENOSPC
    assert not (tmp_path / "new").exists()
    check_free_space([target, tmp_path / "new" / "a_seg.json"], (100, 100, 100), 1)  # 1,993 bytes: room


@pytest.mark.parametrize(("blocks", "fragment"), [(0, 1), (1000, 0)])
def test_a_file_system_that_reports_no_size_is_not_checked(tmp_path, monkeypatch, blocks, fragment):
    fake_statvfs(monkeypatch, 0, blocks=blocks, fragment=fragment)  # some network and FUSE file systems
    assert free_bytes(tmp_path) is None
    check_free_space([tmp_path / "a_seg.nii.gz", tmp_path / "a_seg.json"], (512, 512, 600), 1)
