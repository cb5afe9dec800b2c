"""DICOM SEG output for DICOM inputs, written with highdicom and referencing the source series.

Slice k of the converted volume came from ``volume.dicom.paths[k]`` (frame ``volume.dicom.frames[k]``), and
its voxels ``array[:, :, k]`` are that image's pixels transposed (i = column, j = row). The SEG frame for a
source image is therefore ``labels[:, :, k].T``; highdicom copies the source image's position and
orientation into the frame, so the mask lands on the slice it was computed on, unmirrored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.volume import Volume

__all__ = ["write_dicom_seg"]

log = logging.getLogger(__name__)


def write_dicom_seg(labels: np.ndarray, volume: Volume, path: Path | str, label_names: dict[int, str],
                    algorithm: str = "medseg", algorithm_version: str = "0") -> None:
    """Write ``labels`` (on ``volume``'s grid) as a binary DICOM SEG, one segment per non-zero label.

    Not atomic on its own: use :func:`medseg.io.atomic.atomic_paths` around it.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    import medseg

    source = volume.dicom
    if source is None:
        raise InputError(f"{volume.source}: DICOM SEG output needs a DICOM series input, this is not one")
    if tuple(labels.shape) != volume.shape:
        raise ValueError(f"label shape {labels.shape} differs from the volume's {volume.shape}")
    values = sorted(int(v) for v in label_names if int(v) != 0)
    segment_of = np.zeros(max(values + [int(labels.max())]) + 1, dtype=np.uint16)
    for number, value in enumerate(values, start=1):
        segment_of[value] = number
    unknown = set(np.unique(labels).tolist()) - set(values) - {0}
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} have no name in the model package")

    files = list(dict.fromkeys(source.paths))
    datasets = {p: _source_header(p) for p in files}
    multi_frame = any(frame is not None for frame in source.frames)
    if multi_frame and len(files) != 1:
        raise InputError(f"{volume.source}: DICOM SEG output from several multi-frame files is not supported")
    columns, rows, slices = volume.shape
    if multi_frame:
        count = int(datasets[files[0]].NumberOfFrames)
        pixel_array = np.zeros((count, rows, columns), dtype=np.uint16)
        for k, frame in enumerate(source.frames):
            pixel_array[frame] = segment_of[labels[:, :, k].T]
        source_images = [datasets[files[0]]]
    else:
        pixel_array = np.stack([segment_of[labels[:, :, k].T] for k in range(slices)])
        source_images = [datasets[p] for p in source.paths]
    pixel_array = pixel_array.astype(np.uint8 if len(values) < 256 else np.uint16)

    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm, family=codes.cid7162.ArtificialIntelligence, version=str(algorithm_version)
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=str(label_names[value])[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
        )
        for number, value in enumerate(values, start=1)
    ]
    first = source_images[0]
    number = int(first.get("SeriesNumber") or 0) + 1000
    seg = hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name=algorithm[:64],
        software_versions=f"medseg {medseg.__version__}",
        device_serial_number="0",
        series_description=f"medseg {algorithm}"[:64],
        omit_empty_frames=True,
    )
    seg.save_as(str(path))
    log.info("%s: DICOM SEG with %d segments over %d source images", path, len(values), len(source_images))


def _source_header(path: Path):
    """A source image's header; SOP class / instance UIDs left empty by anonymisers come from the file meta."""
    import pydicom

    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    meta = dataset.file_meta
    for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"),
                                  ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
        if not str(dataset.get(keyword, "") or "") and meta is not None and meta.get(meta_keyword):
            setattr(dataset, keyword, meta.get(meta_keyword))
    return dataset
