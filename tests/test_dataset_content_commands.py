"""Commands on a DataLad / git-annex or Git LFS dataset: `medseg infer` and `medseg evaluate` name each input or
reference whose content is not here and write nothing for it, a folder of cases scores the others, and annexed
outputs are refused saying to unlock them (datasets laid out by ``annex_factory.py``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from annex_factory import (
    ANNEX,
    LFS,
    POINTER,
    annex,
    annex_pointer,
    annexed_dataset,  # noqa: F401  (the dataset fixture its tests take)
    lfs_pointer,
)
from conftest import run_cli


def test_infer_names_each_absent_input_and_reads_a_present_annexed_one(dataset, make_package, capsys, monkeypatch):
    """The absent ones were "a link to ../.git/annex/objects/… that leads nowhere" and, the pointer files, "not a NIfTI
    image (named .gz but not gzip-compressed …)"; the present one is segmented, its sidecar naming the path given."""
    images, labels = dataset / "images", dataset / "labels"
    annex(images / "case1.nii.gz", dataset)
    annex(labels / "case1.nii.gz", dataset)
    annex(images / "case2.nii.gz", dataset, present=False)
    annex_pointer(images / "case3.nii.gz")
    lfs_pointer(images / "case4.nii.gz")
    monkeypatch.chdir(dataset)
    references = [a for i in (1, 2, 3, 4) for a in ("--reference", f"labels/case{i}.nii.gz")]
    code, _, err = run_cli(["infer", *(f"images/case{i}.nii.gz" for i in (1, 2, 3, 4)), "-m", str(make_package()),
                            "-o", "out/", *references], capsys)
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("medseg: error:")] == [
        f"medseg: error: images/case2.nii.gz: {ANNEX}: fetch it with datalad get images/case2.nii.gz (or git annex "
        "get)",
        f"medseg: error: images/case3.nii.gz: {POINTER}: fetch it with datalad get images/case3.nii.gz (or git annex "
        "get)",
        f"medseg: error: images/case4.nii.gz: {LFS} --include=images/case4.nii.gz"]
    assert sorted(p.name for p in (dataset / "out").iterdir()) == ["case1_metrics.json", "case1_seg.json",
                                                                 "case1_seg.nii.gz", "case2_failed.json",
                                                                 "case3_failed.json", "case4_failed.json"]
    sidecar = json.loads((dataset / "out" / "case1_seg.json").read_text())
    metrics = json.loads((dataset / "out" / "case1_metrics.json").read_text())
    assert sidecar["input"] == str(images / "case1.nii.gz")  # the link, not the object in .git/annex
    assert metrics["reference"] == str(labels / "case1.nii.gz")
    content = (images / "case1.nii.gz").resolve().read_bytes()
    assert sidecar["input_sha256"] == hashlib.sha256(content).hexdigest()


def test_evaluate_names_an_absent_reference_and_writes_nothing(dataset, capsys):
    labels = dataset / "labels"
    annex(labels / "case1.nii.gz", dataset, present=False)
    code, _, err = run_cli(["evaluate", str(labels / "case2.nii.gz"), str(labels / "case1.nii.gz"), "-o",
                            str(dataset / "e.json")], capsys)
    assert (code, err.strip()) == (1, f"medseg: error: {labels / 'case1.nii.gz'}: {ANNEX}: fetch it with datalad get "
                                      f"{labels / 'case1.nii.gz'} (or git annex get)")
    lfs_pointer(labels / "case3.nii.gz")
    code, _, err = run_cli(["evaluate", str(labels / "case3.nii.gz"), str(labels / "case2.nii.gz"), "-o",
                            str(dataset / "e.json")], capsys)
    assert (code, err.strip()) == (1, f"medseg: error: {labels / 'case3.nii.gz'}: {LFS}")
    assert not (dataset / "e.json").exists()


def test_scoring_a_folder_fails_the_case_whose_reference_is_absent_and_scores_the_others(dataset, tmp_path, capsys):
    """The absent reference was left out as 'an entry that is not a .nii/.nii.gz file' and its prediction counted as
    one 'without a reference', not as a failed case."""
    labels, predictions = dataset / "labels", tmp_path / "pred"
    predictions.mkdir()
    for index in (1, 2, 3):
        (predictions / f"case{index}.nii.gz").write_bytes((labels / f"case{index}.nii.gz").read_bytes())
    (labels / "case4.nii.gz").unlink()
    annex(labels / "case1.nii.gz", dataset)
    annex(labels / "case2.nii.gz", dataset, present=False)
    code, out, err = run_cli(["evaluate", str(predictions), str(labels), "-o", str(tmp_path / "scores")], capsys)
    assert code == 1 and "warning" not in err
    gone = labels / "case2.nii.gz"
    absent = f"{gone}: {ANNEX}: fetch it with datalad get {gone} (or git annex get)"
    assert f"case2: failed: {absent}" in (out + err).splitlines()
    record = json.loads((tmp_path / "scores" / "case2_failed.json").read_text())
    assert record["error"] == absent
    for index in (1, 3):  # a present annexed reference scores as any file: the prediction is a copy of it
        metrics = json.loads((tmp_path / "scores" / f"case{index}_metrics.json").read_text())
        assert metrics["reference"] == str(labels / f"case{index}.nii.gz")
        assert [label["dice"] for label in metrics["labels"].values()] == [1.0, 1.0, 1.0]


def test_annexed_outputs_are_refused_saying_to_unlock_them(dataset, make_package, capsys, monkeypatch):
    """An annexed output was 'a link to …/.git/annex/objects/…/KEY is in the place of this output; remove the link
    (… which would change KEY there …)', one output per run; in a dataset the fix is to unlock them."""
    monkeypatch.chdir(dataset)
    package = str(make_package())
    assert run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/"], capsys)[0] == 0
    outputs = [Path("derivatives", name) for name in ("case1_seg.nii.gz", "case1_seg.json")]
    before = [annex(output, dataset).resolve().read_bytes() for output in outputs]
    code, _, err = run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/"], capsys)
    assert (code, err.strip()) == (1, "medseg: error: derivatives/case1_seg.nii.gz: an annexed file of a DataLad / "
                                      "git-annex dataset (a link into its read-only store) is in the place of this "
                                      "output (and 1 more of its outputs); unlock it first (datalad unlock "
                                      "derivatives/case1_seg.nii.gz derivatives/case1_seg.json, or git annex unlock) "
                                      "and rerun with --overwrite (medseg neither writes through a link nor replaces "
                                      "it with a file)")
    assert [output.resolve().read_bytes() for output in outputs] == before and all(map(Path.is_symlink, outputs))
    for output in outputs:  # datalad unlock: the link becomes a writable copy of its content
        content = output.resolve().read_bytes()
        output.unlink()
        output.write_bytes(content)
    code, _, _ = run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/", "--overwrite"], capsys)
    assert code == 0 and json.loads(outputs[1].read_text())["input"] == str(dataset / "images" / "case1.nii.gz")
    outputs[1].unlink()
    outputs[1].symlink_to("../.git/annex/objects/Xk/Mv/SHA256E-s3--0a.json/SHA256E-s3--0a.json")  # content dropped
    code, _, err = run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/", "--overwrite"],
                           capsys)
    assert (code, err.strip()) == (1, "medseg: error: derivatives/case1_seg.json: an annexed file of a DataLad / "
                                      "git-annex dataset is in the place of this output, its content not all present "
                                      "here; fetch and unlock it (datalad get derivatives/case1_seg.json, then datalad "
                                      "unlock) and rerun with --overwrite, or remove it (git rm) (medseg neither "
                                      "writes through a link nor replaces it with a file)")
