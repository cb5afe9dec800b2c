"""benchmarks/cohort_planning.py: the sheets it plans and the figures it prints."""

from __future__ import annotations

import importlib.util
import re

import pytest
from conftest import REPO, benchmark_main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake is not installed")


def test_sheets_hold_single_files_or_folders_of_files(tmp_path):
    spec = importlib.util.spec_from_file_location("cohort_planning", REPO / "benchmarks" / "cohort_planning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.write_sheet(tmp_path, "file", 2, 0)
    folders = module.write_sheet(tmp_path, "dicom", 2, 3)
    assert files.read_text().splitlines() == [
        "case_id\timage\treference", f"file00000\t{tmp_path}/file/file00000.nii.gz\t",
        f"file00001\t{tmp_path}/file/file00001.nii.gz\t"]
    rows = [line.split("\t") for line in folders.read_text().splitlines()[1:]]
    assert [row[0] for row in rows] == ["dicom00000", "dicom00001"]
    assert [sorted(p.name for p in (tmp_path / "dicom" / row[0]).iterdir()) for row in rows] == [
        ["IM00000.dcm", "IM00001.dcm", "IM00002.dcm"]] * 2


def test_prints_both_plans_their_ratio_and_the_cost_per_file(capsys):
    main = benchmark_main("cohort_planning")
    assert main(["--cases", "3", "--files-per-case", "2", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "planning (snakemake -n, median of 1) of 3 cases"
    single = float(re.fullmatch(r"  single-file images\s+(\d+\.\d\d) s", lines[1]).group(1))
    many = float(re.fullmatch(r"  folders of 2 files \(6 files\)\s+(\d+\.\d\d) s", lines[2]).group(1))
    ratio = re.fullmatch(r"  ratio (\d+\.\d\d); -?\d+\.\d\d s more per 10 000 files", lines[3]).group(1)
    assert float(ratio) == pytest.approx(many / single, abs=0.02)


def test_counts_below_one_are_a_usage_error():
    main = benchmark_main("cohort_planning")
    with pytest.raises(SystemExit) as exit_info:
        main(["--cases", "0"])
    assert exit_info.value.code == 2


def test_plans_with_this_interpreters_snakemake(tmp_path, monkeypatch, capsys):
    """The interpreter's snakemake module, not a ``snakemake`` file beside the interpreter, which a user install or
    a wrapper does not have (it had ended in a FileNotFoundError traceback)."""
    import sys

    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))
    main = benchmark_main("cohort_planning")
    assert main(["--cases", "1", "--files-per-case", "1", "--repeats", "1"]) == 0
    assert capsys.readouterr().out.startswith("planning (snakemake -n, median of 1) of 1 case\n")
