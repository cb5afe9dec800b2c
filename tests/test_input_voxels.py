"""The size of a cohort's inputs read from their headers while the workflow plans (no voxel data is read)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.cohort.input_voxels import InputGrid, input_grid, voxel_count


def _header_only_nifti(path: Path, shape: tuple[int, ...], zooms: tuple[float, ...] | None = None) -> Path:
    """A NIfTI file whose header declares ``shape`` (its voxels are not written: only the header is read)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    if zooms is not None:
        header.set_zooms(zooms)
    path.write_bytes(header.binaryblock + b"\0" * 4)
    return path


def test_voxels_are_read_from_headers_and_unreadable_inputs_count_none(tmp_path):
    from dicom_factory import slice_positions, stored_values, write_series

    assert voxel_count(_header_only_nifti(tmp_path / "a.nii", (320, 256, 40))) == 320 * 256 * 40
    assert voxel_count(_header_only_nifti(tmp_path / "t.nii", (64, 64, 10, 3))) == 64 * 64 * 10 * 3
    series = tmp_path / "dicom"
    write_series(series, stored_values((24, 20, 6)), slice_positions(6, 2.0))
    (series / "notes.txt").write_text("not DICOM")  # skipped for the header; counted as a file (an upper bound)
    assert voxel_count(series) == 20 * 24 * 7
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    assert voxel_count(tmp_path / "bad.nii.gz") == 0
    assert voxel_count(tmp_path / "gone.nii.gz") == 0


def test_nifti_headers_of_either_version_byte_order_and_compression_are_read(tmp_path):
    """The voxel count and voxel size are read without nibabel (planning does not import it): NIfTI-1 and NIfTI-2,
    gzipped or not, either byte order."""
    import gzip

    for index, (kind, order, gzipped) in enumerate([(nib.Nifti1Header, "<", False), (nib.Nifti2Header, "<", True),
                                                    (nib.Nifti1Header, ">", True), (nib.Nifti2Header, ">", False)]):
        header = kind(endianness=order)
        header.set_data_shape((7, 5, 3))
        header.set_zooms((0.5, 2.0, 3.0))
        block = header.binaryblock + b"\0" * 4
        path = tmp_path / f"v{index}.nii{'.gz' if gzipped else ''}"
        path.write_bytes(gzip.compress(block) if gzipped else block)
        assert nib.load(path).shape == (7, 5, 3)
        assert voxel_count(path) == 105, (kind.__name__, order, gzipped)
        assert input_grid(path) == InputGrid(105, (0.5, 2.0, 3.0)), (kind.__name__, order, gzipped)


def test_a_named_pipe_given_as_an_input_counts_no_voxels_without_waiting(tmp_path):
    """Its header was read while planning: a named pipe given as an image waited for a writer, and the cohort's
    planning with it (its case fails in its own job, as any unreadable input)."""
    import os
    import subprocess
    import sys

    pipe = tmp_path / "pipe.nii.gz"
    os.mkfifo(pipe)
    code = f"from medseg.cohort.input_voxels import voxel_count\nprint(voxel_count({str(pipe)!r}))"
    counted = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                             cwd=Path(__file__).resolve().parents[1])
    assert (counted.returncode, counted.stdout) == (0, "0\n"), counted.stderr


def test_a_header_without_a_voxel_size_gives_none(tmp_path):
    path = _header_only_nifti(tmp_path / "a.nii", (4, 4, 4))
    block = bytearray(path.read_bytes())
    block[80:84] = np.float32(0).tobytes()  # pixdim[1] = 0
    path.write_bytes(bytes(block))
    assert input_grid(path) == InputGrid(64, None)
    assert input_grid(path).voxel_mm3 is None
    assert input_grid(_header_only_nifti(tmp_path / "b.nii", (4, 4, 4), (0.5, 0.5, 2.0))).voxel_mm3 == 0.5


def test_a_dicom_folder_is_counted_from_its_entries_and_one_header(tmp_path):
    """Every file under the folder counts (subfolders too, hidden files not), and the grid comes from one header:
    pixel spacing, then SpacingBetweenSlices, else SliceThickness when believable, else the larger pixel spacing
    (the factory writes a SliceThickness of 99 mm)."""
    from dicom_factory import slice_positions, stored_values, write_series

    series = tmp_path / "study"
    write_series(series / "a", stored_values((24, 20, 3)), slice_positions(3, 2.0), pixel_spacing=(0.8, 0.6))
    write_series(series / "b" / "c", stored_values((24, 20, 2)), slice_positions(2, 2.0), pixel_spacing=(0.8, 0.6))
    (series / ".DS_Store").write_bytes(b"hidden")
    assert input_grid(series) == InputGrid(20 * 24 * 5, (0.8, 0.6, 0.8))
    thick = tmp_path / "thick"
    write_series(thick, stored_values((24, 20, 2)), slice_positions(2, 2.0), extra={"SliceThickness": 2.5})
    assert input_grid(thick).spacing_mm == (0.8, 0.6, 2.5)
    spaced = tmp_path / "spaced"
    write_series(spaced, stored_values((24, 20, 2)), slice_positions(2, 2.0),
                 extra={"SliceThickness": 2.5, "SpacingBetweenSlices": 2.0})
    assert input_grid(spaced).spacing_mm == (0.8, 0.6, 2.0)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("not DICOM")
    assert input_grid(notes) == InputGrid(0, None)
    (tmp_path / "empty").mkdir()
    assert input_grid(tmp_path / "empty") == InputGrid(0, None)
