"""A forced workflow run (medseg.cohort.forced_runs): its jobs make every case again, once."""

from __future__ import annotations

from cohort_cases import SMALL_IMAGES_SEGMENTED, _sheet

from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples
from medseg.cohort.records import ResultsFolder
from medseg.synthetic import write_phantom

pytestmark = SMALL_IMAGES_SEGMENTED


def test_a_forced_run_makes_every_case_again_once(tmp_path):
    """Snakemake's -F ran the jobs, which kept every case: a case now counts as finished only when made under the
    forced run's token, and a retried job of that run keeps what the run already made again."""
    for name, seed in (("a", 1), ("b", 2)):
        write_phantom(tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_label.nii.gz", shape=(40, 40, 8), seed=seed)
    samples = read_samples(_sheet(tmp_path, "case_id\timage\treference\na\ta.nii.gz\ta_label.nii.gz\n"
                                            "b\tb.nii.gz\tb_label.nii.gz\n"))
    results = tmp_path / "results"
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    folder = ResultsFolder(results)

    def run_ids(stage):
        return [folder.status(case, stage)["run_id"] for case in ("a", "b")]

    infer_cases(samples, results, options)
    evaluate_cases(samples, results)
    first = run_ids("infer"), run_ids("evaluate")
    assert infer_cases(samples, results, options).reused == 2  # not forced: kept

    summary = infer_cases(samples, results, options, redo="token1")
    assert (summary.reused, summary.count("ok")) == (0, 2)
    assert all(old != new for old, new in zip(first[0], run_ids("infer")))
    assert [folder.status(case, "infer")["redo"] for case in ("a", "b")] == ["token1", "token1"]
    assert infer_cases(samples, results, options, redo="token1").reused == 2  # a retry of the same forced run
    assert infer_cases(samples, results, options).reused == 2  # a plain run afterwards keeps them too
    # the scores were made from the earlier segmentations: redone without being forced
    assert evaluate_cases(samples, results).reused == 0

    scored = run_ids("evaluate")
    summary = evaluate_cases(samples, results, redo="token2")
    assert (summary.reused, summary.count("ok")) == (0, 2)
    assert all(old != new for old, new in zip(scored, run_ids("evaluate")))
    assert evaluate_cases(samples, results, redo="token2").reused == 2
