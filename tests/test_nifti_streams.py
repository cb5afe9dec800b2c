"""A NIfTI file's voxels read from its stream (medseg.io.nifti_voxels): a gzip stream checked in the one pass that
reads it, bytes after the stream or after the voxels ignored with a warning, an uncompressed label file read into
memory, not mapped."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ImageReadError
from medseg.io.nifti import read_nifti
from medseg.synthetic import make_phantom


def test_gzip_streams_are_checked_in_the_one_pass_that_reads_them(tmp_path, caplog):
    """The checksum check had decompressed every .nii.gz a second time (3.5–4.5 s against 2.1–2.5 s for a 112 MB
    file), and refused a file with bytes after its stream, which gunzip reads with a warning."""
    from unittest import mock

    array = make_phantom((64, 64, 32), seed=3).image  # 0.5 MB: a second pass would be seen beside the headers
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "one.nii.gz")
    raw = gzip.decompress((tmp_path / "one.nii.gz").read_bytes())
    (tmp_path / "two.nii.gz").write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]) + b"trailing bytes")
    decompressed = []  # bytes handed out by every gzip reader, nibabel's included
    real_read = gzip.GzipFile.read

    def counting(self, size=-1):
        data = real_read(self, size)
        decompressed.append(len(data))
        return data

    with mock.patch.object(gzip.GzipFile, "read", counting):
        np.testing.assert_array_equal(read_nifti(tmp_path / "one.nii.gz").array, array)
    # one pass over the stream: the voxels once, plus the header that nibabel reads on its own first
    assert len(raw) <= sum(decompressed) < 1.1 * len(raw), (sum(decompressed), len(raw))
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(read_nifti(tmp_path / "two.nii.gz").array, array)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'two.nii.gz'}: bytes after the end of the gzip stream ignored"]


@pytest.mark.parametrize("extra", [1, 9, 10])
def test_a_few_bytes_after_the_gzip_stream_are_ignored_as_more_are(tmp_path, caplog, extra):
    """Fewer than 10 stray bytes after the stream (shorter than a gzip header) read to ISA-L's decompressor as a
    stream cut short, and such a file was refused as truncated, where gunzip reads it and 10 bytes or more were
    ignored with a warning. A stream that is really cut short is still refused."""
    array = make_phantom((24, 24, 8), seed=2).image
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "one.nii.gz")
    whole = (tmp_path / "one.nii.gz").read_bytes()
    (tmp_path / "extra.nii.gz").write_bytes(whole + b"\x07" * extra)
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(read_nifti(tmp_path / "extra.nii.gz").array, array)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'extra.nii.gz'}: bytes after the end of the gzip stream ignored"]
    (tmp_path / "cut.nii.gz").write_bytes(whole[:-extra])
    with pytest.raises(ImageReadError, match=r"cut.nii.gz: truncated image data \(its gzip stream ends early\); "):
        read_nifti(tmp_path / "cut.nii.gz")


def test_an_uncompressed_label_file_is_read_into_memory_not_mapped(tmp_path):
    """Before, integer labels from a ``.nii`` were a view of a memory map of the file: the file rewritten while in
    use (a re-export, another run) ended the process with a bus error."""
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), np.eye(4)), tmp_path / "labels.nii")
    array = read_nifti(tmp_path / "labels.nii", labels=True).array
    bases = []
    while array is not None:
        bases.append(type(array))
        array = getattr(array, "base", None)
    assert np.memmap not in bases and all("mmap" not in kind.__name__ for kind in bases)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_stray_bytes_after_the_voxels_are_warned_and_noted_and_zero_padding_is_not(tmp_path, suffix, caplog):
    phantom = make_phantom((24, 20, 6), seed=3)
    path = tmp_path / f"trail{suffix}"
    nib.save(nib.Nifti1Image(phantom.image.astype(np.float32), np.eye(4)), str(path))
    plain = gzip.decompress(path.read_bytes()) if suffix == ".nii.gz" else path.read_bytes()
    path.write_bytes(gzip.compress(plain + b"\1" * 1000) if suffix == ".nii.gz" else plain + b"\1" * 1000)
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.array, phantom.image.astype(np.float32))
    assert volume.info["trailing_bytes_note"] == "1000 bytes after the voxels the header declares ignored"
    assert f"{path}: 1000 bytes after the voxels the header declares ignored" in caplog.messages
    # zeros to a block boundary, even a whole multiple of a small image's voxel bytes: padding, read in silence
    caplog.clear()
    small = tmp_path / f"small{suffix}"
    nib.save(nib.Nifti1Image(np.arange(4, dtype=np.uint8).reshape(2, 2, 1), np.eye(4)), str(small))
    plain = gzip.decompress(small.read_bytes()) if suffix == ".nii.gz" else small.read_bytes()
    padded = plain + b"\0" * (-len(plain) % 16)
    assert (len(padded) - len(plain)) % 4 == 0 and len(padded) > len(plain)
    small.write_bytes(gzip.compress(padded) if suffix == ".nii.gz" else padded)
    volume = read_nifti(small)
    assert volume.array.ravel().tolist() == [0, 1, 2, 3] and "trailing_bytes_note" not in volume.info
    assert not [m for m in caplog.messages if "after the voxels" in m]
