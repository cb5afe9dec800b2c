"""The "Using medseg from Python" examples (docs/python-api.md) run as written, and give what the text says they
give."""

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

    exec(compile(second, f"{PAGE} (training)", "exec"), namespace)
    package = namespace["package"]
    assert package.name == "my_phantoms" and package.config["training"]["epochs_run"] == 2
    assert sorted(p.name for p in (tmp_path / "my_model").iterdir() if not p.name.startswith(".")) == [
        "MODEL_CARD.md", "model.json", "weights.safetensors"]
    from medseg.inference import Segmenter

    assert Segmenter("my_model", device="cpu").package.sha256 == package.sha256
