"""What naming a reading library's warnings costs per DICOM header read, in one run.

    python benchmarks/read_warnings.py [--files 2000]

Writes ``--files`` small DICOM headers (CT-like, 512×512, no pixels) in a temporary folder, half of them with a value
pydicom warns about (``IS`` of ``'4.0'``), then reads their headers as cohort planning does (``pydicom.dcmread``
without pixels, its values taken, where pydicom warns), plain and within
:func:`medseg.io.read_warnings.warnings_naming`, after importing torch and MONAI (a ``medseg`` process has them
loaded: three thousand modules). pydicom both logs and warns each such value (``Invalid value for VR IS``); the named
read tells it once, through the log. The last row has pydicom's log off, so the warning alone is told, as nibabel's
are. Prints each way's microseconds per file and the ratio of the named read to the plain one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path


def _write_headers(folder: Path, count: int, odd: bool) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    paths = []
    for number in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        dataset.Rows, dataset.Columns, dataset.PixelSpacing = 512, 512, [0.7, 0.7]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset.add_new(0x00200013, "IS", "4.0" if odd else str(number + 1))  # InstanceNumber
        path = folder / f"{'odd' if odd else 'quiet'}{number:05d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _per_file(paths: list[Path], named: bool) -> float:
    import pydicom

    from medseg.io.read_warnings import warnings_naming

    tags = ["Rows", "Columns", "NumberOfFrames", "InstanceNumber"]
    start = time.perf_counter()
    for path in paths:
        if named:
            with warnings_naming(path):
                pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags).get("InstanceNumber")
        else:
            pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags).get("InstanceNumber")
    return (time.perf_counter() - start) / len(paths) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="headers written and read (default 2000)")
    count = parser.parse_args().files
    import logging

    import monai  # noqa: F401 - loaded, as in a medseg process
    import torch  # noqa: F401

    pydicom_log = logging.getLogger("pydicom")  # it logs each warning too: not written out, so writing does not count
    pydicom_log.addHandler(logging.NullHandler())
    pydicom_log.propagate = False

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings are made and named; not shown, so printing does not count
        kinds = {"quiet": _write_headers(Path(folder), count // 2, odd=False),
                 "warning": _write_headers(Path(folder), count // 2, odd=True)}
        rows = [*kinds.items(), ("warned only", kinds["warning"])]
        for kind, paths in rows:
            pydicom_log.disabled = kind == "warned only"
            _per_file(paths[:20], True)  # imports and caches, before timing
            plain = min(_per_file(paths, False) for _ in range(2))
            named = min(_per_file(paths, True) for _ in range(2))
            print(f"{kind:11} files: plain {plain:7.1f} µs, named {named:7.1f} µs per file; named ÷ plain "
                  f"{named / plain:.2f}")


if __name__ == "__main__":
    main()
