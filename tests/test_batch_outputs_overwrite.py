"""Outputs that would replace a file: an earlier run's, refused without `--overwrite` and replaced with it
(its metrics removed with them), and an input, refused always (medseg.batch_outputs)."""

import json
import shutil

import nibabel as nib
import numpy as np
from conftest import _files, run_cli

from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_existing_outputs_are_not_overwritten(tmp_path, case, make_package, capsys, monkeypatch):
    package = str(make_package())
    monkeypatch.chdir(tmp_path)  # the input given relative: the refusal names the output as the success line did
    code, out, _ = run(["infer", case.name, "--model", package], capsys)
    assert code == 0 and out.startswith("case.nii.gz -> case_seg.nii.gz (")
    seg = tmp_path / "case_seg.nii.gz"
    before = seg.read_bytes()
    code, _, err = run(["infer", case.name, "--model", package], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        "medseg: error: case_seg.nii.gz: output exists already; pass --overwrite to replace it; case_seg.json "
        "exists too")
    assert seg.read_bytes() == before
    assert run(["infer", str(case), "--model", package, "--overwrite"], capsys)[0] == 0


def test_overwrite_removes_the_metrics_of_an_earlier_scored_run(tmp_path, case, make_package, capsys):
    """An unscored run over a scored one: the old metrics (of the old segmentation) go with it, or the QA report
    would show them as the new segmentation's; without --overwrite the run is refused before any work."""
    from medseg.io.atomic import sha256_of

    package, out = str(make_package()), tmp_path / "out"
    reference = tmp_path / "reference.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(reference))
    assert run(["infer", str(case), "-m", package, "-o", str(out), "--reference", str(reference)], capsys)[0] == 0
    assert _files(out) == ["case_metrics.json", "case_seg.json", "case_seg.nii.gz"]
    metrics = json.loads((out / "case_metrics.json").read_text())
    sidecar = json.loads((out / "case_seg.json").read_text())
    assert metrics["prediction_sha256"] == sidecar["segmentation_sha256"] == sha256_of(out / "case_seg.nii.gz")
    assert metrics["reference_sha256"] == sha256_of(reference)  # the reference scored against, by content
    code, _, err = run(["infer", str(case), "-m", package, "-o", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"medseg: error: {out / 'case_seg.nii.gz'}: output exists already; pass --overwrite to replace it; "
        "case_seg.json and case_metrics.json (an earlier run's, which this run would remove) exist too")
    assert run(["infer", str(case), "-m", package, "-o", str(out), "--overwrite"], capsys)[0] == 0
    assert _files(out) == ["case_seg.json", "case_seg.nii.gz"]
    assert json.loads((out / "case_seg.json").read_text())["segmentation_sha256"] == sha256_of(
        out / "case_seg.nii.gz")
    sidecar_text = (out / "case_seg.json").read_text()
    (out / "case_seg.json").unlink()  # as a run killed outright between placing the two leaves them
    code, _, err = run(["infer", str(case), "-m", package, "-o", str(out)], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {out / 'case_seg.nii.gz'}: output exists already, without its sidecar (a run stopped "
        "outright before it finished leaves it so); pass --overwrite to replace it")
    (out / "case_seg.json").write_text(sidecar_text)
    # only medseg's own files go: a file of the user's under that name stays
    (out / "case_metrics.json").write_text("{}\n")
    assert run(["infer", str(case), "-m", package, "-o", str(out), "--overwrite"], capsys)[0] == 0
    assert (out / "case_metrics.json").read_text() == "{}\n"
    # metrics that score this case's segmentation go even when the sidecar that said so is gone (segmenting again,
    # as the report advises for them, left them in place for good)
    assert run(["infer", str(case), "-m", package, "-o", str(out), "--reference", str(reference), "--overwrite"],
               capsys)[0] == 0
    (out / "case_seg.json").unlink()
    (out / "case_seg.nii.gz").unlink()
    code, _, err = run(["infer", str(case), "-m", package, "-o", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {out / 'case_metrics.json'}: output of an earlier run "
                                            "exists, which this run would remove; pass --overwrite to replace it")
    assert run(["infer", str(case), "-m", package, "-o", str(out), "--overwrite"], capsys)[0] == 0
    assert _files(out) == ["case_seg.json", "case_seg.nii.gz"]


def test_overwrite_removes_the_metrics_of_a_scored_run_in_a_moved_or_copied_folder(tmp_path, case, make_package,
                                                                                   capsys):
    """Metrics name the segmentation they score by its absolute path: once the folder was moved (or copied), an
    unscored --overwrite kept them beside the new segmentation, with the old model's Dice. They are matched by name
    and SHA-256 too (never by name alone)."""
    package = str(make_package())
    reference = tmp_path / "reference.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(reference))
    first = tmp_path / "first"
    assert run(["infer", str(case), "-m", package, "-o", str(first), "--reference", str(reference)], capsys)[0] == 0
    copied, moved = tmp_path / "copied", tmp_path / "moved"
    shutil.copytree(first, copied)
    first.rename(moved)
    for folder in (copied, moved):
        code, _, err = run(["infer", str(case), "-m", package, "-o", str(folder)], capsys)
        assert code == 1 and err.strip().splitlines()[-1].endswith(
            "case_seg.json and case_metrics.json (an earlier run's, which this run would remove) exist too")
        assert run(["infer", str(case), "-m", package, "-o", str(folder), "--overwrite"], capsys)[0] == 0
        assert _files(folder) == ["case_seg.json", "case_seg.nii.gz"]
    # metrics filed here from a folder since removed (no segmentation of theirs here): they stay
    assert run(["infer", str(case), "-m", package, "-o", str(first), "--reference", str(reference)], capsys)[0] == 0
    (filed := tmp_path / "filed").mkdir()
    shutil.move(str(first / "case_metrics.json"), filed / "case_metrics.json")
    shutil.rmtree(first)
    assert run(["infer", str(case), "-m", package, "-o", str(filed), "--overwrite"], capsys)[0] == 0
    assert _files(filed) == ["case_metrics.json", "case_seg.json", "case_seg.nii.gz"]
    # a segmentation of the user's under that name, which the metrics do not score: the metrics stay
    assert run(["infer", str(case), "-m", package, "-o", str(first), "--reference", str(reference)], capsys)[0] == 0
    shutil.copytree(first, other := tmp_path / "other")
    (other / "case_seg.nii.gz").write_bytes(b"not the scored file")
    assert run(["infer", str(case), "-m", package, "-o", str(other), "--overwrite"], capsys)[0] == 0
    assert _files(other) == ["case_metrics.json", "case_seg.json", "case_seg.nii.gz"]


def test_an_output_that_would_replace_an_input_is_refused(tmp_path, case, make_package, capsys):
    other = tmp_path / "case_seg.nii.gz"  # another image that happens to carry the first one's output name
    other.write_bytes(case.read_bytes())
    before = other.read_bytes()
    code, _, err = run(["infer", str(case), str(other), "--model", str(make_package()), "--overwrite"], capsys)
    assert code == 2
    assert f"{case}: its output {other} would replace the input {other}; write the outputs elsewhere (-o)" in err
    assert other.read_bytes() == before and not (tmp_path / "case_seg.json").exists()


def test_overwrite_removes_earlier_metrics_of_an_input_in_a_linked_folder(tmp_path, case, make_package, capsys):
    """Metrics written by `evaluate` name the prediction by the linked folder's path; the outputs' paths follow the
    link: they were compared as written, so the old metrics stayed beside the new segmentation."""
    package, real, linked = str(make_package()), tmp_path / "real", tmp_path / "linked"
    real.mkdir()
    linked.symlink_to(real)
    case.rename(real / "case.nii.gz")
    reference = tmp_path / "reference.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(reference))
    assert run(["infer", str(linked / "case.nii.gz"), "-m", package], capsys)[0] == 0
    assert run(["evaluate", str(linked / "case_seg.nii.gz"), str(reference), "-o", str(linked / "case_metrics.json")],
               capsys)[0] == 0
    code, _, err = run(["infer", str(linked / "case.nii.gz"), "-m", package], capsys)
    assert code == 1 and err.strip().splitlines()[-1].endswith(
        "; case_seg.json and case_metrics.json (an earlier run's, which this run would remove) exist too")
    assert run(["infer", str(linked / "case.nii.gz"), "-m", package, "--overwrite"], capsys)[0] == 0
    assert _files(real) == ["case.nii.gz", "case_seg.json", "case_seg.nii.gz"]
