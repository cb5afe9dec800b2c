"""NRRD and MetaImage inputs through medseg's commands (medseg.io.itk_image): infer, evaluate, folder pairing,
cohort planning, the report and the memory guard take them as they take NIfTI files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from itk_factory import (
    ITK_FORMATS,
    _labels,
    _oblique,
    _values,
    simpleitk,  # noqa: F401  (the sitk fixture its tests take)
)

from medseg.errors import ImageReadError, InputError
from medseg.io.atomic import sha256_of
from medseg.io.images import read_grid, read_image
from tests.conftest import run_cli


@pytest.mark.parametrize("ending", [".nrrd", ".mha"])
def test_itk_label_file_keeps_its_integer_type_as_a_reference(sitk, tmp_path, ending):
    from medseg.io.label_images import read_reference

    labels = np.zeros((6, 9, 11), np.uint8)
    labels[2:4, 3:6, 4:8] = 2
    sitk.WriteImage(_oblique(sitk, labels), str(tmp_path / f"label{ending}"))
    volume = read_reference(tmp_path / f"label{ending}", {1: "a", 2: "b"})
    assert volume.array.dtype == np.uint8
    assert int(volume.array.sum()) == 2 * 2 * 3 * 4 and volume.array[5, 4, 2] == 2


def test_infer_on_nrrd_overlays_the_input_exactly(sitk, tmp_path, capsys):
    """medseg infer of an oblique .nrrd: a NIfTI segmentation on the input's RAS affine, its sidecar naming the
    input and its hash; a .mhd's hash covers its data file."""
    import nibabel as nib

    from medseg.synthetic import make_phantom

    phantom = make_phantom(shape=(24, 24, 12), seed=3)
    image = _oblique(sitk, np.ascontiguousarray(phantom.image.T).astype(np.float32))
    sitk.WriteImage(image, str(tmp_path / "scan.nrrd"))
    code, _, err = run_cli(["infer", str(tmp_path / "scan.nrrd"), "-m", "phantom", "-o", str(tmp_path / "out")],
                           capsys)
    assert code == 0, err
    seg = nib.load(tmp_path / "out" / "scan_seg.nii.gz")
    expected = read_grid(tmp_path / "scan.nrrd")[1]
    assert seg.shape == (24, 24, 12)
    assert np.abs(seg.affine - expected).max() < 1e-6
    assert np.abs(seg.header.get_sform() - expected).max() < 1e-6 and int(seg.header["sform_code"]) == 1
    record = json.loads((tmp_path / "out" / "scan_seg.json").read_text())
    assert record["input"] == str(tmp_path / "scan.nrrd")
    assert record["input_sha256"] == sha256_of(tmp_path / "scan.nrrd")
    assert record["input_info"]["reader"].startswith("SimpleITK ")
    assert int(np.asarray(seg.dataobj).max()) > 0

    sitk.WriteImage(image, str(tmp_path / "detached.mhd"))
    code, _, err = run_cli(["infer", str(tmp_path / "detached.mhd"), "-m", "phantom", "-o", str(tmp_path / "out")],
                           capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "detached_seg.json").read_text())
    assert record["input_sha256"] == sha256_of([tmp_path / "detached.mhd", tmp_path / "detached.raw"])


def test_evaluate_scores_an_nrrd_reference_as_its_nifti(sitk, tmp_path, capsys):
    image = _oblique(sitk, _labels())
    sitk.WriteImage(image, str(tmp_path / "case_seg.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "case.nrrd"))
    code, out, err = run_cli(["evaluate", str(tmp_path / "case_seg.nii.gz"), str(tmp_path / "case.nrrd"), "--json"],
                             capsys)
    assert code == 0, err
    metrics = json.loads(out)
    assert [metrics["labels"][key]["dice"] for key in sorted(metrics["labels"])] == [1.0, 1.0]


def test_folders_of_metaimages_pair_and_their_raw_files_are_no_stray_entries(sitk, tmp_path, caplog):
    """evaluate's folder pairing and train's take .mha and .mhd cases; a .mhd's .raw is part of it, not an entry
    left out with a warning."""
    from medseg.folder_scoring import pair_predictions
    from medseg.training_cases import pair_cases

    images, labels, predictions = tmp_path / "imagesTr", tmp_path / "labelsTr", tmp_path / "pred"
    for folder in (images, labels, predictions):
        folder.mkdir()
    for case, ending in (("a", ".mha"), ("b", ".mhd")):
        sitk.WriteImage(_oblique(sitk, _values("int16")), str(images / f"{case}_0000{ending}"))
        sitk.WriteImage(_oblique(sitk, _labels()), str(labels / f"{case}{ending}"))
        sitk.WriteImage(_oblique(sitk, _labels()), str(predictions / f"{case}_seg.nii.gz"))
    with caplog.at_level("WARNING"):
        cases = pair_cases(images, labels)
        pairs = pair_predictions(predictions, labels)
    assert [(c.case_id, c.image_path.name, c.label_path.name) for c in cases] == [
        ("a", "a_0000.mha", "a.mha"), ("b", "b_0000.mhd", "b.mhd")]
    assert [(case, ref.name) for case, _, ref in pairs.pairs] == [("a", "a.mha"), ("b", "b.mhd")]
    assert caplog.records == []


def test_cohort_planning_reads_the_text_header(sitk, tmp_path):
    from medseg.cohort.input_voxels import input_grid

    for ending in ITK_FORMATS:
        sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / f"scan{ending}"))
        grid = input_grid(tmp_path / f"scan{ending}")
        assert grid.voxels == 6 * 9 * 11
        assert np.allclose(grid.spacing_mm, (0.7, 1.3, 2.5), atol=1e-9)


def test_report_reads_an_nrrd_reference_as_integers(sitk, tmp_path):
    from medseg.report.checks import read_labels

    sitk.WriteImage(_oblique(sitk, _labels()), str(tmp_path / "ref.nrrd"))
    sitk.WriteImage(_oblique(sitk, _labels()), str(tmp_path / "ref.nii.gz"))
    array, affine = read_labels(tmp_path / "ref.nrrd")
    nifti_array, nifti_affine = read_labels(tmp_path / "ref.nii.gz")
    assert array.dtype == np.uint8 and np.array_equal(array, nifti_array)
    assert np.abs(affine - nifti_affine).max() < 1e-6


def test_a_folder_of_metaimages_given_as_a_dicom_study_says_to_give_the_files(tmp_path):
    from medseg.errors import DicomError

    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "a.mha").write_bytes(b"ObjectType = Image\n")
    with pytest.raises(DicomError) as error:
        read_image(tmp_path / "study")
    assert str(error.value).endswith(f"; a folder is read as one DICOM study: give image files one by one, e.g. "
                                     f"{tmp_path / 'study'}/*.mha")


def test_the_memory_guard_refuses_from_the_header_before_any_voxel(sitk, tmp_path, phantom_segmenter, monkeypatch):
    """A .mhd whose header declares 4000×4000×3000 voxels (its .raw holds them, as zeros on no disk space: a sparse
    file): refused by the memory guard from read_grid, not read."""
    import medseg.memory_guard
    import medseg.preprocess
    from medseg.segment import segment_case

    monkeypatch.setattr(medseg.memory_guard, "physical_memory", lambda: 8 << 30)  # the same on any machine
    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "huge.mhd"))
    header = (tmp_path / "huge.mhd").read_text().replace("DimSize = 11 9 6", "DimSize = 4000 4000 3000")
    (tmp_path / "huge.mhd").write_text(header)
    with open(tmp_path / "huge.raw", "r+b") as raw:
        raw.truncate(4000 * 4000 * 3000 * 2)
    with pytest.raises(InputError) as error:
        segment_case(tmp_path / "huge.mhd", phantom_segmenter, tmp_path / "out")
    assert str(error.value) == (f"{tmp_path / 'huge.mhd'}: segmenting its 4000×4000×3000 voxels needs about 536 GiB "
                                "of memory (this machine has 8 GiB); segment it on a machine with more memory, or in "
                                "parts")
    assert not (tmp_path / "out").exists()


def test_a_mhd_whose_raw_was_replaced_is_stale_in_the_report(sitk, tmp_path, make_package):
    """`medseg infer scan.mhd` then the .raw rewritten (the .mhd untouched): the report kept the old figures,
    unflagged, since the signature recorded (size and time) was the header's alone."""
    import csv

    from medseg.inference import Segmenter
    from medseg.io.pairs import file_signature
    from medseg.report import build_report
    from medseg.segment import segment_case

    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.mhd"))
    segment_case(tmp_path / "scan.mhd", Segmenter(make_package()), tmp_path / "out")
    raw = tmp_path / "scan.raw"
    stats = [(tmp_path / "scan.mhd").stat(), raw.stat()]
    assert file_signature(tmp_path / "scan.mhd") == [[s.st_size, s.st_mtime_ns] for s in stats]
    sidecar = json.loads((tmp_path / "out" / "scan_seg.json").read_text())
    assert sidecar["input_signature"] == [[s.st_size, s.st_mtime_ns] for s in stats]

    raw.write_bytes(raw.read_bytes()[::-1])  # another image of the same size, under the same header
    with open(build_report(tmp_path / "out", tmp_path / "r" / "report.html", max_overlays=0).table,
              newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    assert (row["status"], row["failed_stage"]) == ("failed", "stale")
    assert row["error"] == (f"the input {tmp_path / 'scan.mhd'} was changed or replaced after the case was segmented "
                            "(its SHA-256 is not the one recorded then); segment the case again (a cohort redoes "
                            "such a case)")


def test_a_header_declaring_more_voxels_than_its_data_file_holds_is_corrupt_not_too_large(sitk, tmp_path, capsys):
    """An NRRD or MetaImage header declaring 30000³ voxels beside a data file of 7 kB was blamed on the machine's
    memory ("segmenting its 30000×30000×30000 voxels needs about 301749 GiB of memory …; segment it on a machine
    with more memory"): the header is read before the size guard, and now with the size of its data."""
    image = sitk.GetImageFromArray(np.zeros((12, 12, 12), np.float32))
    for name in ("scan.nhdr", "scan.mhd"):
        sitk.WriteImage(image, str(tmp_path / name))
        header = tmp_path / name
        text = header.read_text()
        header.write_text(text.replace("sizes: 12 12 12", "sizes: 30000 30000 30000")
                          .replace("DimSize = 12 12 12", "DimSize = 30000 30000 30000"))
        assert text != header.read_text()
        said = f"{header}: its data file scan.raw: truncated image data (6912 of the 108000000000000 bytes its header "
        with pytest.raises(ImageReadError) as caught:
            read_grid(header)
        assert str(caught.value).startswith(said)
        code, _, err = run_cli(["infer", str(header), "-m", "phantom", "-o", str(tmp_path / "out")], capsys)
        assert code == 1 and err.strip().splitlines()[-1].startswith(f"medseg: error: {said}")
        assert not (tmp_path / "out").exists()


def test_a_compressed_file_declaring_more_voxels_than_it_can_expand_to_is_corrupt_not_too_large(sitk, tmp_path,
                                                                                              capsys):
    """As a raw one: a gzip-compressed NRRD (or zlib-compressed MetaImage) declaring 4000³ voxels beside a few hundred
    bytes was blamed on the machine's memory ("needs about 715 GiB of memory … segment it on a machine with more
    memory"); no compression these readers take expands that far (deflate's 1032:1, bzip2's 45,900,000:1)."""
    image = sitk.GetImageFromArray(np.zeros((12, 12, 12), np.int16))
    for name, old, new in (("scan.nrrd", "sizes: 12 12 12", "sizes: 4000 4000 4000"),
                           ("scan.mha", "DimSize = 12 12 12", "DimSize = 4000 4000 4000")):
        header = tmp_path / name
        sitk.WriteImage(image, str(header), True)
        assert read_grid(header)[0] == (12, 12, 12)  # a whole file within the bound is read as before
        data = header.read_bytes()
        assert old.encode() in data
        header.write_bytes(data.replace(old.encode(), new.encode()))
        size = header.stat().st_size
        said = (f"{header}: its header declares 4000×4000×4000 voxels of int16 (128000000000 bytes), more than its "
                f"{size} bytes on disk can hold compressed; the file was cut short")
        with pytest.raises(ImageReadError) as caught:
            read_grid(header)
        assert str(caught.value).startswith(said)
        code, _, err = run_cli(["infer", str(header), "-m", "phantom", "-o", str(tmp_path / "out")], capsys)
        assert code == 1 and err.strip().splitlines()[-1].startswith(f"medseg: error: {said}"), err
        assert "GiB" not in err and not (tmp_path / "out").exists()
