"""The command line as a newcomer meets it: ``--version``, ``--help`` of every command, typos, usage errors."""

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import run_cli

from medseg import __version__

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_version_names_the_shipped_models_folder(capsys):
    """``--version`` printed the version alone; where the shipped models lie (the folder ``--model NAME`` reads) and
    which they are was nowhere to be seen without reading the code. The first line is as before, for scripts."""
    from medseg.checkout import source_commit
    from medseg.package import shipped_models, shipped_models_folder

    commit = source_commit()  # worked out before: a checkout git refuses is told once, here, not on stderr below
    code, out, err = run(["--version"], capsys)
    lines = out.splitlines()
    assert (code, err, lines[0]) == (0, "", f"medseg, version {__version__}")
    folder = shipped_models_folder()
    assert (folder / "phantom" / "model.json").is_file()
    assert lines[-1] == f"shipped models: {os.fspath(folder)} ({', '.join(shipped_models())})"
    assert "phantom" in shipped_models()
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


def help_of(command, capsys) -> str:
    """``medseg COMMAND --help`` with its line wrapping undone."""
    code, out, err = run([*command, "--help"], capsys)
    assert (code, err) == (0, "")
    return " ".join(out.split())


@pytest.mark.parametrize(("command", "named"), [
    (["infer"], ["-o, --output, --output-dir DIRECTORY Folder for outputs, made if missing (default: beside each "
                 "input).",
                 "--overlap FLOAT RANGE Overlap of neighbouring tiles, a fraction of the tile (default: the model's",
                 "auto: the first CUDA GPU, else Apple MPS, else the CPU.",
                 "auto: fp16 on CUDA, fp32 on the CPU and MPS; fp16 needs CUDA;",
                 "or a DICOM SEG: of a DICOM input, or of the series an input image was converted from",
                 "A multi-modal model takes a 4D NIfTI of its modalities, or a case's nnU-Net channel files"]),
    (["cohort", "infer"], ["a fraction of the tile", "The memory this job has, in MB",
                           "The memory of the job's last retry, in MB", "auto: the first CUDA GPU"]),
    (["cohort", "evaluate"], ["The memory this job has, in MB"]),
    (["evaluate"], ["Score the label image PREDICTION against REFERENCE: per-label Dice, HD95 and ASSD (mm), volumes "
                    "and false positive / negative volumes (ml).",
                    "else those of a Decathlon / nnU-Net dataset.json (see above), else every value present",
                    "--case-id ID Case identifier to record",
                    "the .nii/.nii.gz files (.nii.bz2, .nii.zst too; .nrrd, .nhdr, .mha, .mhd with the itk extra; 3D "
                    "Slicer's "
                    "case.seg.nrrd or case.seg.nhdr is case case;",
                    "without a sidecar, or whose recorded series has since moved or been deleted (a NIfTI prediction "
                    "keeps its grid), by its frames' own position, orientation and spacing"]),
    (["train"], ["Train a slice-wise U-Net (2D, or 2.5D with neighbouring slices as channels) on labelled NIfTI",
                 "Folder of images (.nii, .nii.gz; .nrrd, .nhdr, .mha, .mhd with the itk extra;", "[default: cpu]",
                 "Override training.epochs (default: the config's, else 20).",
                 "Override training.steps_per_epoch (default: the config's, else 100);",
                 "Override training.seed (default: the config's, else 0).",
                 "Override training.fold (default: the config's, else 0):"]),
    (["synth"], ["Voxels along each axis"]),
    (["models"], ["--json Print the packages as a JSON list (one object each) instead of text."]),
    (["convert"], ["the affine maps voxels to RAS+ mm"]),
    ([], ["-q, --quiet Errors only: no progress, warning or result lines"]),
])
def test_option_help_gives_units_and_what_defaults_do(command, named, capsys):
    """Option help that left out a unit or what its default does: --overlap (a fraction? voxels?), --memory-mb's MB,
    what --device auto picks and --precision auto on MPS; evaluate's --model default skipped the dataset.json it
    reads; train's summary said "the classic 2D U-Net" where its default is 2.5D, "Folder of images" not which, and
    its --epochs, --steps-per-epoch, --seed and --fold "Override training.X" without the value they override; infer's
    --reference took a DICOM SEG "of a DICOM input" only, where one of a converted series is placed on the image, and
    its summary left out the multi-modal inputs."""
    from medseg.train_config import DEFAULT_TRAINING

    assert [DEFAULT_TRAINING[key] for key in ("epochs", "steps_per_epoch", "seed", "fold")] == [20, 100, 0, 0]
    text = help_of(command, capsys)
    for words in named:
        assert words in text, words


COMMANDS = [["infer"], ["evaluate"], ["train"], ["report"], ["convert"], ["inspect"], ["models"], ["synth"], ["verify"],
            ["cohort"], ["cohort", "infer"], ["cohort", "evaluate"], ["cohort", "check"], []]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "medseg")
def test_every_help_ends_with_a_real_example(command, capsys):
    """Each command's help shows how it is called: a ``$ medseg ...`` line naming the command itself."""
    code, out, _ = run([*command, "--help"], capsys)
    examples = [line.strip() for line in out.splitlines() if line.strip().startswith("$ medseg")]
    assert code == 0 and examples, out
    assert any(line.startswith(" ".join(["$ medseg", *command])) for line in examples), examples


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "medseg")
def test_every_help_fits_80_columns(command, capsys, monkeypatch):
    """At COLUMNS=80 click wraps the option and prose text, but not the examples (kept as typed, ``\\b``): `medseg`'s,
    infer's, evaluate's, train's, verify's and cohort infer's ran to 81-109 columns and wrapped in the terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0 and [line for line in out.splitlines() if len(line) > 80] == []


@pytest.mark.parametrize(("command", "option", "words"), [
    (["infer"], "--reference", "default: none, nothing scored"),
    (["infer"], "--series", "default: the only series that qualifies; where several do, the run asks for this"),
    (["convert"], "--series", "default: the only series that qualifies; where several do, the run asks for this"),
    (["inspect"], "--series", "default: none; the listing says which would be used"),
    (["synth"], "--label", "default: none"),
    (["evaluate"], "--images", "default: none"),
    (["report"], "--sheet", "default: none: the cases found in RESULTS_DIR alone"),
    ([], "--verbose", "default: warnings and results only"),
])
def test_options_without_a_shown_default_say_what_leaving_them_out_does(command, option, words):
    """Options whose default is 'not given' said nothing of what a run without them does."""
    found = next(p for p in _click_command(command).params if option in p.opts)
    assert words in " ".join(found.help.split())


def _click_command(command):
    import click

    from medseg.cli import cli

    found = cli
    for name in command:
        found = found.get_command(click.Context(found), name)
    return found


def test_workflow_only_options_stay_hidden(capsys):
    """--in-run and --planned-sha256 are the workflow's own (set through environment variables by the Snakefile);
    they work, but a user's --help does not list them."""
    for command in (["cohort", "infer"], ["cohort", "evaluate"]):
        hidden = {name for param in _click_command(command).params if getattr(param, "hidden", False)
                  for name in param.opts}
        assert "--in-run" in hidden
        text = help_of(command, capsys)
        assert "--in-run" not in text and "--planned-sha256" not in text and "MEDSEG_COHORT_RUN" not in text
    assert "--planned-sha256" in {name for param in _click_command(["cohort", "infer"]).params for name in param.opts}


@pytest.mark.parametrize(("command", "args", "alias", "param"), [
    (["infer"], ["scan.nii.gz"], "--output", "output_dir"),
    (["train"], ["--images", "i", "--labels", "l"], "--output-dir", "output"),
    (["cohort", "infer"], ["samples.tsv"], "--output", "results"),
    (["cohort", "evaluate"], ["samples.tsv"], "--output", "results"),
])
def test_output_options_take_the_other_commands_names(command, args, alias, param, capsys):
    """One concept, one set of names: infer's folder was only -o/--output-dir, evaluate's, report's and train's only
    -o/--output, cohort's only -o/--results, so that ``medseg infer --output out`` was a usage error. --output works
    wherever -o does, --output-dir wherever -o names a folder; the old names stay, and --help lists them on the one
    line of the option."""
    from pathlib import Path

    found = _click_command(command)
    context = found.make_context(" ".join(command), [*args, alias, "out"])
    assert context.params[param] == Path("out")
    option = next(option for option in found.params if option.name == param)
    assert option.opts[0] == "-o" and alias in option.opts
    assert f"-o, {', '.join(option.opts[1:])} DIRECTORY" in help_of(command, capsys)


def _readme_row(command: str) -> str:
    from documents import read, section

    commands = section(read("README.md"), "Commands")
    rows = [line for line in commands.splitlines() if line.startswith(f"| `medseg {command} ")]
    assert len(rows) == 1, command
    return rows[0]


def test_the_readmes_tour_runs_every_command():
    """The README's tour of the commands shows each command of `medseg --help` typed out (`$ medseg NAME ...`), the
    cohort's Snakemake run with it, and sends the reader to the reference page of each subject. `medseg verify` of a
    folder, which checks a batch's or a cohort's every sidecar, was named only in the table under *Commands*."""
    from documents import read, section

    from medseg.cli import cli

    tour = section(read("README.md"), "A tour of the commands")
    typed = set(re.findall(r"(?m)^\$ medseg (\w+)", tour))
    commands = cli.list_commands(click.Context(cli))  # the group loads its commands lazily: `cli.commands` is empty
    assert len(commands) == 10 and sorted(set(commands) - typed) == []
    assert re.search(r"(?m)^\$ medseg verify [\w./-]+/$", tour)
    assert re.search(r"(?m)^\$ snakemake .*--config samples=", tour)
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", tour))
    assert sorted(linked) == sorted(f"docs/{page}" for page in (
        "cohorts.md", "cohorts-failures.md", "cohorts-slurm.md", "dicom.md", "errors.md", "infer.md", "metrics.md",
        "models.md", "python-api.md", "report.md", "training.md"))


def test_the_wheel_section_names_every_command_it_runs():
    """*Installing the wheel* lists the commands that work from the wheel alone; `verify` was left out of it."""
    from documents import read, section

    from medseg.cli import cli

    wheel = section(read("README.md"), "Installing the wheel")
    listed = wheel[wheel.index("So every command works"):wheel.index("and the Python API")]
    commands = cli.list_commands(click.Context(cli))
    assert len(commands) == 10 and sorted(name for name in commands if f"`{name}" not in listed) == []



@pytest.mark.parametrize("command", ["infer", "evaluate", "train", "report", "convert", "inspect", "models", "synth",
                                     "verify"])
def test_readme_command_table_names_every_option(command):
    """The README's table of commands names each option a command's --help lists (long or short form)."""
    row = _readme_row("convert" if command == "inspect" else command)
    if command in ("convert", "inspect"):  # one row for both
        row = row.split("medseg inspect", 1)[command == "inspect"]
    for param in _click_command([command]).params:
        if param.param_type_name != "option" or param.hidden:
            continue
        assert any(f"{name} " in row or f"{name}]" in row for name in param.opts), (command, param.opts)



@pytest.mark.parametrize(("args", "said"), [
    (["infr"], "medseg: error: No such command 'infr'. Did you mean 'infer'? Try 'medseg --help'.\n"),
    (["check", "results"], "medseg: error: No such command 'check'. Did you mean 'medseg cohort check'? Try "
                           "'medseg --help'.\n"),
    (["segment"], "medseg: error: No such command 'segment'. Commands: infer, models, synth, train, evaluate, report, "
                  "convert, inspect, verify, cohort. Try 'medseg --help'.\n"),
    (["cohort", "evalute"], "medseg cohort: error: No such command 'evalute'. Did you mean 'evaluate'? Try 'medseg "
                            "cohort --help'.\n"),
])
def test_a_mistyped_command_gets_a_suggestion(args, said, capsys):
    """A typo is one line that names the likely command; `medseg check` (cohort's subcommand, given without `cohort`)
    said only "No such command 'check'" and listed the commands."""
    code, out, err = run(args, capsys)
    assert (code, out, err) == (2, "", said)


def test_medseg_alone_shows_its_commands(capsys):
    code, out, err = run([], capsys)
    assert code in (0, 2)  # click 8.2 and later: 2, the help on stderr
    assert "Commands:" in out + err and "  cohort " in out + err


def test_an_unknown_command_does_not_import_torch():
    code = ("import sys\nfrom medseg.cli import main\ntry:\n    main(['check'])\nexcept SystemExit as e:\n"
            "    assert e.code == 2, e.code\nassert 'torch' not in sys.modules and 'monai' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Did you mean 'medseg cohort check'?" in result.stderr


@pytest.mark.parametrize(("command", "first"), [
    (["evaluate"], "Score the label image PREDICTION against REFERENCE:"),
    (["cohort", "infer"], "Segment the cases of the sample sheet SAMPLES into RESULTS/cases/<id>/"),
    (["cohort", "evaluate"], "Score the cases of the sample sheet SAMPLES that have a reference;"),
])
def test_help_starts_with_what_the_command_does_to_its_arguments(command, first, capsys):
    """evaluate's help began with a list of figures, not with what it does to PREDICTION and REFERENCE; the cohort
    steps' did not say that SAMPLES is the sample sheet (told only in `medseg cohort --help`)."""
    code, out, _ = run([*command, "--help"], capsys)
    usage, blank, *described = out.splitlines()
    assert (code, blank) == (0, "") and " ".join(" ".join(described).split()).startswith(first), described[:3]


def test_top_level_help_shows_a_first_run(capsys):
    """`medseg --help` showed infer alone: not how to see the models there are, or get an image to try them on."""
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "$ medseg models " in out and "$ medseg synth demo.nii.gz --label demo_label.nii.gz" in out
    assert "Each command's --help gives its options and examples." in out


def test_no_help_imports_torch():
    """Every command's --help answers at once: none imports torch, MONAI or matplotlib (seconds each)."""
    commands = [command for command in COMMANDS if command]
    code = "\n".join([
        "import contextlib, io, sys",
        "from medseg.cli import main",
        f"for command in {commands!r}:",
        "    with contextlib.redirect_stdout(io.StringIO()):",
        "        try:",
        "            main([*command, '--help'])",
        "        except SystemExit as e:",
        "            assert e.code == 0, (command, e.code)",
        "    loaded = [name for name in ('torch', 'monai', 'matplotlib') if name in sys.modules]",
        "    assert not loaded, (command, loaded)",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_evaluate_help_tells_of_box_references_seg_nhdr_and_seg_references_stored_under_their_uid(capsys,
                                                                                                   monkeypatch):
    """`medseg evaluate --help` said both images must be on the same grid and that folders pair SEG references named
    case.dcm or case_seg.dcm only: a reference cropped to a box of the prediction's grid (zero-padded), 3D Slicer's
    detached case.seg.nhdr and a SEG reference stored under its UID (paired by the series it references), which
    evaluate takes, were not named."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(["evaluate", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    assert "one cropped to a box of that grid (as 3D Slicer saves a segmentation) is zero-padded onto it" in text
    assert "3D Slicer's case.seg.nrrd or case.seg.nhdr is case case" in text
    assert ("or stored under their UID, which pair with the prediction made from the series they reference" in text)


def test_evaluate_help_tells_that_a_seg_reference_of_a_converted_image_is_placed_by_its_geometry(capsys, monkeypatch):
    """`medseg evaluate --help` said a DICOM SEG is placed on the series the prediction's sidecar records only: a
    prediction of dcm2niix's NIfTI of the series has its SEG reference placed by the frames' own geometry."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(["evaluate", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and ("or, for a prediction made from an image file (dcm2niix's NIfTI of the series), without a "
                          "sidecar, or whose recorded series has since moved or been deleted (a NIfTI prediction keeps "
                          "its grid), by its frames' own position, orientation and spacing on the prediction's grid "
                          "(refused where they are off its voxel lattice)") in text


def test_usage_errors_exit_2(tmp_path, capsys):
    assert run(["infer"], capsys)[0] == 2
    assert run(["infer", "x.nii.gz", "--batch-size", "0"], capsys)[0] == 2
    assert run(["nonsense"], capsys)[0] == 2


@pytest.mark.parametrize("args, line", [
    # click 8.4 and later word it "No such option '--bogus'."; 8.2 and 8.3, within the declared range, "No such
    # option: --bogus"
    (["infer", "--bogus", "x.nii.gz"], ("medseg infer: error: No such option '--bogus'. Try 'medseg infer --help'.",
                                        "medseg infer: error: No such option: --bogus. Try 'medseg infer --help'.")),
    (["infer"], "medseg infer: error: Missing argument 'INPUTS...'. Try 'medseg infer --help'."),
    (["train", "--images"], "medseg train: error: Option '--images' requires an argument. Try 'medseg train --help'."),
    (["-v", "cohort", "infer", "s.tsv", "-o"],
     "medseg cohort infer: error: Option '-o' requires an argument. Try 'medseg cohort infer --help'."),
    (["infer", "x.nii.gz", "--batch-size", "0"],
     "medseg infer: error: Invalid value for '--batch-size': 0 is not in the range x>=1. Try 'medseg infer --help'."),
    (["infer", "x.nii.gz", "--precision", "v1.2..."], "medseg infer: error: Invalid value for '--precision': "
     "'v1.2...' is not one of 'auto', 'fp32', 'bf16', 'fp16'. Try 'medseg infer --help'."),
    (["nonsense"], "medseg: error: No such command 'nonsense'. Commands: infer, models, synth, train, evaluate, "
                   "report, convert, inspect, verify, cohort. Try 'medseg --help'."),
    # an unset shell variable (-o "$OUT"): outputs went into the current folder
    (["infer", "x.nii.gz", "-o", ""], "medseg infer: error: Invalid value for '-o' / '--output' / '--output-dir': an "
     "empty path (an unset shell variable?). Try 'medseg infer --help'."),
    (["train", "--images", "", "--labels", "l", "-o", "m"], "medseg train: error: Invalid value for '--images': an "
     "empty path (an unset shell variable?). Try 'medseg train --help'."),
    (["evaluate", "p.nii.gz", "r.nii.gz", "-o", ""], "medseg evaluate: error: -o: an empty path (an unset shell "
     "variable?). Try 'medseg evaluate --help'."),
    (["report", "results", "-o", ""], "medseg report: error: -o: an empty path (an unset shell variable?). Try "
     "'medseg report --help'."),
])
def test_a_usage_error_is_one_line_naming_the_command(args, line, capsys):
    """Like every other error, a usage error is one line (click's own form is a usage block, a blank line and the
    error); it names the command and where its options are listed, and exits 2. ``line``: the line, or the lines
    that the click versions medseg takes word it as."""
    code, out, err = run(args, capsys)
    assert code == 2 and out == "" and err in {each + "\n" for each in ([line] if isinstance(line, str) else line)}


def _without_torch(commands: list[list[str]], exit_code: int) -> subprocess.CompletedProcess:
    """Run ``medseg`` ``commands`` in one fresh interpreter, each expected to exit with ``exit_code``, and fail there
    if torch or MONAI was imported on the way (they take seconds)."""
    code = (
        "import sys\nfrom medseg.cli import main\n"
        f"for args in {commands!r}:\n"
        f"    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == {exit_code}, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'monai' not in sys.modules, 'monai imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_help_is_fast_and_does_not_import_torch():
    result = _without_torch([["--help"]], 0)
    assert "infer" in result.stdout and "models" in result.stdout
    # nor does a usage error of infer's (it took three seconds to say that --reference was given once for two)
    result = _without_torch([["infer", "a.nii.gz", "b.nii.gz", "--reference", "r.nii.gz"],
                             ["infer", "a", "b", "--series", "3"]], 2)
    assert "--reference was given once for 2 inputs" in result.stderr
    assert "--series applies to one DICOM folder at a time" in result.stderr
    # nor does a training folder that is not there
    result = _without_torch([["train", "--images", "no-images", "--labels", "no-labels", "-o", "m"]], 1)
    # which folder of the two, as "no such sample sheet" and "no such results folder" say it (was "no such folder")
    assert result.stderr.strip() == "medseg: error: no-labels: no such labels folder"


def test_help_of_an_installed_copy():
    """`medseg --help` and a bare `medseg` listed the commands with ``importlib.util``, which ``import importlib``
    does not import: a non-editable install (no ``.pth`` hook that imports it first) failed with a traceback.
    Here site-packages is on the path without its ``.pth`` files run, as for an installed copy."""
    import site

    import medseg

    path = os.pathsep.join([str(Path(medseg.__file__).resolve().parents[1]), *site.getsitepackages()])
    code = "import sys\nfrom medseg.cli import main\nsys.exit(main(sys.argv[1:]))"
    for args in (["--help"], []):
        result = subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PYTHONPATH": path})
        assert result.returncode == 0 if args else result.returncode in (0, 2), result.stderr  # click 8.2: 2
        assert "Traceback" not in result.stderr
        listed = result.stdout if args else result.stderr + result.stdout
        assert all(f"  {name} " in listed for name in ("infer", "models", "train", "report", "cohort")), listed


def test_version_without_installed_metadata(monkeypatch, capsys):
    """A source tree run without installing it (``PYTHONPATH=.``) has no package metadata: ``--version`` read it
    and ended in a traceback ("'medseg' is not installed")."""
    import importlib.metadata

    import medseg

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    code, out, err = run(["--version"], capsys)
    assert (code, out.splitlines()[0], err) == (0, f"medseg, version {medseg.__version__}", "")


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "medseg", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "0.1.0" in result.stdout


@pytest.mark.parametrize("args", [[], ["cohort"]])
def test_a_group_called_alone_shows_its_help(args, capsys):
    """Click raises the help of `medseg` or `medseg cohort` without a command as a usage error: it stays the help,
    not one line of it."""
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"Usage: {' '.join(['medseg', *args])} [OPTIONS] COMMAND [ARGS]...\n") and "\\n" not in err


def test_a_mistyped_command_or_a_global_option_after_the_command_gets_a_hint(capsys):
    code, _, err = run(["infr", "x.nii.gz"], capsys)
    assert code == 2 and err == "medseg: error: No such command 'infr'. Did you mean 'infer'? Try 'medseg --help'.\n"
    code, _, err = run(["infer", "x.nii.gz", "-q"], capsys)
    hint = "(-q is an option of medseg itself: medseg -q COMMAND …)"
    assert code == 2 and err in {  # click 8.4 and later's words, then 8.2 and 8.3's
        f"medseg infer: error: No such option '-q'. {hint}. Try 'medseg infer --help'.\n",
        f"medseg infer: error: No such option: -q {hint}. Try 'medseg infer --help'.\n"}


def test_help_texts_name_what_the_commands_write_and_flag(capsys):
    """What the README says each command does, in its --help too (a newcomer's reading found these missing)."""
    def help_of(*command):
        code, out, _ = run([*command, "--help"], capsys)
        assert code == 0
        return " ".join(out.split())

    assert "with --reference <stem>_metrics.json (Dice, HD95, ASSD, volumes per label)" in help_of("infer")
    synth = help_of("synth")
    assert "--shape X Y Z Voxels along each axis (at most 512³ in all" in synth
    assert "the same seed writes the same phantom" in synth
    assert "those not yet segmented are named, and none is scored" in help_of("cohort", "evaluate")


@pytest.mark.parametrize(("command", "option", "value"), [
    ("infer", "--overlap", "nan"), ("report", "--dice-threshold", "nan"), ("report", "--outlier-z", "inf"),
    ("report", "--outlier-z", "nan")])
def test_options_refuse_numbers_that_are_not_finite(tmp_path, capsys, command, option, value):
    """NaN passes every bound of a FloatRange: the report crashed with a traceback, sidecars got NaN (not JSON)."""
    target = tmp_path / ("x.nii.gz" if command == "infer" else "results")
    code, out, err = run([command, str(target), option, value], capsys)
    assert (code, out) == (2, "")
    assert f"Invalid value for '{option}': '{value}' is not a finite number." in err


def test_version_tells_when_git_cannot_say_whether_the_checkout_was_changed(tmp_path, monkeypatch, capsys):
    """--version runs before the command line sets up its log output: the warning that git could not tell whether the
    checkout had uncommitted changes (not installed, a checkout it refuses) was lost, and the commit, without -dirty,
    read as that commit's own files."""
    from medseg import checkout

    (tmp_path / "medseg").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "medseg"\n')
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("a" * 40 + "\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    monkeypatch.setattr(checkout, "__file__", str(tmp_path / "medseg" / "checkout.py"))
    checkout.source_commit.cache_clear()
    try:
        code, out, err = run(["--version"], capsys)
    finally:
        checkout.source_commit.cache_clear()
    assert (code, out.splitlines()[1]) == (0, f"commit {'a' * 40}")
    assert err == (f"warning: {tmp_path}: cannot tell whether the checkout medseg runs from has uncommitted changes "
                   "(git is not installed); the commit recorded as medseg_commit is its own, without -dirty\n")


def test_cohort_evaluate_threads_are_not_torchs(capsys):
    """``medseg cohort evaluate --help`` called its --threads "CPU threads for torch", and advised 1 on a busy
    machine as for inference: a scoring job imports no torch; the threads are those of its surface distance
    searches, by default the CPUs the process may use. Inference's --threads still names torch."""
    text = help_of(["cohort", "evaluate"], capsys)
    threads = text.split("--threads INTEGER RANGE ", 1)[1].split(" --memory-mb", 1)[0]
    assert threads == ("CPU threads for the surface distances' searches (default: the CPUs this process may use, at "
                       "most a cgroup's CPU quota). Results do not depend on it; torch is not used. [x>=1]")
    assert "CPU threads for torch (default: torch's own choice" in help_of(["cohort", "infer"], capsys)


def test_threads_advice_is_the_measured_one(capsys):
    """infer's --threads help said "on a busy shared machine 1 is often fastest", and the README's Figures "give
    --threads 1" where a busy machine made a case 5-60 times as long: advice from when torch's threads spun. Since
    they wait passively, two threads beat one by 3.7x with busy processes added and one beat two by up to a third
    with others' work alone (docs/infer.md, *Devices and precision*): one thread is worth a try, not the rule."""
    from documents import read

    text = help_of(["infer"], capsys)
    assert "Results do not depend on it; where others' work keeps every CPU busy, 1 may be faster (worth a try)." in (
        text)
    assert "often fastest" not in text
    readme = read("README.md")
    figures = readme[readme.index("\n## Figures\n"):readme.index("\n## Licence and attribution\n")]
    assert "give `--threads 1`" not in figures
    assert "the command's threads now\nwait passively" in figures


@pytest.mark.parametrize("command", [["cohort", "infer"], ["cohort", "evaluate"], ["cohort", "check"]],
                         ids=" ".join)
def test_every_cohort_option_states_its_default(command, capsys, monkeypatch):
    """`medseg cohort`'s --record, --memory-mb, --attempt, --time-limit, --redo and --job-log said nothing of what a
    step without them does: each visible option that is not required shows its default or says it, within the 80
    columns of every --help."""
    import click

    unstated = []
    for param in _click_command(command).params:
        if not isinstance(param, click.Option) or param.hidden or param.required:
            continue
        shown = param.show_default and param.default is not None
        if not shown and "default:" not in " ".join((param.help or "").split()):
            unstated.append(param.opts[-1])
    assert unstated == []
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0 and [line for line in out.splitlines() if len(line) > 80] == []
