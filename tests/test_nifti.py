"""Reading a NIfTI file as :func:`medseg.io.nifti.read_nifti` does: a file cut short or voxels that are not grey
levels told in words, as the other readers tell them."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ImageReadError
from medseg.io.nifti import read_nifti
from medseg.report.checks import read_labels


def test_a_header_read_alone_that_is_empty_or_cut_short_is_told_as_reading_the_image_tells_it(tmp_path):
    """Reading a header alone (training's checks of every case, scoring's grid checks) said of an empty image file
    "cannot read header (Empty file: '<the path again>')", and the report, which reads a segmentation's labels as
    they are stored, "Empty file: '<the path>'", where segmenting it says it was cut short."""
    from medseg.io.images import read_grid

    header = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)).header.binaryblock
    cases = {"empty.nii.gz": (b"", "an empty file (0 bytes)"),
             "cut.nii": (header[:200], "truncated header (200 of 348 bytes)"),
             "cut_packed.nii.gz": (gzip.compress(header[:100]), "truncated header (100 of 348 bytes)")}
    for name, (data, said) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        expected = f"{path}: {said}; the file was cut short (an interrupted copy or download?)"
        for read in (read_grid, lambda p: read_nifti(p, hash_input=False), read_labels):
            with pytest.raises(ImageReadError) as caught:
                read(path)
            assert str(caught.value) == expected


def test_rgb_voxels_are_refused_in_words_not_as_numpys_record_type(tmp_path):
    """An RGB24 NIfTI was refused as "RGB or other multi-value voxels ([('R', 'u1'), ('G', 'u1'), ('B', 'u1')])"."""
    path = tmp_path / "rgb.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]), np.eye(4)), path)
    with pytest.raises(ValueError) as caught:
        read_nifti(path, hash_input=False)
    assert str(caught.value) == (f"{path}: RGB or other multi-value voxels (3 values per voxel, R, G, B of uint8); "
                                 "medseg reads grey-level images (one number per voxel)")
