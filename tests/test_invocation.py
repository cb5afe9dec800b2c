"""Which Snakemake command lines only preview the workflow (and so must change nothing in the results)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from medseg.cohort import (
    claims_results,
    dropped_profile_config,
    forced_jobs,
    forget_forced_run,
    hooks_skipped,
    hooks_skipped_by,
    previewing,
    redo_for_job,
    redo_values,
    repeated_config,
    stopped_forced_run,
    writes_results,
)


@pytest.mark.parametrize(("argv", "expected"), [
    (["-n"], True), (["--dry-run", "--cores", "2"], True), (["-np", "--cores", "1"], True), (["--unlock"], True),
    (["--lint"], True), (["--summary"], True), (["-S"], True), (["--list-rules"], True), (["--touch"], True),
    (["--executor", "dryrun"], True), (["--executor=touch"], True), (["--dag"], True),
    (["--cores", "2"], False), (["--profile", "profiles/slurm", "--config", "device=cuda"], False),
    (["-j", "4", "-k"], False), (["--config", "note=-n"], False), (["-s", "Snakefile", "-c2"], False),
    (["--executor", "slurm"], False), ([], False),
    # Snakemake takes an unambiguous prefix for the option: a dry run typed short is still one
    (["--dry-r", "--cores", "1"], True), (["--summ"], True), (["--list-ch"], True), (["--exec", "dryrun"], True),
    (["--exe=touch"], True),
    (["--d"], True), (["--no-such-option"], True),  # Snakemake refuses them and runs nothing
    (["--report-after-run"], False), (["--exec", "slurm"], False), (["--rerun-inc", "--cores", "1"], False),
    # an option by another of its names; a deployment setting of a real run; a report made after running
    (["--lu"], True), (["--lt"], True), (["--li"], True), (["--container-cleanup-images"], True),
    (["--conda-cleanup-pkgs", "tarballs", "--use-conda"], False), (["--conda-cleanup-p", "cache"], False),
    (["--report", "r.html", "--report-after-run"], False), (["--report", "r.html"], True),
    (["--report-after-run", "-n"], True),
    # a short option's attached value is not read as more options: -call is --cores all, -edryrun the dry run
    (["-call"], False), (["-jall"], False), (["-qall"], False), (["-junlimited"], False), (["-kn"], True),
    (["-edryrun"], True), (["-eslurm"], False), (["-Z"], True),
])
def test_previewing(argv, expected):
    assert previewing(argv) is expected


def test_a_second_config_is_told_with_what_it_dropped(tmp_path):
    """Snakemake keeps the last --config alone: `--config samples=... results=... --config device=cuda` ran the
    example sheet into the example results, `--config device=cuda --config samples=...` ran on the CPU."""
    assert repeated_config(["--profile", "profiles/slurm", "--config", "samples=/d/my.tsv", "results=/d/out",
                            "--config", "device=cuda"]) == (
        "--config given 2 times: Snakemake keeps the last one's settings alone (device=cuda) and drops the others' "
        "(samples=/d/my.tsv results=/d/out); give every KEY=VALUE after one --config")
    # by its short name too, and a dry run as well (it showed the plan of the wrong settings)
    assert "drops the others' (device=cuda)" in repeated_config(["-n", "--config", "device=cuda", "-C", "samples=a"])
    assert repeated_config(["--config", "samples=a", "device=cuda", "-n", "--cores", "2"]) is None
    assert repeated_config(["-n"]) is None and repeated_config([]) is None
    # a profile's config: is not a second --config (the command line's replaces it, as Snakemake documents)
    (tmp_path / "config.yaml").write_text("config:\n  device: cpu\n")
    assert repeated_config(["--profile", str(tmp_path), "--config", "samples=a"]) is None
    assert repeated_config(["--no-such-option", "--config", "a=1", "--config", "b=2"]) is None  # Snakemake refuses it


def test_a_second_config_that_drops_no_setting_is_let_through():
    """An empty --config, or one whose keys the last --config sets again, loses nothing: it was refused, the error
    saying it dropped "nothing"."""
    assert repeated_config(["--config", "--config", "samples=a", "-n"]) is None
    assert repeated_config(["--config", "samples=a", "--config", "samples=b", "device=cuda"]) is None
    # what is dropped is named alone, not the keys the last one sets again
    assert repeated_config(["-C", "samples=a", "device=cuda", "-C", "samples=b"]) == (
        "--config given 2 times: Snakemake keeps the last one's settings alone (samples=b) and drops the others' "
        "(device=cuda); give every KEY=VALUE after one --config")


def test_a_profiles_config_that_the_command_lines_drops_is_told(tmp_path):
    """A --config on the command line replaces a profile's config: whole (Snakemake keeps one), so a copy of the SLURM
    profile that sets device=cuda ran on the CPU once the README's --config samples=... was given, without a word."""
    (tmp_path / "config.yaml").write_text("config:\n  device: cuda\n  cases_per_job: 20\n")
    profile = ["--profile", str(tmp_path)]
    assert dropped_profile_config([*profile, "-n", "--config", "samples=a", "cases_per_job=50"]) == (
        "profile config device=cuda: dropped, as a --config on the command line replaces a profile's config: whole "
        "(Snakemake keeps one); give it among the command line's --config settings too")
    # nothing dropped: no --config on the command line, or one that sets every key again
    assert dropped_profile_config([*profile, "-n"]) is None
    assert dropped_profile_config([*profile, "--config", "device=cpu", "cases_per_job=1"]) is None
    assert dropped_profile_config(["--config", "samples=a"]) is None
    # a program's own command line (Snakemake's Python API): the settings Snakemake read are not its last --config
    assert dropped_profile_config([*profile, "--config", "samples=a"], config_args=None) is None
    assert dropped_profile_config([*profile, "--config", "samples=a"], config_args=["samples=a"]) is not None


def test_the_profile_whose_config_gave_the_runs_settings_is_found(tmp_path):
    """A profile's ``config:`` reaches the workflow as Snakemake's --config settings: a refused one was named
    "(set by --config cases_per_job=0)", an option the user never typed. The profile file that gave them is found (the
    last profile's config: wins whole, as Snakemake reads them); none where the command line gives --config itself."""
    from medseg.cohort.invocation import config_profile

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "config.yaml").write_text("config:\n  cases_per_job: 0\n")
    (second / "config.yaml").write_text("config:\n  - device=cpu\n")
    assert config_profile(["--profile", str(first), "-n"]) == str(first / "config.yaml")
    assert config_profile(["--profile", str(first), "--profile", str(second), "-n"]) == str(second / "config.yaml")
    assert config_profile(["--profile", str(first), "-n", "--config", "samples=a"]) is None
    assert config_profile(["-n"]) is None
    # a program's own command line (Snakemake's Python API): the settings Snakemake read are not the profile's
    assert config_profile(["--profile", str(first), "-n"], config_args=["samples=a"]) is None
    assert config_profile(["--profile", str(first), "-n"], config_args=["cases_per_job=0"]) == str(
        first / "config.yaml")


def test_a_programs_own_options_are_not_read_as_snakemakes_config():
    """Through Snakemake's Python API the command line is the program's own: its options were read as Snakemake's,
    and a program given `--config a.yaml --config b.yaml` of its own was refused. The settings Snakemake read
    (``config_args``) tell whether the command line is the one Snakemake ran with."""
    argv = ["--config", "a.yaml", "--config", "b.yaml"]
    assert repeated_config(argv, config_args=None) is None
    assert repeated_config(argv, config_args=["samples=x"]) is None
    assert repeated_config(argv, config_args=["b.yaml"]) == (
        "--config given 2 times: Snakemake keeps the last one's settings alone (b.yaml) and drops the others' "
        "(a.yaml); give every KEY=VALUE after one --config")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--cores", "1", "--no-hooks"], True), (["--no-hooks", "--cores=2", "--nolock"], True), (["--no-h"], True),
    (["--cores", "1"], False), (["-n", "--no-hooks"], False), (["--no-hooks", "--unlock"], False),
])
def test_a_run_without_hooks_is_told(argv, expected, tmp_path):
    """--no-hooks skipped the workflow's onstart (its batch plan, its run record), onsuccess and onerror: a run with
    it (also set in a profile) is refused; a preview, which runs no hook anyway, is not."""
    assert hooks_skipped(argv) is expected
    (tmp_path / "config.yaml").write_text("no-hooks: true\ncores: 1\n")
    assert hooks_skipped(["--profile", str(tmp_path)]) is True


@pytest.mark.parametrize(("no_hooks", "executor", "expected"), [
    (True, {}, True), (False, {}, False), (True, {"dryrun_exec": True}, False), (True, {"touch_exec": True}, False),
    (None, {}, False)])
def test_a_run_without_hooks_is_told_from_the_settings_of_snakemakes_api(no_hooks, executor, expected):
    """Snakemake's Python API carries --no-hooks in its ExecutionSettings, not on a command line; a dry run or --touch
    is let through, as on the command line, and settings that do not say (another Snakemake) are not refused."""
    from types import SimpleNamespace

    settings = SimpleNamespace() if no_hooks is None else SimpleNamespace(no_hooks=no_hooks)
    common = {"dryrun_exec": False, "touch_exec": False, **executor}
    assert hooks_skipped_by(settings, SimpleNamespace(common_settings=SimpleNamespace(**common))) is expected
    assert hooks_skipped_by(settings, None) is (no_hooks is True)


def test_a_preview_set_in_a_profile_is_one(tmp_path, monkeypatch):
    """A profile whose config.yaml says dry-run: true previews, though the command line shows no preview option;
    the workflow removed job records and the report on it."""
    dry, plain = tmp_path / "dry", tmp_path / "plain"
    for folder, text in ((dry, "dry-run: true\ncores: 2\n"), (plain, "cores: 2\n")):
        folder.mkdir()
        (folder / "config.yaml").write_text(text)
    assert previewing(["--profile", str(dry)]) is True
    assert previewing(["--profile", str(plain)]) is False
    (tmp_path / "summ").mkdir()
    (tmp_path / "summ" / "config.yaml").write_text("summary: true\n")
    assert previewing(["--profile", str(tmp_path / "summ")]) is True
    monkeypatch.setenv("SNAKEMAKE_PROFILE", str(dry))  # the profile from the environment
    assert previewing(["--cores", "2"]) is True
    monkeypatch.setenv("SNAKEMAKE_PROFILE", str(plain))
    assert previewing(["--cores", "2"]) is False


@pytest.mark.parametrize(("argv", "expected"), [
    (["--touch"], True), (["-t"], True), (["--delete-all-output"], True), (["--delete-temp-output"], True),
    (["--cleanup-metadata", "a.txt"], True), (["--cleanup-shadow"], True), (["--executor", "touch"], True),
    (["-n"], False), (["--unlock"], False), (["--summary"], False), (["--cores", "2"], False),
])
def test_previews_that_change_the_results_folder(argv, expected):
    """They take the results folder's claim: deleting or touching a cohort's outputs while a run writes them."""
    assert writes_results(argv) is expected


def test_which_commands_hold_the_results_folder(tmp_path):
    """A run and a preview that changes the folder hold it; a plain preview and --nolock (also from a profile) not."""
    assert claims_results(["--cores", "2"]) and claims_results(["--touch"])
    assert not claims_results(["-n"]) and not claims_results(["--unlock"])
    assert not claims_results(["--cores", "2", "--nolock"])
    (tmp_path / "config.yaml").write_text("nolock: true\n")
    assert not claims_results(["--cores", "2", "--profile", str(tmp_path)])


def test_a_closed_stdout_pipe_and_shell_completion_behave_as_under_clicks_main(tmp_path):
    """Invoking the command group without click's main lost two things it did: a reader of stdout that went away
    (`medseg models | head -1`) gave a BrokenPipeError traceback, and _MEDSEG_COMPLETE printed the help."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    done = subprocess.run([sys.executable, "-m", "medseg", "models"], stdout=write, stderr=subprocess.PIPE,
                          cwd=Path(__file__).resolve().parents[1])
    os.close(write)
    assert (done.returncode, done.stderr) == (1, b"")
    env = {**os.environ, "_MEDSEG_COMPLETE": "bash_complete", "COMP_WORDS": "medseg inf", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-c", "from medseg.cli import main; main()"], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "plain,infer"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("encoding", [None, "ascii"])
def test_stdout_on_a_full_device_is_one_error_line(tmp_path, encoding):
    """`medseg models > /dev/full` (stdout on a full disk) ended in an OSError traceback; also where stdout's
    encoding is ASCII, on which click writes through a stream of its own over stdout's bytes."""
    import os
    import subprocess
    import sys

    env = {**os.environ, **({"PYTHONIOENCODING": encoding} if encoding else {})}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "medseg", "models"], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1], env=env)
    assert (done.returncode, done.stderr) == (
        1, "medseg: error: cannot write to standard output (no space left on device)\n")


@pytest.mark.skipif(os.name != "posix", reason="the shell's >&-")
def test_a_closed_stdout_is_told_and_the_exit_code_says_it(tmp_path):
    """`medseg models >&-` (standard output closed by the shell, where Python has none) printed nothing, said nothing
    and exited 0: the result lines were lost unseen. Files are still written, whole; the loss is one error line and
    exit 1. Standard output sent to /dev/null is the way to discard it: silent, exit 0."""
    import subprocess
    import sys

    def medseg(*args: str, redirect: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "medseg", *args],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])

    done = medseg("models", redirect=">&-")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("medseg: error: standard output is closed (>&-): ")
    assert done.stderr.endswith("to discard the output, redirect it to /dev/null\n")
    image = tmp_path / "phantom.nii.gz"
    done = medseg("synth", str(image), "--shape", "8", "8", "8", redirect=">&-")
    assert done.returncode == 1 and done.stderr == (
        "medseg: error: standard output is closed (>&-): 1 line of output lost (any files written are whole); "
        "to discard the output, redirect it to /dev/null\n")
    import nibabel as nib

    assert nib.load(image).shape == (8, 8, 8)  # written whole: descriptor 1 was not handed to it
    for args in (["models"], ["synth", str(tmp_path / "other.nii.gz"), "--shape", "8", "8", "8"]):
        done = medseg(*args, redirect=">/dev/null")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = medseg("-q", "synth", str(tmp_path / "quiet.nii.gz"), "--shape", "8", "8", "8", redirect=">&-")
    assert (done.returncode, done.stderr) == (0, "")  # nothing to print: nothing lost


@pytest.mark.skipif(os.name != "posix", reason="the shell's 2>&-")
def test_a_closed_stderr_loses_its_lines_not_the_work_nor_the_exit_code(tmp_path):
    """`medseg infer scan.nii.gz 2>&-` (standard error closed by the shell, where Python has none) failed at the first
    slice, asking the missing stream whether it was a terminal: exit 1, nothing written, nothing said. It runs as with
    `2>/dev/null`: the work is done (exit 0), an error still exits 1 and a usage error 2, their lines lost, and
    descriptor 2 is /dev/null, not the first file the command opens."""
    import subprocess
    import sys

    def medseg(*args: str, run: tuple[str, ...] = ("-m", "medseg")) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, *run, *args],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])

    image, out = tmp_path / "phantom.nii.gz", tmp_path / "out"
    done = medseg("synth", str(image), "--shape", "16", "16", "16")
    assert (done.returncode, done.stdout) == (0, f"wrote {image}\n")
    done = medseg("infer", str(image), "-m", "phantom", "-o", str(out))
    assert done.returncode == 0 and done.stdout.startswith(f"{image} -> {out / 'phantom_seg.nii.gz'} (")
    import nibabel as nib

    assert nib.load(out / "phantom_seg.nii.gz").shape == (16, 16, 16)
    done = medseg("infer", str(tmp_path / "missing.nii.gz"), "-o", str(out))
    assert (done.returncode, done.stdout) == (1, "")
    assert medseg("infer", "--bogus").returncode == 2
    told = ("import atexit, os, sys; atexit.register(lambda: print(os.path.samestat(os.fstat(2), os.stat(os.devnull))))"
            "; from medseg.cli import main; sys.argv[0] = 'medseg'; main()")
    done = medseg("synth", str(tmp_path / "other.nii.gz"), "--shape", "8", "8", "8", run=("-c", told))
    assert (done.returncode, done.stdout) == (0, f"wrote {tmp_path / 'other.nii.gz'}\nTrue\n")


@pytest.mark.parametrize("command", [["infer"], ["cohort"], []])
def test_help_survives_python_oo(command):
    """Click takes a command's help from its docstring, which `python -OO` strips: `python -OO -m medseg infer
    --help` listed the options without a word of what the command does (`cohort --help` its subcommands without
    theirs). The help is the same with and without -OO."""
    import subprocess
    import sys

    def shown(*flags: str) -> str:
        done = subprocess.run([sys.executable, *flags, "-m", "medseg", *command, "--help"], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[1], env={**os.environ, "COLUMNS": "100"})
        assert done.returncode == 0 and done.stderr == ""
        return done.stdout

    plain = shown()
    assert shown("-OO") == plain
    first = {"infer": "Segment NIfTI files (NRRD and MetaImage too, with the itk extra) or DICOM series folders. "
                       "Writes <stem>_seg.nii.gz",
             "cohort": "Run the cases of a sample sheet (TSV: case_id, image, optional reference and series) into a "
                       "results folder. Finished cases are kept;",
             "": "Segment medical volumes in batch with slice-wise 2D U-Nets, and check the results. $ medseg infer"}
    usage, blank, *rest = plain.splitlines()
    assert blank == "" and " ".join(" ".join(rest).split()).startswith(first[" ".join(command)])


@pytest.mark.skipif(os.name != "posix", reason="file names as bytes")
def test_result_lines_naming_files_the_output_encoding_cannot_hold_are_escaped(tmp_path):
    """Under a UTF-8 locale such as en_US.UTF-8 (stdout's errors strict), a file name that is not UTF-8 (copied from
    a Latin-1 system) ended the command in a UnicodeEncodeError traceback after its first output; so did a Japanese
    name under a Latin-1 locale. Both are written escaped, as on stderr."""
    import subprocess
    import sys

    image = os.fsdecode(os.fsencode(tmp_path) + b"/M\xfcller.nii.gz")
    for encoding, name, shown in (("utf-8", image, "M\\udcfcller.nii.gz"),
                                  ("latin-1", str(tmp_path / "山田.nii.gz"), "\\u5c71\\u7530.nii.gz")):
        done = subprocess.run([sys.executable, "-m", "medseg", "synth", name, "--shape", "8", "8", "8"],
                              capture_output=True, env={**os.environ, "PYTHONIOENCODING": encoding},
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode(encoding).strip().endswith(shown)
        assert os.path.exists(name)


@pytest.mark.parametrize(("argv", "expected"), [
    (["-F"], {"infer": None, "evaluate": None}), (["--forceall", "--cores", "2"], {"infer": None, "evaluate": None}),
    (["-R", "infer"], {"infer": None}), (["--forcerun", "evaluate", "report"], {"evaluate": None}),
    (["-R", "results/jobs/batch001.infer.json", "/r/jobs/batch003.infer.json"], {"infer": ["batch001", "batch003"]}),
    (["-f", "out/jobs/batch002.evaluate.json"], {"evaluate": ["batch002"]}),  # -f on a job record forces that job
    (["-R", "report"], {}), (["-f"], {}), (["out/jobs/batch002.infer.json"], {}), (["--cores", "2"], {}), ([], {}),
    (["--no-such-option"], {}),  # Snakemake refuses it and runs nothing
])
def test_forced_jobs(argv, expected):
    assert forced_jobs(argv) == expected


def test_a_forced_runs_token_is_kept_until_it_succeeds_and_tells_only_its_batches(tmp_path):
    """The same forced command run again after a stop goes on under the same token (the cases it has made again are
    kept); --forcerun of one job record makes only that batch's cases again, not those of other jobs that run."""
    first = redo_values(tmp_path, {"infer": None, "evaluate": ["b2"]})
    token = first["infer"]
    assert len(token) == 16 and first["evaluate"] == f"{token}:b2"
    assert redo_values(tmp_path, {"infer": None, "evaluate": ["b2"]}) == first  # after a stop: the same run
    assert redo_values(tmp_path, {"infer": None})["infer"] != token  # other options: another forced run
    assert redo_values(tmp_path, {}) == {"infer": "", "evaluate": ""}
    preview = redo_values(tmp_path / "other", {"infer": None}, keep=False)
    assert preview["infer"] and not (tmp_path / "other").exists()
    again = redo_values(tmp_path, {"infer": None})
    forget_forced_run(tmp_path)
    assert redo_values(tmp_path, {"infer": None}) != again  # succeeded: a new forced run
    assert redo_for_job("t0k3n", "out/jobs/b1.infer.json") == "t0k3n"
    assert redo_for_job("t0k3n:b2,b3", "out/jobs/b3.infer.json") == "t0k3n"
    assert redo_for_job("t0k3n:b2,b3", "out/jobs/b1.infer.json") is None
    assert redo_for_job("t0k3n:b2", None) is None
    assert redo_for_job("", "out/jobs/b1.infer.json") is None and redo_for_job(None, None) is None


def test_a_stopped_forced_run_is_told_to_a_run_without_the_option(tmp_path):
    """A forced run stopped before it finished, then run again without -F: the cases it had not reached stayed the
    earlier ones, without a word."""
    assert stopped_forced_run(tmp_path) is None
    redo_values(tmp_path, {"infer": None, "evaluate": ["batch002"]})
    assert stopped_forced_run(tmp_path) == (
        "a forced run (infer: every case; evaluate: the cases of batch002) stopped before it finished: the cases it "
        "had not reached are still those made before it; give the same forcing option (-F, --forcerun ...) again to "
        "finish it")
    forget_forced_run(tmp_path)
    assert stopped_forced_run(tmp_path) is None
    (tmp_path / "jobs" / ".forced.json").write_text("[1, 2]")  # damaged: nothing to tell
    assert stopped_forced_run(tmp_path) is None


def test_a_file_name_the_file_system_encoding_cannot_hold_is_one_error_line(tmp_path):
    """In a C locale with Python's UTF-8 mode turned off (PYTHONUTF8=0) file names are ASCII: `medseg report` over
    results whose sidecars name `é/Müller.nii.gz` ended in a UnicodeEncodeError traceback at the first look at the
    input. One line names the file and how to run instead, exit 1."""
    import subprocess
    import sys

    from medseg.cli import main
    from medseg.synthetic import write_phantom

    image = tmp_path / "é" / "Müller.nii.gz"
    write_phantom(image, None, shape=(16, 16, 8), seed=0)
    with pytest.raises(SystemExit) as done:
        main(["-q", "infer", str(image), "-o", str(tmp_path / "out"), "--threads", "1"])
    assert done.value.code == 0
    done = subprocess.run([sys.executable, "-m", "medseg", "report", str(tmp_path / "out")], capture_output=True,
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"})
    assert done.returncode == 1 and done.stderr.decode("utf-8", "backslashreplace").splitlines() == [
        f"medseg: error: {tmp_path / 'out' / 'Müller_seg.nii.gz'}: the file name holds 'ü', which this system's file "
        "name encoding (ascii) cannot hold; run medseg in a UTF-8 locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1"]
    # the segmentation is the first file the report looks for: a name it cannot hold is not a deleted segmentation
    # (the report read it as one, a failed case "deleted or moved", exit 0)
    assert not (tmp_path / "out" / "report.html").exists()


def test_wildcards_are_expanded_on_windows_as_a_posix_shell_expands_them(tmp_path, monkeypatch, capsys):
    """Windows' shells (cmd, PowerShell) pass `scans\\*.nii.gz` on as typed, and click's own main expands it there;
    medseg's main, which does not call click's, took the pattern for a file name: `medseg infer scans\\*.nii.gz` on
    Windows said there was no such file. The pattern is expanded, sorted; one matching nothing is kept and named, and
    a name that is there as written is that file. main() reads the command line from sys.argv, as a program's entry
    point does."""
    import signal

    import medseg.cli as cli
    from medseg import stopping
    from medseg.synthetic import write_phantom

    for name in ("b", "a", "c[1]", "c1"):
        write_phantom(tmp_path / "in" / f"{name}.nii.gz", None, shape=(16, 16, 8), seed=0)
    monkeypatch.setattr(cli, "WINDOWS", True)  # as on Windows

    def medseg(*args: str) -> tuple[int, str, str]:
        # main() as the program's entry point ignores Ctrl-C, SIGTERM and SIGHUP on its way out (a second stop waits
        # for the exit): given back here, or this test process's later tests and the processes they start ignore them
        handlers = {number: signal.getsignal(number) for number in stopping.stop_signals()}
        monkeypatch.setattr(sys, "argv", ["medseg", *args])
        try:
            with pytest.raises(SystemExit) as exit_info:
                cli.main()
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
        return exit_info.value.code, *capsys.readouterr()

    code, out, err = medseg("infer", str(tmp_path / "in" / "[ab].nii.gz"), str(tmp_path / "in" / "c[1].nii.gz"), "-o",
                            str(tmp_path / "out"), "--threads", "1")
    assert code == 0, err
    assert [line.split(" (")[0] for line in out.splitlines() if " -> " in line] == [
        f"{tmp_path / 'in' / name}.nii.gz -> {tmp_path / 'out' / name}_seg.nii.gz" for name in ("a", "b", "c[1]")]
    code, _, err = medseg("infer", str(tmp_path / "none" / "*.nii.gz"))
    assert code == 1 and str(tmp_path / "none" / "*.nii.gz") in err.splitlines()[-1]


def test_the_executors_that_hand_a_jobs_run_time_to_a_scheduler(tmp_path, monkeypatch):
    """minutes_per_case sets the run time a cluster's scheduler is given (sbatch -t); a local run enforces none, and
    its old default was warned about there too. A profile's executor counts, a preview of a cluster run too."""
    from medseg.cohort.invocation import runtime_enforced

    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    assert runtime_enforced(["--cores", "2"]) is False
    assert runtime_enforced(["-n", "--cores", "1"]) is False
    assert runtime_enforced(["--executor", "local", "--cores", "2"]) is False
    assert runtime_enforced(["--executor", "dryrun"]) is False
    pytest.importorskip("snakemake_executor_plugin_slurm")
    assert runtime_enforced(["--executor", "slurm", "--jobs", "4"]) is True
    assert runtime_enforced(["-e", "slurm", "-n"]) is True
    profile = tmp_path / "cluster"
    profile.mkdir()
    (profile / "config.yaml").write_text("executor: slurm\njobs: 4\n")
    assert runtime_enforced(["--profile", str(profile), "-n"]) is True
    assert runtime_enforced(["--profile", str(Path(__file__).resolve().parents[1] / "profiles" / "local")]) is False


def test_a_relative_profile_is_read_from_the_folder_snakemake_was_started_in(tmp_path, monkeypatch):
    """`snakemake --directory RUN --profile profiles/slurm` reads the profile from the folder it was started in, then
    moves into RUN, where the workflow's planning asked again: the profile was not found there, and the cluster
    executor, its preview and its totals line went unnoticed (runtime_enforced False). The folder the shell started
    it in ($PWD, which Snakemake's move leaves as it is) is asked too, where the relative RUN leads from it to the run's
    folder (an absolute RUN ties no $PWD to it: test_a_stale_pwd_does_not_lend_another_checkouts_profile)."""
    from medseg.cohort import invocation

    pytest.importorskip("snakemake_executor_plugin_slurm")
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    launch = tmp_path / "checkout"
    (launch / "profiles" / "cluster").mkdir(parents=True)
    (launch / "profiles" / "cluster" / "config.yaml").write_text("executor: slurm\njobs: 4\ndry-run: true\n")
    run = tmp_path / "checkout" / "run"
    run.mkdir()
    argv = ["--directory", "run", "--profile", "profiles/cluster"]
    monkeypatch.chdir(run)  # where Snakemake has moved by the time the Snakefile is read
    monkeypatch.setenv("PWD", str(launch))
    invocation._parsed_with.cache_clear()
    assert invocation.runtime_enforced(argv) is True
    assert invocation.previewing(argv) is True  # the profile's dry-run: true
    # a $PWD that does not lead to the run's folder is not taken for the start folder
    monkeypatch.setenv("PWD", str(tmp_path / "elsewhere"))
    invocation._parsed_with.cache_clear()
    assert invocation.runtime_enforced(argv) is False


def test_a_stale_pwd_does_not_lend_another_checkouts_profile(tmp_path, monkeypatch):
    """$PWD is the shell's, and a process that starts Snakemake elsewhere (Python's subprocess with cwd=, a job
    launcher) passes it on unchanged. With an absolute --directory nothing ties it to the folder Snakemake started in:
    a launcher started in another checkout had planning read that checkout's profile of the same name (a dry-run: true
    there took a real run for a preview, which voids no stale job; executor: slurm, a local run for a cluster one),
    where Snakemake read the start folder's. An absolute --directory takes no profile from $PWD; a relative one does
    only where it leads from $PWD to the run's folder."""
    from medseg.cohort import invocation

    pytest.importorskip("snakemake_executor_plugin_slurm")
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    for checkout, text in (("started", "executor: local\njobs: 2\n"),
                           ("other", "executor: slurm\njobs: 4\ndry-run: true\n")):
        (tmp_path / checkout / "profiles" / "cluster").mkdir(parents=True)
        (tmp_path / checkout / "profiles" / "cluster" / "config.yaml").write_text(text)
    run = tmp_path / "run"
    run.mkdir()
    argv = ["--directory", str(run), "--profile", "profiles/cluster"]
    monkeypatch.chdir(run)  # Snakemake, started in tmp_path/started, has moved here
    monkeypatch.setenv("PWD", str(tmp_path / "other"))  # the launcher's shell's
    invocation._parsed_with.cache_clear()
    assert invocation.previewing(argv) is False
    assert invocation.runtime_enforced(argv) is False
    # a relative --directory that does not lead from $PWD to the run's folder: the same
    (tmp_path / "started" / "run").mkdir()
    monkeypatch.chdir(tmp_path / "started" / "run")
    invocation._parsed_with.cache_clear()
    assert invocation.previewing(["--directory", "run", "--profile", "profiles/cluster"]) is False
