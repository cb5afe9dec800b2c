"""The command line as a newcomer meets it: ``--version``, ``--help`` of every command, typos."""

import os
import subprocess
import sys

import pytest

from medseg import __version__
from medseg.cli import main


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_version_names_the_shipped_models_folder(capsys):
    """``--version`` printed the version alone; where the shipped models lie (the folder ``--model NAME`` reads) and
    which they are was nowhere to be seen without reading the code. The first line is as before, for scripts."""
    from medseg.checkout import source_commit
    from medseg.package import shipped_models, shipped_models_folder

    code, out, err = run(["--version"], capsys)
    lines = out.splitlines()
    assert (code, err, lines[0]) == (0, "", f"medseg, version {__version__}")
    folder = shipped_models_folder()
    assert (folder / "phantom" / "model.json").is_file()
    assert lines[-1] == f"shipped models: {os.fspath(folder)} ({', '.join(shipped_models())})"
    assert "phantom" in shipped_models()
    commit = source_commit()
    assert lines[1:-1] == ([f"commit {commit}"] if commit else [])


def test_version_does_not_import_torch():
    code = ("import sys\nfrom medseg.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\nassert 'torch' not in sys.modules and 'monai' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"medseg, version {__version__}\n") and "shipped models: " in result.stdout


def _commands_section(text: str) -> dict[str, str]:
    """The ``Commands:`` section of a group's help: name → its one-line summary (wrapped lines joined)."""
    rows: dict[str, str] = {}
    section = text.split("\nCommands:\n", 1)[1]
    for line in section.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name, _, summary = line.strip().partition(" ")
            rows[name] = summary.strip()
            last = name
        elif line.strip():
            rows[last] += " " + line.strip()
    return rows


@pytest.mark.parametrize("group", [[], ["cohort"]])
def test_command_summaries_are_whole_sentences(group, capsys, monkeypatch):
    """`medseg cohort --help` cut its subcommands' summaries off mid-sentence ("Whether the cohort in RESULTS
    succeeded as a whole, from...", "Score the cases that have a reference; writes..."), alphabetically listed."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run([*group, "--help"], capsys)
    rows = _commands_section(out)
    assert code == 0 and rows
    for name, summary in rows.items():
        assert summary.endswith(".") and not summary.endswith("..."), (name, summary)
    if group:
        assert list(rows) == ["infer", "evaluate", "check"]  # the workflow's order
        assert rows["check"] == "Exit 1 when the report's failed cases meet --fail-on (the workflow's last step)."
