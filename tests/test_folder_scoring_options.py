"""The command line of `medseg evaluate PRED_DIR REF_DIR -o OUT_DIR`: a folder given with a file, or without -o,
one usage error; --output-dir of evaluate and report a folder, and not given with -o."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import run_cli
from folder_cases import (
    folder_pairs,  # noqa: F401  (the folders fixture its tests take)
    labels,
    run,
    save,
)

from medseg.errors import OutputWriteError
from medseg.folder_scoring import score_folder


def test_a_folder_and_a_file_is_a_usage_error_in_one_line(folders, tmp_path, capsys):
    pred, ref = folders
    assert run(["evaluate", str(pred), str(ref / "a.nii.gz"), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"medseg evaluate: error: {pred} is a folder and {ref / 'a.nii.gz'} is a file: give two files (a prediction "
        "and its reference) or two folders (predictions and references). Try 'medseg evaluate --help'.")
    assert run(["evaluate", str(pred / "a_seg.nii.gz"), str(ref)]) == 2
    assert f"{ref} is a folder and {pred / 'a_seg.nii.gz'} is a file" in capsys.readouterr().err
    assert run(["evaluate", str(pred), str(ref)]) == 2  # no -o
    assert "two folders are scored into a folder: give -o OUT_DIR" in capsys.readouterr().err
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "out"), "--case-id", "x"]) == 2
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "out.json")]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.json").exists()


def test_a_file_as_the_output_folder_is_a_usage_error_and_a_path_under_one_names_it(folders, tmp_path, capsys):
    """An existing file as -o was "not a folder (the output folder of a folder of predictions)", exit 1, where infer,
    train and report refuse it as usage (exit 2); a path under a file was "cannot make the output folder (not a
    directory)", naming no file, and one through a link leading nowhere "(file exists)"."""
    pred, ref = folders
    notes = tmp_path / "notes"
    notes.write_text("kept\n")
    assert run(["evaluate", str(pred), str(ref), "-o", str(notes)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"medseg evaluate: error: -o {notes}: a file, not a folder; two folders are scored into a folder (one "
        "<case>_metrics.json each and the report): give a folder. Try 'medseg evaluate --help'.")
    link, loop = tmp_path / "moved", tmp_path / "loop"
    link.symlink_to("elsewhere")
    loop.symlink_to("loop")
    # usage errors (exit 2) before any case is scored, as infer says them (they were exit 1, an input's code)
    restore = "restore its target or remove the link, or give another folder for the outputs"
    for out, expected in ((notes / "scores", f"{notes} is a file, not a folder; give a folder for the outputs"),
                          (link, f"{link} is a symbolic link to elsewhere, which does not exist; {restore}"),
                          (loop / "scores", f"{loop} is a symbolic link to loop, a loop of links that leads nowhere; "
                                            f"{restore}")):
        assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"medseg evaluate: error: -o {out}: {expected}. Try 'medseg evaluate --help'.")
    # the library says them as it makes the folder: a loop of links as a loop, not as a link "which does not exist"
    for out, expected in ((notes / "scores", f"{notes} is a file, not a folder"),
                          (link, f"{link} is a symbolic link to elsewhere, which does not exist"),
                          (loop / "scores", f"{loop} is a symbolic link to loop, a loop of links that leads nowhere")):
        with pytest.raises(OutputWriteError) as caught:
            score_folder(pred, ref, out)
        assert str(caught.value) == f"{out}: cannot make this output folder: {expected}"
    assert notes.read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "labelsTs", "loop", "moved", "notes", "pred"]


def test_output_dir_names_the_folder_of_evaluate_and_report_as_of_infer_and_train(folders, tmp_path, capsys):
    """infer and train took --output-dir for their -o folder; evaluate (a folder of cases) and report (a folder or
    page) refused it as "No such option"."""
    pred, ref = folders
    scores, qa = tmp_path / "scores", tmp_path / "qa"
    assert run(["evaluate", str(pred), str(ref), "--output-dir", str(scores)]) == 1  # case c fails, as with -o
    assert sorted(p.name for p in scores.glob("*.json")) == ["a_metrics.json", "b_metrics.json", "c_failed.json",
                                                               "summary.json"]
    assert run(["report", str(scores), "--output-dir", str(qa), "--max-overlays", "0"]) == 0
    assert sorted(p.name for p in qa.iterdir()) == ["cohort.tsv", "report.html", "summary.json"]
    capsys.readouterr()
    for command in ("evaluate", "report"):
        assert run([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "-o, --output " in out and "--output-dir DIR" in out


def test_output_dir_is_a_folder_without_a_trailing_slash_and_not_given_with_o(folders, tmp_path, capsys):
    """--output-dir was another name of -o: a new folder without a trailing / was refused as a file name without
    .json (or .html), in a message naming -o; given with -o, the last of the two was taken in silence."""
    pred, ref = folders
    one = tmp_path / "one"
    assert run(["evaluate", str(pred / "a_seg.nii.gz"), str(ref / "a.nii.gz"), "--output-dir", str(one)]) == 0
    assert sorted(p.name for p in one.iterdir()) == ["a_metrics.json"]
    qa = tmp_path / "qa"
    assert run(["report", str(one), "--output-dir", str(qa), "--max-overlays", "0"]) == 0
    assert sorted(p.name for p in qa.iterdir()) == ["cohort.tsv", "report.html", "summary.json"]
    capsys.readouterr()
    both = tmp_path / "both"
    assert run(["evaluate", str(pred / "a_seg.nii.gz"), str(ref / "a.nii.gz"), "-o", str(tmp_path / "a.json"),
                "--output-dir", str(both)]) == 2
    assert f"-o {tmp_path / 'a.json'} and --output-dir {both}: give one of them" in capsys.readouterr().err
    assert run(["report", str(one), "-o", str(tmp_path / "r.html"), "--output-dir", str(both)]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert not both.exists() and not (tmp_path / "a.json").exists() and not (tmp_path / "r.html").exists()


def test_folders_given_the_wrong_way_round_are_a_usage_error(tmp_path, capsys):
    """``medseg evaluate labelsTs/ out/ -o scores/``: every case was scored with the predicted and reference volumes
    (and false positives and negatives) exchanged, a warning each, a reference without a prediction passed over as a
    prediction without a reference, and exit 0. Where every reference is a segmentation medseg infer wrote (its
    sidecar says so) and no prediction has a sidecar, the folders are refused as swapped, exit 2, nothing written."""
    out, labels_dir = tmp_path / "out", tmp_path / "labelsTs"
    for case, shift in (("a", 1), ("b", 2)):
        predicted, reference = labels(shift)
        save(predicted, out / f"{case}_seg.nii.gz")
        (out / f"{case}_seg.json").write_text(json.dumps({"segmentation": f"{case}_seg.nii.gz",
                                                          "labels": {"0": "background", "1": "x", "2": "y"}}))
        save(reference, labels_dir / f"{case}.nii.gz")
    save(labels(0)[1], labels_dir / "c.nii.gz")  # a case the model missed
    scores = tmp_path / "scores"
    code, _, err = run_cli(["evaluate", str(labels_dir), str(out), "-o", str(scores)], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"medseg evaluate: error: {out}: given as the references folder, it holds segmentations medseg infer wrote "
        f"(their sidecars say so: a_seg.json, b_seg.json), and the predictions folder {labels_dir} none: are the two "
        f"folders swapped? The predictions come first. Try 'medseg evaluate --help'.")
    assert not scores.exists()
    code, _, err = run_cli(["evaluate", str(out), str(labels_dir), "-o", str(scores)], capsys)
    assert code == 1, err  # the right way round: c is a missed case
    assert sorted(p.name for p in scores.glob("*.json")) == ["a_metrics.json", "b_metrics.json", "c_failed.json",
                                                              "summary.json"]


def test_references_corrected_since_medseg_wrote_them_are_not_taken_for_swapped_folders(tmp_path, capsys, caplog):
    """medseg's segmentations corrected by a reader (their sidecars still beside them) are the references another
    tool's predictions are scored against: they were refused as a predictions folder given the wrong way round,
    and there was no way to score them as references. Their SHA-256 is not the one their sidecars record."""
    import hashlib

    corrected, other_tool = tmp_path / "corrected", tmp_path / "other_tool"
    for case, shift in (("a", 1), ("b", 2)):
        predicted, reference = labels(shift)
        save(predicted, other_tool / f"{case}_seg.nii.gz")
        save(predicted, corrected / f"{case}_seg.nii.gz")  # as medseg infer wrote it ...
        written = hashlib.sha256((corrected / f"{case}_seg.nii.gz").read_bytes()).hexdigest()
        (corrected / f"{case}_seg.json").write_text(json.dumps({
            "segmentation": f"{case}_seg.nii.gz", "segmentation_sha256": written,
            "labels": {"0": "background", "1": "x", "2": "y"}}))
        save(reference, corrected / f"{case}_seg.nii.gz")  # ... and as the reader corrected it
    scores = tmp_path / "scores"
    with caplog.at_level(logging.WARNING, logger="medseg"):
        code, _, err = run_cli(["evaluate", str(other_tool), str(corrected), "-o", str(scores)], capsys)
    assert code == 0, err
    assert [r.getMessage() for r in caplog.records if "swapped?" in r.getMessage()] == []  # nor a warning each
    assert sorted(p.name for p in scores.glob("*.json")) == ["a_metrics.json", "b_metrics.json", "summary.json"]
    # one of them as medseg wrote it, the other corrected: not every reference is medseg's own
    save(labels(1)[0], corrected / "a_seg.nii.gz")
    code, _, err = run_cli(["evaluate", str(other_tool), str(corrected), "-o", str(tmp_path / "s2")], capsys)
    assert code == 0, err
    # both as medseg wrote them: swapped, as before
    save(labels(2)[0], corrected / "b_seg.nii.gz")
    code, _, err = run_cli(["evaluate", str(other_tool), str(corrected), "-o", str(tmp_path / "s3")], capsys)
    assert code == 2 and "are the two folders swapped?" in err
    assert not (tmp_path / "s3").exists()
