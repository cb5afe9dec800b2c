"""Which finished cases of a cohort (medseg.cohort.run) are stale: inputs away, replaced, touched or copied, and
references taken out, as the batch and the report see them."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
from cohort_cases import (
    MODEL,
    SHAPE,
    SMALL_IMAGES_SEGMENTED,
    _run_ids,
    _sheet,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
)

from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples
from medseg.cohort.records import ResultsFolder
from medseg.synthetic import write_phantom

pytestmark = SMALL_IMAGES_SEGMENTED

# why a file in a folder this user may not search cannot be read, as every line of medseg words it
SEARCH_DENIED = "permission denied: a folder on its way cannot be searched"


def test_a_reference_become_a_dangling_link_is_named_as_one_not_as_an_empty_folder(cohort, tmp_path):
    """A reference whose link's target was moved away kept its scores, as a missing one does, but the line called it
    "an empty folder"."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    evaluate_cases(samples, results)
    reference = sheet.parent / "a_label.nii.gz"
    os.rename(reference, tmp_path / "label.nii.gz")
    reference.symlink_to(tmp_path / "moved.nii.gz")
    scored = evaluate_cases(samples, results).cases[0]
    assert (scored.outcome, scored.error) == ("failed", f"{reference}: a link to {tmp_path / 'moved.nii.gz'} that "
                                              "leads nowhere (its target moved or deleted, or a loop of links); the "
                                              "scores made against it earlier are kept, and reused if it comes back "
                                              "unchanged")
    assert ResultsFolder(results).metrics("a").is_file()


def test_a_report_without_the_sheet_shows_a_case_whose_input_is_away_as_the_sheets_report_does(cohort, tmp_path):
    """`medseg report RESULTS` without --sheet showed a cohort's case whose image (or reference) is away (an unmounted
    share, an archived or dropped file) as scored, where the report with the sheet, which the workflow writes, says
    the results are kept but not the row's answer meanwhile. Both now say the same, from the paths the sidecar and
    the metrics record. Results written outside a cohort are taken as they are: their input may be archived."""
    import shutil

    from medseg.report import build_report

    def rows(results_dir, name, sheet=None) -> dict[str, dict]:
        built = build_report(results_dir, tmp_path / name / "report.html", max_overlays=0, sheet=sheet)
        with open(built.table, encoding="utf-8", newline="") as handle:
            return {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    evaluate_cases(samples, results)
    plain = tmp_path / "plain" / "a"  # the same results outside a cohort (no records of its runs)
    shutil.copytree(results / "cases" / "a", plain)
    image, reference = sheet.parent / "a.nii.gz", sheet.parent / "a_label.nii.gz"
    assert rows(results, "here")["a"]["status"] == "scored"
    os.rename(image, tmp_path / "image.nii.gz")
    away = (f"the input {image} is missing; the results made from it earlier are kept in the results folder (not "
            "shown here), and reused if it comes back unchanged")
    for name, given in (("without", None), ("with", sheet)):
        row = rows(results, name, given)["a"]
        assert (row["status"], row["failed_stage"], row["error"]) == ("failed", "stale", away)
    assert rows(plain.parent, "plain")["a"]["status"] == "scored"
    os.rename(tmp_path / "image.nii.gz", image)  # the image back, the reference away
    os.rename(reference, tmp_path / "label.nii.gz")
    row = rows(results, "reference")["a"]
    assert (row["failed_stage"], row["error"]) == (
        "stale", f"the reference {reference} is missing; the scores made against it earlier are kept in the results "
                 "folder (not shown here), and reused if it comes back unchanged")


def test_an_input_missing_for_a_while_keeps_the_results_made_from_it(cohort, tmp_path):
    """An image moved away (an unmounted share, an archived file) made the next run delete the case's finished
    segmentation and scores, which could not be made again until it was back. They are kept while the row, model
    and settings are the same (the image and its reference may both be away); a row now naming another file is
    redone as before."""
    from medseg.report import build_report

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    infer_cases(samples, results, options)
    evaluate_cases(samples, results)
    folder = ResultsFolder(results)
    before = (_run_ids(folder, "infer"), _run_ids(folder, "evaluate"))
    image, reference = sheet.parent / "a.nii.gz", sheet.parent / "a_label.nii.gz"
    os.rename(image, tmp_path / "image.nii.gz")  # keeps the modification times, as a remount would
    os.rename(reference, tmp_path / "label.nii.gz")
    image.mkdir()  # a bare mount point in the image's place
    summary = infer_cases(samples, results, options)
    outcome = {c.case_id: c for c in summary.cases}
    assert (outcome["a"].outcome, outcome["a"].stage, outcome["a"].reused) == ("failed", "read", False)
    assert outcome["a"].error == (f"{image}: an empty folder; the results made from it earlier are kept, and "
                                  "reused if it comes back unchanged")
    assert outcome["b"].reused
    scored = {c.case_id: c for c in evaluate_cases(samples, results).cases}
    assert (scored["a"].outcome, scored["a"].error) == ("failed", f"{reference}: no such file; the scores made against "
                                                        "it earlier are kept, and reused if it comes back unchanged")
    assert scored["b"].reused
    for path in (folder.segmentation("a"), folder.sidecar("a"), folder.metrics("a")):
        assert path.is_file()
    assert not folder.failure("a").exists()
    assert (_run_ids(folder, "infer"), _run_ids(folder, "evaluate")) == before
    # meanwhile the report does not present them as the answer to the row
    built = build_report(results, tmp_path / "report" / "report.html", sheet=sheet)
    with open(built.table, encoding="utf-8", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert rows["a"]["status"] == "failed" and rows["a"]["failed_stage"] == "stale"
    assert (f"the input {image} is missing; the results made from it earlier are kept in the results folder (not "
            "shown here)") in rows["a"]["error"]
    assert rows["b"]["status"] == "scored"
    # the image back, the reference still away: the scores are said to rest on it
    image.rmdir()
    os.rename(tmp_path / "image.nii.gz", image)
    built = build_report(results, tmp_path / "report" / "report.html", sheet=sheet, overwrite=True)
    with open(built.table, encoding="utf-8", newline="") as handle:
        row = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}["a"]
    assert row["failed_stage"] == "stale" and row["error"].startswith(
        f"the reference {reference} is missing; the scores made against it earlier are kept in the results folder")
    # back unchanged: nothing is redone
    os.rename(tmp_path / "label.nii.gz", reference)
    assert all(c.reused and c.outcome == "ok" for c in infer_cases(samples, results, options).cases)
    assert all(c.reused and c.outcome == "ok" for c in evaluate_cases(samples, results).cases)
    assert (_run_ids(folder, "infer"), _run_ids(folder, "evaluate")) == before
    # a row that now names a file that does not exist (a typo, an unfinished rename) is another input: the
    # results made from the old file go, and the case fails
    renamed = [replace(s, image=sheet.parent / "a_renamed.nii.gz") if s.case_id == "a" else s for s in samples]
    outcome = {c.case_id: c for c in infer_cases(renamed, results, options).cases}
    assert outcome["a"].outcome == "failed" and "no such file" in outcome["a"].error
    assert not folder.segmentation("a").exists() and not folder.metrics("a").exists()
    assert json.loads(folder.failure("a").read_text())["input"] == str(sheet.parent / "a_renamed.nii.gz")


def test_a_kept_case_is_not_planned_again_but_its_scores_follow_the_sheet(cohort, tmp_path):
    """Planning does not void a batch for a case whose image is away and whose results are kept (every run redid
    the batch); its scores still follow the sheet's reference cell. A record written before medseg stored the
    input's signature cannot show it was made for this work: its results are cleared, as they always were."""
    from medseg.cohort.fingerprints import stale_cases
    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    package = load_package(MODEL)
    infer_cases(samples, results, options)
    evaluate_cases(samples, results)
    folder = ResultsFolder(results)
    image = sheet.parent / "a.nii.gz"
    os.rename(image, tmp_path / "image.nii.gz")
    image.mkdir()
    (image / "lost+found").mkdir()  # an empty subfolder: the folder still holds no file
    (image / ".DS_Store").write_bytes(b"\0")  # nor does a hidden one count
    assert stale_cases(samples, results, package, options) == {"infer": [], "evaluate": []}
    rereferenced = [replace(samples[0], reference=sheet.parent / "b_label.nii.gz")]
    assert stale_cases(rereferenced, results, package, options) == {"infer": [], "evaluate": ["a"]}
    unreferenced = [replace(samples[0], reference=None)]
    assert stale_cases(unreferenced, results, package, options) == {"infer": [], "evaluate": ["a"]}
    # a record without the stored signature: cleared (it may have been made with other settings)
    path = folder.status_path("a", "infer")
    record = json.loads(path.read_text())
    del record["image_signature"]
    path.write_text(json.dumps(record))
    assert stale_cases(samples, results, package, options) == {"infer": ["a"], "evaluate": []}
    assert [c.outcome for c in infer_cases(samples, results, options).cases] == ["failed"]
    assert not folder.segmentation("a").exists() and folder.failure("a").is_file()


def test_an_input_or_reference_only_touched_or_copied_keeps_its_results_and_a_changed_one_is_redone(tmp_path,
                                                                                                    monkeypatch):
    """Images restored from a backup without their times, touched, or copied without -p: the content is the same,
    but the cohort's size-and-time record redid every such case (hours on a big cohort) and the report listed each
    as stale until then. Its content now decides, as the sidecar check does outside a cohort; the record takes the
    new size and time, so the file is hashed once."""
    import shutil

    import medseg.cohort.fingerprints as cohort_fingerprints
    from medseg.cohort.fingerprints import infer_fingerprint, stale_cases
    from medseg.cohort.records import path_signature
    from medseg.package import load_package
    from medseg.report import build_report

    data = tmp_path / "data"
    data.mkdir()
    for name, seed in (("a", 1), ("b", 2), ("c", 3), ("d", 4)):
        write_phantom(data / f"{name}.nii.gz", data / f"{name}_label.nii.gz", shape=SHAPE, seed=seed)
    sheet = _sheet(data, "case_id\timage\treference\na\ta.nii.gz\ta_label.nii.gz\nb\tb.nii.gz\tb_label.nii.gz\n"
                         "c\tc.nii.gz\nd\td.nii.gz\td_label.nii.gz\n")
    results = tmp_path / "results"
    folder = ResultsFolder(results)
    samples = read_samples(sheet)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    package = load_package(MODEL)

    def statuses(overwrite=True):
        with open(build_report(results, results / "report.html", sheet=sheet, overwrite=overwrite).table,
                  newline="", encoding="utf-8") as handle:
            return {row["case_id"]: (row["status"], row["failed_stage"])
                    for row in csv.DictReader(handle, delimiter="\t")}

    def made():  # when each sidecar and metrics file was written, and each record's run
        return {case: (json.loads(folder.sidecar(case).read_text())["created"], folder.sidecar(case).stat().st_mtime_ns,
                       folder.metrics(case).stat().st_mtime_ns if folder.metrics(case).exists() else None,
                       _run_ids(folder, "infer")[case], _run_ids(folder, "evaluate").get(case)) for case in "abcd"}

    infer_cases(samples, results, options)
    evaluate_cases(samples, results)
    assert statuses(overwrite=False) == {"a": ("scored", ""), "b": ("scored", ""), "c": ("no_reference", ""),
                                         "d": ("scored", "")}
    before = made()

    later = 10**9 + max(p.stat().st_mtime_ns for p in data.iterdir())
    os.utime(data / "a.nii.gz", ns=(later, later))  # touched
    os.utime(data / "b_label.nii.gz", ns=(later, later))
    shutil.copyfile(data / "c.nii.gz", tmp_path / "copy.nii.gz")  # cp without -p, over itself
    shutil.copyfile(tmp_path / "copy.nii.gz", data / "c.nii.gz")
    os.utime(data / "c.nii.gz", ns=(later, later))
    image = nib.load(data / "d.nii.gz")  # another image on the same grid, under the same name
    nib.save(nib.Nifti1Image(np.flip(np.asarray(image.dataobj), 0), image.affine, image.header), data / "d.nii.gz")
    for case, key, path in (("a", "image_signature", "a.nii.gz"), ("c", "image_signature", "c.nii.gz"),
                            ("d", "image_signature", "d.nii.gz")):
        assert folder.status(case, "infer")[key] != path_signature(data / path)

    # planning voids only the changed case's job; the report lists only it stale
    assert stale_cases(samples, results, package, options) == {"infer": ["d"], "evaluate": []}
    import medseg.cohort.records as records
    import medseg.io.atomic as atomic

    records._content_sha256.cache_clear()  # the report on its own: its sheet check and sidecar check hash a file once
    real_sha256_of, hashes = atomic.sha256_of, []

    def counted(path):
        if not isinstance(path, list) and Path(path).parent == data:  # a list is hashed file by file through here
            hashes.append(Path(path).name)
        return real_sha256_of(path)

    with monkeypatch.context() as patched:
        patched.setattr(atomic, "sha256_of", counted)
        assert statuses() == {"a": ("scored", ""), "b": ("scored", ""), "c": ("no_reference", ""),
                              "d": ("failed", "stale")}
    assert sorted(hashes) == ["a.nii.gz", "b_label.nii.gz", "c.nii.gz", "d.nii.gz"]
    assert made() == before  # neither changed anything

    infer = infer_cases(samples, results, options)
    evaluate = evaluate_cases(samples, results)
    assert {c.case_id: c.reused for c in infer.cases} == {"a": True, "b": True, "c": True, "d": False}
    assert {c.case_id: c.reused for c in evaluate.cases} == {"a": True, "b": True, "d": False}
    after = made()
    assert {case: after[case] == before[case] for case in "abcd"} == {"a": True, "b": True, "c": True, "d": False}
    # the records carry the files' signatures now, and their fingerprints follow
    for case in "abcd":
        record = folder.status(case, "infer")
        assert record["image_signature"] == path_signature(data / f"{case}.nii.gz")
        assert record["fingerprint"] == infer_fingerprint(samples[ord(case) - ord("a")], package, options)
    assert folder.status("b", "evaluate")["reference_signature"] == path_signature(data / "b_label.nii.gz")
    assert statuses() == {"a": ("scored", ""), "b": ("scored", ""), "c": ("no_reference", ""), "d": ("scored", "")}

    # hashed once: the next runs, planning and report look at sizes and times alone, and an equivalent request
    # (the precision auto chose on the CPU, named) keeps the cases too
    def hashed(*args):
        raise AssertionError("hashed again")

    monkeypatch.setattr(cohort_fingerprints, "content_sha256", hashed)
    monkeypatch.setattr("medseg.cohort.records.content_sha256", hashed)
    records._content_sha256.cache_clear()  # a hash kept from above would hide one asked for again

    def sha256_of(path):  # the report's check of the sidecar's and metrics' own sizes and times, which are older
        if any(Path(p).parent == data for p in (path if isinstance(path, list) else [path])):
            raise AssertionError(f"{path} hashed again")
        return real_sha256_of(path)

    monkeypatch.setattr(atomic, "sha256_of", sha256_of)
    for asked in (options, replace(options, precision="fp32")):
        assert stale_cases(samples, results, package, asked) == {"infer": [], "evaluate": []}
        assert all(c.reused for c in infer_cases(samples, results, asked).cases)
    assert all(c.reused for c in evaluate_cases(samples, results).cases)
    assert statuses() == {"a": ("scored", ""), "b": ("scored", ""), "c": ("no_reference", ""), "d": ("scored", "")}
    assert made() == after


def test_the_report_shows_a_case_whose_input_or_reference_was_replaced_at_the_same_path_as_stale(cohort):
    """A file replaced by another of the same grid under the same name: the report with the sheet showed the old
    figures as the case's, flagged nothing. The cohort records each file's size and time when it uses it."""
    from medseg.report import build_report

    def read_tsv(path):
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle, delimiter="\t"))

    sheet, results = cohort
    page = results / "report.html"
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b", "c")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    infer_cases(samples, results, options)
    evaluate_cases(samples, results)
    rows = {row["case_id"]: row for row in read_tsv(build_report(results, page, sheet=sheet).table)}
    assert [rows[case]["status"] for case in "abc"] == ["scored", "scored", "no_reference"]

    data = sheet.parent
    image = nib.load(data / "b.nii.gz")  # another image on the same grid, under the same name
    nib.save(nib.Nifti1Image(np.flip(np.asarray(image.dataobj), 0), image.affine, image.header), data / "b.nii.gz")
    label = nib.load(data / "a_label.nii.gz")
    blanked = np.where(np.asarray(label.dataobj) == 1, 0, np.asarray(label.dataobj)).astype(label.get_data_dtype())
    nib.save(nib.Nifti1Image(blanked, label.affine, label.header), data / "a_label.nii.gz")
    rows = {row["case_id"]: row for row in read_tsv(build_report(results, page, sheet=sheet, overwrite=True).table)}
    assert [(rows[case]["status"], rows[case]["failed_stage"]) for case in "abc"] == [
        ("failed", "stale"), ("failed", "stale"), ("no_reference", "")]
    assert rows["a"]["error"] == (
        f"the reference {data / 'a_label.nii.gz'} was changed or replaced after the case was scored (its size or "
        "modification time differs from the one recorded then, and its content from the one read then); run the "
        "workflow again to rescore the case")
    assert rows["b"]["error"] == (
        f"the input {data / 'b.nii.gz'} was changed or replaced after the case was segmented (its size or "
        "modification time differs from the one recorded then, and its content from the one read then); run the "
        "workflow again to redo the case")
    # the cohort redoes them, and the report then shows them again
    infer_cases(samples, results, options)
    evaluate_cases(samples, results)
    rows = {row["case_id"]: row for row in read_tsv(build_report(results, page, sheet=sheet, overwrite=True).table)}
    assert [rows[case]["status"] for case in "abc"] == ["scored", "scored", "no_reference"]


def test_finished_cases_counts_only_what_was_made_for_this_runs_model_settings_and_forcing(cohort):
    """What a stopped workflow run's line counts as finished (kept): a case is finished when its segmentation (or its
    failure) was made for the run's row, model and settings, under a forced run's token where its batch is forced,
    and, where it has a reference, its scores too (a case segmented so but not scored is counted apart). It counted
    every case with results in the folder, whatever made them: a run with another overlap stopped after 40 of 202
    cases said "202 of 202 cases finished (kept)"."""
    from medseg.cohort import finished_cases
    from medseg.package import load_package

    sheet, results = cohort
    samples = read_samples(sheet)  # a, b (references), c (none), bad (truncated), gone (missing)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    package = load_package(MODEL)
    batches = {"batch001": samples[:3], "batch002": samples[3:]}
    assert finished_cases(batches, results, package, options) == (0, 0)
    infer_cases(samples, results, options)
    # c, and bad and gone failed for good; a and b segmented, not scored
    assert finished_cases(batches, results, package, options) == (3, 2)
    evaluate_cases(samples, results)
    assert finished_cases(batches, results, package, options) == (5, 0)
    assert finished_cases(batches, results, package, replace(options, overlap=0.5)) == (0, 0)  # other work
    assert finished_cases(batches, results, package, options, {"infer": "token:batch002", "evaluate": ""}) == (3, 0)
    assert finished_cases(batches, results, package, options, {"infer": "", "evaluate": "token"}) == (3, 2)
    made = ResultsFolder(results).status("a", "infer")
    forced = {"infer": "token", "evaluate": "token"}
    infer_cases(samples[:1], results, options, redo="token")  # a forced run made a again, under its token
    assert ResultsFolder(results).status("a", "infer")["run_id"] != made["run_id"]
    evaluate_cases(samples[:1], results, redo="token")
    assert finished_cases(batches, results, package, options, forced) == (1, 0)


def test_a_reference_that_cannot_be_read_fails_its_case_alone_and_keeps_its_scores(cohort, tmp_path):
    """A case scored earlier whose reference cannot be looked at now (its folder without permission: a share mounted
    for another group) raised a bare PermissionError as its line was made (away_text), failing the whole scoring job
    and every case in it, as an image did its inference job. The case fails alone, saying the file cannot be read, its
    results kept; the other cases are scored. The report called such a reference missing: it says it cannot be
    read."""
    from conftest import plain_user

    from medseg.report import build_report

    sheet, results = cohort
    locked, images = tmp_path / "locked", tmp_path / "images"
    locked.mkdir()
    images.mkdir()
    reference, image = locked / "a_label.nii.gz", images / "a.nii.gz"
    os.rename(sheet.parent / "a_label.nii.gz", reference)
    os.rename(sheet.parent / "a.nii.gz", image)
    own = _sheet(tmp_path, f"case_id\timage\treference\na\t{image}\t{reference}\n"
                           f"b\t{sheet.parent / 'b.nii.gz'}\t{sheet.parent / 'b_label.nii.gz'}\n")
    samples = read_samples(own)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    infer_cases(samples, results, options)
    assert evaluate_cases(samples[:1], results).count("ok") == 1
    folder = ResultsFolder(results)
    scores, made = folder.metrics("a").read_bytes(), folder.segmentation("a").read_bytes()
    images.chmod(0)  # the image too, at inference: its case fails alone, its results kept
    try:
        with plain_user():
            inferred = infer_cases(samples, results, options)
    finally:
        images.chmod(0o755)
    assert [(c.case_id, c.outcome, c.error) for c in inferred.cases] == [
        ("a", "failed", f"{image}: cannot read ({SEARCH_DENIED}); the results made from it earlier are kept, and "
                        "reused if it comes back unchanged"), ("b", "ok", None)]
    assert folder.segmentation("a").read_bytes() == made
    locked.chmod(0)
    try:
        with plain_user():
            summary = evaluate_cases(samples, results)
            built = build_report(results, tmp_path / "report" / "report.html", max_overlays=0, sheet=own)
    finally:
        locked.chmod(0o755)
    assert [(c.case_id, c.outcome, c.reused, c.stage, c.error) for c in summary.cases] == [
        ("a", "failed", False, "evaluate", f"{reference}: cannot read ({SEARCH_DENIED}); the scores made against it "
                                           "earlier are kept, and reused if it comes back unchanged"),
        ("b", "ok", False, None, None)]
    assert folder.metrics("a").read_bytes() == scores and folder.metrics("b").is_file()
    with open(built.table, encoding="utf-8", newline="") as handle:
        row = next(row for row in csv.DictReader(handle, delimiter="\t") if row["case_id"] == "a")
    assert (row["status"], row["failed_stage"], row["error"]) == (
        "failed", "stale", f"the reference {reference}: cannot read ({SEARCH_DENIED}); the scores made against it "
                           "earlier are kept in the results folder (not shown here), and reused if it comes back "
                           "unchanged")


def test_an_image_this_user_may_not_look_at_fails_its_case_alone_in_one_line_without_earlier_results(tmp_path):
    """An image in a folder this user may not search, in a results folder that holds nothing of its case: the case
    failed alone, but as Python's "PermissionError: [Errno 13] Permission denied: '…'" (segment_case asked
    Path.is_dir), logged as an unexpected error. It says the file cannot be looked at, as `medseg infer` says it."""
    from conftest import plain_user

    locked, data = tmp_path / "locked", tmp_path / "data"
    locked.mkdir()
    data.mkdir()
    write_phantom(locked / "a.nii.gz", shape=SHAPE, seed=1)
    write_phantom(data / "b.nii.gz", shape=SHAPE, seed=2)
    samples = read_samples(_sheet(tmp_path, "case_id\timage\na\tlocked/a.nii.gz\nb\tdata/b.nii.gz\n"))
    locked.chmod(0)
    try:
        with plain_user():
            done = infer_cases(samples, tmp_path / "results", InferOptions(model=MODEL, device="cpu", batch_size=8))
    finally:
        locked.chmod(0o755)
    assert [(case.case_id, case.outcome, case.error) for case in done.cases] == [
        ("a", "failed", f"{locked / 'a.nii.gz'}: cannot read (permission denied: a folder on its way cannot be "
                        "searched)"),
        ("b", "ok", None)]
