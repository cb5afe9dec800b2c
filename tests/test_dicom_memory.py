"""The memory a DICOM series takes while read (medseg/io/dicom.py): headers claiming more pixels than their data
hold are refused before allocating, and no file's dataset outlives its reading."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import _raw, make_series, slice_positions, stored_values, write_series
from pydicom.uid import JPEGLSLossless, RLELossless

from medseg.errors import ImageReadError
from medseg.io.dicom import read_dicom_series


def test_headers_claiming_a_huge_image_over_short_pixel_data_are_refused_before_the_volume_is_allocated(tmp_path):
    """Rows and Columns 65535 over 2 kB of pixel data per file: the whole volume (128 GiB as float32) was allocated
    before the first slice was decoded, and the error was "inference failed (Unable to allocate 128. GiB ...)"
    (or, where the system grants it lazily, the address space was taken all the same)."""
    import tracemalloc

    paths = write_series(tmp_path, stored_values((32, 32, 4)), slice_positions(4, 2.0))
    _claim_size(paths, 65535)
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match=r"\.dcm: truncated or corrupt pixel data \(.*less than expected"):
            read_dicom_series(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**30


def test_compressed_headers_claiming_more_than_the_machine_holds_are_refused_before_decoding(tmp_path, monkeypatch):
    """A compressed file's decoder allocates what Rows × Columns × frames say before it finds the data short: 1 kB
    RLE files claiming 40000 × 40000 pixels took 3.5 GB before "cannot decode RLE Lossless pixel data". Against a
    machine of 256 MiB, JPEG-LS files claiming 4000 × 4000 (a compression without RLE's bound on what its data can
    hold) are refused from the headers, naming the sizes, and nothing is decoded."""
    import tracemalloc

    import medseg.io.dicom as dicom_module

    paths = write_series(tmp_path, stored_values((8, 8, 4)), slice_positions(4, 2.0), transfer_syntax=JPEGLSLossless)
    _claim_size(paths, 4000)
    monkeypatch.setattr(dicom_module, "physical_memory", lambda: 2**28, raising=False)
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match=rf"^{re.escape(str(tmp_path))}: series 3 'synthetic' \(CT, 4 images, "
                                                 r"UID [0-9.]+\): its 4000×4000×4 voxels \(0\.24 GiB as float32\) and "
                                                 r"the decoded pixel data of its largest compressed file \(0\.03 GiB\) "
                                                 r"need more memory than this machine has \(0\.25 GiB\); the headers "
                                                 r"are corrupt or the series too large$"):
            read_dicom_series(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24  # a decoded file alone is 32 MB


def test_rle_headers_declaring_more_pixels_than_the_data_can_hold_are_refused_before_decoding(tmp_path):
    """RLE decodes at most 128 bytes from 2: files of about 200 bytes claiming 2000 × 2000 pixels (8 MB) each are
    named as corrupt before the decoder allocates them, on any machine; a real RLE series reads as before."""
    import tracemalloc

    paths = write_series(tmp_path / "claimed", stored_values((8, 8, 4)), slice_positions(4, 2.0),
                         transfer_syntax=RLELossless)
    _claim_size(paths, 2000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError) as caught:
            read_dicom_series(tmp_path / "claimed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    first = Path(str(caught.value).split(": ")[0])  # one of the files (the first the series lists)
    held = len(pydicom.dcmread(first).PixelData)
    assert first in paths
    assert str(caught.value) == (f"{first}: its header declares 1 frame of 2000×2000 pixels (0.0075 GiB decoded), "
                                 f"more than RLE data of {held} bytes can hold; the header is corrupt or the file cut "
                                 "short")
    assert peak < 2**22  # a decoded file alone is 8 MB
    values = np.zeros((64, 64, 3), np.int16)  # as compressible as RLE gets: 8 kB per file from a few hundred bytes
    write_series(tmp_path / "real", values, slice_positions(3, 2.0), transfer_syntax=RLELossless, intercept=0.0)
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "real").array, values.astype(np.float32))


def _claim_size(paths, size: int) -> None:
    """Rewrite each file's header to claim ``size`` × ``size`` pixels, its pixel data left as it is."""
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.Rows = dataset.Columns = size
        dataset.save_as(path)


# "T1 Müller" in UTF-8 bytes, which pydicom writes as they are where no character set is stated (it writes Latin-1)
_UTF8_BYTES_AS_LATIN1 = "T1 Müller".encode().decode("latin-1")


@pytest.mark.parametrize("description", ["synthetic", _UTF8_BYTES_AS_LATIN1], ids=["ascii", "utf8"])
def test_a_series_is_read_without_keeping_every_files_pixels(tmp_path, description):
    """pydicom keeps a file's pixel data, and the array it decodes, in the file's dataset: every dataset of the series
    was held until the whole series was read, twice the stored pixels beside the float32 volume (a 512×512×600 int16
    series peaked at 1.94 GB while read, 1.14 GB after). Text read as UTF-8 under no character set costs nothing."""
    import tracemalloc

    shape = (128, 128, 64)
    values = stored_values(shape, seed=4)
    write_series(tmp_path / "dcm", values, slice_positions(shape[2], 2.0), description=description)
    assert read_dicom_series(tmp_path / "dcm").info["description"] == description.encode("latin-1").decode()
    tracemalloc.start()
    try:
        volume = read_dicom_series(tmp_path / "dcm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(volume.array, values.astype(np.float32) - 1024)  # slope 1, intercept -1024
    assert peak < 9.5 * values.size, peak  # 7.6 B a voxel (the volume, 16 planes, headers); every file's pixels: 11.6


@pytest.mark.parametrize("description", [b"T1 M\xc3\xbcller", b"T1 M\xfcller "], ids=["utf8", "latin1"])
def test_each_files_dataset_goes_with_its_last_reference_not_with_the_cyclic_collector(tmp_path, monkeypatch,
                                                                                        description):
    """The datasets of a series' files (their pixels too, while read) are freed as soon as the reading lets go of
    them, by reference counting alone: a reference cycle through one (from a walk over its text read as UTF-8, say)
    would hold it, pixels and all, until the cyclic collector ran, which after many allocations may be late."""
    import gc
    import weakref

    import medseg.io.dicom_series as dicom_series

    _, paths = make_series(tmp_path / "dcm", seed=3)
    for path in paths:
        _raw(path, "SeriesDescription", "LO", description)
    read, held = dicom_series.pydicom.dcmread, []

    def dcmread(*args, **kwargs):
        dataset = read(*args, **kwargs)
        held.append(weakref.ref(dataset))
        return dataset

    monkeypatch.setattr(dicom_series.pydicom, "dcmread", dcmread)
    gc.collect()
    gc.disable()
    try:
        volume = read_dicom_series(tmp_path / "dcm")
        alive = sum(ref() is not None for ref in held)
    finally:
        gc.enable()
    assert volume.info["description"] == description.decode("utf-8" if description[4] == 0xC3 else "latin-1").strip()
    assert len(held) == len(paths) and alive == 0
