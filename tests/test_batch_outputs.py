"""The outputs a batch of inputs will write, checked before any input is read (medseg.batch_outputs)."""

from __future__ import annotations

import pytest

from medseg.batch_outputs import as_typed, check_batch_outputs, check_dicom_options, check_input_exists
from medseg.errors import ConflictingInputsError, ImageReadError, InputError, OutputExistsError


@pytest.fixture
def scans(tmp_path):
    for name in ("a/scan.nii.gz", "b/scan.nii.gz", "c/other.nii.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"not read here")
    return tmp_path


def test_inputs_that_would_write_the_same_files_are_refused_together(scans):
    a, b = scans / "a" / "scan.nii.gz", scans / "b" / "scan.nii.gz"
    out = scans / "out"
    with pytest.raises(ConflictingInputsError, match=rf"^{a} and {b} would both be written to scan_seg.nii.gz in "
                                                     rf"{out}; segment them into different folders \(-o\)$"):
        check_batch_outputs([a, b], out, False, "nifti", True)
    with pytest.raises(ConflictingInputsError, match=rf"^{a} is given twice; give each input once$"):
        check_batch_outputs([a, a], out, False, "nifti", True)
    check_batch_outputs([a, b], None, False, "nifti", True)  # beside their inputs: no clash
    assert not out.exists()  # nothing is made by checking


def test_inputs_whose_outputs_differ_only_in_letter_case_or_accent_form_are_refused(tmp_path):
    # a macOS (APFS, HFS+) or Windows disk holds out/Scan_seg.nii.gz and out/scan_seg.nii.gz as one file, and é as
    # one character or as e and its accent alike: the second case would replace the first's outputs
    a, b = tmp_path / "a" / "Scan.nii.gz", tmp_path / "b" / "scan.nii.gz"
    c, d = tmp_path / "c" / "r\u00e9sum\u00e9.nii.gz", tmp_path / "d" / "re\u0301sume\u0301.nii.gz"
    for path in (a, b, c, d):
        path.parent.mkdir()
        path.write_bytes(b"not read here")
    out = tmp_path / "out"
    with pytest.raises(ConflictingInputsError, match=rf"^{a} and {b} would both be written to Scan_seg.nii.gz and "
                                                     r"scan_seg.nii.gz, names that differ only in letter case \(one "
                                                     rf"file on a macOS or Windows disk\), in {out}; segment them "
                                                     r"into different folders \(-o\)$"):
        check_batch_outputs([a, b], out, False, "nifti", True)
    # é composed otherwise is named as such, not as letter case: the two names look alike on a screen
    with pytest.raises(ConflictingInputsError, match=rf"^{c} and {d} would both be written to "
                                                     r"r\u00e9sum\u00e9_seg.nii.gz and re\u0301sume\u0301_seg.nii.gz, "
                                                     r"names that differ only in how an accent is composed, as one "
                                                     r"character or as a letter and its accent \(one file on a macOS "
                                                     rf"or Windows disk\), in {out}; "):
        check_batch_outputs([c, d], out, False, "nifti", True)
    e = tmp_path / "b" / "R\u00c9SUM\u00c9.nii.gz"
    e.write_bytes(b"not read here")
    with pytest.raises(ConflictingInputsError, match=r"names that differ only in letter case and in how an accent "
                                                     r"is composed \(one file on a macOS or Windows disk\)"):
        check_batch_outputs([d, e], out, False, "nifti", True)
    check_batch_outputs([a, b, c, d], None, False, "nifti", True)  # beside their inputs: no clash
    assert not out.exists()


def test_an_output_named_as_an_input_or_reference_but_for_letter_case_replaces_it_only_where_the_disk_says_so(
        tmp_path, monkeypatch):
    import os
    import unicodedata

    from medseg import batch_outputs

    scan, given_seg = tmp_path / "a" / "Scan.nii.gz", tmp_path / "a" / "SCAN_seg.nii.gz"
    nfc, nfd_seg = tmp_path / "a" / "r\u00e9sum\u00e9.nii.gz", tmp_path / "a" / "re\u0301sume\u0301_seg.nii.gz"
    for path in (scan, given_seg, nfc, nfd_seg):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"not read here")
    # on this (Linux) disk the outputs Scan_seg.nii.gz and résumé_seg.nii.gz are files of their own: the input
    # SCAN_seg.nii.gz and the reference re\u0301sume\u0301_seg.nii.gz stay as they are, and the batch is not refused
    check_batch_outputs([scan, given_seg], None, False, "nifti", True)
    check_batch_outputs([nfc], None, True, "nifti", True, references=[nfd_seg])
    check_batch_outputs([scan], None, True, "nifti", True, references=[given_seg])

    def folded(path):
        path = os.path.realpath(path)
        return os.path.dirname(path), unicodedata.normalize("NFC", os.path.basename(path)).casefold()

    # a macOS (APFS, HFS+) or Windows disk holds both spellings as one file: the output would replace it
    monkeypatch.setattr(batch_outputs, "_same_file", lambda first, second: folded(first) == folded(second))
    with pytest.raises(ConflictingInputsError, match=rf"^{scan}: its output {tmp_path / 'a' / 'Scan_seg.nii.gz'} "
                                                     rf"would replace the input {given_seg}; write the outputs "
                                                     r"elsewhere \(-o\)$"):
        check_batch_outputs([scan, given_seg], None, False, "nifti", True)
    with pytest.raises(ConflictingInputsError, match=rf"would replace the reference {nfd_seg}; "):
        check_batch_outputs([nfc], None, True, "nifti", True, references=[nfd_seg])


def test_an_output_that_would_replace_an_input_is_refused(scans):
    a = scans / "a" / "scan.nii.gz"
    given_seg = scans / "a" / "scan_seg.nii.gz"
    given_seg.write_bytes(b"x")
    with pytest.raises(ConflictingInputsError, match=rf"^{a}: its output {given_seg} would replace the input "
                                                     rf"{given_seg}; write the outputs elsewhere \(-o\)$"):
        check_batch_outputs([a, given_seg], None, False, "nifti", True)
    with pytest.raises(ConflictingInputsError, match="would replace the reference"):
        check_batch_outputs([a], None, True, "nifti", True, references=[given_seg])


def test_existing_outputs_need_overwrite_and_are_named_for_the_whole_batch(scans):
    a, other = scans / "a" / "scan.nii.gz", scans / "c" / "other.nii.gz"
    (scans / "a" / "scan_seg.nii.gz").write_bytes(b"x")
    (scans / "a" / "scan_seg.json").write_bytes(b"{}")
    with pytest.raises(OutputExistsError, match=r"scan_seg.nii.gz: output exists already; pass --overwrite to "
                                                r"replace it; scan_seg.json exists too \(nothing was segmented: 1 of 2 "
                                                r"inputs have outputs\)$"):
        check_batch_outputs([a, other], None, False, "nifti", False)
    check_batch_outputs([a, other], None, False, "nifti", True)
    (scans / "a" / "scan_seg.json").unlink()  # a run killed between placing the two
    with pytest.raises(OutputExistsError, match=r"without its sidecar"):
        check_batch_outputs([a], None, False, "nifti", False)


def test_an_output_beside_its_input_is_named_through_the_folder_as_typed(scans, monkeypatch):
    monkeypatch.chdir(scans)
    assert as_typed((scans / "a" / "scan_seg.nii.gz").resolve(), "a/scan.nii.gz") == scans.joinpath(
        "a", "scan_seg.nii.gz").relative_to(scans)
    assert as_typed(scans / "out" / "x.nii.gz", "a/scan.nii.gz") == scans / "out" / "x.nii.gz"


def test_a_missing_input_and_options_for_a_folder_given_a_file_are_named(scans):
    with pytest.raises(ImageReadError, match=rf"^{scans / 'nothing.nii.gz'}: "):
        check_input_exists(scans / "nothing.nii.gz", None)
    a = scans / "a" / "scan.nii.gz"
    with pytest.raises(ImageReadError, match=rf"^{a}: --series applies to DICOM folders only$"):
        check_dicom_options(a, "3", "nifti")
    with pytest.raises(InputError, match=rf"^{a}: --format dicom-seg needs a DICOM series folder as input$"):
        check_dicom_options(a, None, "dicom-seg")
    check_dicom_options(scans / "a", "3", "dicom-seg")  # a folder: reading it decides


def test_inputs_given_as_an_iterator_are_all_checked(scans):
    """The iterator was used up by the first pass: the outputs of its inputs went unchecked."""
    a, other = scans / "a" / "scan.nii.gz", scans / "c" / "other.nii.gz"
    (scans / "c" / "other_seg.nii.gz").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match=r"other_seg.nii.gz: output exists already.* 1 of 2 inputs"):
        check_batch_outputs(iter([a, other]), None, False, "nifti", False)


def test_an_unknown_output_format_is_an_input_error(scans):
    with pytest.raises(InputError, match="unknown output format 'png' \\(nifti or dicom-seg\\)"):
        check_batch_outputs([scans / "a" / "scan.nii.gz"], None, False, "png", True)
