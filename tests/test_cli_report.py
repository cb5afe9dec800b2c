"""`medseg report` from the command line: outputs and their names, the console summary, exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from report_cases import (
    write_case,
)


def test_the_console_summary_counts_one_case_in_the_singular(tmp_path, capsys):
    """It read "1 cases (1 failed, …), 1 overlays"; the workflow's console line is matched in either number."""
    from medseg.cli import main

    empty = tmp_path / "results"
    empty.mkdir()
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\na\ta.nii.gz\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(empty), "--sheet", str(sheet)])
    assert exit_info.value.code == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("1 case (1 failed, 1 flagged for review, failures included), 0 overlays in "), first
    assert '<p class="sub">1 case in <code>' in (empty / "report.html").read_text()  # the page said "1 cases"
    rules = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "cohort.smk").read_text()
    awk = re.search(r"awk '[^/]*/(.*?)/", rules).group(1).replace("\\\\", "\\")  # the shell's \( is awk's
    assert re.match(awk, first) and re.match(awk, "12 cases (0 failed")


def test_the_console_summary_says_failures_included_only_where_a_case_failed(tmp_path, capsys):
    """"1 case (0 failed, 0 flagged for review, failures included)" sent a first-time user looking for failures
    that were not there: the words say that the flagged count includes the failed cases, which only matter where a
    case failed."""
    from medseg.cli import main

    write_case(tmp_path / "results", "c00", 0, "exact")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "results"), "--max-overlays", "0"])
    assert exit_info.value.code == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("1 case (0 failed, 0 flagged for review), 0 overlays in "), first


def test_cli_report(cohort, tmp_path, capsys):
    from medseg.cli import main

    out = tmp_path / "cli" / "report.html"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(cohort), "-o", str(out), "--dice-threshold", "0.95", "--max-overlays", "0"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr().out
    assert "10 cases (1 failed, " in captured and "0 overlays" in captured
    # which case failed and why, on the console: a cohort run's failure is not only in a log or the page
    lines = captured.splitlines()
    assert lines[1] == "failed: crashed: out of memory <in> the 'tiler'" and lines[2].startswith("wrote "), lines
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["settings"]["dice_threshold"] == 0.95
    assert summary["flags"]["low_dice"]["cases"] >= 5  # eroded and shifted balls are under 0.95
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(cohort), "-o", str(out)])
    assert exit_info.value.code == 1
    assert "output exists already; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(cohort), "--dice-threshold", "2"])
    assert exit_info.value.code == 2


def test_cli_report_output_names(cohort, tmp_path, capsys):
    """-o names the HTML page: a table's or a record's name is refused (it would be overwritten by the page or
    by the tables written beside it), a folder gets report.html in it, and the tables are named in full."""
    from medseg.cli import main

    def run(*argv):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(cohort), "--max-overlays", "0", *argv])
        return exit_info.value.code

    case_sidecar = next(cohort.rglob("c00_seg.json"))
    before = case_sidecar.read_bytes()
    for output in (tmp_path / "summary.json", tmp_path / "cohort.tsv", case_sidecar, tmp_path / "page"):
        assert run("-o", str(output), "--overwrite") == 2
        assert (f"-o {output}: give a file name ending in .html or .htm, or a folder (then report.html is written in "
                "it; a new folder's name ends with /)") in capsys.readouterr().err
    assert case_sidecar.read_bytes() == before and sorted(tmp_path.iterdir()) == []
    for folder, argv in ((tmp_path / "new", f"{tmp_path / 'new'}/"), (tmp_path, str(tmp_path))):
        assert run("-o", argv) == 0
        assert sorted(p.name for p in folder.iterdir()) == ["cohort.tsv", "report.html", "summary.json"]
        assert (f"wrote {folder / 'report.html'}, {folder / 'cohort.tsv'} and {folder / 'summary.json'}"
                in capsys.readouterr().out)
        if folder != tmp_path:
            shutil.rmtree(folder)


# a results folder without access at all, or with its files reachable but itself not listable
@pytest.mark.parametrize(("unreadable", "mode"), [("results", 0o000), ("results", 0o311), ("sheet", 0o000)])
def test_a_results_folder_or_sheet_this_user_may_not_read_is_an_error_not_a_usage_error(tmp_path, unreadable, mode,
                                                                                         capsys):
    """click's own check made it a usage error (exit 2, "Try 'medseg report --help'"); a results folder that could
    not be listed read as one holding no results. It is the library's one line now, exit 1, and nothing is written."""

    from conftest import medseg_as_plain_user

    results = tmp_path / "results"
    write_case(results, "case01", seed=1, how="good")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\ncase01\t{results / 'case01.nii.gz'}\n")
    (results if unreadable == "results" else sheet).chmod(mode)
    try:
        run = medseg_as_plain_user(["report", str(results), "--sheet", str(sheet),
                                    "-o", str(tmp_path / "qa") + "/"], capsys)
    finally:
        results.chmod(0o755)
    assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (1, "medseg: error: " + (
        f"{results}: cannot read (permission denied)" if unreadable == "results"
        else f"{sheet}: cannot read the sample sheet (permission denied)")), run.stderr
    assert not (tmp_path / "qa").exists()


@pytest.mark.parametrize(("workflow", "named"), [([], "--max-overlays 0"),
                                                 (["--in-workflow"], "max_overlays: 0 in the workflow config")],
                         ids=["by hand", "in the workflow"])
def test_the_report_of_a_workflow_names_its_config_keys(tmp_path, capsys, workflow, named):
    """The workflow's report job (`medseg report ... --max-overlays 0`) told its user "no overlay: none drawn
    (--max-overlays 0)", an option the user of the workflow never typed: it set max_overlays: in the workflow config.
    Given --in-workflow, as the rules give it, the page names the config's keys; run by hand, the options."""
    from medseg.cli import main

    write_case(tmp_path / "results", "c00", 0, "exact")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "results"), "--max-overlays", "0", *workflow])
    assert exit_info.value.code == 0, capsys.readouterr().err
    page = (tmp_path / "results" / "report.html").read_text()
    assert re.findall(r"no overlay: [^<]*", page) == [f"no overlay: none drawn ({named})"]
