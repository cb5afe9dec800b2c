"""Checks that read the files (medseg.report.checks): grids of the segmentation, input and reference, label
files read as nibabel reads them, border contact, DICOM inputs, files that cannot be read."""

from __future__ import annotations

import html as html_module
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    LABELS,
    flag_set,
    phantom,
    read_tsv,
    write_case,
    write_case_arrays,
    write_failure,
)

from medseg.errors import MedsegWarning
from medseg.metrics import metrics_json
from medseg.report.build import build_report


def test_geometry_flags(tmp_path):
    for seed in range(3):
        write_case(tmp_path, f"g{seed}", seed, "exact")
    # g1: the segmentation file was replaced by one on another grid; g2: the file is gone
    seg = tmp_path / "cases" / "g1" / "g1_seg.nii.gz"
    image = nib.load(seg)
    moved = image.affine.copy()
    moved[0, 3] += 2.0
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), moved), seg)
    (tmp_path / "cases" / "g2" / "g2_seg.nii.gz").unlink()
    write_failure(tmp_path, "g3", stage="evaluate", error_type="GeometryError")
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert flag_set(rows["g0"]) == set()
    assert flag_set(rows["g1"]) == {"geometry"}
    # a segmentation gone beside its sidecar is a failed case, its error naming the file (it was a geometry flag)
    assert (rows["g2"]["status"], flag_set(rows["g2"])) == ("failed", {"failed"})
    assert rows["g2"]["error"].startswith("cases/g2/g2_seg.nii.gz: no such file: ")
    assert flag_set(rows["g3"]) == {"failed", "geometry"}
    page = (tmp_path / "r.html").read_text()
    assert "segmentation affine moves voxels up to 2 mm" in page


@pytest.mark.parametrize("max_overlays", [0, 100])
def test_input_and_reference_grids_are_checked_for_every_case(tmp_path, max_overlays):
    """Grid flags do not depend on which cases get an overlay; a reference holding the same voxels in another
    order (as scoring re-indexes it) is no geometry problem and is drawn."""
    for seed, case_id in enumerate(("same", "replaced", "reordered", "wrong_ref")):
        write_case(tmp_path, case_id, seed, "exact")
    # replaced: its input image was replaced after inference by one on another grid
    replaced = tmp_path / "inputs" / "1_image.nii.gz"
    image = nib.load(replaced)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj)[:, :, :-1], image.affine), replaced)
    # reordered: scored against its reference stored with axes (2, 0, 1) reversed along the first
    _, labels, affine = phantom(2)
    n2 = labels.shape[2]
    index_change = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [-1, 0, 0, n2 - 1], [0, 0, 0, 1]], dtype=float)
    reordered_ref = tmp_path / "inputs" / "2_label_reordered.nii.gz"
    nib.save(nib.Nifti1Image(np.flip(labels.transpose(2, 0, 1), axis=0), affine @ index_change), reordered_ref)
    from medseg.scoring import evaluate_files

    case = tmp_path / "cases" / "reordered"
    metrics = evaluate_files(case / "reordered_seg.nii.gz", reordered_ref, LABELS, case_id="reordered")
    assert metrics["reference_reordered"] is True
    (case / "reordered_metrics.json").write_text(metrics_json(metrics))
    # wrong_ref: its reference now lies 3 mm away
    wrong = tmp_path / "inputs" / "3_label.nii.gz"
    image = nib.load(wrong)
    moved = image.affine.copy()
    moved[1, 3] += 3.0
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), moved), wrong)

    outputs = build_report(tmp_path, tmp_path / "r.html", max_overlays=max_overlays)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert {case_id: flag_set(row) for case_id, row in rows.items()} == {
        "same": set(), "replaced": {"geometry"}, "reordered": set(), "wrong_ref": {"geometry"}}
    page = (tmp_path / "r.html").read_text()
    assert ("input image 1_image.nii.gz is not on the segmentation&#x27;s grid (shape (30, 34, 17) vs "
            "(30, 34, 18))") in page
    assert "reference 3_label.nii.gz is not on the segmentation&#x27;s grid" in page
    assert "scored against a reference holding the same voxels in another order" in page
    assert outputs.overlays == (4 if max_overlays else 0)


@pytest.mark.parametrize("ndim", [2, 4])
def test_a_reference_replaced_by_one_that_is_not_3d_is_a_geometry_flag(tmp_path, ndim):
    write_case(tmp_path, "c", 0, "exact")
    _, labels, affine = phantom(0)
    replaced = labels[:, :, 5] if ndim == 2 else np.stack([labels, labels], axis=-1)
    nib.save(nib.Nifti1Image(replaced, affine), tmp_path / "inputs" / "0_label.nii.gz")
    outputs = build_report(tmp_path, tmp_path / "r.html")
    row = read_tsv(outputs.table)[0]
    assert flag_set(row) == {"geometry"} and outputs.overlays == 1
    page = outputs.html.read_text()
    assert "reference 0_label.nii.gz is not on the segmentation&#x27;s grid" in page
    assert "reference not shown: 0_label.nii.gz is not on the segmentation&#x27;s grid" in page


def _dicom_case(tmp_path, make_package, series_args=()):
    """A DICOM folder holding one series split in two parts (two orientations under one UID), segmented with a
    tiny model; returns the results folder."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_factory import slice_positions, write_series

    from medseg.cli import main

    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    values = (np.random.default_rng(0).integers(0, 40, (48, 48, 12)) + 1024).astype(np.int16)
    folder = tmp_path / "study"
    write_series(folder, values, slice_positions(12, 2.0), series_number=7, series_uid="1.2.3.7")
    write_series(folder, values, slice_positions(12, 2.0, origin=(0.0, 50.0, 0.0), orientation=coronal),
                 orientation=coronal, series_number=7, series_uid="1.2.3.7", prefix="c")
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(folder), "--series", "7-1", "-m", str(make_package()), "-o",
              str(results / "cases" / "study")])
    assert info.value.code == 0
    return folder, results


def test_the_segmented_part_of_a_split_dicom_series_is_checked_and_drawn(tmp_path, make_package, caplog):
    folder, results = _dicom_case(tmp_path, make_package)
    (folder / "README.txt").write_text("exported by a PACS\n")
    with caplog.at_level("WARNING"):
        outputs = build_report(results, results / "report.html")
    # the report reads the folder twice (grid check, overlay): its skipped files were named when it was segmented
    assert "not DICOM" not in caplog.text
    assert "geometry" not in flag_set(read_tsv(outputs.table)[0]) and outputs.overlays == 1
    page = outputs.html.read_text()
    assert "not checked" not in page and "image not shown" not in page


def test_a_series_sharing_its_number_with_another_is_found_by_uid_and_named_on_the_card(tmp_path, make_package):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_factory import slice_positions, write_series

    from medseg.cli import main

    folder = tmp_path / "study"
    for seed, uid in ((1, "1.2.3.51"), (2, "1.2.3.52")):
        values = (np.random.default_rng(seed).integers(0, 40, (40, 40, 8)) + 1024).astype(np.int16)
        write_series(folder, values, slice_positions(8, 2.0), series_number=5, series_uid=uid, prefix=f"u{seed}_",
                     description=f"part {seed}")
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(folder), "--series", "1.2.3.52", "-m", str(make_package()), "-o",
              str(results / "cases" / "study")])
    assert info.value.code == 0
    outputs = build_report(results, results / "report.html")
    page = outputs.html.read_text()
    assert "not checked" not in page and "image not shown" not in page
    assert f"input <code>{folder} (series 5 &#x27;part 2&#x27;, UID 1.2.3.52)</code>" in page


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs a file that cannot be read, /proc/self/mem")
def test_an_unreadable_file_in_a_dicom_input_is_a_note_not_a_crash(tmp_path, make_package):
    folder, results = _dicom_case(tmp_path, make_package)
    os.symlink("/proc/self/mem", folder / "zz.dcm")  # opening it works, reading it fails (EIO), even as root
    outputs = build_report(results, results / "report.html")
    assert outputs.cases == 1
    assert "input image not checked: " in outputs.html.read_text()


def test_a_reference_on_a_tilted_series_itk_grid_is_no_geometry_problem(tmp_path, make_package):
    """Scoring takes a reference drawn in ITK-SNAP over a gantry-tilted series (on its unsheared grid) as the
    segmentation's voxels; the report flagged the scored case "reference ... is not on the segmentation's grid"."""
    import math
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_factory import slice_positions, stored_values, write_series

    from medseg.cli import main
    from medseg.io.dicom import read_dicom_series
    from medseg.io.nifti import qform_for

    shape = (40, 36, 12)
    positions = slice_positions(shape[2], 2.0, inplane_shift=(0.0, 2.0 * math.tan(math.radians(15.0)), 0.0))
    write_series(tmp_path / "study", stored_values(shape, seed=2), positions, extra={"GantryDetectorTilt": 15.0})
    untilted, _ = qform_for(read_dicom_series(tmp_path / "study").affine)
    labels = np.zeros(shape, np.uint8)
    labels[10:30, 8:28, 3:9] = 1
    nib.save(nib.Nifti1Image(labels, untilted), tmp_path / "itksnap.nii.gz")
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(results),
              "--reference", str(tmp_path / "itksnap.nii.gz")])
    assert info.value.code == 0
    outputs = build_report(results, results / "report.html")
    assert "geometry" not in flag_set(read_tsv(outputs.table)[0])
    page = outputs.html.read_text()
    assert "reference itksnap.nii.gz is not on the segmentation" not in page
    assert "reference not shown" not in page


@pytest.mark.parametrize("dtype, slope, shape, name", [
    ("uint8", None, (256, 192, 80), "seg.nii.gz"), ("int16", None, (20, 30, 10), "seg.nii.gz"),
    ("float32", None, (20, 30, 10), "seg.nii.gz"), ("uint8", 2.0, (20, 30, 10), "seg.nii.gz"),
    ("uint8", None, (20, 30, 10, 1), "seg.nii.gz"), ("uint8", None, (20, 30, 10), "seg.nii"),
])
def test_a_label_file_is_read_as_nibabel_reads_it_with_one_copy_of_its_voxels(tmp_path, monkeypatch, dtype, slope,
                                                                              shape, name):
    """nibabel reads a gzip-compressed image into the decompressed bytes and then the array: the report held two
    copies of each label volume while reading it (0.63 GB more for a 1024×1024×300 segmentation). It is read a block
    at a time into one array now, with the same type, values and layout (float and scaled voxels rounded to int32, as
    before; an uncompressed file mapped by nibabel, as before)."""
    import tracemalloc

    from medseg.io import nifti_voxels
    from medseg.io.nifti import as_3d
    from medseg.report.checks import read_labels

    rng = np.random.default_rng(2)
    stored = (rng.random(shape) * 4).astype(dtype)
    stored[(rng.random(shape) < 0.8)] = 0
    image = nib.Nifti1Image(stored, np.diag([0.8, 0.8, 1.5, 1.0]))
    if slope is not None:
        image.header.set_slope_inter(slope, 0.0)
    nib.save(image, tmp_path / name)
    expected = as_3d(np.asanyarray(nib.load(tmp_path / name).dataobj))
    if not np.issubdtype(expected.dtype, np.integer):
        expected = np.rint(expected).astype(np.int32)
    read_labels(tmp_path / name)  # the modules it imports, loaded
    monkeypatch.setattr(nifti_voxels, "_VOXEL_BLOCK_BYTES", 256 * 192 * 4)
    tracemalloc.start()
    try:
        labels, affine = read_labels(tmp_path / name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert labels.dtype == expected.dtype and labels.shape == expected.shape
    assert labels.flags.f_contiguous == expected.flags.f_contiguous
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_allclose(affine, np.diag([0.8, 0.8, 1.5, 1.0]), atol=1e-6)
    if dtype == "uint8" and shape == (256, 192, 80) and name.endswith(".gz"):  # 2 copies before
        assert peak < 1.3 * labels.nbytes, f"{peak / labels.nbytes:.2f} copies"


@pytest.mark.parametrize("damage", ["cut", "crc", "length"])
def test_a_damaged_label_file_is_refused_in_one_line_naming_it_as_read_nifti_refuses_it(tmp_path, damage):
    """A gzip stream cut short fails as medseg's reader fails it. A wrong CRC-32 or length in the gzip trailer (a
    stream that still decodes, to voxels that may be wrong) was read in silence, and drawn: nibabel stops once it
    has the voxels, where read_nifti reads on to the trailer that gzip checks."""
    from medseg.errors import ImageReadError
    from medseg.io.nifti import read_nifti
    from medseg.report.checks import read_labels

    path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).integers(0, 200, (40, 40, 30), dtype=np.uint8), np.eye(4)),
             path)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        data = data[:len(data) // 2]
    else:
        data[-8 if damage == "crc" else -4] ^= 0x01  # the trailer: CRC-32, then the length
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as expected:
        read_nifti(path, labels=True)
    with pytest.raises(ImageReadError) as raised:
        read_labels(path)
    assert str(raised.value) == str(expected.value)
    assert str(raised.value).startswith(f"{path}: truncated") and "\n" not in str(raised.value)
    if damage == "crc":
        assert "(gzip: CRC check failed" in str(raised.value)


def test_gzip_files_with_bytes_after_the_stream_are_read_as_nibabel_reads_them(tmp_path):
    """Label files and inputs are decompressed by ISA-L (a 512×512×1000 CT in 1.6 s instead of 5.0), whose reader
    refuses bytes after the gzip stream that gunzip and nibabel read past: such files are read by nibabel, to the
    same values and the same picture."""
    from medseg.io.nifti import load_image
    from medseg.report.checks import read_labels
    from medseg.report.overlay import CaseArrays, ImageFile, render_overlay

    image, labels, affine = phantom(3, shape=(40, 34, 18))
    stored = nib.Nifti1Image(np.round(image * 4 - 100).astype(np.int16), affine)
    stored.header.set_slope_inter(0.25, 25.0)
    nib.save(stored, tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "seg.nii.gz")
    for name in ("ct.nii.gz", "seg.nii.gz"):
        with open(tmp_path / name, "ab") as file:
            file.write(b"bytes after the stream")
    read, _ = read_labels(tmp_path / "seg.nii.gz")
    assert read.dtype == labels.dtype and np.array_equal(read, labels)
    whole = CaseArrays(labels, affine, nib.load(tmp_path / "ct.nii.gz").get_fdata(dtype=np.float32))
    part = CaseArrays(labels, affine, ImageFile(tmp_path / "ct.nii.gz", load_image(tmp_path / "ct.nii.gz", mmap=False)))
    assert render_overlay(part, [("1", "ball"), ("2", "box")], "1") == render_overlay(
        whole, [("1", "ball"), ("2", "box")], "1")
    assert part.notes == [] and part.image is not None


def test_a_segmentation_off_its_recorded_grid_is_told_from_its_header_not_read(tmp_path, monkeypatch):
    """A segmentation replaced after the run by a file of another shape (a 4 MB gzip file can declare 16 GiB of
    voxels) was read whole, for the border check and again for the overlay, only to be flagged: its header now
    decides, for a sidecar's recorded shape and, for a prediction only metrics name, its reference's voxel count."""
    import medseg.report.checks as checks

    for case_id, seed in (("kept", 0), ("replaced", 1), ("scored", 2)):
        write_case(tmp_path, case_id, seed, "exact")
    replaced = tmp_path / "cases" / "replaced" / "replaced_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((60, 34, 18), np.uint8), np.diag([1.0, 1.0, 2.0, 1.0])), replaced)
    scored = tmp_path / "cases" / "scored" / "scored_seg.nii.gz"
    (tmp_path / "cases" / "scored" / "scored_seg.json").unlink()  # as `medseg evaluate` leaves a case: metrics only
    nib.save(nib.Nifti1Image(np.zeros((30, 34, 40), np.uint8), np.diag([1.0, 1.0, 2.0, 1.0])), scored)
    read = []
    real_read_labels = checks.read_labels
    monkeypatch.setattr(checks, "read_labels", lambda path: read.append(Path(path)) or real_read_labels(path))
    outputs = build_report(tmp_path, tmp_path / "r.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert replaced not in read and scored not in read
    assert read.count(tmp_path / "cases" / "kept" / "kept_seg.nii.gz") == 2  # checked, and drawn, as before
    assert flag_set(rows["replaced"]) == {"geometry"} and flag_set(rows["kept"]) == set()
    assert "geometry" in flag_set(rows["scored"])
    assert outputs.overlays == 1
    page = html_module.unescape((tmp_path / "r.html").read_text())
    assert ("no overlay: segmentation shape (60, 34, 18) differs from the input's (30, 34, 18) recorded in the "
            "sidecar (not read)") in page
    assert ("no overlay: scored_seg.nii.gz: shape (30, 34, 40), more voxels than its reference 2_label.nii.gz "
            "(30, 34, 18) (not read)") in page


def test_border_contact_is_flagged_only_where_the_reference_does_not_reach(tmp_path):
    """A structure the field of view cuts off touches the face in the reference too: no flag (before, every organ
    of a cropped CT was flagged, on perfect cases too). A prediction leaking onto a face the reference does not
    reach is flagged, naming the face in words."""
    image, labels, affine = phantom(0)
    cut = labels.copy()
    footprint = labels[:, :, 8] == 1
    for k in range(8):
        cut[:, :, k][footprint] = 1  # the ball reaches the first k face in the reference...
    write_case_arrays(tmp_path, "cut_off", image, cut, cut.copy(), affine)  # ...and in the prediction
    leak = labels.copy()
    leak[0, 10:14, 15:18] = 2  # a few box voxels on the first i face, where the reference has none
    write_case_arrays(tmp_path, "leaks", image + 1, labels, leak, affine)  # other scans (not duplicate inputs)
    write_case_arrays(tmp_path, "unscored", image + 2, cut, cut.copy(), affine, reference=False)
    built = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert flag_set(rows["cut_off"]) == set()
    assert flag_set(rows["leaks"]) == {"touches_border(box)"}
    assert flag_set(rows["unscored"]) == {"touches_border(ball)"}  # without a reference: nothing to compare with
    page = built.html.read_text(encoding="utf-8")
    assert "box touches the volume border where the reference does not (first i 12, last k 4 voxels)" in page


def _refuse_opening(monkeypatch, name: str) -> None:
    """Opening a file named ``name`` fails as for a file this user may not read (chmod does not refuse root)."""
    import builtins
    import errno

    real = builtins.open

    def refused(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and os.path.basename(os.fspath(path)) == name:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refused)


@pytest.mark.parametrize("refused, shape, overlays, expected", [
    # flagged "c1_seg.nii.gz: cannot read (Could not read file: /…/c1_seg.nii.gz)": nibabel's words, the path twice
    ("c1_seg.nii.gz", "exact", 0, "c1_seg.nii.gz: cannot read (permission denied)"),
    # the overlay's note read "reference not shown: 0_label.nii.gz: Could not read file: /…/0_label.nii.gz"
    ("0_label.nii.gz", "erode", 5, "reference not shown: 0_label.nii.gz: cannot read (permission denied)"),
], ids=["segmentation", "reference-of-an-overlay"])
def test_a_file_this_user_may_not_read_gives_the_reason_as_other_messages_do(tmp_path, monkeypatch, refused, shape,
                                                                            overlays, expected):
    """A segmentation, or the reference an overlay draws, that another user's umask left unreadable was told in
    nibabel's words with the path twice and no reason; it gives the OS's reason as the other messages do.
    (Monkeypatched: chmod does not refuse root.)"""
    write_case(tmp_path / "results", "c1", 0, shape)
    _refuse_opening(monkeypatch, refused)
    build_report(tmp_path / "results", tmp_path / "r.html", max_overlays=overlays)
    page = html_module.unescape((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert expected in page
    assert "Could not read file" not in page


@pytest.mark.parametrize("text", ["Unable to allocate 3.20 GiB for an array with shape (1024, 1024, 820) and data type "
                                  "int32", ""], ids=["numpy", "bare"])
@pytest.mark.parametrize("short, shape, overlays, failed, expected", [
    # a case already refused by scoring: "not scored: …; c1_seg.nii.gz: cannot read (Unable to allocate …)", a
    # geometry flag, or "cannot read ()" of a bare MemoryError
    ("c1_seg.nii.gz", "exact", 0, True, "c1_seg.nii.gz: not checked: there was too little memory to read it"),
    ("c1_seg.nii.gz", "exact", 0, False, "c1_seg.nii.gz: not checked: there was too little memory to read it"),
    # "reference not shown: 0_label.nii.gz: Unable to allocate …", or nothing after the colon
    ("0_label.nii.gz", "erode", 5, False, "reference not shown: 0_label.nii.gz: there was too little memory to read "
                                          "it"),
], ids=["segmentation-of-a-case-refused-by-scoring", "segmentation", "reference-of-an-overlay"])
def test_a_label_file_too_large_for_the_memory_left_is_said_to_be_memory_not_a_read_error(
        tmp_path, monkeypatch, short, shape, overlays, failed, expected, text):
    """A MemoryError while the report read a label file was said as the file's fault: "cannot read (…)", with the
    case's geometry flag, for a case scoring had already refused too. It says it is memory, and leaves the file out
    of the checks with a note, without a geometry flag of its own."""
    import medseg.io.nifti_voxels as nifti_voxels

    results = tmp_path / "results"
    write_case(results, "c1", 0, shape)
    if failed:
        write_failure(results, "c1", stage="evaluate", error_type="GeometryError")
        (results / "cases" / "c1" / "c1_metrics.json").unlink()
    real = nifti_voxels.read_stored_labels

    def short_of_memory(image, *args, **kwargs):
        if Path(image.get_filename()).name == short:
            raise MemoryError(text)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(nifti_voxels, "read_stored_labels", short_of_memory)
    outputs = build_report(results, tmp_path / "r.html", max_overlays=overlays)
    page = html_module.unescape((tmp_path / "r.html").read_text(encoding="utf-8"))
    said = expected + (f" ({text})" if text else "")
    assert said in page
    assert "cannot read" not in page
    row = read_tsv(outputs.table)[0]
    assert ("geometry" in flag_set(row)) is failed  # scoring's own flag of the case it refused, and no other


def test_an_overlay_short_of_memory_says_so(tmp_path, monkeypatch, caplog):
    """The segmentation checked, and then too large for the memory left to be drawn: "no overlay: MemoryError: " (a
    bare MemoryError) named a type, not what was short."""
    import medseg.io.nifti_voxels as nifti_voxels

    results = tmp_path / "results"
    write_case(results, "c1", 0, "erode")
    real, reads = nifti_voxels.read_stored_labels, []

    def short_of_memory_the_second_time(image, *args, **kwargs):
        reads.append(Path(image.get_filename()).name)
        if reads.count("c1_seg.nii.gz") == 2 and reads[-1] == "c1_seg.nii.gz":
            raise MemoryError()
        return real(image, *args, **kwargs)

    monkeypatch.setattr(nifti_voxels, "read_stored_labels", short_of_memory_the_second_time)
    with pytest.warns(MedsegWarning, match=r"^c1: no overlay \(there was too little memory to read its files\)$"):
        build_report(results, tmp_path / "r.html", max_overlays=5)
    page = html_module.unescape((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "no overlay: there was too little memory to read its files" in page
    assert "c1: no overlay (there was too little memory to read its files)" in caplog.text
    assert "MemoryError" not in page


def test_a_segmentation_replaced_by_a_broken_image_is_named_with_its_problem_not_drawn_from_garbage(tmp_path, caplog):
    """A case's segmentation replaced after the run by a file whose voxels or header scoring refuses is told as
    scoring tells it (the file and its problem), never drawn from NaN cast to integers, and no numpy warning or
    error (an SVD that did not converge, terabytes that cannot be allocated) stands for the reason."""
    import gzip
    import struct

    image, labels, affine = phantom(0)
    broken = {}
    for case_id in ("nan", "complex", "nan_affine", "huge"):
        folder = write_case_arrays(tmp_path, case_id, image, labels, labels, affine)
        broken[case_id] = folder / f"{case_id}_seg.nii.gz"
    with_nan = labels.astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(with_nan, affine), broken["nan"])
    nib.save(nib.Nifti1Image(labels.astype(np.complex64), affine), broken["complex"])
    header = bytearray(gzip.decompress(broken["nan_affine"].read_bytes()))
    struct.pack_into("<hh", header, 252, 0, 1)  # qform_code 0, sform_code 1: the sform places the voxels
    struct.pack_into("<f", header, 280, np.nan)  # srow_x[0]
    broken["nan_affine"].write_bytes(gzip.compress(bytes(header)))
    header = bytearray(gzip.decompress(broken["huge"].read_bytes()))
    struct.pack_into("<4h", header, 40, 3, 30000, 30000, 30000)  # dim[0..3]: 27e12 voxels in a small file
    broken["huge"].write_bytes(gzip.compress(bytes(header)))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING"):
        warnings.simplefilter("always")
        page = build_report(tmp_path, tmp_path / "r.html").html.read_text()
    assert [str(w.message) for w in caught if issubclass(w.category, (RuntimeWarning, np.exceptions.ComplexWarning))] \
        == []
    said = caplog.text + html_module.unescape(page)
    assert f"{broken['nan']}: the image contains NaN or infinite voxels (1 NaN; the first at voxel index (0, 0, 0))" \
        in said
    assert f"{broken['complex']}: complex voxels (complex64)" in said
    assert f"{broken['nan_affine']}: the affine is singular or not finite (rows nan " in said
    assert f"{broken['huge']}: its header declares 30000×30000×30000 voxels of uint8" in said
    for words in ("SVD", "allocate", "RuntimeWarning", "ComplexWarning", "InputError", "ImageReadError"):
        assert words not in said


def _seg_of_another_frame(tmp_path) -> Path:
    """A results folder whose one case, case9, is a prediction DICOM SEG (no metrics record) stating another
    FrameOfReferenceUID than the images of its series, as another tool may rewrite it."""
    import json

    import pydicom
    from dicom_factory import slice_positions, stored_values, write_series

    from medseg.io.atomic import sha256_of
    from medseg.io.dicom import read_dicom_series
    from medseg.io.seg_writing import write_dicom_seg

    write_series(tmp_path / "case9", stored_values((40, 36, 6), seed=16) + 900, slice_positions(6, 3.0))
    volume = read_dicom_series(tmp_path / "case9")
    folder = tmp_path / "out" / "cases" / "case9"
    folder.mkdir(parents=True)
    seg = folder / "case9_seg.dcm"
    labels = np.zeros(volume.shape, np.uint8)
    labels[10:20, 8:30, 1:5] = 1
    write_dicom_seg(labels, volume, seg, {0: "background", 1: "ball"}, "tiny-test")
    dataset = pydicom.dcmread(seg)
    dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"  # as another tool may rewrite it
    dataset.save_as(seg)
    info = {"format": "dicom", "series_uid": volume.dicom.series_uid, "series_key": "3"}
    (folder / "case9_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "case_id": "case9", "input": str(tmp_path / "case9"), "input_info": info,
        "segmentation": seg.name, "segmentation_sha256": sha256_of(seg), "shape": list(volume.shape),
        "affine": volume.affine.tolist(), "labels": {"0": "background", "1": "ball"},
        "model": {"name": "tiny-test", "version": "3", "weights_sha256": "ab" * 32}}))
    return tmp_path / "out"


def test_a_prediction_seg_of_another_frame_of_reference_is_warned_of_once_per_case(tmp_path, caplog):
    """The report read a prediction DICOM SEG twice (its grid check, its overlay), and each reading warned that its
    FrameOfReferenceUID is not that of its series' images: the same line twice for one case."""
    import logging

    _seg_of_another_frame(tmp_path)
    caplog.set_level(logging.INFO, logger="medseg")
    outputs = build_report(tmp_path / "out", tmp_path / "report.html", max_overlays=1)
    assert (outputs.cases, outputs.failed, outputs.overlays) == (1, 0, 1)
    told = [r.levelno for r in caplog.records if "FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99" in r.getMessage()]
    assert told == [logging.WARNING, logging.INFO]  # once as a warning; the second reading at info level


@pytest.mark.parametrize("max_overlays", [0, 1])
def test_an_unscored_prediction_seg_of_another_frame_of_reference_is_flagged(tmp_path, max_overlays):
    """A prediction DICOM SEG of another FrameOfReferenceUID than its series' images, with no metrics record (segmented
    without a reference), was told on stderr as the report was built, and its card and cohort.tsv row said nothing:
    the flag came from a scored record only. The report's own reading of the SEG flags it, as a record would."""
    import csv

    out = _seg_of_another_frame(tmp_path)
    outputs = build_report(out, tmp_path / "report.html", max_overlays=max_overlays)
    with outputs.table.open(newline="") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    assert [(row["case_id"], row["flags"]) for row in rows] == [("case9", "frame_of_reference")]
    page = html_module.unescape(outputs.html.read_text())
    assert ("the prediction SEG's FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99 is not that of its series' images ("
            in page)


def test_a_prediction_seg_too_large_for_the_memory_left_is_no_geometry_flag(tmp_path, monkeypatch):
    """The reader of a DICOM SEG words a MemoryError as its own error (there was too little memory to read this DICOM
    SEG), which the report's check took for an unreadable file: a geometry flag and "case9_seg.dcm: cannot read
    (…/case9_seg.dcm: there was too little memory …)", where a label image short of memory is left unchecked with a
    note. A prediction SEG is noted so too, in the same words."""
    import csv

    import highdicom

    out = _seg_of_another_frame(tmp_path)

    def short_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.20 GiB for an array with shape (820, 1024, 1024) and data type uint32")

    monkeypatch.setattr(highdicom.seg.Segmentation, "from_dataset", short_of_memory)
    outputs = build_report(out, tmp_path / "report.html", max_overlays=0)
    with outputs.table.open(newline="") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    assert [(row["case_id"], row["flags"]) for row in rows] == [("case9", "")]
    page = html_module.unescape(outputs.html.read_text())
    assert ("case9_seg.dcm: not checked: there was too little memory to read it (Unable to allocate 3.20 GiB for an "
            "array with shape (820, 1024, 1024) and data type uint32)") in page
    assert "cannot read" not in page
