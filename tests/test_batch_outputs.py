"""The outputs a batch of inputs will write, checked before any input is read (medseg.batch_outputs)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import _files, run_cli

from medseg.batch_outputs import (
    as_typed,
    check_batch_outputs,
    check_dicom_options,
    check_folder_input,
    check_input_exists,
)
from medseg.errors import ConflictingInputsError, ImageReadError, InputError, OutputExistsError

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


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
                                                     rf"{out}; segment them into different folders "
                                                     r"\(out_dir=\.\.\.\)$"):
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
                                                     r"into different folders \(out_dir=\.\.\.\)$"):
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
                                                     r"elsewhere \(out_dir=\.\.\.\)$"):
        check_batch_outputs([scan, given_seg], None, False, "nifti", True)
    with pytest.raises(ConflictingInputsError, match=rf"would replace the reference {nfd_seg}; "):
        check_batch_outputs([nfc], None, True, "nifti", True, references=[nfd_seg])


def test_an_output_that_would_replace_an_input_is_refused(scans):
    a = scans / "a" / "scan.nii.gz"
    given_seg = scans / "a" / "scan_seg.nii.gz"
    given_seg.write_bytes(b"x")
    with pytest.raises(ConflictingInputsError, match=rf"^{a}: its output {given_seg} would replace the input "
                                                     rf"{given_seg}; write the outputs elsewhere \(out_dir=\.\.\.\)$"):
        check_batch_outputs([a, given_seg], None, False, "nifti", True)
    with pytest.raises(ConflictingInputsError, match="would replace the reference"):
        check_batch_outputs([a], None, True, "nifti", True, references=[given_seg])


def test_existing_outputs_need_overwrite_and_are_named_for_the_whole_batch(scans):
    a, other = scans / "a" / "scan.nii.gz", scans / "c" / "other.nii.gz"
    (scans / "a" / "scan_seg.nii.gz").write_bytes(b"x")
    (scans / "a" / "scan_seg.json").write_bytes(b"{}")
    with pytest.raises(OutputExistsError, match=r"scan_seg.nii.gz: output exists already; pass overwrite=True to "
                                                r"replace it; scan_seg.json exists too \(nothing was segmented: 1 of 2 "
                                                r"inputs has outputs\)$"):
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
    with pytest.raises(ImageReadError, match=rf"^{a}: series=\.\.\. applies to DICOM folders only$"):
        check_dicom_options(a, "3", "nifti")
    with pytest.raises(InputError, match=rf"^{a}: output_format='dicom-seg' needs a DICOM series folder as input$"):
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


def test_two_inputs_with_one_output_name_are_refused_before_any_work(tmp_path, case, make_package, capsys):
    (tmp_path / "a").mkdir()
    other = tmp_path / "a" / "case.nii"
    nib.save(nib.load(str(case)), str(other))
    code, _, err = run(["infer", str(case), str(other), "--model", str(make_package()), "-o", str(tmp_path / "out"),
                        "--overwrite"], capsys)
    assert code == 2
    assert f"{case} and {other} would both be written to case_seg.nii.gz" in err
    assert not (tmp_path / "out").exists()
    # the same file twice is said to be that (it was advised to segment "them" into different folders)
    code, _, err = run(["infer", str(case), str(case), "--model", str(make_package()), "-o", str(tmp_path / "out")],
                       capsys)
    assert code == 2 and f"{case} is given twice; give each input once" in err
    assert not (tmp_path / "out").exists()
    # so is a .hdr/.img pair given by both its files (it was advised to segment "them" into different folders)
    stored = nib.load(str(case))
    nib.save(nib.Nifti1Pair(np.asanyarray(stored.dataobj), stored.affine), str(tmp_path / "pair.img"))
    pair = [str(tmp_path / "pair.hdr"), str(tmp_path / "pair.img")]
    code, _, err = run(["infer", *pair, "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and f"{pair[0]} and {pair[1]} are the two files of one image; give it once" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_in_the_place_of_an_output_is_refused_before_any_work(tmp_path, case, make_package, capsys):
    out_dir = tmp_path / "out"
    (out_dir / "case_seg.json").mkdir(parents=True)
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", str(out_dir), "--overwrite"],
                       capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {out_dir / 'case_seg.json'}: a folder is in the place "
                                            "of this output; move it away")
    assert _files(out_dir) == []


def test_an_output_one_input_cannot_have_fails_that_input_alone_in_a_batch(tmp_path, case, make_package, capsys):
    """An output name longer than the file system allows, or a folder in an output's place, is that input's fault:
    alone it is refused before any work; in a batch it stopped every input before any work, though it fails
    only that one."""
    package = str(make_package())
    long = tmp_path / ("x" * 250 + ".nii")  # its segmentation's name would be 261 bytes
    long.write_bytes(gzip.decompress(case.read_bytes()))
    blocked = tmp_path / "blocked.nii.gz"
    blocked.write_bytes(case.read_bytes())
    out_dir = tmp_path / "out"
    (out_dir / "blocked_seg.json").mkdir(parents=True)
    code, _, err = run(["infer", str(long), "--model", package, "-o", str(out_dir)], capsys)
    assert code == 1 and err.strip().splitlines()[-1].endswith("the file name is too long (261 bytes, at most 255); "
                                                               "shorten the input's name")
    code, out, err = run(["infer", str(long), str(blocked), str(case), "--model", package, "-o", str(out_dir)],
                         capsys)
    assert code == 1
    lines = err.strip().splitlines()
    too_long = "the file name is too long (261 bytes, at most 255); shorten the input's name"
    assert any(line.startswith("medseg: error: ") and line.endswith(too_long) for line in lines)
    blocker = out_dir / "blocked_seg.json"
    assert f"medseg: error: {blocker}: a folder is in the place of this output; move it away" in lines
    assert lines[-1] == f"medseg: 2 of 3 inputs failed ({long}, {blocked})"
    assert _files(out_dir) == ["case_seg.json", "case_seg.nii.gz"]


def test_a_name_whose_unwritten_metrics_would_be_too_long_is_segmented(tmp_path, case, make_package, capsys):
    """An input whose segmentation and sidecar names fit in 255 bytes but whose ``_metrics.json`` would not is
    segmented when no reference is given (the metrics are never written); looking for an earlier run's metrics of
    that name raised the file system's "File name too long" as a traceback."""
    package = str(make_package())
    folder = tmp_path / "scans"
    folder.mkdir()
    long = folder / ("m" * 243 + ".nii.gz")  # _seg.json 252 bytes, _metrics.json 256
    long.write_bytes(case.read_bytes())
    code, out, err = run(["infer", str(long), "--model", package], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert _files(folder) == sorted([long.name, "m" * 243 + "_seg.json", "m" * 243 + "_seg.nii.gz"])
    assert nib.load(str(folder / ("m" * 243 + "_seg.nii.gz"))).shape == (40, 40, 8)


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, case, make_package, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", str(blocker / "out")], capsys)
    assert code == 2 and "Traceback" not in err  # infer's command line says it, before any input is segmented
    assert err.strip().splitlines()[-1] == (f"medseg infer: error: -o {blocker / 'out'}: {blocker} is a file, not a "
                                            "folder; give a folder for the outputs. Try 'medseg infer --help'.")
    # the file in the way is named by the folder check that every output goes through (cohort --record uses it too)
    code, _, err = run(["synth", str(blocker / "out" / "x.nii.gz"), "--shape", "8", "8", "8"], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (f"medseg: error: {blocker / 'out'}: cannot make this output "
                                                          f"folder: {blocker} is a file, not a folder")


def test_existing_outputs_of_any_input_are_refused_before_any_work(tmp_path, case, make_package, capsys):
    other = tmp_path / "other.nii.gz"
    other.write_bytes(case.read_bytes())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "other_seg.json").write_text("{}")
    code, _, err = run(["infer", str(case), str(other), "--model", str(make_package()), "-o", str(out_dir)], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {out_dir / 'other_seg.json'}: output exists already; "
                                            "pass --overwrite to replace it (nothing was segmented: 1 of 2 inputs "
                                            "has outputs)")
    assert _files(out_dir) == ["other_seg.json"]  # the first input was not segmented either


def test_an_output_that_would_replace_the_reference_says_so(tmp_path, case, make_package, capsys):
    reference = tmp_path / "case_seg.nii.gz"
    reference.write_bytes(case.read_bytes())
    code, _, err = run(["infer", str(case), "-m", str(make_package()), "--reference", str(reference), "--overwrite"],
                       capsys)
    assert code == 2 and f"would replace the reference {reference}; write the outputs elsewhere (-o)" in err


def test_a_linked_input_gets_its_outputs_beside_the_link(tmp_path, case, make_package, capsys):
    """Before, the folder came from the link's target and the name from the link: the outputs of work/mine.nii.gz
    went into the (shared, maybe read-only) data folder as mine_seg.nii.gz."""
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    work.mkdir()
    case.rename(data / "scan.nii.gz")
    (work / "mine.nii.gz").symlink_to(data / "scan.nii.gz")
    code, _, err = run(["infer", str(work / "mine.nii.gz"), "--model", str(make_package())], capsys)
    assert code == 0, err
    assert _files(work) == ["mine.nii.gz", "mine_seg.json", "mine_seg.nii.gz"]
    assert _files(data) == ["scan.nii.gz"]


def test_outputs_beside_the_input_are_shown_through_the_folder_as_typed(tmp_path, case, make_package, capsys,
                                                                        monkeypatch):
    """Before, `medseg infer scans/a.nii.gz` reported `-> /full/path/to/scans/a_seg.nii.gz`; a `..` after a link
    (which a shell and the kernel resolve differently) is still shown in full."""
    package = str(make_package())
    (tmp_path / "scans").mkdir()
    case.rename(tmp_path / "scans" / "a.nii.gz")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["infer", "scans/a.nii.gz", "--model", package], capsys)
    assert code == 0, err
    assert out.startswith("scans/a.nii.gz -> scans/a_seg.nii.gz (")
    monkeypatch.chdir(tmp_path / "scans")
    code, out, err = run(["infer", "a.nii.gz", "--model", package, "--overwrite"], capsys)
    assert code == 0 and out.startswith("a.nii.gz -> a_seg.nii.gz (")
    (tmp_path / "link").symlink_to(tmp_path / "scans", target_is_directory=True)
    code, out, err = run(["infer", "../link/../scans/a.nii.gz", "--model", package, "--overwrite"], capsys)
    full = tmp_path.resolve() / "scans" / "a_seg.nii.gz"
    assert code == 0 and out.startswith(f"../link/../scans/a.nii.gz -> {full} (")


def test_outputs_beside_an_input_in_a_read_only_folder_point_to_o(tmp_path, case, make_package, capsys,
                                                                   monkeypatch):
    """Scans on a read-only share (a PACS export, a colleague's folder) segmented without -o: the line said only that
    the folder takes no outputs, not that -o writes them elsewhere. (The folder is made read-only by monkeypatching
    the check, as root writes anywhere.)"""
    import errno

    import medseg.segment
    from medseg.errors import OutputWriteError

    def read_only(targets):
        folder = Path(targets[0]).parent
        raise OutputWriteError(f"{folder}: cannot write outputs in this folder (read-only file system)") from OSError(
            errno.EROFS, "Read-only file system")

    monkeypatch.setattr(medseg.segment, "check_folders_writable", read_only)
    package = str(make_package())
    code, _, err = run(["infer", str(case), "--model", package], capsys)
    assert (code, err.strip().splitlines()[-1]) == (1, f"medseg: error: {case.parent}: cannot write outputs in this "
                                                       "folder (read-only file system); write the outputs elsewhere "
                                                       "with -o")
    code, _, err = run(["infer", str(case), "--model", package, "-o", str(tmp_path / "out")], capsys)
    assert (code, err.strip().splitlines()[-1]) == (1, f"medseg: error: {tmp_path / 'out'}: cannot write outputs in "
                                                       "this folder (read-only file system)")


@pytest.mark.skipif(not __import__("os").path.isdir("/sys/kernel"), reason="needs Linux's /sys, a folder nobody "
                    "may write in")
def test_an_output_folder_that_cannot_be_written_is_refused_before_segmenting(tmp_path, case, make_package,
                                                                                capsys):
    """Before, a read-only output folder was found when writing, after each input's whole inference."""
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", "/sys/kernel"], capsys)
    assert code == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("medseg: error: /sys/kernel: cannot write outputs in this folder (")
    # before the input is read: a damaged input is not what is reported
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(case.read_bytes()[:200])
    code, _, err = run(["infer", str(broken), "--model", str(make_package()), "-o", "/sys/kernel"], capsys)
    assert code == 1 and err.strip().splitlines()[-1].startswith("medseg: error: /sys/kernel: cannot write outputs")


def test_a_path_through_a_link_and_up_gets_its_outputs_beside_the_file_read(tmp_path, case, make_package, capsys):
    """work/linkdir/../scan.nii.gz, with linkdir a link to data/sub, is data/scan.nii.gz for the kernel: its
    outputs go beside that file, not beside work/scan.nii.gz (another image)."""
    data, work = tmp_path / "data", tmp_path / "work"
    (data / "sub").mkdir(parents=True)
    work.mkdir()
    case.rename(data / "scan.nii.gz")
    (work / "scan.nii.gz").write_bytes(b"another image")
    (work / "linkdir").symlink_to(data / "sub")
    code, _, err = run(["infer", str(work / "linkdir" / ".." / "scan.nii.gz"), "--model", str(make_package())],
                       capsys)
    assert code == 0, err
    assert _files(data) == ["scan.nii.gz", "scan_seg.json", "scan_seg.nii.gz"]
    assert _files(work) == ["scan.nii.gz"]


@pytest.mark.skipif(not __import__("os").path.isdir("/sys/kernel"), reason="needs Linux's /sys, a folder nobody "
                    "may write in")
def test_an_output_folder_that_cannot_be_made_is_named_itself(tmp_path, case, make_package, capsys):
    """-o /sys/kernel/medseg_x was refused as "/sys/kernel: cannot write outputs in this folder", naming a folder
    the user did not give."""
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", "/sys/kernel/medseg_x"], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(
        "medseg: error: /sys/kernel/medseg_x: cannot make this output folder: /sys/kernel takes no files (")


def test_outputs_this_user_may_not_read_are_written_not_refused_as_a_usage_error(tmp_path, case, make_package, capsys):
    """click's own check refused, as a usage error (exit 2, "Directory 'out' is not readable"), an output folder
    that takes files but cannot be listed (a drop box, -wx), and a file without read permission that --overwrite
    replaces (not reads): both are written now."""
    from conftest import medseg_as_plain_user

    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o311)
    (tmp_path / "old.nii.gz").write_bytes(b"")
    (tmp_path / "old.nii.gz").chmod(0)
    try:
        segmented = medseg_as_plain_user(["infer", str(case), "--model", str(make_package()), "-o", str(out)], capsys)
        synthesised = medseg_as_plain_user(["synth", str(tmp_path / "old.nii.gz"), "--shape", "8", "8", "4",
                                            "--overwrite"], capsys)
    finally:
        out.chmod(0o755)
    assert segmented.returncode == 0, segmented.stderr
    assert _files(out) == ["case_seg.json", "case_seg.nii.gz"]
    assert synthesised.returncode == 0, synthesised.stderr
    assert nib.load(str(tmp_path / "old.nii.gz")).shape == (8, 8, 4)


def test_an_output_that_is_a_link_is_refused_and_the_other_inputs_go_on(tmp_path, case, make_package, capsys):
    """`--overwrite` replaced a link among the outputs (out/a_seg.nii.gz -> an archive's file) by a file, silently:
    the archive kept the old segmentation, the link was gone. That input is refused now, naming the link; the other
    inputs of the batch are segmented."""
    (tmp_path / "out").mkdir()
    archive = tmp_path / "archive.nii.gz"
    archive.write_text("archived")
    inputs = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]
    for path in inputs:
        path.write_bytes(case.read_bytes())
    (tmp_path / "out" / "a_seg.nii.gz").symlink_to(archive)
    code, out, err = run(["-q", "infer", *map(str, inputs), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                          "--overwrite"], capsys)
    assert code == 1
    assert err.splitlines() == [
        f"medseg: error: {tmp_path / 'out' / 'a_seg.nii.gz'}: a link to {archive} is in the place of this output; "
        "remove the link (medseg neither writes through a link, which would change archive.nii.gz there, nor replaces "
        "it with a file)", f"medseg: 1 of 2 inputs failed ({inputs[0]})"]
    assert (tmp_path / "out" / "a_seg.nii.gz").is_symlink() and archive.read_text() == "archived"
    # the link is no output of a's (no sidecar): the report lists a as failed
    assert _files(tmp_path / "out") == ["a_failed.json", "a_seg.nii.gz", "b_seg.json", "b_seg.nii.gz"]
    code, out, err = run(["-q", "infer", str(inputs[0]), "-m", str(make_package()), "-o", str(tmp_path / "out")],
                         capsys)  # alone and without --overwrite: the same line, before the model loads
    assert (code, out) == (1, "")
    assert err.startswith(f"medseg: error: {tmp_path / 'out' / 'a_seg.nii.gz'}: a link to {archive} is in the place")


def test_a_model_given_as_an_input_is_a_usage_error_before_any_work(tmp_path, case, make_package, capsys,
                                                                        monkeypatch):
    """``medseg infer scan.nii.gz hippocampus`` (``-m`` forgotten) segmented scan.nii.gz with the default demo model,
    writing its outputs, and only then said that ``hippocampus`` was no such file; a package folder given so was read
    as a DICOM study ("no DICOM images found"). Both are usage errors, exit 2, before anything is written."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["infer", str(case), "hippocampus", "-o", "out"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "medseg infer: error: hippocampus: no such file or folder, but the name of a shipped model: give a model "
        "with -m (-m hippocampus). Try 'medseg infer --help'.")
    assert not (tmp_path / "out").exists() and not (tmp_path / "case_seg.nii.gz").exists()
    package = make_package()
    code, _, err = run(["infer", str(case), str(package), "-o", "out"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"medseg infer: error: {package}: a model package (it holds model.json), not an input: give a model with -m "
        f"(-m {package}). Try 'medseg infer --help'.")
    assert not (tmp_path / "out").exists()
    # a file or folder of that name that is there is an input, as given
    with pytest.raises(ConflictingInputsError, match="^hippocampus: no such file or folder, but the name of a "):
        check_batch_outputs([Path("hippocampus")], None, False, "nifti", True)
    (tmp_path / "hippocampus").mkdir()
    check_batch_outputs([Path("hippocampus")], None, False, "nifti", True)


def test_an_earlier_runs_segmentation_given_as_an_input_is_a_usage_error(tmp_path, case, make_package, capsys):
    """``medseg infer scans/*.nii.gz`` run a second time takes the first run's case_seg.nii.gz too: it was refused as
    an output that would replace an input, advising -o, with which each segmentation was segmented as an image
    (case_seg_seg.nii.gz). A segmentation whose sidecar says medseg infer wrote it is refused as such, exit 2."""
    package = str(make_package())
    scans = tmp_path / "scans"
    scans.mkdir()
    image = scans / "case.nii.gz"
    image.write_bytes(case.read_bytes())
    code, _, err = run(["infer", str(image), "--model", package], capsys)
    assert code == 0, err
    segmentation = scans / "case_seg.nii.gz"
    for extra in ([], ["-o", str(tmp_path / "out")]):
        code, _, err = run(["infer", str(image), str(segmentation), "--model", package, *extra], capsys)
        assert code == 2
        assert err.strip().splitlines()[-1] == (
            f"medseg infer: error: {segmentation}: a segmentation medseg infer wrote (its sidecar case_seg.json says "
            "so), not an image to segment: give the images alone (a wildcard such as *.nii.gz takes an earlier "
            "run's outputs too; to segment it all the same, give a copy of it without its sidecar). Try 'medseg "
            "infer --help'.")
        assert not (tmp_path / "out").exists()
    # a label file without medseg's sidecar is segmented, with the warning that it looks like one
    with pytest.raises(ConflictingInputsError, match="a segmentation medseg infer wrote"):
        check_batch_outputs([segmentation], None, False, "nifti", True)
    (scans / "case_seg.json").unlink()
    check_batch_outputs([segmentation], None, False, "nifti", True)


def test_a_folder_of_nifti_files_is_refused_before_the_model_loads(tmp_path, case, make_package, capsys):
    """`medseg infer imagesTs/ -o pred/`, as `nnUNetv2_predict -i imagesTs` is given, named the folder as no DICOM
    study only once torch, MONAI and the model had loaded (18 s on a busy 2-core machine): now before, in the same
    line, with nothing written; a folder of one DICOM series passes, its scan kept for its reading."""
    from dicom_factory import make_series

    from medseg.errors import DicomError
    from medseg.io.dicom_series import release_scan

    images = tmp_path / "imagesTs"
    images.mkdir()
    for name in ("a_0000.nii.gz", "b_0000.nii.gz"):
        (images / name).write_bytes(case.read_bytes())
    (images / "dataset.json").write_text("{}")
    out = tmp_path / "pred"
    code, _, err = run(["infer", str(images), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"medseg: error: {images}: no DICOM images found (3 non-DICOM files); a folder is read as one DICOM study: "
        f"give NIfTI files one by one, e.g. {images}/*.nii.gz"]  # no "model tiny (…) on cpu" line: no model was loaded
    assert not out.exists()
    with pytest.raises(DicomError, match="no DICOM images found"):
        check_folder_input(images, None)
    check_folder_input(images / "a_0000.nii.gz", None)  # a file: not this check's
    make_series(tmp_path / "series")
    check_folder_input(tmp_path / "series", None)
    release_scan(tmp_path / "series")


def _series_4_replaces_3(two_series, package, out, capsys):
    """``medseg infer --series 4 -o OUT --overwrite`` over series 3's segmentation: done, with the one warning that
    names the series replaced, and series 4's sidecar in its place."""
    import json

    code, _, err = run(["infer", str(two_series), "--series", "4", "-m", package, "-o", str(out), "--overwrite"],
                       capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if "earlier run" in line] == [
        f"warning: {out / 'study_seg.nii.gz'}: held series 3 'T1' of {two_series}, segmented by an earlier run; "
        "--overwrite replaced it with series 4 'T2'"]
    assert json.loads((out / "study_seg.json").read_text())["input_info"]["series_number"] == 4


def _series_3_sidecar(out, folder, segmentation, uid):
    """An earlier run's sidecar ``out/study_seg.json``: series 3 'T1' (UID ``uid``) of ``folder``, its segmentation
    ``segmentation``; returns the record, for a test to change and write again."""
    import json

    record = {"schema": "medseg-segmentation/1", "input": str(folder), "segmentation": segmentation,
              "input_info": {"format": "dicom", "series_key": "3", "series_number": 3, "series_uid": uid,
                             "description": "T1"}}
    (out / "study_seg.json").write_text(json.dumps(record))
    return record


@pytest.fixture
def two_series(tmp_path):
    """A DICOM study folder holding two eligible series, 3 'T1' and 4 'T2', each in a subfolder of its own."""
    from dicom_factory import make_series

    study = tmp_path / "study"
    make_series(study / "s3", seed=0, series_number=3, description="T1", series_uid="1.2.3.3")
    make_series(study / "s4", seed=1, series_number=4, description="T2", series_uid="1.2.3.4")
    return study


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: what is refused must be refused before it (seconds: torch, MONAI, the
    network)."""
    import medseg.package

    def load_package(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(medseg.package, "load_package", load_package)


@pytest.mark.parametrize("series", [None, "9"])
def test_a_study_whose_series_cannot_be_chosen_is_refused_before_the_model_loads(tmp_path, two_series, no_model,
                                                                                   capsys, series):
    """NIfTI output of a folder of several series without --series (or with one that matches none) was refused only
    once torch, MONAI and the model had loaded (10 to 13 s on a busy 2-core machine), where --format dicom-seg
    refused it at once: now both refuse it before the model, in the same line, with nothing written."""
    out = tmp_path / "out"
    given = [] if series is None else ["--series", series]
    for output_format in ("nifti", "dicom-seg"):
        code, _, err = run(["infer", str(two_series), *given, "-o", str(out), "--format", output_format], capsys)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err  # no "model … on cpu" line
        if series is None:
            assert lines[0].startswith(f"medseg: error: {two_series}: 2 eligible series, choose one with --series")
        else:
            assert lines[0].startswith(f"medseg: error: {two_series}: no series matches the series asked for, '9'")
        assert "series 3 'T1'" in lines[0] and "series 4 'T2'" in lines[0]
        assert not out.exists()


def test_a_folder_of_metaimage_files_is_refused_before_the_model_loads(tmp_path, no_model, capsys):
    """A folder of .mhd/.raw pairs (or of any files that are neither DICOM nor NIfTI) was read as a DICOM study only
    once the model had loaded (the .raw files ended the look for a folder of image files): now it is refused first."""
    folder = tmp_path / "mhd"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 2\nElementType = MET_UCHAR\n"
                                            f"ElementDataFile = {name}.raw\n")
        (folder / f"{name}.raw").write_bytes(bytes(32))
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out = tmp_path / "out"
    code, _, err = run(["infer", str(folder), "-o", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"medseg: error: {folder}: no DICOM images found (4 non-DICOM files); a folder is read as one DICOM study: "
        f"give image files one by one, e.g. {folder}/*.mhd"]
    code, _, err = run(["infer", str(tmp_path / "png"), "-o", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines() == [f"medseg: error: {tmp_path / 'png'}: no DICOM images found (1 non-DICOM file)"]
    assert not out.exists()


def test_a_refused_study_of_a_batch_is_told_and_the_other_inputs_are_segmented(tmp_path, two_series, case,
                                                                                 make_package, capsys):
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(two_series), str(case), "-m", str(make_package()), "-o", str(out)],
                       capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"medseg: error: {two_series}: 2 eligible series, choose one with --series")
    assert lines[1:] == [f"medseg: 1 of 2 inputs failed ({two_series})"]
    assert _files(out) == ["case_seg.json", "case_seg.nii.gz", "study_failed.json"]


def test_another_series_of_a_study_segmented_into_the_same_folder_is_refused_before_the_model_loads(
        tmp_path, two_series, make_package, capsys, monkeypatch, caplog):
    """`medseg infer study --series 3 -o out` then `--series 4 -o out` (a loop over a study's series): both write
    out/study_seg.nii.gz. The second run loaded the model, then said only that the output existed and to pass
    --overwrite, which replaced series 3's segmentation with series 4's. Now it is refused before the model loads,
    naming both series and how to keep both; --overwrite still replaces it, saying which series it was."""
    import json

    import medseg.package

    package = str(make_package())
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(two_series), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    loaded = medseg.package.load_package
    loads = []
    monkeypatch.setattr(medseg.package, "load_package", lambda *a, **k: loads.append(a) or loaded(*a, **k))
    code, _, err = run(["infer", str(two_series), "--series", "4", "-m", package, "-o", str(out)], capsys)
    assert (code, loads) == (1, [])
    assert err.strip().splitlines() == [
        f"medseg: error: {out / 'study_seg.nii.gz'}: holds series 3 'T1' of {two_series}, segmented by an earlier "
        f"run; this run's series 4 'T2' would take its name: give each series its own output folder (-o "
        f"{out / 'series_4'}), or pass --overwrite to replace it"]
    assert json.loads((out / "study_seg.json").read_text())["input_info"]["series_number"] == 3
    # the same series again: the output exists, as for any input (told once the model is loaded, as before)
    code, _, err = run(["infer", str(two_series), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 1 and len(loads) == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {out / 'study_seg.nii.gz'}: output exists already; pass "
                                            "--overwrite to replace it; study_seg.json exists too")
    # its own folder keeps both; --overwrite replaces series 3's, with a warning naming it
    code, _, err = run(["-q", "infer", str(two_series), "--series", "4", "-m", package, "-o", str(out / "series_4")],
                       capsys)
    assert code == 0, err
    assert json.loads((out / "series_4" / "study_seg.json").read_text())["input_info"]["series_number"] == 4
    _series_4_replaces_3(two_series, package, out, capsys)


def test_a_replacement_of_another_series_is_told_only_once_it_is_made(tmp_path, two_series, make_package, capsys,
                                                                     monkeypatch, caplog):
    """--overwrite's warning that another series' segmentation is replaced was logged before the model loaded: a run
    that then failed (inference, writing) wrote nothing, but its log said series 3's segmentation was replaced. It is
    told once the outputs are in place, and not at all by a run that failed."""
    import json

    import medseg.segment

    package = str(make_package())
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(two_series), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 0, err

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    with monkeypatch.context() as patched, caplog.at_level("WARNING"):
        patched.setattr(medseg.segment, "write_labels", out_of_memory)
        code, _, err = run(["infer", str(two_series), "--series", "4", "-m", package, "-o", str(out), "--overwrite"],
                           capsys)
    assert code == 1
    told = [*err.splitlines(), *caplog.messages]
    assert [line for line in told if "earlier run" in line] == [], told
    assert err.splitlines()[-1] == f"medseg: error: {two_series}: inference failed (CUDA out of memory)"
    assert json.loads((out / "study_seg.json").read_text())["input_info"]["series_number"] == 3  # untouched
    code, _, err = run(["-q", "infer", str(two_series), "--series", "4", "-m", package, "-o", str(out),
                        "--overwrite"], capsys)
    assert (code, err) == (0, "")  # -q: no warning
    assert json.loads((out / "study_seg.json").read_text())["input_info"]["series_number"] == 4


def test_an_earlier_series_beside_the_study_or_of_another_folder(tmp_path, two_series):
    """Beside the study (no -o) the earlier series' segmentation is named through the folder as typed, and its own
    file (a DICOM SEG) by its name; an earlier run's outputs of another folder of the same name are no other series
    of this one (the check of existing outputs names them)."""
    import json

    from medseg.batch_outputs import check_before_model
    from medseg.io.dicom_series import release_scan

    record = _series_3_sidecar(tmp_path, two_series, "study_seg.dcm", "1.2.3.3")
    (tmp_path / "study_seg.dcm").write_bytes(b"series 3's SEG")
    with pytest.raises(OutputExistsError) as refused:
        check_before_model(two_series, None, "4", "nifti")
    assert str(refused.value) == (
        f"{tmp_path / 'study_seg.dcm'}: holds series 3 'T1' of {two_series}, segmented by an earlier run; this run's "
        f"series 4 'T2' would take its name: give each series its own output folder (out_dir="
        f"'{tmp_path / 'series_4'}'), or pass overwrite=True to replace it")
    check_before_model(two_series, None, "3", "nifti")  # the same series: an output that exists, told later
    check_before_model(two_series, None, "4", "nifti", overwrite=True)  # replaced, with a warning
    record["input"] = str(tmp_path / "elsewhere" / "study")
    (tmp_path / "study_seg.json").write_text(json.dumps(record))
    check_before_model(two_series, None, "4", "nifti")
    release_scan(two_series)


def test_the_same_series_keyed_otherwise_since_is_no_other_series(tmp_path, two_series):
    """A series is known by its UID (and part), not by its key, which turns from its number to its UID once another
    series of the folder shares the number: `--series 1.2.3.3` of the series an earlier run segmented as '3' was
    refused as another series taking its name ("holds series 3 'T1' …; this run's series 3 'T1', UID 1.2.3.3 would
    take its name"). It is the same series: an output that exists, told as for any input."""

    from dicom_factory import make_series

    from medseg.batch_outputs import check_before_model
    from medseg.io.dicom_series import release_scan

    _series_3_sidecar(tmp_path, two_series, "study_seg.nii.gz", "1.2.3.3")
    (tmp_path / "study_seg.nii.gz").write_bytes(b"series 3's segmentation")
    make_series(two_series / "s3b", seed=2, series_number=3, description="T1", series_uid="1.2.3.33")
    check_before_model(two_series, None, "1.2.3.3", "nifti")  # keyed by its UID now: the same series
    release_scan(two_series)
    with pytest.raises(OutputExistsError) as refused:  # the other series numbered 3: named apart by their UIDs
        check_before_model(two_series, None, "1.2.3.33", "nifti")
    assert str(refused.value) == (
        f"{tmp_path / 'study_seg.nii.gz'}: holds series 3 'T1', UID 1.2.3.3 of {two_series}, segmented by an earlier "
        f"run; this run's series 3 'T1', UID 1.2.3.33 would take its name: give each series its own output folder "
        f"(out_dir='{tmp_path / 'series_1.2.3.33'}'), or pass overwrite=True to replace it")


def test_a_series_that_replaced_one_of_the_same_number_and_description_is_named_by_uid(tmp_path, two_series):
    """The folder now holds another series 3 'T1' (a study exported again): both were named "series 3 'T1'", the
    one said to hold the name and the one said to take it."""

    from medseg.batch_outputs import check_before_model
    from medseg.io.dicom_series import _HELD, _held_key

    _series_3_sidecar(tmp_path, two_series, "study_seg.nii.gz", "1.2.3.9")
    (tmp_path / "study_seg.nii.gz").write_bytes(b"series 3's segmentation")
    with pytest.raises(OutputExistsError) as refused:
        check_before_model(two_series, None, "3", "nifti")
    assert str(refused.value).startswith(
        f"{tmp_path / 'study_seg.nii.gz'}: holds series 3 'T1', UID 1.2.3.9 of {two_series}, segmented by an earlier "
        "run; this run's series 3 'T1', UID 1.2.3.3 would take its name")
    assert _held_key(two_series) not in _HELD  # refused: its scan is not kept for a reading that will not come


@pytest.mark.parametrize("named", ["", "../x/study_seg.nii.gz", ".", 7])
def test_an_earlier_sidecar_naming_its_segmentation_oddly_or_whose_segmentation_is_gone(tmp_path, two_series, named):
    """A sidecar whose "segmentation" is no file name of the folder (edited or damaged: empty, a path) raised
    pathlib's "ValueError: Invalid name" with a traceback, which ended a batch before its other inputs; it is read as
    naming the output of the usual name. And where the segmentation it records is gone, no segmentation of another
    series is there to be replaced: named "…/study_seg.nii.gz: holds series 3 'T1'", a file that was not there, it is
    left to the check of existing outputs ("study_seg.json: output exists already")."""
    import json

    from medseg.batch_outputs import check_before_model
    from medseg.io.dicom_series import release_scan

    record = _series_3_sidecar(tmp_path, two_series, named, "1.2.3.3")
    (tmp_path / "study_seg.nii.gz").write_bytes(b"series 3's segmentation")
    with pytest.raises(OutputExistsError) as refused:
        check_before_model(two_series, None, "4", "nifti")
    assert str(refused.value).startswith(f"{tmp_path / 'study_seg.nii.gz'}: holds series 3 'T1' of {two_series}, ")
    (tmp_path / "study_seg.nii.gz").unlink()
    check_before_model(two_series, None, "4", "nifti")  # the sidecar alone: an output that exists, told later
    (tmp_path / "study_seg.nii.gz").write_bytes(b"series 3's segmentation")
    record["input"] = f"{two_series}\0"  # no path ("ValueError: embedded null byte"): no input of this run's
    (tmp_path / "study_seg.json").write_text(json.dumps(record))
    check_before_model(two_series, None, "4", "nifti")
    release_scan(two_series)


def test_a_folder_whose_scan_cannot_be_kept_is_read_once_left_to_its_reading(tmp_path, case, make_package, capsys,
                                                                               monkeypatch):
    """The scans kept for the folders' reading hold at most _HELD_FILES_MAX files in all (some 60 kB of headers
    each). A folder beyond that was scanned before the model loaded, its scan dropped, and scanned again as it was
    read: every header read twice (some 25 ms a file of a real MR series on a busy 2-core machine, minutes for a
    study of thousands of files), where a NIfTI output read them once before. It is left to its reading, which
    refuses it in its turn where it must."""
    from dicom_factory import make_series

    import medseg.io.dicom_series as dicom_series

    reads = []
    read_header = dicom_series._read_header
    monkeypatch.setattr(dicom_series, "_read_header", lambda path: reads.append(path) or read_header(path))
    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 8)
    make_series(tmp_path / "a", seed=0, series_number=3, series_uid="1.2.3.3")
    make_series(tmp_path / "b", seed=1, series_number=4, series_uid="1.2.3.4")
    files = len(list((tmp_path / "a").iterdir()))
    assert files == 6  # the first folder's scan is kept, the second's would exceed 8 files
    package, out = str(make_package()), tmp_path / "out"
    code, _, err = run(["-q", "infer", str(tmp_path / "a"), str(tmp_path / "b"), "-m", package, "-o", str(out)],
                       capsys)
    assert code == 0, err
    assert len(reads) == 2 * files  # each header once
    assert _files(out) == ["a_seg.json", "a_seg.nii.gz", "b_seg.json", "b_seg.nii.gz"]
    # one folder alone, larger than all that may be kept
    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 4)
    reads.clear()
    code, _, err = run(["-q", "infer", str(tmp_path / "a"), "-m", package, "-o", str(tmp_path / "out2")], capsys)
    assert code == 0, err
    assert len(reads) == files
    # a study whose series cannot be chosen is still refused, in its turn, the other inputs segmented
    study = tmp_path / "study"
    study.mkdir()
    (tmp_path / "a").rename(study / "a")
    (tmp_path / "b").rename(study / "b")
    code, _, err = run(["-q", "infer", str(study), str(case), "-m", package, "-o", str(tmp_path / "out3")], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"medseg: error: {study}: 2 eligible series, choose one with --series")
    assert lines[1:] == [f"medseg: 1 of 2 inputs failed ({study})"]
    assert _files(tmp_path / "out3") == ["case_seg.json", "case_seg.nii.gz", "study_failed.json"]


def test_a_folder_whose_scan_cannot_be_kept_is_read_once_for_a_dicom_seg_too(tmp_path, make_package, capsys,
                                                                               monkeypatch):
    """With --format dicom-seg, a folder beyond _HELD_FILES_MAX was scanned before the model loaded (the check that
    a SEG can be made from its series), the scan dropped, and every header read again as the series was read: 66 s
    before the model loaded for 25,000 small files, as long again as the scan of the reading (73 s, a busy 2-core
    machine). The check is the reading's, before the inference: such a folder is left to it."""
    from dicom_factory import make_series

    import medseg.io.dicom_series as dicom_series

    reads = []
    read_header = dicom_series._read_header
    monkeypatch.setattr(dicom_series, "_read_header", lambda path: reads.append(path) or read_header(path))
    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 4)
    make_series(tmp_path / "a", seed=0, series_number=3, series_uid="1.2.3.3")
    files = len(list((tmp_path / "a").iterdir()))
    assert files == 6
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(tmp_path / "a"), "-m", str(make_package()), "-o", str(out), "--format",
                        "dicom-seg"], capsys)
    assert code == 0, err
    assert len(reads) == files  # each header once
    assert _files(out) == ["a_seg.dcm", "a_seg.json"]
    assert dicom_series._HELD == {}


def test_another_series_replaced_in_a_folder_whose_scan_cannot_be_kept_is_told(tmp_path, two_series, make_package,
                                                                               capsys, monkeypatch):
    """A folder over _HELD_FILES_MAX (20,000 files: a whole study) is not scanned before the model loads, so the check
    of another series' segmentation never ran: --overwrite replaced series 3's segmentation with series 4's without a
    word, the replacement the README says is warned of. It is told once the outputs are in place, as for a folder
    checked before the model loads."""

    import medseg.io.dicom_series as dicom_series

    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 4)  # the study's 12 files are more
    package = str(make_package())
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(two_series), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    code, _, err = run(["infer", str(two_series), "--series", "3", "-m", package, "-o", str(out), "--overwrite"],
                       capsys)
    assert code == 0, err
    assert "earlier run" not in err  # the same series again: no replacement of another's
    _series_4_replaces_3(two_series, package, out, capsys)
    assert dicom_series._HELD == {}


def test_another_series_in_a_folder_whose_scan_cannot_be_kept_is_refused_naming_both(tmp_path, two_series,
                                                                                    make_package, capsys,
                                                                                    monkeypatch):
    """A folder over _HELD_FILES_MAX (20,000 files: a whole study) is not scanned before the model loads, so `--series
    4` into the folder holding series 3's segmentation was refused as a plain "output exists already; pass --overwrite
    to replace it", the advice that replaced another series' segmentation. A --series that cannot name the earlier
    series (not its key, UID or number) is refused as for a folder scanned before the model loads, naming the series
    the output holds and how to keep both; one that can name it is left to the check of existing outputs."""
    import medseg.io.dicom_series as dicom_series

    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 4)  # the study's 12 files are more
    package = str(make_package())
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(two_series), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    written = {name: (out / name).read_bytes() for name in _files(out)}
    code, stdout, err = run(["infer", str(two_series), "--series", "4", "-m", package, "-o", str(out)], capsys)
    assert (code, stdout) == (1, "")
    assert err.splitlines()[-1] == (
        f"medseg: error: {out / 'study_seg.nii.gz'}: holds series 3 'T1' of {two_series}, segmented by an earlier run; "
        f"this run's --series 4 would take its name: give each series its own output folder (-o {out / 'series_4'}), "
        "or pass --overwrite to replace it")
    code, _, err = run(["-q", "infer", str(two_series), "--series", "1.2.3.3", "-m", package, "-o", str(out)], capsys)
    assert code == 1 and "output exists already" in err  # the same series by its UID: an output that exists
    assert {name: (out / name).read_bytes() for name in _files(out)} == written
    assert dicom_series._HELD == {}


def test_no_series_into_another_series_output_of_a_folder_whose_scan_cannot_be_kept_names_it(tmp_path, two_series,
                                                                                            make_package, capsys,
                                                                                            monkeypatch):
    """A folder over _HELD_FILES_MAX (20,000 files: a whole study) given without --series into the folder that holds
    the segmentation of the series an earlier run chose with --series was refused as a plain "output exists already;
    pass --overwrite to replace it": with --overwrite, the run then scanned the study (minutes) and replaced that
    series' segmentation with another's, or refused to choose a series. It names the series the output holds and what
    to do, as the check of a folder scanned before the model loads does; nothing is written."""
    import medseg.io.dicom_series as dicom_series

    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 4)  # the study's 12 files are more
    package = str(make_package())
    out = tmp_path / "out"
    code, _, err = run(["-q", "infer", str(two_series), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    written = {name: (out / name).read_bytes() for name in _files(out)}
    code, stdout, err = run(["infer", str(two_series), "-m", package, "-o", str(out)], capsys)
    assert (code, stdout) == (1, "")
    assert err.splitlines()[-1] == _no_series_into_series_3(out, two_series)
    assert {name: (out / name).read_bytes() for name in _files(out)} == written
    assert dicom_series._HELD == {}


def test_no_series_into_the_output_of_a_folders_only_series_chosen_by_name_claims_no_other_series(tmp_path,
                                                                                                  make_package,
                                                                                                  capsys,
                                                                                                  monkeypatch):
    """A study of one series, over _HELD_FILES_MAX files, segmented with --series 3 and again without: the run reads
    that same series, and the refusal said "the one it reads would take its name", a series it does not read. Without
    the scan it cannot tell which series it reads, and says so."""
    from dicom_factory import make_series

    import medseg.io.dicom_series as dicom_series

    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 2)  # the study's 6 files are more
    study = tmp_path / "study"
    make_series(study / "s3", seed=0, series_number=3, description="T1", series_uid="1.2.3.3")
    package, out = str(make_package()), tmp_path / "out"
    code, _, err = run(["-q", "infer", str(study), "--series", "3", "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    code, stdout, err = run(["infer", str(study), "-m", package, "-o", str(out)], capsys)
    assert (code, stdout) == (1, "")
    assert err.splitlines()[-1] == _no_series_into_series_3(out, study)


def _no_series_into_series_3(out, folder):
    """The refusal of a run naming no series, into the output folder of series 3 'T1' of ``folder``, chosen by name
    by an earlier run."""
    return (f"medseg: error: {out / 'study_seg.nii.gz'}: holds series 3 'T1' of {folder}, segmented by an earlier run "
            "(chosen with --series 3); this run names no series, and the one it reads, unless it is that one, would "
            f"take its name: choose it with --series and give each series its own output folder "
            f"(-o {out / 'series_<key>'}), or pass --overwrite to replace it")
