"""The Python blocks of the documentation run as written, and give what the text says they give: the "Using medseg
from Python" examples (docs/python-api.md) here, and every other block by the test RUN_BLOCKS names."""

import json
import re

import nibabel as nib
import numpy as np
import pytest
from documents import read, section

PAGE = "docs/python-api.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", section(read(PAGE), "Using medseg from Python"), flags=re.S)


def test_the_section_has_its_two_examples():
    examples = _examples()
    assert len(examples) == 2
    assert "segment_volume(" in examples[0] and "train(config, cases" in examples[1]


def test_the_python_examples_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    first, second = _examples()
    exec(compile(first, f"{PAGE} (segmenting)", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in printed] == ["out/case1_seg.nii.gz", "out/case2_seg.nii.gz"]
    for case in ("case1", "case2"):
        record = json.loads((tmp_path / "out" / f"{case}_metrics.json").read_text())
        assert all(entry["dice"] > 0.9 for entry in record["labels"].values()), record["labels"]
    metrics = namespace["metrics"]
    assert metrics["case_id"] == "case1" and set(metrics["labels"]) == {"1", "2", "3"}
    assert namespace["report"].cases == 2 and (tmp_path / "out" / "report.html").is_file()
    from_file = np.asarray(nib.load(tmp_path / "out" / "case1_seg.nii.gz").dataobj)
    assert np.array_equal(namespace["labels"], from_file)  # in memory as from the file
    assert {k: v["dice"] for k, v in namespace["scores"]["labels"].items()} == pytest.approx(
        {k: v["dice"] for k, v in metrics["labels"].items()})
    assert [(row["case_id"], row["label"], row["name"]) for row in namespace["rows"]] == [
        ("case1", 1, "ellipsoid"), ("case1", 2, "box"), ("case1", 3, "tube")]
    assert [row["dice"] for row in namespace["rows"]] == pytest.approx([metrics["labels"][k]["dice"] for k in "123"])

    exec(compile(second, f"{PAGE} (training)", "exec"), namespace)
    package = namespace["package"]
    assert package.name == "my_phantoms" and package.config["training"]["epochs_run"] == 2
    assert sorted(p.name for p in (tmp_path / "my_model").iterdir() if not p.name.startswith(".")) == [
        "MODEL_CARD.md", "model.json", "weights.safetensors"]
    from medseg.inference import Segmenter

    assert Segmenter("my_model", device="cpu").package.sha256 == package.sha256


# where each Python block of the documentation is run: the page, the section, and the test that runs it
RUN_BLOCKS = {
    ("docs/python-api.md", "Using medseg from Python", 0): "test_the_python_examples_run_as_written",
    ("docs/python-api.md", "Using medseg from Python", 1): "test_the_python_examples_run_as_written",
    ("docs/training.md", "A DICOM SEG as training labels", 0):
        "test_training_cases_pairing.py::test_the_readmes_recipe_writes_a_dicom_seg_as_training_labels",
    ("docs/cohorts.md", "Results folder", 0): "test_the_two_versions_recipe_runs_as_written",
}


def _python_blocks() -> dict[tuple[str, str, int], str]:
    """Every ```python block of README.md and docs/*.md, by page, the section (## or ###) it is in, and its place
    there."""
    from documents import ROOT, pages

    blocks: dict[tuple[str, str, int], str] = {}
    for page in pages():
        heading, fence, code, name = "", "", [], page.relative_to(ROOT).as_posix()
        for line in page.read_text(encoding="utf-8").splitlines():
            if fence and line.startswith("```"):
                if fence == "python":
                    place = sum(1 for key in blocks if key[:2] == (name, heading))
                    blocks[(name, heading, place)] = "\n".join(code) + "\n"
                fence, code = "", []
            elif fence:
                code.append(line)
            elif line.startswith("```"):
                fence = line[3:].strip() or "text"
            elif re.match(r"#{1,3} ", line):
                heading = line.lstrip("#").strip()
    return blocks


def test_every_python_block_of_the_documentation_is_run():
    """A Python block moved to another page, or added, is run by a test: the blocks of README.md and docs/*.md are
    the ones RUN_BLOCKS names, each run by the test named there."""
    assert sorted(_python_blocks()) == sorted(RUN_BLOCKS)


def test_the_two_versions_recipe_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/cohorts.md's join of two results folders' cohort.tsv on case_id (two model versions compared) runs on
    two folders medseg infer and medseg report wrote, and prints the header and a row per case scored in both."""
    from conftest import run_cli

    from medseg.synthetic import write_phantom

    monkeypatch.chdir(tmp_path)
    for seed in (1, 2):
        write_phantom(f"case{seed}.nii.gz", f"case{seed}_label.nii.gz", shape=(40, 40, 12), seed=seed)
    for results in ("out_v1", "out_v2"):
        code, _, err = run_cli(["infer", "case1.nii.gz", "case2.nii.gz", "-o", results, "--reference",
                                "case1_label.nii.gz", "--reference", "case2_label.nii.gz"], capsys)
        assert code == 0, err
        code, _, err = run_cli(["report", results, "--max-overlays", "0"], capsys)
        assert code == 0, err
    recipe = _python_blocks()[("docs/cohorts.md", "Results folder", 0)]
    exec(compile(recipe, "docs/cohorts.md (two versions)", "exec"), {})  # noqa: S102 - the page's code, as written
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == ["case_id", "version_v1", "version_v2", "dice_v1", "dice_v2", "change"]
    assert [row[0] for row in lines[1:]] == ["case1", "case2"]
    for row in lines[1:]:
        assert row[1] == row[2] and row[3] == row[4] and row[5] == "+0.0000", row
        assert 0.5 < float(row[3]) <= 1.0, row
