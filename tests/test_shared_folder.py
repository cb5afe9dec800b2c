"""A results folder several users run into (medseg.cohort.shared_folder, and the planning steps that write there).

Another user's files and folders are played by this user's, made read-only: the checks run in a process without
root's power over permissions (``as_plain_user``), which reads them as any other user would."""

from __future__ import annotations

import os
import stat
import sys

from conftest import as_plain_user

from medseg.synthetic import write_phantom


def _in_plain_process(code: str):
    """Run ``code`` (with ``results``, the results folder, and ``sheet`` defined) in a process without root's power
    over permissions; what it prints, and a MedsegError as ``ErrorType: message``."""
    script = ("import sys\nfrom pathlib import Path\nfrom medseg.errors import MedsegError\n"
              "results, sheet = Path(sys.argv[1]), Path(sys.argv[2])\n"
              "try:\n" + "".join(f"    {line}\n" for line in code.splitlines())
              + "except MedsegError as error:\n    print(f'{type(error).__name__}: {error}')\n")
    return script


def test_a_results_folder_this_user_may_not_write_stops_planning_in_one_line(tmp_path):
    """Another member's results folder, made under umask 022 (drwxr-xr-x): planning removed the report there to
    rebuild it and stopped with a PermissionError and Snakemake's traceback. Now one line names the folder, its
    owner and mode, and what to do; removing a record there names it too."""
    write_phantom(tmp_path / "a.nii.gz", shape=(24, 24, 6), seed=1)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\na\ta.nii.gz\n")
    results = tmp_path / "results"
    (results / "jobs").mkdir(parents=True)
    (results / "report.html").write_text("<html></html>")  # a report beside no job record: planning removes it
    os.chmod(results, 0o555)
    try:
        code = _in_plain_process(
            "from medseg.cohort import InferOptions, read_samples, void_stale_jobs\n"
            "from medseg.package import load_package\n"
            "options = InferOptions(model='phantom', device='cpu')\n"
            "void_stale_jobs({'b0001': read_samples(sheet)}, results, load_package('phantom'), options,\n"
            "                {'infer': 4000, 'evaluate': 2000}, preview=False)\n"
            "print('planned')")
        voided = as_plain_user([sys.executable, "-c", code, str(results), str(sheet)])
        code = _in_plain_process("from medseg.cohort import check_results_writable\n"
                                 "check_results_writable(results)\nprint('writable')")
        checked = as_plain_user([sys.executable, "-c", code, str(results), str(sheet)])
        os.chmod(results, 0o755)
        os.chmod(results / "jobs", 0o555)
        in_jobs = as_plain_user([sys.executable, "-c", code, str(results), str(sheet)])
    finally:
        os.chmod(results, 0o755)
        os.chmod(results / "jobs", 0o755)
    assert (voided.returncode, voided.stderr) == (0, "")
    assert voided.stdout == (f"OutputWriteError: {results / 'report.html'}: cannot remove this record of an earlier "
                             "run, which must be made again (permission denied); give this user write access to its "
                             "folder, or give another results folder\n")
    assert (results / "report.html").exists()
    import grp
    import pwd

    owner = f"user {pwd.getpwuid(os.geteuid()).pw_name}, group {grp.getgrgid(os.getegid()).gr_name}"
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout == (
        f"OutputWriteError: {results}: this results folder takes no files from this user (permission denied; "
        f"{owner}, dr-xr-xr-x); have it made writable to this user (for a folder a group shares, its owner runs "
        f"chmod -R g+w {results}; see docs/cohorts.md, 'Results folder') or give another results folder\n")
    assert in_jobs.stdout.startswith(
        f"OutputWriteError: {results / 'jobs'}: this folder of the results folder {results} takes no files from this "
        f"user (permission denied; {owner}, dr-xr-xr-x); ")
    assert sorted(p.name for p in results.iterdir()) == ["jobs", "report.html"]  # the probes left nothing


def test_another_users_records_snakemake_would_not_replace_become_this_users_copies(tmp_path):
    """Job records, the report's files and benchmarks made by another member under umask 022 (rw-r--r--) in folders
    the group may write: Snakemake refused to run their jobs ("Write-protected output files") and failed writing a
    benchmark. Each becomes this user's copy, the same bytes and times; one in a folder this user may not write, and
    the cases' own files (replaced by renaming), are left as they are."""
    results = tmp_path / "results"
    files = {"jobs/b0001.infer.json": "{}", "report.html": "<html></html>", "cohort.tsv": "case_id\n",
             "benchmarks/infer/b0001.tsv": "s\n1\n", "cases/a/a_seg.json": "{}", "logs/infer/b0001.log": "log\n"}
    for name, text in files.items():
        path = results / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
        os.chmod(path, 0o444)
    (results / "benchmarks" / "evaluate").mkdir()
    locked = results / "benchmarks" / "evaluate" / "b0001.tsv"
    locked.write_text("s\n2\n")
    os.chmod(locked, 0o444)
    os.chmod(locked.parent, 0o555)
    code = _in_plain_process("from medseg.cohort import adopt_unwritable_files\n"
                             "for path in adopt_unwritable_files(results):\n"
                             "    print(path.relative_to(results).as_posix())")
    try:
        adopted = as_plain_user([sys.executable, "-c", code, str(results), str(tmp_path)])
    finally:
        os.chmod(locked.parent, 0o755)
    assert (adopted.returncode, adopted.stderr) == (0, "")
    assert adopted.stdout.split() == ["jobs/b0001.infer.json", "report.html", "cohort.tsv",
                                      "benchmarks/infer/b0001.tsv"]
    mask = os.umask(0)
    os.umask(mask)
    for name, text in files.items():
        path = results / name
        assert path.read_text() == text
        assert path.stat().st_mtime_ns == 1_700_000_000_123_456_789  # Snakemake compares times: unchanged
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o666 & ~mask if name in adopted.stdout.split() else 0o444), name
    assert stat.S_IMODE(locked.stat().st_mode) == 0o444 and locked.read_text() == "s\n2\n"
    assert sorted(p.name for p in (results / "jobs").iterdir()) == ["b0001.infer.json"]  # no temporary file left


def test_records_dated_ahead_of_the_folders_clock_are_found_and_set_to_now(tmp_path):
    """Job records and report files dated after the folder's clock, and by how much; set to now in the order they
    are made in (infer records, evaluate records, the report), so that none reads as newer than what follows it."""
    import time

    from medseg.cohort import future_dated_files, reset_times

    results = tmp_path / "results"
    (results / "jobs").mkdir(parents=True)
    now = time.time()
    dated = {"jobs/b0001.infer.json": 7200, "jobs/b0001.evaluate.json": 7300, "report.html": 1.0,
             "summary.json": 7400, "jobs/b0002.infer.json": -60, "benchmarks/report.tsv": 7200}
    for name, seconds in dated.items():
        path = results / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        os.utime(path, (now + seconds, now + seconds))
    ahead = future_dated_files(results)  # by the folder's own clock: a file made there
    assert [(p.relative_to(results).as_posix(), round(s / 100)) for p, s in ahead] == [
        ("jobs/b0001.infer.json", 72), ("jobs/b0001.evaluate.json", 73), ("summary.json", 74)]
    assert sorted(p.name for p in (results / "jobs").iterdir()) == ["b0001.evaluate.json", "b0001.infer.json",
                                                                     "b0002.infer.json"]  # no probe left
    assert future_dated_files(results, now=now + 8000) == []
    assert reset_times([p for p, _ in ahead]) == [p for p, _ in ahead]
    times = [p.stat().st_mtime_ns for p, _ in ahead]
    assert times == sorted(times) and max(times) <= time.time_ns()
    assert future_dated_files(results) == []
    assert (results / "benchmarks" / "report.tsv").stat().st_mtime > now + 7000  # not compared by Snakemake: left


def test_a_snakemake_folder_this_user_may_not_write_is_one_line(tmp_path):
    """A checkout another member ran the workflow from under umask 022: its .snakemake (and locks/ in it) are that
    member's, and Snakemake stopped after planning with a PermissionError and its traceback."""
    import grp
    import pwd

    state = tmp_path / ".snakemake"
    (state / "locks").mkdir(parents=True)
    (state / "log").mkdir()
    code = _in_plain_process("from medseg.cohort import check_snakemake_folder\n"
                             "check_snakemake_folder(results)\nprint('writable')")
    fine = as_plain_user([sys.executable, "-c", code, str(state), str(tmp_path)])
    os.chmod(state / "locks", 0o555)
    try:
        refused = as_plain_user([sys.executable, "-c", code, str(state), str(tmp_path)])
        os.chmod(state / "locks", 0o755)
        os.chmod(tmp_path, 0o555)  # no .snakemake yet: the working folder must take one
        os.rename(state, tmp_path.with_name(tmp_path.name + "-state"))
        none_yet = as_plain_user([sys.executable, "-c", code, str(state), str(tmp_path)])
    finally:
        os.chmod(tmp_path, 0o755)
        os.chmod(state / "locks" if state.exists() else tmp_path, 0o755)
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, "writable\n", "")
    owner = f"user {pwd.getpwuid(os.geteuid()).pw_name}, group {grp.getgrgid(os.getegid()).gr_name}"
    assert refused.stdout == (
        f"OutputWriteError: {state / 'locks'}: Snakemake's folder of this working folder takes no files from this user "
        f"(permission denied; {owner}, dr-xr-xr-x); run the workflow from a working folder of your own (your own "
        f"checkout, or snakemake --directory DIR), or have its owner make it writable to the group (chmod -R g+w "
        f"{state})\n")
    assert none_yet.stdout.startswith(f"OutputWriteError: {tmp_path}: Snakemake's folder of this working folder takes "
                                      f"no files from this user (permission denied; {owner}, dr-xr-xr-x); ")
