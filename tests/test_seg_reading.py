"""A DICOM SEG read as a reference on the series it segments: read back exactly, damaged or wrong files named
for what they are, SEGs of other images or of part of the series, other tools' SEGs, frames checked against
their source images, a slab of frames at a time."""

from __future__ import annotations

import json
import shutil

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import slice_positions, stored_values, write_series
from seg_factory import NAMES, SHAPE, csv_rows, foreign_seg, label_rule, write_enhanced

from medseg.cli import main
from medseg.errors import InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_reading import read_dicom_seg
from medseg.io.seg_writing import write_dicom_seg
from medseg.volume import Volume


def test_a_seg_reference_this_user_may_not_read_is_named_so_beside_a_nifti_input(tmp_path, tiny_package, capsys):
    """An unreadable reference named *.dcm beside a NIfTI input read "a DICOM SEG reference is placed on the DICOM
    series it segments, and x.nii.gz is not a DICOM series folder" (and `medseg evaluate` blamed the prediction's
    sidecar), where what is wrong is that it cannot be read: the readers' line, exit 1, nothing written."""
    from conftest import medseg_as_plain_user

    image = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 24, 4), np.float32), np.eye(4)), image)
    reference = tmp_path / "ref.dcm"
    reference.write_bytes(b"\0" * 128 + b"DICM")
    reference.chmod(0)
    for command in (["infer", str(image), "--reference", str(reference), "--model", str(tiny_package.path), "-o",
                     str(tmp_path / "out")],
                    ["evaluate", str(image), str(reference), "-o", str(tmp_path / "m.json")]):
        run = medseg_as_plain_user(command, capsys)
        assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (
            1, f"medseg: error: {reference}: cannot read (permission denied)"), run.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("layout", ["single", "multi"])
def test_medseg_reads_its_seg_back_onto_the_source_grid(tmp_path, layout):
    """read_dicom_seg inverts write_dicom_seg exactly (descending slices, an oblique multi-frame source), and
    refuses a SEG of another series or with a segment the model does not name."""
    from medseg.io.seg_reading import read_dicom_seg

    values = stored_values(SHAPE, seed=14)
    if layout == "single":
        write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], -3.0), seed=2)
    else:
        write_enhanced(tmp_path / "dcm", values, tmp_path / "single")
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", NAMES, "test-model")
    back = read_dicom_seg(tmp_path / "seg.dcm", volume, NAMES)
    assert back.shape == volume.shape and np.array_equal(back, labels)
    with pytest.raises(InputError, match=r"seg.dcm: segment 2 'corner' is not a label of the model \(odd, edge\)"):
        read_dicom_seg(tmp_path / "seg.dcm", volume, {0: "background", 1: "odd", 2: "edge"})
    other = tmp_path / "other"
    write_series(other, values, slice_positions(SHAPE[2], 2.0), seed=4)
    with pytest.raises(InputError, match=r"seg.dcm: a segmentation of series .*, not of .*other"):
        read_dicom_seg(tmp_path / "seg.dcm", read_dicom_series(other), NAMES)


def test_damaged_or_wrong_files_given_as_a_seg_are_named_for_what_they_are(tmp_path, capsys):
    """A SEG cut short was "frames do not match the images" (or its segments refused first); random bytes got
    pydicom's "Use force=True"; a CT image given as the prediction was blamed on its missing sidecar."""
    from medseg.cli import main
    from medseg.io.seg_reading import read_dicom_seg

    values = stored_values(SHAPE, seed=14)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 3.0), seed=2)
    volume = read_dicom_series(tmp_path / "dcm")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    data = (tmp_path / "seg.dcm").read_bytes()
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    needed = (seg.Rows * seg.Columns * int(seg.NumberOfFrames) * seg.BitsAllocated + 7) // 8
    (tmp_path / "cut.dcm").write_bytes(data[:-(needed // 2)])
    (tmp_path / "head.dcm").write_bytes(data[:400])
    (tmp_path / "noise.dcm").write_bytes(np.random.default_rng(0).bytes(3000))
    expected = {
        "cut.dcm": rf"truncated DICOM SEG \(its pixel data holds {needed - needed // 2} of the {needed} bytes its "
                   rf"header gives: {seg.NumberOfFrames} frames of {seg.Rows}×{seg.Columns}, 1 bit per pixel\)$",
        "head.dcm": r"truncated or incomplete DICOM file \(it ends before its SOPClassUID\)$",
        "noise.dcm": r"not a DICOM file \(no DICM marker after the 128-byte preamble\)$",
    }
    for name, message in expected.items():
        with pytest.raises(InputError, match=rf"^{tmp_path / name}: {message}"):
            read_dicom_seg(tmp_path / name, volume, NAMES)
    with pytest.raises(InputError, match=rf"^{paths[0]}: a DICOM CT object, not a DICOM SEG \(a segmentation\)$"):
        read_dicom_seg(paths[0], volume, NAMES)
    with pytest.raises(SystemExit) as exit_info:  # a CT image given as the prediction
        main(["evaluate", str(paths[0]), str(tmp_path / "seg.dcm"), "-o", str(tmp_path / "m.json")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {paths[0]}: a DICOM CT object, not a DICOM SEG (a segmentation)")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("text", ["Unable to allocate 6.00 GiB for an array with shape (4096, 512, 512) and data type "
                                  "uint8", ""], ids=["numpy", "bare"])
def test_a_seg_too_large_for_the_memory_left_says_it_is_memory(tmp_path, monkeypatch, text):
    """A MemoryError while a SEG's frames were read was "cannot read this DICOM SEG (Unable to allocate …)", or
    "(MemoryError)": the file's fault in the words of a read error. It says it is memory, as a NIfTI too large does,
    and keeps the MemoryError as its cause (training stops its checks at once on one)."""
    from medseg.errors import ImageReadError

    values = stored_values(SHAPE, seed=14)
    write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 3.0), seed=2)
    volume = read_dicom_series(tmp_path / "dcm")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")

    def short_of_memory(*args, **kwargs):
        raise MemoryError(text)

    monkeypatch.setattr(hd.seg.Segmentation, "from_dataset", short_of_memory)
    with pytest.raises(ImageReadError) as raised:
        read_dicom_seg(tmp_path / "seg.dcm", volume, NAMES)
    assert str(raised.value) == (f"{tmp_path / 'seg.dcm'}: there was too little memory to read this DICOM SEG"
                                 + (f" ({text})" if text else "") + "; free memory, or read it on a larger machine")
    assert isinstance(raised.value.__cause__, MemoryError)


def test_a_seg_of_other_images_of_the_same_series_uid_is_refused(tmp_path):
    """Two series sharing one UID (parts of a split series, or anonymised copies): the UID cannot tell them apart,
    the referenced images can. Read against the wrong one, the SEG would otherwise be all background."""
    from medseg.io.seg_reading import read_dicom_seg

    values = stored_values(SHAPE, seed=16)
    write_series(tmp_path / "a", values, slice_positions(SHAPE[2], 2.0), series_uid="1.2.3.4", seed=1)
    write_series(tmp_path / "b", values, slice_positions(SHAPE[2], 2.0), series_uid="1.2.3.4", seed=2)
    a, b = read_dicom_series(tmp_path / "a"), read_dicom_series(tmp_path / "b")
    write_dicom_seg(label_rule(a.array), a, tmp_path / "seg.dcm", NAMES, "test-model")
    with pytest.raises(InputError, match=rf"seg.dcm: segments {SHAPE[2]} images that are not in .*b \(series "
                                         r"1.2.3.4\): "):
        read_dicom_seg(tmp_path / "seg.dcm", b, NAMES)



def test_a_seg_of_another_part_of_a_split_series_names_the_part(tmp_path):
    """The parts of a series split by orientation share its UID: the refusal names the part read, not only a UID
    that the SEG's images do have."""
    from medseg.io.seg_reading import read_dicom_seg

    values = stored_values(SHAPE, seed=18)
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    write_series(tmp_path / "s", values, slice_positions(SHAPE[2], 2.0), series_uid="1.2.3.5", seed=1, prefix="a")
    write_series(tmp_path / "s", values, slice_positions(SHAPE[2], 2.0, orientation=coronal), orientation=coronal,
                 series_uid="1.2.3.5", seed=2, prefix="b")
    axial, other = read_dicom_series(tmp_path / "s", "3-1"), read_dicom_series(tmp_path / "s", "3-2")
    write_dicom_seg(label_rule(axial.array), axial, tmp_path / "seg.dcm", NAMES, "test-model")
    with pytest.raises(InputError, match=rf"seg.dcm: segments {SHAPE[2]} images that are not in .*s \(series "
                                         r"3-2, one part of series 1.2.3.5 split by orientation\): "):
        read_dicom_seg(tmp_path / "seg.dcm", other, NAMES)


def test_a_seg_reference_for_an_image_that_is_not_a_dicom_series_says_what_to_segment(tmp_path):
    """A prediction made from a conversion of the series (dcm2niix's NIfTI) cannot be scored against a SEG of the
    series: the refusal says that the series' own folder is to be segmented."""
    values = stored_values(SHAPE, seed=19)
    write_series(tmp_path / "series", values, slice_positions(SHAPE[2], 2.0), seed=1)
    volume = read_dicom_series(tmp_path / "series")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "ref.dcm", NAMES, "test-model")
    converted = Volume(array=volume.array, affine=volume.affine, source=tmp_path / "series.nii.gz")
    with pytest.raises(InputError, match=r"ref.dcm: a DICOM SEG is placed frame by frame on the DICOM series it "
                                         r"segments, and the image segmented, .*series.nii.gz, is not a DICOM series "
                                         r"\(a conversion of one, as to NIfTI, no longer has the images its frames "
                                         r"reference\): segment the series' own folder to score against this SEG$"):
        read_dicom_seg(tmp_path / "ref.dcm", converted, NAMES)


def test_a_dicom_seg_reference_is_scored_by_infer_evaluate_and_the_report(tmp_path, capsys, caplog, tiny_package):
    """A reference that is a DICOM SEG (another tool's, segment names in its own case) is placed frame by frame on
    the series it segments: the same figures as the same labels as a NIfTI reference, in `infer --reference`,
    `evaluate` and the QA report (it was 'not a NIfTI image')."""
    from medseg.report.build import build_report

    values = stored_values((40, 36, 6), seed=16) + 900
    write_series(tmp_path / "case9", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "case9")

    def cli(*args) -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", *args])
        return exit_info.value.code

    model = ["--device", "cpu", "--model", str(tiny_package.path)]
    assert cli("infer", str(tmp_path / "case9"), "-o", str(tmp_path / "nii"), *model) == 0
    nifti = nib.load(tmp_path / "nii" / "case9_seg.nii.gz")
    reference = np.asarray(nifti.dataobj).copy()
    reference[:, :, 2] = 0  # differs from the prediction on one slice
    nib.save(nib.Nifti1Image(reference, nifti.affine), tmp_path / "reference.nii.gz")
    write_dicom_seg(reference, volume, tmp_path / "reference_seg", {0: "background", 1: "FIRST", 2: "Second"})
    assert not (tmp_path / "reference_seg").suffix  # an archive's file name: found by its DICM marker

    capsys.readouterr()
    scores = {}
    for name, reference_file in (("nifti", "reference.nii.gz"), ("seg", "reference_seg")):
        assert cli("infer", str(tmp_path / "case9"), "-o", str(tmp_path / name), "--reference",
                   str(tmp_path / reference_file), *model) == 0
        record = json.loads((tmp_path / name / "case9_metrics.json").read_text())
        scores[name] = {k: (v["dice"], v["hd95_mm"], v["ref_volume_ml"]) for k, v in record["labels"].items()}
        assert cli("evaluate", str(tmp_path / "nii" / "case9_seg.nii.gz"), str(tmp_path / reference_file),
                   "--json") == 0
        again = json.loads(capsys.readouterr().out)["labels"]
        # evaluate measures volumes on the NIfTI prediction's float32 affine, infer on the series' own
        assert {k: v["dice"] for k, v in again.items()} == {k: v[0] for k, v in scores[name].items()}
        assert [v["ref_volume_ml"] for v in again.values()] == pytest.approx([v[2] for v in scores[name].values()])
    assert scores["seg"] == scores["nifti"] and min(v[0] for v in scores["seg"].values()) < 1.0
    outputs = build_report(tmp_path / "seg", tmp_path / "report" / "report.html", max_overlays=1)
    row = next(csv_rows(outputs.table))
    assert row["status"] == "scored" and "geometry" not in row["flags"] and outputs.overlays == 1
    page = outputs.html.read_text()
    assert "reference not shown" not in page and "reference not checked" not in page

    # a cohort whose sheet names the SEG as the reference: scored the same, and drawn in the report
    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples

    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\treference\ncase9\t{tmp_path / 'case9'}\t{tmp_path / 'reference_seg'}\n")
    samples = read_samples(sheet)
    infer_cases(samples, tmp_path / "cohort", InferOptions(model=str(tiny_package.path), device="cpu"))
    assert [c.outcome for c in evaluate_cases(samples, tmp_path / "cohort").cases] == ["ok"]
    record = json.loads((tmp_path / "cohort" / "cases" / "case9" / "case9_metrics.json").read_text())
    assert {k: v["dice"] for k, v in record["labels"].items()} == {k: v[0] for k, v in scores["seg"].items()}
    outputs = build_report(tmp_path / "cohort", tmp_path / "cohort" / "report.html", max_overlays=1)
    assert next(csv_rows(outputs.table))["status"] == "scored" and outputs.overlays == 1
    assert "reference not shown" not in outputs.html.read_text()
    # a reference SEG without a segment for one label: scoring warns once; the report, reading it again, does not
    write_dicom_seg(np.where(reference == 1, 1, 0), volume, tmp_path / "first_only", {0: "background", 1: "first"})
    sheet.write_text(f"case_id\timage\treference\ncase9\t{tmp_path / 'case9'}\t{tmp_path / 'first_only'}\n")
    samples = read_samples(sheet)
    infer_cases(samples, tmp_path / "cohort1", InferOptions(model=str(tiny_package.path), device="cpu"))
    caplog.clear()
    evaluate_cases(samples, tmp_path / "cohort1")
    warned = [r for r in caplog.records if "no segment for 'second' of the model" in r.getMessage()]
    assert len(warned) == 1
    caplog.clear()
    build_report(tmp_path / "cohort1", tmp_path / "cohort1" / "report.html", max_overlays=1)
    assert not [r for r in caplog.records if "no segment for" in r.getMessage()]

    # a NIfTI input on the series' grid (a conversion of it): the SEG is placed by its frames' own geometry and
    # scores as on the series; half a voxel off that grid it is refused in one line naming both files, before any
    # inference; a prediction without a sidecar is scored on its own grid, each segment its segment number
    nib.save(nib.Nifti1Image(volume.array.astype(np.float32), nifti.affine), tmp_path / "plain.nii.gz")
    assert cli("infer", str(tmp_path / "plain.nii.gz"), "-o", str(tmp_path / "x"), "--reference",
               str(tmp_path / "reference_seg"), *model) == 0
    record = json.loads((tmp_path / "x" / "plain_metrics.json").read_text())
    assert {k: v["dice"] for k, v in record["labels"].items()} == {k: v[0] for k, v in scores["seg"].items()}
    # and so in a cohort of the NIfTI, its report drawing the SEG so placed
    sheet.write_text(f"case_id\timage\treference\nplain\t{tmp_path / 'plain.nii.gz'}\t{tmp_path / 'reference_seg'}\n")
    samples = read_samples(sheet)
    infer_cases(samples, tmp_path / "cohort2", InferOptions(model=str(tiny_package.path), device="cpu"))
    assert [c.outcome for c in evaluate_cases(samples, tmp_path / "cohort2").cases] == ["ok"]
    record = json.loads((tmp_path / "cohort2" / "cases" / "plain" / "plain_metrics.json").read_text())
    assert {k: v["dice"] for k, v in record["labels"].items()} == {k: v[0] for k, v in scores["seg"].items()}
    outputs = build_report(tmp_path / "cohort2", tmp_path / "cohort2" / "report.html", max_overlays=1)
    assert next(csv_rows(outputs.table))["status"] == "scored" and outputs.overlays == 1
    assert "reference not shown" not in outputs.html.read_text()
    shifted = nifti.affine.copy()
    shifted[:3, 3] += nifti.affine[:3, 0] * 0.5
    nib.save(nib.Nifti1Image(volume.array.astype(np.float32), shifted), tmp_path / "plain.nii.gz")
    capsys.readouterr()
    assert cli("infer", str(tmp_path / "plain.nii.gz"), "-o", str(tmp_path / "y"), "--reference",
               str(tmp_path / "reference_seg"), *model) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"medseg: error: {tmp_path / 'reference_seg'}: cannot be placed on the grid of "
                           f"{tmp_path / 'plain.nii.gz'}: its frame 1 lies 0.6 mm off the grid's voxel centres "
                           "(off-lattice; tolerance 0.11 mm)") and line.endswith("; nothing segmented or written")
    assert not (tmp_path / "y").exists()
    assert cli("evaluate", str(tmp_path / "reference.nii.gz"), str(tmp_path / "reference_seg"), "--json") == 0
    assert {k: (v["name"], v["dice"]) for k, v in json.loads(capsys.readouterr().out)["labels"].items()} == {
        "1": ("FIRST", 1.0), "2": ("Second", 1.0)}  # the SEG's segment labels
    moved = pydicom.dcmread(tmp_path / "reference_seg")  # a frame shifted off its source image by 0.5 mm
    position = moved.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0]
    position.ImagePositionPatient = [float(v) + (0.5 if k == 0 else 0.0)
                                     for k, v in enumerate(position.ImagePositionPatient)]
    moved.save_as(tmp_path / "moved.dcm")
    assert cli("evaluate", str(tmp_path / "nii" / "case9_seg.nii.gz"), str(tmp_path / "moved.dcm")) == 1
    assert "moved.dcm: frame 2 does not lie on the source image it references (position [" in capsys.readouterr().err
    write_dicom_seg(reference, volume, tmp_path / "liver.dcm", {0: "background", 1: "liver", 2: "Second"})
    assert cli("evaluate", str(tmp_path / "nii" / "case9_seg.nii.gz"), str(tmp_path / "liver.dcm")) == 1
    assert "liver.dcm: segment 1 'liver' is not a label of the model (first, second)" in capsys.readouterr().err


def test_a_folder_of_seg_references_is_scored_as_each_pair_alone(tmp_path, capsys, caplog, tiny_package):
    """`evaluate PRED_DIR REF_DIR` took NIfTI references only: a DICOM SEG reference (`<case>.dcm`, `<case>_seg.dcm`),
    as reference contours come, was left out ("no .nii/.nii.gz file in it"). Now each is placed on the series the
    prediction's sidecar records, as for one pair: the same records; a prediction without a sidecar (no series to
    place it on) has its SEG placed by the frames' geometry on its own grid, and an image of a series named .dcm is
    no reference."""
    pred, refs = tmp_path / "pred", tmp_path / "refs"
    refs.mkdir()
    model = ["--device", "cpu", "--model", str(tiny_package.path)]
    for case, seg_name, seed in (("case1", "case1.dcm", 16), ("case2", "case2_seg.dcm", 17)):
        values = stored_values((40, 36, 6), seed=seed) + 900
        write_series(tmp_path / case, values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", "infer", str(tmp_path / case), "-o", str(pred), *model])
        assert exit_info.value.code == 0
        reference = np.asarray(nib.load(pred / f"{case}_seg.nii.gz").dataobj).copy()
        reference[:, :, 2] = 0  # differs from the prediction on one slice
        write_dicom_seg(reference, read_dicom_series(tmp_path / case), refs / seg_name,
                        {0: "background", 1: "FIRST", 2: "Second"})
    shutil.copy(pred / "case1_seg.nii.gz", pred / "case3_seg.nii.gz")  # no sidecar: its SEG placed on its grid
    shutil.copy(refs / "case1.dcm", refs / "case3.dcm")
    shutil.copy(next((tmp_path / "case1").iterdir()), refs / "IM0001.dcm")  # a CT image: not a reference
    shutil.copytree(tmp_path / "case2", refs / "case2")  # the series beside its SEG: passed over in silence
    out = tmp_path / "scores"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(pred), str(refs), "-o", str(out)])
    assert exit_info.value.code == 0
    printed = capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.json") if p.name != "summary.json") == [
        "case1_metrics.json", "case2_metrics.json", "case3_metrics.json"]
    for case in ("case1", "case2"):
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", "evaluate", str(pred / f"{case}_seg.nii.gz"), str(next(refs.glob(f"{case}*.dcm"))), "--json"])
        assert exit_info.value.code == 0
        single = json.loads(capsys.readouterr().out)
        folder = json.loads((out / f"{case}_metrics.json").read_text())
        assert folder["labels"] == single["labels"] and folder["reference_sha256"] == single["reference_sha256"]
        assert 0 < min(label["dice"] for label in folder["labels"].values()) < 1
    # case3, a prediction without a sidecar (no series recorded): its SEG placed by its frames' geometry on the
    # prediction's grid, each segment its segment number named by its SegmentLabel, scores as case1's on its series
    case1, case3 = (json.loads((out / f"{case}_metrics.json").read_text())["labels"] for case in ("case1", "case3"))
    assert [(v["name"], v["dice"]) for v in case3.values()] == [
        (name, case1[k]["dice"]) for k, name in (("1", "FIRST"), ("2", "Second"))]
    page = (out / "report.html").read_text()  # its overlays draw the SEG so placed, as scored
    assert "reference not shown" not in page and "reference border not checked" not in page
    assert page.count("<img") >= 3, page.count("<img")
    assert "Traceback" not in printed.err
    assert f"{refs}: left out 1 entry that is not a .nii/.nii.gz/.nii.bz2/.nii.zst/" \
        f".nrrd/.nhdr/.mha/.mhd or .dcm (DICOM SEG) file " \
        "(subfolders are not searched): IM0001.dcm" in caplog.text
    # a case with a NIfTI and a SEG reference: which to score is the user's to say, before anything is scored
    nib.save(nib.load(pred / "case1_seg.nii.gz"), refs / "case1.nii.gz")
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "evaluate", str(pred), str(refs), "-o", str(tmp_path / "again")])
    assert exit_info.value.code == 1 and not (tmp_path / "again").exists()
    assert (f"{refs / 'case1.dcm'}: case 'case1' has two references in {refs} (case1.nii.gz and case1.dcm, a DICOM "
            "SEG); keep one of them") in capsys.readouterr().err


def test_a_reference_seg_of_some_of_the_series_images_is_read_with_a_warning(tmp_path, caplog, tiny_package):
    """A SEG made from 3 of the series' 6 images (the first of them empty): the other 3 are read as empty, as the
    standard has it, where a prediction counts as false positives. That was said nowhere; now scoring warns once,
    naming how many images the SEG covers, and the report, reading it again, does not. A SEG that leaves out empty
    frames of images it lists (medseg's own) covers them all."""
    import logging

    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples
    from medseg.report.build import build_report

    values = stored_values((40, 36, 6), seed=16) + 900
    write_series(tmp_path / "case9", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "case9")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    masks = np.zeros((3, 36, 40, 1), bool)
    masks[1:, 5:15, 5:20, 0] = True
    foreign_seg(tmp_path / "part.dcm", sources[1:4], masks, ["first"])  # its empty frame left out, its image listed
    names = {0: "background", 1: "first", 2: "second"}
    told = f"{tmp_path / 'part.dcm'}: covers 3 of the 6 images of {tmp_path / 'case9'}; the others are read as empty"

    def covers(level=logging.WARNING) -> list[str]:
        return [r.getMessage() for r in caplog.records if "images of" in r.getMessage() and r.levelno == level]

    caplog.set_level(logging.INFO, logger="medseg")
    read = read_dicom_seg(tmp_path / "part.dcm", volume, names)
    assert read.sum(axis=(0, 1)).tolist() == [0, 0, 150, 150, 0, 0]  # the reading is the standard's
    assert [m.split(" (")[0] for m in covers()] == [told]
    caplog.clear()
    read_dicom_seg(tmp_path / "part.dcm", volume, names, warn_missing=False)
    assert covers() == [] and [m.split(" (")[0] for m in covers(logging.INFO)] == [told]
    labels = np.zeros(volume.shape, np.uint8)
    labels[5:10, 5:10, 2:4] = 1
    write_dicom_seg(labels, volume, tmp_path / "own.dcm", names)
    assert int(pydicom.dcmread(tmp_path / "own.dcm").NumberOfFrames) == 2  # the empty frames left out
    caplog.clear()
    read_dicom_seg(tmp_path / "own.dcm", volume, names)
    assert covers() == [] and covers(logging.INFO) == []

    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\treference\ncase9\t{tmp_path / 'case9'}\t{tmp_path / 'part.dcm'}\n")
    samples = read_samples(sheet)
    infer_cases(samples, tmp_path / "cohort", InferOptions(model=str(tiny_package.path), device="cpu"))
    caplog.clear()
    assert [c.outcome for c in evaluate_cases(samples, tmp_path / "cohort").cases] == ["ok"]
    assert [m.split(" (")[0] for m in covers()] == [told]
    caplog.clear()
    build_report(tmp_path / "cohort", tmp_path / "cohort" / "report.html", max_overlays=1)
    again = {m.split(" (")[0] for m in covers(logging.INFO)}
    assert covers() == [] and again == {told}  # read again (its checks and overlay): told at info level, not warned


def test_a_seg_of_some_images_of_a_series_of_another_study_is_warned_of_as_of_its_own_study(tmp_path, caplog):
    """A SEG lists the images it was made from under ReferencedSeriesSequence for a series of its own study, and
    under StudiesContainingOtherReferencedInstancesSequence for one of another study; the coverage warning read only
    the first, so a SEG of 3 of the 6 images of a series of another study read the others as empty without a word."""
    import logging

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    values = stored_values((40, 36, 6), seed=16) + 900
    write_series(tmp_path / "case9", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "case9")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    masks = np.zeros((3, 36, 40, 1), bool)
    masks[1:, 5:15, 5:20, 0] = True
    foreign_seg(tmp_path / "part.dcm", sources[1:4], masks, ["first"])  # its empty frame left out, its image listed
    dataset = pydicom.dcmread(tmp_path / "part.dcm")
    study = Dataset()
    study.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.300"  # the series' study, not the SEG's
    study.ReferencedSeriesSequence = dataset.ReferencedSeriesSequence
    dataset.StudiesContainingOtherReferencedInstancesSequence = Sequence([study])
    del dataset.ReferencedSeriesSequence
    dataset.save_as(tmp_path / "other_study.dcm")
    caplog.set_level(logging.INFO, logger="medseg")
    read = read_dicom_seg(tmp_path / "other_study.dcm", volume, {0: "background", 1: "first"})
    assert read.sum(axis=(0, 1)).tolist() == [0, 0, 150, 150, 0, 0]
    assert [r.getMessage().split(" (")[0] for r in caplog.records if "images of" in r.getMessage()
            and r.levelno == logging.WARNING] == [
        f"{tmp_path / 'other_study.dcm'}: covers 3 of the 6 images of {tmp_path / 'case9'}; the others are read as "
        "empty"]


def test_a_seg_s_frame_references_are_walked_once_per_reading(tmp_path, monkeypatch):
    """Each frame's reference to its source image is gathered once per reading, for the check that the frames lie
    on this series and for the coverage warning alike (it was walked twice, frame by frame)."""
    from medseg.io import seg_reading

    write_series(tmp_path / "case", stored_values((40, 36, 6), seed=17) + 900, slice_positions(6, 3.0))
    volume = read_dicom_series(tmp_path / "case")
    labels = np.zeros(volume.shape, np.uint8)
    labels[5:10, 5:10, 1:5] = 1
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", {0: "background", 1: "first"})
    walked = []
    real = seg_reading._frame_sources
    monkeypatch.setattr(seg_reading, "_frame_sources", lambda seg: walked.append(1) or real(seg))
    read = read_dicom_seg(tmp_path / "seg.dcm", volume, {0: "background", 1: "first"})
    assert np.array_equal(read, labels)
    assert len(walked) == 1


def test_a_reference_seg_that_lists_only_the_images_its_frames_lie_on_is_not_warned_about(tmp_path, caplog):
    """dcmqi leaves out, by default, the slices outside a label's extent, and lists only the images its frames lie
    on: a SEG of the whole series then looks like one of part of it. Every such reference was warned about on every
    scoring ("covers 2 of the 6 images"); that is told at info level, as the SEG cannot say which it is."""
    import logging

    write_series(tmp_path / "case", stored_values((40, 36, 6), seed=16) + 900, slice_positions(6, 3.0),
                 pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "case")
    masks = np.zeros((6, 36, 40, 1), bool)
    masks[2:4, 5:15, 5:20, 0] = True
    foreign_seg(tmp_path / "whole.dcm", [pydicom.dcmread(p) for p in volume.dicom.paths], masks, ["first"])
    seg = pydicom.dcmread(tmp_path / "whole.dcm")
    framed = {uid for groups in seg.PerFrameFunctionalGroupsSequence for derivation in groups.DerivationImageSequence
              for uid in (str(item.ReferencedSOPInstanceUID) for item in derivation.SourceImageSequence)}
    listed = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence = [
        item for item in listed if str(item.ReferencedSOPInstanceUID) in framed]  # as dcmqi lists them
    seg.save_as(tmp_path / "dcmqi.dcm")
    assert (len(listed), len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence)) == (6, 2)
    caplog.set_level(logging.INFO, logger="medseg")
    read = read_dicom_seg(tmp_path / "dcmqi.dcm", volume, {0: "background", 1: "first"})
    assert read.sum(axis=(0, 1)).tolist() == [0, 0, 150, 150, 0, 0]
    told = [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records if "images of" in r.getMessage()]
    assert told == [(logging.INFO, f"{tmp_path / 'dcmqi.dcm'}: covers 2 of the 6 images of {tmp_path / 'case'}; "
                                   "the others are read as empty")]


def _without_preserved_flag(path, out, shift_frame: int | None = None):
    """``path`` as dcmqi writes SEGs (no SpatialLocationsPreserved); ``shift_frame`` moved 5 mm along x."""
    seg = pydicom.dcmread(path)
    for index, groups in enumerate(seg.PerFrameFunctionalGroupsSequence):
        for derivation in groups.DerivationImageSequence:
            for item in derivation.SourceImageSequence:
                if "SpatialLocationsPreserved" in item:
                    del item.SpatialLocationsPreserved
        if index + 1 == shift_frame:
            plane = groups.PlanePositionSequence[0]
            plane.ImagePositionPatient = [float(plane.ImagePositionPatient[0]) + 5.0,
                                          *plane.ImagePositionPatient[1:]]
    seg.save_as(out)


def test_reference_segs_of_other_tools_are_read_or_refused_in_one_line(tmp_path, caplog):
    """Label maps are read (their segment 0 is background); overlapping segments of two labels, FRACTIONAL SEGs,
    a segment name that fits two labels regardless of case and frames without positions are refused naming the
    file; a label without a segment is read as absent, with a warning."""
    values = stored_values((40, 36, 6), seed=17) + 900
    write_series(tmp_path / "ct", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    names = {0: "background", 1: "first", 2: "second"}
    label_map = np.zeros((6, 36, 40), np.uint8)  # (slices, rows, columns)
    label_map[:, 0:10] = 1
    label_map[:, 20:30] = 2
    foreign_seg(tmp_path / "labelmap.dcm", sources, label_map, ["first", "second"], kind="LABELMAP")
    read = read_dicom_seg(tmp_path / "labelmap.dcm", volume, names)
    assert np.array_equal(read, label_map.transpose(2, 1, 0))

    masks = np.zeros((6, 36, 40, 2), bool)
    masks[:, 0:20, :, 0] = True
    masks[:, 10:30, :, 1] = True  # rows 10-19 in both
    foreign_seg(tmp_path / "overlap.dcm", sources, masks, ["first", "second"])
    with pytest.raises(InputError, match=r"overlap\.dcm: segments 'first' and 'second' overlap in 2400 voxels; "
                                         r"a reference label map holds one label per voxel"):
        read_dicom_seg(tmp_path / "overlap.dcm", volume, names)
    fractions = np.where(masks[..., :1], 0.9, 0.02).astype(np.float32)
    foreign_seg(tmp_path / "fractional.dcm", sources, fractions, ["first"], kind="FRACTIONAL",
                 fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY)
    with pytest.raises(InputError, match=r"fractional\.dcm: a FRACTIONAL SEG \(probability per voxel\), not labels"):
        read_dicom_seg(tmp_path / "fractional.dcm", volume, names)
    foreign_seg(tmp_path / "upper.dcm", sources, masks[..., :1], ["FIRST"])
    with pytest.raises(InputError, match=r"segment 1 'FIRST' matches more than one label of the model regardless of "
                                         r"case \(First, first\)"):
        read_dicom_seg(tmp_path / "upper.dcm", volume, {0: "background", 1: "First", 2: "first"})

    foreign_seg(tmp_path / "first_only.dcm", sources, masks[..., :1], ["First"])
    with caplog.at_level("WARNING"):
        read = read_dicom_seg(tmp_path / "first_only.dcm", volume, names)
    assert int((read == 1).sum()) == 4800 and not (read == 2).any()
    assert any("first_only.dcm: no segment for 'second' of the model: read as absent" in r.getMessage()
               for r in caplog.records)
    seg = pydicom.dcmread(tmp_path / "first_only.dcm")
    del seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
    seg.save_as(tmp_path / "no_position.dcm")
    with pytest.raises(InputError, match=r"no_position\.dcm: cannot read this DICOM SEG \(it lacks "
                                         r"PlanePositionSequence \(0020,9113\)\)"):
        read_dicom_seg(tmp_path / "no_position.dcm", volume, names)
    with pytest.raises(InputError, match=r"gone\.dcm: no such file$"):
        read_dicom_seg(tmp_path / "gone.dcm", volume, names)
    # frame 1 of a single-frame source image, as some writers name it, is that image; label keys may be text
    seg = pydicom.dcmread(tmp_path / "labelmap.dcm")
    for groups in seg.PerFrameFunctionalGroupsSequence:
        for item in groups.DerivationImageSequence[0].SourceImageSequence:
            item.ReferencedFrameNumber = 1
    seg.save_as(tmp_path / "frame_one.dcm")
    read = read_dicom_seg(tmp_path / "frame_one.dcm", volume, {str(k): v for k, v in names.items()})
    assert np.array_equal(read, label_map.transpose(2, 1, 0))


def test_reference_segs_of_multi_frame_sources_are_checked_frame_by_frame(tmp_path):
    """On an enhanced multi-frame source a SEG without SpatialLocationsPreserved was refused with highdicom's text,
    and a frame moved off its source frame was read as if on it; a series of one-frame enhanced files was 'not in'
    its own series."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    values = stored_values(SHAPE, seed=13)
    write_enhanced(tmp_path / "multi", values, tmp_path / "single")
    volume = read_dicom_series(tmp_path / "multi")
    labels = label_rule(volume.array)
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", NAMES, "test-model")
    _without_preserved_flag(tmp_path / "seg.dcm", tmp_path / "dcmqi_like.dcm")
    assert np.array_equal(read_dicom_seg(tmp_path / "dcmqi_like.dcm", volume, NAMES), labels)
    _without_preserved_flag(tmp_path / "seg.dcm", tmp_path / "shifted.dcm", shift_frame=2)
    with pytest.raises(InputError, match=r"shifted\.dcm: frame 2 does not lie on the source image it references "
                                         r"\(position \["):
        read_dicom_seg(tmp_path / "shifted.dcm", volume, NAMES)

    # each slice its own one-frame enhanced file: the SEG references (file k, frame 1)
    single = read_dicom_series(tmp_path / "single")
    uid, mapping = hd.UID(), {}
    (tmp_path / "files").mkdir()
    for n, path in enumerate(single.dicom.paths, 1):
        image = pydicom.dcmread(path)
        enhanced = LegacyConvertedEnhancedCTImage([image], series_instance_uid=uid, series_number=9,
                                                  sop_instance_uid=hd.UID(), instance_number=n)
        enhanced.save_as(tmp_path / "files" / f"{n:02d}.dcm")
        mapping[str(image.SOPInstanceUID)] = str(enhanced.SOPInstanceUID)
    files = read_dicom_series(tmp_path / "files")
    assert files.dicom.frames == (0,) * SHAPE[2] and len(set(files.dicom.paths)) == SHAPE[2]
    write_dicom_seg(label_rule(single.array), single, tmp_path / "single_seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "single_seg.dcm")
    for groups in seg.PerFrameFunctionalGroupsSequence:
        for item in groups.DerivationImageSequence[0].SourceImageSequence:
            item.ReferencedSOPInstanceUID = mapping[str(item.ReferencedSOPInstanceUID)]
            item.ReferencedFrameNumber = 1
    seg.ReferencedSeriesSequence[0].SeriesInstanceUID = uid
    for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence:
        item.ReferencedSOPInstanceUID = mapping[str(item.ReferencedSOPInstanceUID)]
    seg.save_as(tmp_path / "files_seg.dcm")
    assert np.array_equal(read_dicom_seg(tmp_path / "files_seg.dcm", files, NAMES), label_rule(files.array))


def test_reading_a_seg_holds_a_slab_of_one_segments_frames_at_a_time(tmp_path, monkeypatch):
    """Each segment's frames were stacked on the whole grid at once (with a whole-volume comparison of them), and the
    last segment's mask was still held while the next was made: a SEG of three segments on a 512×512×600 CT took
    0.88 GB above the imports to read, for 0.16 GB of labels (1.29 GB peak; 0.87 GB then). Each segment's mask was
    then still made on the whole grid (0.44 GB traced for a SEG of 570 frames on a 512×512×600 CT); it is now put in
    the labels a slab of slices at a time (0.29 GB traced: the labels and the SEG as highdicom reads it). Here, the
    memory traced while a SEG of three segments on 192 slices is read, per voxel of the grid: 7.9 bytes with a
    whole-grid mask, 6.4 now (most of it the SEG's frames as datasets)."""
    import tracemalloc

    shape = (128, 128, 192)
    write_series(tmp_path / "series", np.zeros(shape, np.int16), slice_positions(shape[2], 1.0))
    volume = read_dicom_series(tmp_path / "series")
    labels = np.zeros(shape, np.uint8)
    labels[:50], labels[50:100], labels[100:] = 1, 2, 3
    names = {0: "background", 1: "first", 2: "second", 3: "third"}
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", names)
    tracemalloc.start()
    try:
        read = read_dicom_seg(tmp_path / "seg.dcm", volume, names)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(read, labels)
    assert peak / labels.size < 7.0
    # slabs of 5 slices, some of which hold no frame of a segment (segment 2 lies on slices 10 to 29 only)
    import medseg.io.seg_reading

    monkeypatch.setattr(medseg.io.seg_reading, "_SLICES_AT_ONCE", 5)
    labels[50:100] = 0
    labels[50:100, :, 10:30] = 2
    write_dicom_seg(labels, volume, tmp_path / "part.dcm", names)
    assert np.array_equal(read_dicom_seg(tmp_path / "part.dcm", volume, names), labels)


@pytest.mark.parametrize("organisation", ["TILED_FULL", "TILED_SPARSE"])
def test_a_tiled_seg_is_refused_as_such_in_one_line(tmp_path, capsys, organisation):
    """A SEG of a whole-slide microscopy image's tiles (DimensionOrganizationType TILED_FULL, without per-frame
    groups, or TILED_SPARSE) was refused as "cannot read this DICOM SEG ('Segmentation' object has no attribute
    'TotalPixelMatrixOriginSequence')", or read as slices. Given as a reference, as a prediction, or to
    read_dicom_seg, it is refused in one line saying that tiled SEGs are not supported; nothing written."""
    values = stored_values(SHAPE, seed=5)
    write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=2)
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    write_dicom_seg(labels, volume, tmp_path / "case_seg.dcm", NAMES, "test-model")
    dataset = pydicom.dcmread(tmp_path / "case_seg.dcm")
    dataset.DimensionOrganizationType = organisation
    dataset.TotalPixelMatrixRows, dataset.TotalPixelMatrixColumns = dataset.Rows, dataset.Columns
    if organisation == "TILED_FULL":  # tiles in a fixed order: no per-frame groups
        del dataset.PerFrameFunctionalGroupsSequence
    dataset.save_as(tmp_path / "case_seg.dcm")
    (tmp_path / "case_seg.json").write_text(json.dumps({
        "input": str(tmp_path / "dcm"), "labels": {str(k): v for k, v in NAMES.items()},
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid}}))
    nib.save(nib.Nifti1Image(labels, volume.affine), tmp_path / "pred.nii.gz")
    why = (f"a tiled DICOM SEG (DimensionOrganizationType {organisation}, as of a whole-slide microscopy image): tiled "
           "(microscopy) SEGs are not supported; medseg reads SEGs of a series' slices (CT, MR, PET)")
    seg = tmp_path / "case_seg.dcm"
    with pytest.raises(InputError) as refused:
        read_dicom_seg(seg, volume, NAMES)
    assert str(refused.value) == f"{seg}: {why}"
    for args in (["evaluate", str(tmp_path / "pred.nii.gz"), str(seg)], ["evaluate", str(seg), str(seg.parent / "x")]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "-o", str(tmp_path / "m.json")])
        assert exit_info.value.code == 1 and not (tmp_path / "m.json").exists()
        assert capsys.readouterr().err.splitlines() == [f"medseg: error: {seg}: {why}"]


def test_a_seg_of_other_images_is_refused_without_a_warning_of_its_frame_of_reference_first(tmp_path, caplog):
    """A SEG of another series' images (a series without a UID to compare, or sharing one) states another
    FrameOfReferenceUID too: its refusal was preceded by a warning that its frames lie on the images they reference
    and are placed there, which the refusal then contradicted (the shared ct-seg SEG against the anonymised CT)."""
    import logging

    import pydicom

    from medseg.io.seg_reading import read_dicom_seg

    values = stored_values(SHAPE, seed=16)
    write_series(tmp_path / "a", values, slice_positions(SHAPE[2], 2.0), series_uid="1.2.3.4", seed=1)
    write_series(tmp_path / "b", values, slice_positions(SHAPE[2], 2.0), series_uid="1.2.3.4", seed=2)
    a, b = read_dicom_series(tmp_path / "a"), read_dicom_series(tmp_path / "b")
    write_dicom_seg(label_rule(a.array), a, tmp_path / "seg.dcm", NAMES, "test-model")
    dataset = pydicom.dcmread(tmp_path / "seg.dcm")
    dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"
    dataset.save_as(tmp_path / "seg.dcm")
    caplog.set_level(logging.INFO, logger="medseg")
    with pytest.raises(InputError, match=rf"seg.dcm: segments {SHAPE[2]} images that are not in .*b \(series "):
        read_dicom_seg(tmp_path / "seg.dcm", b, NAMES)
    assert [r.getMessage() for r in caplog.records if "FrameOfReferenceUID" in r.getMessage()] == []
    read_dicom_seg(tmp_path / "seg.dcm", a, NAMES)  # of its own images: read, and warned of
    assert [r.levelno for r in caplog.records if "FrameOfReferenceUID" in r.getMessage()] == [logging.WARNING]
