"""A DICOM SEG's segments and the model's labels: label names as SegmentLabels (accents, backslashes, 64
characters, two labels that would be one), segments matched by name or by their codes, segments of one label
overlapping or disjoint, segment labels read from undeclared text."""

from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import slice_positions, stored_values, write_series
from seg_factory import ANATOMY, HIPPOCAMPUS, SHAPE, code, foreign_seg, label_rule, run_main

from medseg.cli import main
from medseg.errors import DicomError, InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_reading import read_dicom_seg
from medseg.io.seg_writing import write_dicom_seg


@pytest.mark.parametrize("form", ["NFD", "NFC"])
def test_a_segment_named_as_a_label_in_another_accent_composition_is_that_label(tmp_path, form):
    """"Läsion" typed as one character or as a letter and its accent (as macOS composes names) is one name: it was
    refused as "segment 1 'Läsion' is not a label of the model (Läsion)", two names that read the same."""
    import unicodedata

    values = stored_values((40, 36, 6), seed=17) + 900
    write_series(tmp_path / "mr", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2), modality="MR")
    volume = read_dicom_series(tmp_path / "mr")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]
    for source in sources:
        source.SpecificCharacterSet = "ISO_IR 192"
    label_map = np.zeros((6, 36, 40), np.uint8)
    label_map[:, 0:10] = 1
    label_map[:, 20:30] = 2
    other = "NFC" if form == "NFD" else "NFD"
    segments = [unicodedata.normalize(form, name) for name in ("Läsion", "Ödem")]
    names = {0: "background", 1: unicodedata.normalize(other, "Läsion"), 2: unicodedata.normalize(other, "Ödem")}
    foreign_seg(tmp_path / "seg.dcm", sources, label_map, segments, kind="LABELMAP")
    written = pydicom.dcmread(tmp_path / "seg.dcm").SegmentSequence
    assert [item.SegmentLabel for item in written if item.SegmentNumber] == segments  # (a label map's 0: background)
    read = read_dicom_seg(tmp_path / "seg.dcm", volume, names)
    assert np.array_equal(read, label_map.transpose(2, 1, 0))


@pytest.mark.parametrize(("name", "segment_label"), [
    ("left\\right", "left/right"),  # DICOM's value separator: read back as two values
    (" padded ", "padded"),  # readers drop the spaces
    ("x" * 70, "x" * 64),
])
def test_seg_of_label_names_with_a_backslash_spaces_or_over_64_characters_reads_back(tmp_path, name, segment_label):
    """Such names were written as they were, and medseg refused its own SEG when reading it back ("segment 1
    '['left', 'right']' is not a label of the model")."""
    values = stored_values(SHAPE, seed=13)
    write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=3)
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    names = {0: "background", 1: name, 2: "corner"}
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", names, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert [item.SegmentLabel for item in seg.SegmentSequence] == [segment_label, "corner"]
    assert np.array_equal(read_dicom_seg(tmp_path / "seg.dcm", volume, names), labels)


def test_labels_that_would_be_one_segment_label_are_refused(tmp_path):
    values = stored_values(SHAPE, seed=13)
    write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=3)
    volume = read_dicom_series(tmp_path / "dcm")
    names = {0: "background", 1: "x" * 64 + "a", 2: "x" * 64 + "b"}
    with pytest.raises(DicomError, match=r"labels 'x{64}a' and 'x{64}b' of the model would both be segment 'x{64}' "
                                         r"in a DICOM SEG"):
        write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", names, "test-model")
    assert not (tmp_path / "seg.dcm").exists()


def test_labels_that_would_be_one_segment_label_are_refused_before_inference(tmp_path, capsys, monkeypatch,
                                                                           tiny_package):
    """The refusal came from the SEG writer, after each case's inference: a batch spent inference on every case."""
    import medseg.segment

    package = tmp_path / "clash"
    shutil.copytree(tiny_package.path, package)
    config = json.loads((package / "model.json").read_text())
    config["labels"] = {"0": "background", "1": "left\\lobe", "2": " left/lobe"}
    (package / "model.json").write_text(json.dumps(config))
    for name in ("a", "b"):
        write_series(tmp_path / name, stored_values(SHAPE, seed=13), slice_positions(SHAPE[2], 2.0), seed=3)
    inferred = []
    monkeypatch.setattr(medseg.segment, "_label_volume", lambda *args, **kwargs: inferred.append(args) or 1 / 0)
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "infer", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out"), "--device", "cpu",
              "--model", str(package), "--format", "dicom-seg"])
    assert exit_info.value.code == 1 and inferred == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"medseg: error: {tmp_path / name}: labels 'left\\lobe' and ' left/lobe' of the model would both "
                   "be segment 'left/lobe' in a DICOM SEG (64 characters at most, a backslash written as /); rename "
                   "one, or write NIfTI instead" for name in ("a", "b")] + [
                       f"medseg: 2 of 2 inputs failed ({tmp_path / 'a'}, {tmp_path / 'b'})"]
    # no segmentation: each input's failure record alone
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a_failed.json", "b_failed.json"]


def test_reference_segments_of_one_label_are_refused_where_they_overlap_and_merged_with_a_warning(tmp_path,
                                                                                                    caplog):
    """Two segments that match one label of the model ('first' and 'First', or two readers' drawings coded alike)
    were read as their union without a word. Overlapping, they are two drawings of one structure and are refused
    naming the segments; disjoint (parts, or instances such as lesions), they are read as the label with a warning
    (at info level on a second reading)."""
    values = stored_values((40, 36, 6), seed=17) + 900
    write_series(tmp_path / "ct", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    names = {0: "background", 1: "first", 2: "second"}
    masks = np.zeros((6, 36, 40, 3), bool)  # (slices, rows, columns, segments)
    masks[:, 0:10, :, 0] = True
    masks[:, 20:30, :, 1] = True
    masks[:, 5:15, :, 2] = True  # rows 5-9 also in segment 1's
    foreign_seg(tmp_path / "two_readers.dcm", sources, masks[..., [0, 2]], ["first", "First"])
    with pytest.raises(InputError, match=r"two_readers\.dcm: segments 1 'first' and 2 'First' match one label of the "
                                         r"model, 'first', and overlap in 1200 voxels; keep one of them in the "
                                         r"reference$"):
        read_dicom_seg(tmp_path / "two_readers.dcm", volume, names)
    foreign_seg(tmp_path / "three.dcm", sources, masks, ["first", "first", "first"])
    with pytest.raises(InputError, match=r"three\.dcm: segments 1 'first', 2 'first' and 3 'first' match one label "
                                         r"of the model, 'first', and overlap in 1200 voxels"):
        read_dicom_seg(tmp_path / "three.dcm", volume, names)

    foreign_seg(tmp_path / "parts.dcm", sources, masks[..., :2], ["first", "First"])
    with caplog.at_level("INFO"):
        read = read_dicom_seg(tmp_path / "parts.dcm", volume, names)
        again = read_dicom_seg(tmp_path / "parts.dcm", volume, names, warn_missing=False)
    expected = np.zeros((6, 36, 40), np.uint8)
    expected[:, 0:10] = 1
    expected[:, 20:30] = 1
    assert np.array_equal(read, expected.transpose(2, 1, 0)) and np.array_equal(again, read)
    told = [(r.levelname, r.getMessage()) for r in caplog.records if "match one label" in r.getMessage()]
    text = (f"{tmp_path / 'parts.dcm'}: segments 1 'first' and 2 'First' match one label of the model, 'first', and "
            "do not overlap: read as that label, their union")
    assert told == [("WARNING", text), ("INFO", text)]


@pytest.mark.parametrize("charset", [None, "", "ISO_IR 6"])
def test_a_reference_segment_label_outside_ascii_without_a_character_set_is_read_as_its_bytes_are(
        tmp_path, caplog, charset):
    """A SEG whose SegmentLabel holds characters outside ASCII but states no SpecificCharacterSet (DICOM's default
    repertoire is ASCII): highdicom read its bytes as Latin-1 alone, so a label written in UTF-8 read as 'MÃ¼ller' and
    the reference was refused ("segment 1 'MÃ¼ller' is not a label of the model") where the series and the SEG writer
    read 'Müller'. It is read by their rule now: UTF-8 where the file's text bytes are, else Latin-1 (byte 0xFC),
    told naming the file and the segment either way; its segments are matched by these names."""
    from pydicom.dataelem import DataElement

    values = stored_values((40, 36, 6), seed=17) + 900
    write_series(tmp_path / "ct", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    masks = np.zeros((6, 36, 40, 2), bool)
    masks[:, 0:10, :, 0] = True  # 2400 voxels
    masks[:, 20:25, :, 1] = True  # 1200 voxels
    foreign_seg(tmp_path / "seg.dcm", sources, masks, ["Müller", "Straße"])  # both coded as tissue: named only
    names = {0: "background", 1: "Straße", 2: "Müller"}
    for encoding in ("latin-1", "utf-8"):
        seg = pydicom.dcmread(tmp_path / "seg.dcm")
        if "SpecificCharacterSet" in seg:
            del seg.SpecificCharacterSet
        if charset is not None:
            seg.SpecificCharacterSet = charset
        for item, name in zip(seg.SegmentSequence, ("Müller", "Straße")):
            item["SegmentLabel"] = DataElement(0x00620005, "LO", name.encode(encoding))
        seg.save_as(tmp_path / f"{encoding}.dcm")
    for encoding, how in (("latin-1", "Latin-1 (ISO_IR 100)"), ("utf-8", "UTF-8, which its bytes are")):
        caplog.clear()
        with caplog.at_level("INFO"):
            read = read_dicom_seg(tmp_path / f"{encoding}.dcm", volume, names)
            read_dicom_seg(tmp_path / f"{encoding}.dcm", volume, names, warn_missing=False)
        assert int((read == 2).sum()) == 2400 and int((read == 1).sum()) == 1200  # Müller is 2, Straße 1
        assert np.array_equal(read[:, 0:10, :] == 2, np.ones((40, 10, 6), bool))
        told = [(r.levelname, r.getMessage()) for r in caplog.records if "outside ASCII" in r.getMessage()]
        text = (f"{tmp_path / f'{encoding}.dcm'}: segment 1's label 'Müller' holds characters outside ASCII, but no "
                f"SpecificCharacterSet is stated (DICOM's default is ASCII): read as {how}")
        assert told == [("WARNING", text), ("INFO", text)]


def test_a_utf8_reference_seg_without_a_character_set_is_scored_by_evaluate(tmp_path, capsys, caplog):
    """`medseg evaluate` of a prediction whose labels are 'Müller' and 'Straße' against a reference SEG holding them
    in UTF-8 under no SpecificCharacterSet: the reference was refused in one line ('segment 1 'MÃ¼ller' is not a label
    of the model'); its segments now pair with the prediction's labels by name, each scored on its own."""
    from pydicom.dataelem import DataElement

    values = stored_values((40, 36, 6), seed=17) + 900
    write_series(tmp_path / "ct", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]
    masks = np.zeros((6, 36, 40, 2), bool)
    masks[:, 0:10, :, 0] = True
    masks[:, 20:25, :, 1] = True
    foreign_seg(tmp_path / "seg.dcm", sources, masks, ["Müller", "Straße"])
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    if "SpecificCharacterSet" in seg:
        del seg.SpecificCharacterSet
    for item, name in zip(seg.SegmentSequence, ("Müller", "Straße")):
        item["SegmentLabel"] = DataElement(0x00620005, "LO", name.encode())
    seg.save_as(tmp_path / "reference.dcm")
    predicted = np.zeros(volume.shape, np.uint8)  # (columns, rows, slices), as the SEG's masks but for one slice
    predicted[:, 0:10, :] = 2  # Müller
    predicted[:, 20:25, :] = 1  # Straße
    predicted[:, 20:25, 5] = 0
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(predicted, volume.affine), tmp_path / "pred" / "case_seg.nii.gz")
    (tmp_path / "pred" / "case_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "case_id": "case", "input": str(tmp_path / "ct"),
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid}, "segmentation": "case_seg.nii.gz",
        "labels": {"0": "background", "1": "Straße", "2": "Müller"}}, ensure_ascii=False), encoding="utf-8")
    with caplog.at_level("WARNING"):
        code = run_main(["evaluate", str(tmp_path / "pred" / "case_seg.nii.gz"), str(tmp_path / "reference.dcm"),
                         "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    dice = {record["name"]: round(record["dice"], 4) for record in json.loads(out)["labels"].values()}
    assert dice == {"Straße": round(2 * 1000 / (1000 + 1200), 4), "Müller": 1.0}
    assert [r.getMessage() for r in caplog.records if "outside ASCII" in r.getMessage()] == [
        f"{tmp_path / 'reference.dcm'}: segment 1's label 'Müller' holds characters outside ASCII, but no "
        "SpecificCharacterSet is stated (DICOM's default is ASCII): read as UTF-8, which its bytes are"]


ANTERIOR = {"category": ANATOMY, "type": HIPPOCAMPUS, "modifier": code("SCT", "255549009", "Anterior")}
POSTERIOR = {"category": ANATOMY, "type": HIPPOCAMPUS, "modifier": code("SCT", "255551008", "Posterior")}


def test_reference_segments_named_otherwise_are_matched_by_their_codes(tmp_path, caplog):
    """A reader's SEG names its segments in its own words ('Hippocampus head (reader 2)') but codes them as
    DICOM means: those segments were refused as 'not a label of the model'. Where no name fits, a segment is now
    matched to the one label of the package whose type and type modifier it carries (wherever the writer put the
    modifier); a name still wins, with a warning where the codes say otherwise."""
    values = stored_values(SHAPE, seed=21)
    write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.5), seed=5)
    volume = read_dicom_series(tmp_path / "dcm")
    truth = label_rule(volume.array)
    names = {0: "background", 1: "anterior", 2: "posterior"}
    codes = {1: ANTERIOR, 2: POSTERIOR}
    # the reader's segment 1 is the posterior part, segment 2 the anterior one: numbers and names say nothing
    swapped = np.choose(truth, [0, 2, 1]).astype(np.uint8)
    write_dicom_seg(swapped, volume, tmp_path / "reader.dcm", {0: "bg", 1: "Hippocampus tail (reader 2)",
                                                               2: "Hippocampus head (reader 2)"},
                    label_codes={1: POSTERIOR, 2: ANTERIOR})
    with caplog.at_level("INFO"):
        read = read_dicom_seg(tmp_path / "reader.dcm", volume, names, label_codes=codes)
    np.testing.assert_array_equal(read, truth)
    assert any("reader.dcm: segment 1 'Hippocampus tail (reader 2)' matched to label 'posterior' by its codes"
               in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError, match=r"reader\.dcm: segment 1 'Hippocampus tail \(reader 2\)' is not a label of "
                                         r"the model \(anterior, posterior\); a SEG's segments are paired with "
                                         r"the model's labels by name, not by number \(its label 1 is 'anterior'\)"
                                         r": rename the segment as the label it is, or leave the segments the model "
                                         r"has no label for out of the SEG$"):
        read_dicom_seg(tmp_path / "reader.dcm", volume, names)  # without the package's codes: by name only

    # an older writer puts the modifier on the segment item itself
    seg = pydicom.dcmread(tmp_path / "reader.dcm")
    for item in seg.SegmentSequence:
        type_item = item.SegmentedPropertyTypeCodeSequence[0]
        item.SegmentedPropertyTypeModifierCodeSequence = type_item.SegmentedPropertyTypeModifierCodeSequence
        del type_item.SegmentedPropertyTypeModifierCodeSequence
    seg.save_as(tmp_path / "old_writer.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "old_writer.dcm", volume, names, label_codes=codes),
                                  truth)

    # codes that fit two labels (no modifier), or none, are refused naming the segment and its codes
    whole = {"category": ANATOMY, "type": HIPPOCAMPUS}
    write_dicom_seg((truth > 0).astype(np.uint8), volume, tmp_path / "whole.dcm", {0: "bg", 1: "Hippocampus"},
                    label_codes={1: whole})
    with pytest.raises(InputError, match=r"whole\.dcm: segment 1 'Hippocampus' is not a label of the model \(anterior, "
                                         r"posterior\), and its codes \(Hippocampus \(SCT 5366008\)\) fit none of "
                                         r"them$"):
        read_dicom_seg(tmp_path / "whole.dcm", volume, names, label_codes=codes)
    with pytest.raises(InputError, match=r"whole\.dcm: segment 1 'Hippocampus' is not a label of the model \(left, "
                                         r"right\), and its codes \(Hippocampus \(SCT 5366008\)\) fit more than one "
                                         r"\(left, right\); name the segment as one of them$"):
        read_dicom_seg(tmp_path / "whole.dcm", volume, {0: "bg", 1: "left", 2: "right"},
                       label_codes={1: whole, 2: whole})

    # a name that fits wins over codes that do not, with a warning
    write_dicom_seg(truth, volume, tmp_path / "named.dcm", names, label_codes={1: POSTERIOR, 2: ANTERIOR})
    caplog.clear()
    with caplog.at_level("WARNING"):
        read = read_dicom_seg(tmp_path / "named.dcm", volume, names, label_codes=codes)
    np.testing.assert_array_equal(read, truth)
    assert any("named.dcm: segment 1 'anterior' is coded Hippocampus (SCT 5366008), Posterior (SCT 255551008), "
               "which are the codes of label 'posterior'; matched by its name to 'anterior'" in r.getMessage()
               for r in caplog.records)


def test_infer_and_evaluate_match_a_readers_seg_by_the_packages_codes(tmp_path, capsys, tiny_package):
    """The sidecar records the package's codes, so `evaluate` (and the report) match a reference SEG's segments by
    them as `infer --reference` does."""
    coded_package = tmp_path / "coded"
    shutil.copytree(tiny_package.path, coded_package)
    config = json.loads((coded_package / "model.json").read_text())
    config["label_codes"] = {"1": ANTERIOR, "2": POSTERIOR}
    (coded_package / "model.json").write_text(json.dumps(config))
    write_series(tmp_path / "case7", stored_values((40, 36, 6), seed=22) + 900, slice_positions(6, 3.0))
    volume = read_dicom_series(tmp_path / "case7")

    def cli(*args) -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", *args])
        return exit_info.value.code

    model = ["--device", "cpu", "--model", str(coded_package)]
    assert cli("infer", str(tmp_path / "case7"), "-o", str(tmp_path / "nii"), *model) == 0
    sidecar = json.loads((tmp_path / "nii" / "case7_seg.json").read_text())
    assert sidecar["label_codes"] == {"1": ANTERIOR, "2": POSTERIOR}
    predicted = np.asarray(nib.load(tmp_path / "nii" / "case7_seg.nii.gz").dataobj)
    reference = predicted.copy()
    reference[:, :, 2] = 0
    write_dicom_seg(np.choose(reference, [0, 2, 1]).astype(np.uint8), volume, tmp_path / "reader.dcm",
                    {0: "bg", 1: "Posterior hippocampus", 2: "Anterior hippocampus"},
                    label_codes={1: POSTERIOR, 2: ANTERIOR})
    nib.save(nib.Nifti1Image(reference, nib.load(tmp_path / "nii" / "case7_seg.nii.gz").affine),
             tmp_path / "reference.nii.gz")
    capsys.readouterr()
    assert cli("evaluate", str(tmp_path / "nii" / "case7_seg.nii.gz"), str(tmp_path / "reference.nii.gz"),
               "--json") == 0
    expected = {k: v["dice"] for k, v in json.loads(capsys.readouterr().out)["labels"].items()}
    assert min(expected.values()) < 1.0
    assert cli("evaluate", str(tmp_path / "nii" / "case7_seg.nii.gz"), str(tmp_path / "reader.dcm"), "--json") == 0
    assert {k: v["dice"] for k, v in json.loads(capsys.readouterr().out)["labels"].items()} == expected
    assert cli("infer", str(tmp_path / "case7"), "-o", str(tmp_path / "scored"), "--reference",
               str(tmp_path / "reader.dcm"), *model) == 0
    record = json.loads((tmp_path / "scored" / "case7_metrics.json").read_text())
    assert {k: v["dice"] for k, v in record["labels"].items()} == expected


def test_codes_added_to_a_package_reach_kept_cohort_cases_and_evaluate_model(tmp_path, capsys, caplog,
                                                                             tiny_package):
    """Codes change no segmentation, so a cohort keeps its cases when a package gains them; but its sidecars kept
    no codes, and a reader's SEG scored against them stayed 'not a label of the model' for good. A kept case's
    sidecar now takes the package's codes and its scores against a DICOM SEG are made again; `evaluate --model`
    matches by the model's codes where the sidecar has none. An uncoded label's own SEG segment (coded Tissue) is
    not 'coded as' a label the package codes Tissue."""
    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples

    package = tmp_path / "pkg"
    shutil.copytree(tiny_package.path, package)
    write_series(tmp_path / "case6", stored_values((40, 36, 6), seed=23) + 900, slice_positions(6, 3.0))
    volume = read_dicom_series(tmp_path / "case6")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\treference\ncase6\t{tmp_path / 'case6'}\t{tmp_path / 'reader.dcm'}\n")
    samples = read_samples(sheet)
    results = tmp_path / "cohort"
    infer_cases(samples, results, InferOptions(model=str(package), device="cpu"))
    predicted = np.asarray(nib.load(results / "cases" / "case6" / "case6_seg.nii.gz").dataobj)
    reference = predicted.copy()
    reference[:, :, 1] = 0
    write_dicom_seg(np.choose(reference, [0, 2, 1]).astype(np.uint8), volume, tmp_path / "reader.dcm",
                    {0: "bg", 1: "Posterior hippocampus", 2: "Anterior hippocampus"},
                    label_codes={1: POSTERIOR, 2: ANTERIOR})
    outcome = evaluate_cases(samples, results).cases[0]
    assert outcome.outcome == "failed" and "is not a label of the model (first, second)" in outcome.error

    config = json.loads((package / "model.json").read_text())
    config["label_codes"] = {"1": ANTERIOR, "2": POSTERIOR}
    (package / "model.json").write_text(json.dumps(config))
    kept = infer_cases(read_samples(sheet), results, InferOptions(model=str(package), device="cpu")).cases[0]
    assert (kept.outcome, kept.reused) == ("ok", True)
    sidecar = json.loads((results / "cases" / "case6" / "case6_seg.json").read_text())
    assert sidecar["label_codes"] == {"1": ANTERIOR, "2": POSTERIOR}
    scored = evaluate_cases(read_samples(sheet), results).cases[0]
    assert (scored.outcome, scored.reused) == ("ok", False)
    dice = {k: v["dice"] for k, v in json.loads(
        (results / "cases" / "case6" / "case6_metrics.json").read_text())["labels"].items()}
    assert min(dice.values()) < 1.0 and len(dice) == 2
    again = infer_cases(read_samples(sheet), results, InferOptions(model=str(package), device="cpu")).cases[0]
    assert again.reused and evaluate_cases(read_samples(sheet), results).cases[0].reused  # nothing more to do

    # planning sees a codes-only change (Snakemake's file times may not: a model.json copied with its old time); the
    # kept case's infer run gets a new id, so its scores are made again, also after its SEG was away meanwhile
    from medseg.cohort.fingerprints import stale_cases
    from medseg.package import load_package

    def stale() -> dict:
        return stale_cases(read_samples(sheet), results, load_package(package),
                           InferOptions(model=str(package), device="cpu"))

    def scores() -> dict:
        record = json.loads((results / "cases" / "case6" / "case6_metrics.json").read_text())
        return {k: v["dice"] for k, v in record["labels"].items()}

    config["label_codes"] = {"1": POSTERIOR, "2": ANTERIOR}  # recoded by mistake: the reader's SEG now swaps
    (package / "model.json").write_text(json.dumps(config))
    assert stale() == {"infer": ["case6"], "evaluate": []}
    assert infer_cases(read_samples(sheet), results, InferOptions(model=str(package), device="cpu")).cases[0].reused
    swapped = json.loads((results / "cases" / "case6" / "case6_seg.json").read_text())["label_codes"]
    assert swapped == {"1": POSTERIOR, "2": ANTERIOR} and stale() == {"infer": [], "evaluate": ["case6"]}
    assert not evaluate_cases(read_samples(sheet), results).cases[0].reused and scores() != dice
    config["label_codes"] = {"1": ANTERIOR, "2": POSTERIOR}
    (package / "model.json").write_text(json.dumps(config))
    (tmp_path / "reader.dcm").rename(tmp_path / "away.dcm")
    infer_cases(read_samples(sheet), results, InferOptions(model=str(package), device="cpu"))
    assert evaluate_cases(read_samples(sheet), results).cases[0].outcome == "failed"  # scores of the old codes go
    (tmp_path / "away.dcm").rename(tmp_path / "reader.dcm")
    assert evaluate_cases(read_samples(sheet), results).cases[0].outcome == "ok" and scores() == dice

    # evaluate --model: the model's codes where the prediction's sidecar has none (written before it had them)
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(results / "cases" / "case6" / "case6_seg.nii.gz", old)
    (old / "case6_seg.json").write_text(json.dumps({k: v for k, v in sidecar.items() if k != "label_codes"}))

    def cli(*args) -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", *args])
        return exit_info.value.code

    capsys.readouterr()
    assert cli("evaluate", str(old / "case6_seg.nii.gz"), str(tmp_path / "reader.dcm")) == 1
    assert "segment 1 'Posterior hippocampus' is not a label of the model (first, second)" in capsys.readouterr().err
    assert cli("evaluate", str(old / "case6_seg.nii.gz"), str(tmp_path / "reader.dcm"), "--model", str(package),
               "--json") == 0
    assert {k: v["dice"] for k, v in json.loads(capsys.readouterr().out)["labels"].items()} == dice
    # a --model without codes of its own leaves the sidecar's, as leaving --model out does
    (old / "case6_seg.json").write_text(json.dumps(sidecar))
    assert cli("evaluate", str(old / "case6_seg.nii.gz"), str(tmp_path / "reader.dcm"), "--model",
               str(tiny_package.path), "--json") == 0
    assert {k: v["dice"] for k, v in json.loads(capsys.readouterr().out)["labels"].items()} == dice

    # label 1 coded Tissue on purpose, label 2 uncoded (written as Tissue too): read back by name, no warning
    labels = {0: "background", 1: "soft", 2: "other"}
    tissue = {"category": code("SCT", "85756007", "Tissue"), "type": code("SCT", "85756007", "Tissue")}
    write_dicom_seg(reference, volume, tmp_path / "own.dcm", labels, label_codes={1: tissue})
    caplog.clear()
    with caplog.at_level("WARNING"):
        read = read_dicom_seg(tmp_path / "own.dcm", volume, labels, label_codes={1: tissue})
    np.testing.assert_array_equal(read, reference)
    assert not [r for r in caplog.records if "coded" in r.getMessage()]
    # but a segment named for the uncoded label and coded as the other label's own codes is told
    write_dicom_seg((reference == 1).astype(np.uint8), volume, tmp_path / "odd.dcm", {0: "background", 1: "other"},
                    label_codes={1: ANTERIOR})
    with caplog.at_level("WARNING"):
        read_dicom_seg(tmp_path / "odd.dcm", volume, {0: "background", 1: "anterior", 2: "other"},
                       label_codes={1: ANTERIOR})
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records if "coded" in r.getMessage()] == [
        "segment 1 'other' is coded Hippocampus (SCT 5366008), Anterior (SCT 255549009), which are the codes of label "
        "'anterior'; matched by its name to 'other'"]


def test_segments_put_a_slab_at_a_time_name_the_first_overlap_in_the_arrays_order_and_count_them_all(
        tmp_path, monkeypatch):
    """Read a slab of slices at a time, an overlap of segments is refused as it was on the whole grid: its voxels
    counted over every slab, and the label named the one first met in the array's order (column, row, slice), not
    in the first slab that holds an overlap."""
    import medseg.io.seg_reading

    values = stored_values((40, 36, 6), seed=17) + 900
    write_series(tmp_path / "ct", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    names = {0: "background", 1: "first", 2: "second", 3: "third"}
    masks = np.zeros((6, 36, 40, 3), bool)  # (slices, rows, columns, segments)
    masks[5, :, 0:5, 0] = True  # the first columns, on the last slice
    masks[0, :, 20:25, 1] = True  # later columns, on the first slice
    masks[[0, 5], :, :, 2] = True  # over both
    foreign_seg(tmp_path / "overlap.dcm", sources, masks, ["first", "second", "third"])
    monkeypatch.setattr(medseg.io.seg_reading, "_SLICES_AT_ONCE", 2)
    with pytest.raises(InputError, match=r"overlap\.dcm: segments 'first' and 'third' overlap in 360 voxels"):
        read_dicom_seg(tmp_path / "overlap.dcm", volume, names)
    masks[..., 2] = False
    foreign_seg(tmp_path / "apart.dcm", sources, masks, ["first", "second", "third"])
    expected = np.zeros((40, 36, 6), np.uint8)
    expected[0:5, :, 5], expected[20:25, :, 0] = 1, 2
    assert np.array_equal(read_dicom_seg(tmp_path / "apart.dcm", volume, names, warn_missing=False), expected)


def test_segments_are_paired_with_a_dataset_json_by_name_and_refused_where_it_names_their_value_otherwise():
    """Where a dataset.json alone names the labels, a SEG's segments were each read as their segment number and
    scored under the dataset.json's name of that value, whatever the segment's own label said. They are paired by
    name (regardless of case, accents composed alike); a segment named as no label stays its number, as does one a
    writer left unnamed (``Segment 3``); one whose value the dataset.json names otherwise is refused."""
    from medseg.io.seg_labels import pair_by_name

    names = {0: "background", 1: "liver", 2: "Spleen", 5: "Läsion"}
    seg_names = {0: "background", 1: "SPLEEN", 2: "Liver", 3: "Segment 3", 4: "kidney", 6: "La\u0308sion"}
    assert pair_by_name(seg_names, names, "seg.dcm", "Task01/dataset.json") == {1: 2, 2: 1, 3: 3, 4: 4, 6: 5}
    assert pair_by_name({1: "Segment_1", 2: "segment 2"}, names, "seg.dcm", "d.json") == {1: 1, 2: 2}
    with pytest.raises(InputError) as refused:
        pair_by_name({1: "Spleen", 2: "Gallbladder"}, {0: "background", 1: "spleen", 2: "liver"}, "seg.dcm",
                     "Task01/dataset.json")
    assert str(refused.value) == (
        "seg.dcm: segment 2 is labelled 'Gallbladder', but Task01/dataset.json names label value 2 'liver' (its "
        "labels: 1 spleen, 2 liver); the segments of a SEG are paired with the labels by name: if they are one "
        "structure, rename the segment or the label so that the names agree")
    # not strict (the report's drawing of what was scored): such a segment stays its number
    assert pair_by_name({1: "Spleen", 2: "Gallbladder"}, {0: "background", 1: "spleen", 2: "liver"}, "seg.dcm",
                        "the case's metrics record", strict=False) == {1: 1, 2: 2}
    with pytest.raises(InputError, match=r"^seg\.dcm: segment 1 'liver' matches more than one label of d\.json "
                                         r"regardless of case \(Liver, LIVER\)"):
        pair_by_name({1: "liver"}, {1: "Liver", 2: "LIVER"}, "seg.dcm", "d.json")


def test_segments_named_as_a_dataset_jsons_labels_but_for_spaces_and_underscores_are_paired():
    """nnU-Net's dataset.json names 1 'left_kidney', 2 'right_kidney'; a reader's SEG names them 'Right Kidney' (1) and
    'Left Kidney' (2): they were refused as naming value 1 otherwise, where a 3D Slicer segmentation's same names were
    taken as the dataset.json's (letter case, spaces and ``_`` aside). They are paired, unless that fits several."""
    from medseg.io.seg_labels import pair_by_name

    names = {0: "background", 1: "left_kidney", 2: "right_kidney"}
    assert pair_by_name({1: "Right Kidney", 2: "Left Kidney"}, names, "seg.dcm", "d.json") == {1: 2, 2: 1}
    assert pair_by_name({1: "LEFT-KIDNEY"}, names, "seg.dcm", "d.json") == {1: 1}
    with pytest.raises(InputError, match=r"^seg\.dcm: segment 1 is labelled 'Left Kidney', but d\.json names label "
                                         r"value 1 'left_kidney_upper'"):  # two labels fit it so: not paired
        pair_by_name({1: "Left Kidney"}, {1: "left_kidney_upper", 2: "left-kidney", 3: "Left_Kidney_"}, "seg.dcm",
                     "d.json")


def test_segments_named_as_a_models_labels_but_for_spaces_and_underscores_are_matched_as_with_a_dataset_json(
        tmp_path):
    """A model's labels 1 'left_kidney', 2 'right_kidney'; a reader's SEG names its segments 'Right Kidney' (1) and
    'Left Kidney' (2). Paired with a dataset.json's same labels they were taken as theirs, but against the model
    (evaluate --model, infer --reference, the cohort) refused as 'not a label of the model'. They are matched alike
    now; a segment two labels fit so, or none, is refused as before."""
    values = stored_values((20, 16, 3), seed=11) + 900
    write_series(tmp_path / "ct", values, slice_positions(3, 3.0))
    volume = read_dicom_series(tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]
    masks = np.zeros((3, 16, 20, 2), bool)  # (slices, rows, columns, segments)
    masks[:, 0:5, :, 0] = True
    masks[:, 8:12, :, 1] = True
    foreign_seg(tmp_path / "kidneys.dcm", sources, masks, ["Right Kidney", "Left Kidney"])
    read = read_dicom_seg(tmp_path / "kidneys.dcm", volume, {0: "background", 1: "left_kidney", 2: "right_kidney"})
    expected = np.zeros((3, 16, 20), np.uint8)
    expected[:, 0:5] = 2
    expected[:, 8:12] = 1
    assert np.array_equal(read, expected.transpose(2, 1, 0))
    foreign_seg(tmp_path / "left.dcm", sources, masks[..., 1:], ["Left Kidney"])
    for labels in ({0: "background", 1: "left_kidney", 2: "left-kidney"}, {0: "background", 1: "kidney_l"}):
        shown = ", ".join(name for value, name in labels.items() if value)
        seg = re.escape(str(tmp_path / "left.dcm"))
        with pytest.raises(InputError, match=rf"^{seg}: segment 1 'Left Kidney' is not a label of "
                                             rf"the model \({shown}\); a SEG's segments are paired with the model's "
                                             r"labels by name, not by number \(its label 1 is '"):
            read_dicom_seg(tmp_path / "left.dcm", volume, labels)


@pytest.mark.parametrize("unnamed, shown", [("Segment 2", "'Segment 2'"), ("", "(its label empty)")])
def test_an_unnamed_segment_whose_number_another_segment_takes_by_name_is_refused(unnamed, shown):
    """Segment 1 'Spleen' is label 2 by name; unnamed segment 2 stayed its number, 2: the two were read as one label,
    the spleen with an unknown structure beside it (their union, with a warning that they "match one label of the
    model"), and the spleen's Dice was that of both."""
    from medseg.io.seg_labels import pair_by_name

    names = {0: "background", 1: "liver", 2: "spleen"}
    with pytest.raises(InputError) as refused:
        pair_by_name({0: "background", 1: "Spleen", 2: unnamed}, names, "seg.dcm", "Task01/dataset.json")
    assert str(refused.value) == (
        f"seg.dcm: segment 2 {shown} names no label and would be read as its number, 2, but segment 1 'Spleen' is "
        "that label by name ('spleen' of Task01/dataset.json); the two would be scored as one structure: name "
        "segment 2 as the label it is")
    # an unnamed segment whose number no other segment takes stays its number, as before
    assert pair_by_name({1: unnamed, 2: "spleen"}, names, "seg.dcm", "d.json") == {1: 1, 2: 2}
    assert pair_by_name({1: "Spleen", 2: unnamed}, names, "seg.dcm", "d.json", strict=False) == {1: 2, 2: 2}


def test_a_segment_a_model_labels_otherwise_is_refused_naming_both_names_and_the_way_on(tmp_path, capsys):
    """The prediction's sidecar names value 1 'liver', the SEG's segment 1 is 'odd': refused, as before, and the one
    line now says that segments pair by name, what the model calls that value, and how to go on; nothing written."""
    values = stored_values(SHAPE, seed=5)
    write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=2)
    volume = read_dicom_series(tmp_path / "dcm")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "ref.dcm", {0: "background", 1: "odd", 2: "corner"},
                    "test-model")
    nib.save(nib.Nifti1Image(label_rule(volume.array), volume.affine), tmp_path / "case_seg.nii.gz")
    (tmp_path / "case_seg.json").write_text(json.dumps({
        "input": str(tmp_path / "dcm"), "labels": {"0": "background", "1": "liver", "2": "corner"},
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid}}))
    capsys.readouterr()
    code = run_main(["evaluate", str(tmp_path / "case_seg.nii.gz"), str(tmp_path / "ref.dcm"), "-o",
                     str(tmp_path / "m.json")])
    assert code == 1 and not (tmp_path / "m.json").exists()
    assert capsys.readouterr().err.splitlines() == [
        f"medseg: error: {tmp_path / 'ref.dcm'}: segment 1 'odd' is not a label of the model (liver, corner); a SEG's "
        "segments are paired with the model's labels by name, not by number (its label 1 is 'liver'): rename the "
        "segment as the label it is, or leave the segments the model has no label for out of the SEG"]
