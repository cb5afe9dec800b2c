"""Failure records of a `medseg infer` batch: a failed input gets `<case>_failed.json` where its outputs would have
gone, as the cohort workflow and `medseg evaluate` over folders write them, so that `medseg report` lists it; a case
segmented later takes its record away, and a single input that fails writes nothing."""

import datetime as dt
import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from conftest import _files, run_cli, tiny_config

from medseg import __version__
from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


@pytest.fixture
def scans(tmp_path, case):
    """``scans/`` holding the phantom ``good.nii.gz`` and ``bad.nii.gz``, gzip of garbage."""
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(case, folder / "good.nii.gz")
    (folder / "bad.nii.gz").write_bytes(gzip.compress(b"garbage" * 100))
    return folder


def _record(path):
    return json.loads(path.read_text())


def _assert_recent(created: str) -> None:
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(created)
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=5), created


def test_a_failed_input_of_a_batch_is_recorded_and_listed_by_the_report(tmp_path, scans, make_package, capsys):
    out = tmp_path / "out"
    bad, good = scans / "bad.nii.gz", scans / "good.nii.gz"
    code, _, err = run(["infer", str(bad), str(good), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 1 and "1 of 2 inputs failed" in err
    assert _files(out) == ["bad_failed.json", "good_seg.json", "good_seg.nii.gz"]
    record = _record(out / "bad_failed.json")
    created = record.pop("created")
    _assert_recent(created)
    error = record.pop("error")
    # the line the batch printed
    assert error.startswith(f"{bad}: ") and ": not a NIfTI image" in error and error in err
    assert record == {"schema": "medseg-failure/1", "case_id": "bad", "input": str(bad), "reference": None,
                      "stage": "read", "error_type": "ImageReadError", "medseg_version": __version__}

    code, stdout, err = run(["report", str(out)], capsys)
    assert code == 0, err
    assert stdout.startswith("2 cases (1 failed,") and f"failed: bad: {error}" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["cases"]["total"], summary["cases"]["failed"]) == (2, 1)
    page = (out / "report.html").read_text()
    section = page[page.index("<h2>Failed cases (1)</h2>"):]
    start = section.index('<a href="#case-bad">')
    row = section[start:section.index("</tr>", start)]
    assert '<td data-h="stage">read</td><td data-h="error type">ImageReadError</td>' in row
    assert f"input <code>{bad}</code>" in row and "not a NIfTI image" in row
    tsv = (out / "cohort.tsv").read_text().splitlines()
    header = tsv[0].split("\t")
    bad_row = dict(zip(header, next(line for line in tsv if line.split("\t")[1] == "bad").split("\t")))
    assert (bad_row["status"], bad_row["failed_stage"], bad_row["error_type"]) == ("failed", "read", "ImageReadError")


def test_a_case_segmented_later_takes_its_failure_record_away(tmp_path, scans, case, make_package, capsys):
    out = tmp_path / "out"
    package = str(make_package())
    bad = scans / "bad.nii.gz"
    code, _, _ = run(["infer", str(bad), str(scans / "good.nii.gz"), "-m", package, "-o", str(out)], capsys)
    assert code == 1 and (out / "bad_failed.json").is_file()
    # a user's own file of that name is no record of medseg's: it stays
    (out / "good_failed.json").write_text("my notes\n")
    shutil.copy(case, bad)  # the scan put right, then segmented alone, without --overwrite
    code, _, err = run(["infer", str(bad), "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    assert _files(out) == ["bad_seg.json", "bad_seg.nii.gz", "good_failed.json", "good_seg.json", "good_seg.nii.gz"]
    assert (out / "good_failed.json").read_text() == "my notes\n"
    (out / "good_failed.json").unlink()
    code, stdout, _ = run(["report", str(out)], capsys)
    assert code == 0 and stdout.startswith("2 cases (0 failed,")


def test_a_case_that_fails_when_overwritten_loses_its_earlier_outputs(tmp_path, scans, make_package, capsys):
    """--overwrite asked for the case's outputs to be replaced: the record replaces them, never beside them."""
    out = tmp_path / "out"
    package = str(make_package())
    good, label = scans / "good.nii.gz", tmp_path / "good_label.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels, np.diag([1.0, 1.0, 2.0, 1.0])), str(label))
    code, _, err = run(["infer", str(good), "--reference", str(label), "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    assert _files(out) == ["good_metrics.json", "good_seg.json", "good_seg.nii.gz"]
    good.write_bytes(gzip.compress(b"garbage" * 100))  # the scan damaged since
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=3).image, np.diag([1.0, 1.0, 2.0, 1.0])), str(other))
    code, _, _ = run(["infer", str(good), str(other), "-m", package, "-o", str(out), "--overwrite"], capsys)
    assert code == 1
    assert _files(out) == ["good_failed.json", "other_seg.json", "other_seg.nii.gz"]
    assert _record(out / "good_failed.json")["input"] == str(good)
    # without --overwrite the batch is refused whole before anything is read: the record is not an output it refuses
    code, _, err = run(["infer", str(good), str(other), "-m", package, "-o", str(out)], capsys)
    assert code == 1 and "other_seg.nii.gz: output exists already" in err
    assert _files(out) == ["good_failed.json", "other_seg.json", "other_seg.nii.gz"]


def test_failure_records_go_beside_inputs_without_an_output_folder(tmp_path, scans, make_package, capsys):
    code, _, _ = run(["infer", str(scans / "bad.nii.gz"), str(scans / "good.nii.gz"), "-m", str(make_package())],
                     capsys)
    assert code == 1
    assert _files(scans) == ["bad.nii.gz", "bad_failed.json", "good.nii.gz", "good_seg.json", "good_seg.nii.gz"]
    assert _record(scans / "bad_failed.json")["stage"] == "read"


def test_a_batch_whose_every_input_is_refused_records_each(tmp_path, make_package, capsys):
    """Refused before any model is loaded (no such file): each is still a failed case of the batch."""
    out = tmp_path / "out"
    missing = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]
    code, _, err = run(["infer", *map(str, missing), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 1 and "2 of 2 inputs failed" in err
    assert _files(out) == ["a_failed.json", "b_failed.json"]
    for path in missing:
        record = _record(out / f"{path.name[:-7]}_failed.json")
        assert (record["input"], record["stage"], record["error_type"]) == (str(path), "read", "ImageReadError")
        assert record["error"] == f"{path}: no such file or folder" and record["medseg_version"] == __version__


def test_an_input_that_is_not_there_gets_no_record_without_an_output_folder(tmp_path, scans, make_package, capsys,
                                                                            monkeypatch):
    """A path with a space typed without quotes (``medseg infer Übung 1/scan.nii.gz``) is two inputs that are not
    there: a record "beside" each made a folder ``1/`` and left ``Übung_failed.json`` in the working folder, files
    that a later ``medseg report .`` counted as failed cases. Without ``-o`` such an input has no folder of its own to
    take a record; its error line and the batch's last line say it. An input that is there still gets its record."""
    monkeypatch.chdir(tmp_path)
    package = str(make_package())
    before = sorted(path.name for path in tmp_path.iterdir())
    code, _, err = run(["infer", "Übung", "1/scan.nii.gz", "-m", package], capsys)
    assert code == 1 and "medseg: 2 of 2 inputs failed (Übung, 1/scan.nii.gz)" in err
    assert "medseg: error: 1/scan.nii.gz: no such file or folder" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == before and not (tmp_path / "1").exists()
    # beside inputs that are there: the missing one is told, the bad one recorded
    code, _, err = run(["infer", str(scans / "bad.nii.gz"), str(scans / "gone.nii.gz"), str(scans / "good.nii.gz"),
                        "-m", package], capsys)
    assert code == 1 and f"medseg: error: {scans / 'gone.nii.gz'}: no such file or folder" in err
    assert _files(scans) == ["bad.nii.gz", "bad_failed.json", "good.nii.gz", "good_seg.json", "good_seg.nii.gz"]


def test_a_single_input_that_fails_writes_nothing(tmp_path, scans, make_package, capsys):
    out = tmp_path / "out"
    code, _, err = run(["infer", str(scans / "bad.nii.gz"), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"medseg: error: {scans / 'bad.nii.gz'}: ")
    assert not out.exists()
    code, _, _ = run(["infer", str(tmp_path / "gone.nii.gz"), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 1 and not out.exists()


def test_a_record_that_cannot_be_written_is_warned_about_and_the_batch_goes_on(tmp_path, scans, make_package,
                                                                                capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bad_failed.json").mkdir()  # a folder in the record's place
    code, _, err = run(["infer", str(scans / "bad.nii.gz"), str(scans / "good.nii.gz"), "-m", str(make_package()),
                        "-o", str(out)], capsys)
    assert code == 1 and "1 of 2 inputs failed" in err
    assert f"warning: {scans / 'bad.nii.gz'}: no failure record written (" in err
    assert _files(out) == ["good_seg.json", "good_seg.nii.gz"]


def test_every_writer_of_failure_records_records_the_medseg_version(tmp_path):
    """The cohort's records and evaluate's over folders are made by the same function as infer's."""
    from medseg.cohort.records import ResultsFolder
    from medseg.errors import ImageReadError

    path = ResultsFolder(tmp_path).write_failure("c1", "read", ImageReadError("c1.nii.gz: not an image"),
                                                 tmp_path / "c1.nii.gz", None)
    record = _record(path)
    assert path == tmp_path / "cases" / "c1" / "c1_failed.json"
    assert (record["error"], record["error_type"], record["medseg_version"]) == (
        "c1.nii.gz: not an image", "ImageReadError", __version__)


def test_a_failure_record_left_by_an_earlier_run_goes_as_the_case_is_segmented(tmp_path, case, make_package, capsys):
    out = tmp_path / "out"
    out.mkdir()
    stale = {"schema": "medseg-failure/1", "case_id": "case", "input": str(case), "reference": None, "stage": "read",
             "error": f"{case}: not a NIfTI image", "error_type": "ImageReadError",
             "created": "2026-01-01T00:00:00+00:00"}
    (out / "case_failed.json").write_text(json.dumps(stale))
    code, _, err = run(["infer", str(case), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 0, err
    assert _files(out) == ["case_seg.json", "case_seg.nii.gz"]


def test_a_pair_that_fails_in_evaluate_over_folders_is_recorded_alike(tmp_path, capsys):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    phantom = make_phantom((40, 40, 8), seed=11)
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(phantom.labels, np.eye(4)), str(ref / f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(phantom.labels, np.eye(4)), str(pred / "a.nii.gz"))
    (pred / "b.nii.gz").write_bytes(gzip.compress(b"garbage" * 100))
    code, _, _ = run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores")], capsys)
    assert code == 1
    record = _record(tmp_path / "scores" / "b_failed.json")
    assert (record["input"], record["reference"], record["stage"], record["medseg_version"]) == (
        str(pred / "b.nii.gz"), str(ref / "b.nii.gz"), "evaluate", __version__)
    assert json.loads((tmp_path / "scores" / "summary.json").read_text())["cases"]["failed"] == 1


def test_a_file_of_the_users_named_as_a_record_is_never_replaced_by_one(tmp_path, scans, make_package, capsys):
    """Their notes in the output folder, or an input named so beside a failing input: no medseg record, left as it is
    (a record replaced them, without --overwrite too, the input before it was read)."""
    out = tmp_path / "out"
    out.mkdir()
    notes = out / "bad_failed.json"
    notes.write_text('{"note": "bad looked odd in the viewer"}\n')
    bad, good = scans / "bad.nii.gz", scans / "good.nii.gz"
    package = str(make_package())
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["infer", str(bad), str(good), "-m", package, "-o", str(out), *extra], capsys)
        assert code == 1 and "1 of 2 inputs failed" in err
        assert f"warning: {bad}: no failure record written ({notes}: a file of that name is there that is not a " \
               "medseg failure record; it is left as it is)" in err
        assert notes.read_text() == '{"note": "bad looked odd in the viewer"}\n'
    assert _files(out) == ["bad_failed.json", "good_seg.json", "good_seg.nii.gz"]
    # an input whose name is the record's of the input before it, both failing, beside each other
    named = scans / "bad_failed.json"
    named.write_bytes(gzip.compress(b"not json either" * 10))
    before = named.read_bytes()
    code, _, err = run(["infer", str(bad), str(named), "-m", package], capsys)
    assert code == 1 and "2 of 2 inputs failed" in err
    assert f"warning: {bad}: no failure record written ({named}: a file of that name is there that is not a " in err
    assert named.read_bytes() == before
    assert _record(scans / "bad_failed.json_failed.json")["input"] == str(named)


def test_a_multi_modal_case_refused_before_the_model_loads_is_recorded_under_its_case(tmp_path, make_package,
                                                                                        capsys):
    """Every input of the batch refused (their references missing), so no model was loaded: the record of
    case_0000.nii.gz is still named for the case (case_failed.json), as its outputs are (case_seg.nii.gz), so the
    case segmented later takes it away; it was case_0000_failed.json, which stayed beside case_seg.nii.gz."""
    architecture = {**tiny_config()["architecture"], "in_channels": 2}
    package = str(make_package(modalities=["t1", "t2"], architecture=architecture))
    scans, out = tmp_path / "scans", tmp_path / "out"
    scans.mkdir()
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for name, seed in (("caseA", 1), ("caseB", 2)):
        image = make_phantom((40, 40, 8), seed=seed).image
        for channel, volume in enumerate((image, 2.0 * image + 100.0)):
            nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), str(scans / f"{name}_{channel:04d}.nii.gz"))
    first, second = scans / "caseA_0000.nii.gz", scans / "caseB_0000.nii.gz"
    missing = ["--reference", str(tmp_path / "a_label.nii.gz"), "--reference", str(tmp_path / "b_label.nii.gz")]
    code, _, err = run(["infer", str(first), str(second), "-m", package, "-o", str(out), *missing], capsys)
    assert code == 1 and "2 of 2 inputs failed" in err
    assert _files(out) == ["caseA_failed.json", "caseB_failed.json"]
    record = _record(out / "caseA_failed.json")
    assert (record["case_id"], record["input"], record["stage"]) == ("caseA", str(first), "read")
    code, _, err = run(["infer", str(first), "-m", package, "-o", str(out)], capsys)
    assert code == 0, err
    assert _files(out) == ["caseA_seg.json", "caseA_seg.nii.gz", "caseB_failed.json"]


def test_a_multi_modal_clash_is_refused_in_a_batch_that_loads_no_model_too(tmp_path, make_package, capsys):
    """case_0000.nii.gz and case.nii.gz both write case_seg.nii.gz for a model of two modalities: refused as a usage
    error, before anything is written, also where every input is refused (the model is not loaded): their records
    were both case_failed.json, the second replacing the first."""
    architecture = {**tiny_config()["architecture"], "in_channels": 2}
    package = str(make_package(modalities=["t1", "t2"], architecture=architecture))
    out = tmp_path / "out"
    first, second = tmp_path / "case_0000.nii.gz", tmp_path / "case.nii.gz"  # neither there
    code, _, err = run(["infer", str(first), str(second), "-m", package, "-o", str(out)], capsys)
    assert code == 2 and f"{first} and {second} would both be written to case_seg.nii.gz in {out}" in err
    assert not out.exists()
@pytest.mark.parametrize("overwrite", [False, True])
def test_outputs_placed_by_another_run_meanwhile_and_a_record_never_stand_side_by_side(tmp_path, case, make_package,
                                                                                       monkeypatch, overwrite):
    """Another run segments the case into the same folder while this batch, whose copy of it failed, words its record
    (between looking for the case's outputs and placing the record): the record is not placed beside them, without
    --overwrite; with it, they go as the record is placed (what this run was asked to do). Both runs see the case's
    files under the folder's lock."""
    from medseg import failure_records
    from medseg.errors import ImageReadError
    from medseg.segment import segment_case

    out, damaged = tmp_path / "out", tmp_path / "copy" / "case.nii.gz"
    damaged.parent.mkdir()
    damaged.write_bytes(gzip.compress(b"garbage" * 100))
    package = str(make_package())
    made = failure_records.failure_record

    def the_other_run_meanwhile(*args, **kwargs):
        segment_case(case, package, out_dir=out)  # the undamaged file, placed under the folder's lock
        return made(*args, **kwargs)

    monkeypatch.setattr(failure_records, "failure_record", the_other_run_meanwhile)
    placed = failure_records.record_input_failure(damaged, ImageReadError(f"{damaged}: not a NIfTI image"), out,
                                                  overwrite=overwrite)
    if overwrite:
        assert placed == out / "case_failed.json" and _files(out) == ["case_failed.json"]
    else:
        assert placed is None and _files(out) == ["case_seg.json", "case_seg.nii.gz"]


def test_a_link_named_as_the_record_stays_as_the_case_is_segmented(tmp_path, case, make_package, capsys):
    """A link in the record's place is the user's (medseg writes none, and never replaces or removes one in an
    output's place): it stays, as a user's own file of that name does; it was taken away, the record it leads to
    kept."""
    out, kept = tmp_path / "out", tmp_path / "kept" / "case_failed.json"
    out.mkdir()
    kept.parent.mkdir()
    kept.write_text(json.dumps({"schema": "medseg-failure/1", "case_id": "case", "input": str(case),
                                "reference": None, "stage": "read", "error": f"{case}: not a NIfTI image",
                                "error_type": "ImageReadError", "created": "2026-01-01T00:00:00+00:00"}))
    (out / "case_failed.json").symlink_to(kept)
    code, _, err = run(["infer", str(case), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 0, err
    assert (out / "case_failed.json").is_symlink() and (out / "case_failed.json").resolve() == kept.resolve()
    assert sorted(path.name for path in out.iterdir()) == ["case_failed.json", "case_seg.json", "case_seg.nii.gz"]


def test_a_record_of_another_medseg_version_is_a_medseg_record(tmp_path, scans, make_package, capsys):
    """A failure record of another medseg version (its schema medseg-failure/2) is medseg's, not a user's file: the
    case failing again replaces it, and the case segmented takes it away. It was told as 'not a medseg failure
    record' and left, and then stood beside the case's outputs."""
    out = tmp_path / "out"
    out.mkdir()
    other = {"schema": "medseg-failure/2", "case_id": "good", "stage": "read", "error": "an older failure",
             "medseg_version": "9.0.0"}
    (out / "good_failed.json").write_text(json.dumps(other))
    (out / "bad_failed.json").write_text(json.dumps({**other, "case_id": "bad"}))
    bad, good = scans / "bad.nii.gz", scans / "good.nii.gz"
    code, _, err = run(["infer", str(bad), str(good), "-m", str(make_package()), "-o", str(out)], capsys)
    assert code == 1 and "1 of 2 inputs failed" in err and "no failure record written" not in err
    assert _files(out) == ["bad_failed.json", "good_seg.json", "good_seg.nii.gz"]
    assert _record(out / "bad_failed.json")["schema"] == "medseg-failure/1"
    # another tool's record, or one without medseg's schema, is still no medseg record
    from medseg.failure_records import is_failure_record

    for schema in ("other-failure/1", "medseg-failure", "medseg-failure/", "medseg-failure/x", "xmedseg-failure/1",
                   2, None):
        (tmp_path / "x_failed.json").write_text(json.dumps({"schema": schema}))
        assert not is_failure_record(tmp_path / "x_failed.json"), schema


def test_a_multi_modal_case_is_recorded_under_its_case_without_the_packages_weights(tmp_path, make_package, capsys):
    """The case names come of the package's model.json alone: with its weights file not there yet (a package whose
    weights are still being copied), the batch refused before the model loads still records case_0000.nii.gz as
    caseA_failed.json, as its outputs will be named; the weights' absence named it caseA_0000_failed.json."""
    architecture = {**tiny_config()["architecture"], "in_channels": 2}
    package = make_package(modalities=["t1", "t2"], architecture=architecture)
    (package / "weights.safetensors").rename(tmp_path / "weights.safetensors")
    first = tmp_path / "caseA_0000.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=1).image.astype(np.float32), np.eye(4)), str(first))
    out = tmp_path / "out"
    missing = ["--reference", str(tmp_path / "a_label.nii.gz"), "--reference", str(tmp_path / "b_label.nii.gz")]
    code, _, err = run(["infer", str(first), str(tmp_path / "caseB_0000.nii.gz"), "-m", str(package), "-o", str(out),
                        *missing], capsys)
    assert code == 1 and "2 of 2 inputs failed" in err and "weights" not in err
    assert _files(out) == ["caseA_failed.json", "caseB_failed.json"]
    assert _record(out / "caseA_failed.json")["input"] == str(first)


def test_a_path_with_a_space_given_unquoted_is_a_usage_error_naming_it(tmp_path, case, make_package, capsys,
                                                                      monkeypatch):
    """``medseg infer Übung 1/scan.nii.gz``: the shell makes two inputs of it, neither there, and the lines said so
    of each (with --series, that it applies to one folder at a time), never that the path wants quotes. Where
    arguments that are not there, joined by spaces, name a path that is, the command says so, exit 2, nothing
    made."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Übung 1").mkdir()
    shutil.copy(case, tmp_path / "Übung 1" / "scan.nii.gz")
    package = str(make_package())
    before = sorted(path.name for path in tmp_path.iterdir())
    said = ("medseg infer: error: Übung and 1/scan.nii.gz are not there, but 'Übung 1/scan.nii.gz' is: give a path "
            "with spaces in quotes, \"Übung 1/scan.nii.gz\", as the shell makes one input of each word")
    for extra in ([], ["--series", "3"], ["-o", "out"]):
        code, _, err = run(["infer", "Übung", "1/scan.nii.gz", *extra, "-m", package], capsys)
        assert code == 2 and said in err, (extra, err)
        assert sorted(path.name for path in tmp_path.iterdir()) == before
    # among other inputs too, and a path of three words
    (tmp_path / "a b c").mkdir()
    shutil.copy(case, tmp_path / "a b c" / "x.nii.gz")
    code, _, err = run(["infer", "Übung 1/scan.nii.gz", "a", "b", "c/x.nii.gz", "-m", package], capsys)
    assert code == 2 and "a, b and c/x.nii.gz are not there, but 'a b c/x.nii.gz' is: " in err, err


def test_a_split_path_whose_later_word_is_there_does_not_say_that_word_is_not(tmp_path, case, make_package, capsys,
                                                                               monkeypatch):
    """``medseg infer Übung 1/scan.nii.gz`` beside a numbered folder ``1/`` that holds a scan.nii.gz of its own: the
    line said "Übung and 1/scan.nii.gz are not there", of a file that is; it names the word that is not there."""
    monkeypatch.chdir(tmp_path)
    for folder in ("Übung 1", "1"):
        (tmp_path / folder).mkdir()
        shutil.copy(case, tmp_path / folder / "scan.nii.gz")
    package = str(make_package())
    before = sorted(path.name for path in tmp_path.iterdir())
    code, _, err = run(["infer", "Übung", "1/scan.nii.gz", "-m", package], capsys)
    assert code == 2 and err == (
        "medseg infer: error: Übung is not there, but 'Übung 1/scan.nii.gz' is: give a path with spaces in quotes, "
        "\"Übung 1/scan.nii.gz\", as the shell makes one input of each word. Try 'medseg infer --help'.\n"), err
    assert sorted(path.name for path in tmp_path.iterdir()) == before
