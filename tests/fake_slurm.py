#!/usr/bin/env python3
"""Stand-in SLURM commands that run jobs on this machine, for the workflow's executor-plugin test.

``install(FOLDER)`` writes ``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``sinfo``, ``sacctmgr``, ``scontrol`` and
``srun`` there (put it first on PATH; ``python fake_slurm.py install FOLDER`` from a shell); ``FAKE_SLURM_STATE``
names a folder for the jobs' state. It answers the commands snakemake-executor-plugin-slurm 2.8 (and its
slurm-jobstep companion) run, in the formats they parse:

- ``sbatch --parsable ... --wrap=CMD``: records its arguments (``sbatch.jsonl``), starts CMD in the background as a
  job (the submitting environment exported, as ``--export=ALL``, with ``SLURM_JOB_ID`` and friends; working folder
  ``-D``; output ``--output`` with ``%j``) and prints the job id. The job is killed as SLURM would: its largest
  process past ``--mem`` MB (all its processes' resident memory together; state OUT_OF_MEMORY), everything past
  ``-t`` minutes (``FAKE_SLURM_MINUTE`` seconds each, default 60, or ``FAKE_SLURM_MINUTES``' ``COMMENT=SECONDS,...``
  for a job whose ``--comment`` is COMMENT, ``COMMENT=S1:S2:S3`` for its first, second and later submissions, its
  retries; state TIMEOUT), which it tells the job as SLURM does
  (``SLURM_JOB_START_TIME``, ``SLURM_JOB_END_TIME``). ``FAKE_SLURM_NEEDS`` makes that
  deterministic: ``COMMENT=MB,...`` treats a job whose ``--comment`` is COMMENT (``rule_infer_wildcards_batch001``)
  as needing MB: given less, its largest process is killed once its processes hold more than 150 MB
  (``FAKE_SLURM_KILL_MB``; a report job's processes hold about 390 MB together at their peak, an infer job's more:
  400 MB let a report job through; the two Snakemake processes of a job, before medseg starts, about 250 MB).
  ``FAKE_SLURM_BROKEN`` (``COMMENT,...``): a job of such a ``--comment`` fails before its script starts anything, as
  a batch script whose first line fails or a broken node does: its log says why, state FAILED, exit code 127.
  ``FAKE_SLURM_REFUSE`` (``COMMENT,...``): sbatch refuses a job of such a ``--comment`` as a QOS's submission limit
  does (its two ``sbatch: error:`` lines, exit code 1), and nothing runs or writes a log.
  ``--array=FIRST-LAST`` (the plugin's ``--slurm-array-jobs``): one job a task, as SLURM runs an array (the array's
  id printed; each task its own ``SLURM_JOB_ID``, the first the array's, and ``SLURM_ARRAY_JOB_ID``,
  ``SLURM_ARRAY_TASK_ID``, ``_MIN``, ``_MAX``, ``_COUNT``; its log ``--output`` with ``%A`` and ``%a``); a task is
  known here (``FAKE_SLURM_NEEDS``, ``_MINUTES``, ``_BROKEN``) by the ``--comment`` its Snakemake job would have alone,
  ``rule_infer_wildcards_c``, read from its command, and its state answers to ``<array id>_<task>``.
- ``sacct``/``squeue`` ``--name RUN``: ``<id>|<state>`` per job (PENDING, RUNNING, COMPLETED, FAILED,
  OUT_OF_MEMORY, TIMEOUT, CANCELLED), answered once a job pending or running has ended, within
  ``FAKE_SLURM_STATUS_WAIT`` seconds (default 0: at once); ``scancel ID...``: SIGTERM to the job's processes
  (SIGKILL 5 s later), state CANCELLED, recorded in ``scancel.jsonl``.
- ``srun [options] CMD``: runs CMD (recording the ``MEDSEG_*`` variables it sees in ``srun.jsonl``), with its job's
  ``SLURM_JOB_START_TIME`` and ``SLURM_JOB_END_TIME``.

Every call is noted in ``calls.jsonl`` (command, arguments, time).
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_STATE", "/tmp/fake-slurm"))
ACCOUNT = os.environ.get("FAKE_SLURM_ACCOUNT", "lab42")
PARTITIONS = ("cpu", "gpu")


def _append(name: str, entry: dict) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / name, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write(json.dumps(entry) + "\n")


def _job_file(job_id: str) -> Path:
    return STATE / "jobs" / f"{job_id}.json"


def _read_job(job_id: str) -> dict | None:
    try:
        return json.loads(_job_file(job_id).read_text())
    except (OSError, ValueError):
        return None


def _write_job(job_id: str, /, **changes) -> dict:
    with open(STATE / "jobs" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        job = {**(_read_job(job_id) or {}), **changes}
        tmp = _job_file(job_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(job))
        tmp.replace(_job_file(job_id))
    return job


def _options(args: list[str], takes_value: set[str]) -> tuple[dict[str, str], list[str]]:
    """``--name value``, ``--name=value`` and ``-x value`` options, and the arguments after them."""
    options, rest, index = {}, [], 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            rest = args[index:]
            break
        if "=" in arg and arg.startswith("--"):
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in takes_value:
            options[arg] = args[index + 1]
            index += 1
        else:
            options[arg] = ""
        index += 1
    return options, rest


SBATCH_VALUES = {"--job-name", "-J", "--output", "-o", "--comment", "-A", "--account", "-p", "--partition", "-t",
                 "--time", "--mem", "--mem-per-cpu", "-D", "--chdir", "-C", "--clusters", "--ntasks", "-n",
                 "--cpus-per-task", "-c", "--array", "-a"}


def sbatch(args: list[str]) -> int:
    options, rest = _options(args, SBATCH_VALUES)
    account = options.get("-A", options.get("--account"))
    partition = options.get("-p", options.get("--partition"))
    if account is not None and account != ACCOUNT:
        print(f"sbatch: error: invalid account or account/partition combination specified ({account})",
              file=sys.stderr)
        return 1
    if partition is not None and partition not in PARTITIONS:
        print(f"sbatch: error: invalid partition specified: {partition}", file=sys.stderr)
        return 1
    if options.get("--comment") in os.environ.get("FAKE_SLURM_REFUSE", "").split(","):  # as a QOS limit refuses
        print("sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates "
              "accounting/QOS policy (job submit limit, user's size and/or time limits)", file=sys.stderr)
        return 1
    script = options.get("--wrap")
    if script is None:
        script = sys.stdin.read() if rest and rest[0] == "/dev/stdin" else Path(rest[0]).read_text()
    array = options.get("--array", options.get("-a"))
    first, _, last = (array or "").partition("-")
    tasks = list(range(int(first), int(last or first) + 1)) if array else []
    (STATE / "jobs").mkdir(parents=True, exist_ok=True)
    with open(STATE / "jobs" / ".counter", "a+") as counter:  # an array's tasks each take a job id, the first its own
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        job_id = str(int(counter.read() or "4242000") + 1)
        counter.seek(0)
        counter.truncate()
        counter.write(str(int(job_id) + max(len(tasks), 1) - 1))
    _append("sbatch.jsonl", {"job_id": job_id, "args": args, "tasks": tasks,
                             "env": {k: v for k, v in os.environ.items() if k.startswith("MEDSEG_")}})
    name = options.get("--job-name", options.get("-J", ""))
    keys = [(f"{job_id}_{task}", str(int(job_id) + index)) for index, task in enumerate(tasks)] or [(job_id, job_id)]
    for index, (key, task_job_id) in enumerate(keys):
        array_task = {"array_job_id": job_id, "task": tasks[index], "tasks": [tasks[0], tasks[-1]]} if tasks else {}
        _write_job(key, name=name, state="PENDING", args=args, script=script, job_id=task_job_id,
                   comment=_task_comment(script, tasks[index] if tasks else None, options), **array_task)
    for key, _ in keys:
        subprocess.Popen([sys.executable, __file__, "_job", key], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job_id)
    return 0


def _task_comment(script: str, task: int | None, options: dict[str, str]) -> str | None:
    """The ``--comment`` a job is known by here (``FAKE_SLURM_NEEDS``, ``_MINUTES``, ``_BROKEN``): its own, and for
    a task of an array (whose ``--comment`` names its first job alone) the one the plugin gives the Snakemake job it
    runs alone, ``rule_<rule>_wildcards_<batch>``, read from that job's command (``--target-jobs``): the first task's
    is the script, the others' are in ``--slurm-jobstep-array-execs`` (base64 JSON of zlib-compressed commands)
    after ``=`` or a space, on the command's line (``--wrap``). Under ``pass-command-as-script`` the plugin (2.8) puts
    the option and its payload on lines of their own: the shell runs each as a command (not found, exit 127), the
    task's Snakemake is given none, and every task runs the first task's job, whose ``--comment`` it is here."""
    if task is None:
        return options.get("--comment")
    command = script
    payload = re.search(r"--slurm-jobstep-array-execs[= ]'?([A-Za-z0-9+/=]+)", script)  # [= ]: not a new line
    if payload:
        execs = json.loads(base64.b64decode(payload.group(1)))
        if str(task) in execs:
            command = zlib.decompress(bytes.fromhex(execs[str(task)])).decode()
    target = re.search(r"--target-jobs\s+'?(\w+):batch=([^'\s,]+)", command)
    return f"rule_{target.group(1)}_wildcards_{target.group(2)}" if target else options.get("--comment")


def _descendants(root: int) -> dict[int, int]:
    """The processes under ``root`` (pid: resident MB)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE") // 2**20
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return found


def _kill_all(sig: int) -> None:
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _submission(job_id: str, comment: str | None) -> int:
    """How many jobs known by the same comment (the same Snakemake job: its earlier attempts; :func:`_task_comment`)
    were submitted before the one of SLURM job id ``job_id``."""
    earlier = 0
    for file in (STATE / "jobs").glob("*.json"):
        job = _read_job(file.stem) or {}
        earlier += job.get("comment") == comment and int(job.get("job_id") or 0) < int(job_id)
    return earlier


def run_job(key: str) -> int:
    """The job itself (``key``: its job id, or ``<array id>_<task>`` for a task of an array): the sbatch script
    under a monitor that enforces --mem and -t."""
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans stay ours
    job = _read_job(key)
    job_id, comment = job["job_id"], job["comment"]
    options, _ = _options(job["args"], SBATCH_VALUES)
    memory_mb = limit_mb = int(options["--mem"]) if options.get("--mem") else None
    needs = dict(entry.split("=") for entry in os.environ.get("FAKE_SLURM_NEEDS", "").split(",") if entry)
    if memory_mb and int(needs.get(comment, 0)) > memory_mb:
        limit_mb = min(memory_mb, int(os.environ.get("FAKE_SLURM_KILL_MB", "150")))
    minutes = options.get("-t", options.get("--time"))
    scales = dict(entry.split("=") for entry in os.environ.get("FAKE_SLURM_MINUTES", "").split(",") if entry)
    scale = scales.get(comment, os.environ.get("FAKE_SLURM_MINUTE", "60")).split(":")
    minute_s = float(scale[min(_submission(job_id, comment), len(scale) - 1)])
    limit_s = float(minutes) * minute_s if minutes else None
    workdir = options.get("-D", options.get("--chdir", os.getcwd()))
    output = options.get("--output", options.get("-o", "slurm-%j.out")).replace("%j", job_id)
    array = {}
    if "task" in job:  # as SLURM names an array task's log (%A_%a) and tells it its place in the array
        output = output.replace("%A", job["array_job_id"]).replace("%a", str(job["task"]))
        array = {"SLURM_ARRAY_JOB_ID": job["array_job_id"], "SLURM_ARRAY_TASK_ID": str(job["task"]),
                 "SLURM_ARRAY_TASK_MIN": str(job["tasks"][0]), "SLURM_ARRAY_TASK_MAX": str(job["tasks"][1]),
                 "SLURM_ARRAY_TASK_COUNT": str(job["tasks"][1] - job["tasks"][0] + 1)}
    output = Path(workdir, output)
    env = {**os.environ, **array, "SLURM_JOB_ID": job_id, "SLURM_JOBID": job_id, "SLURM_JOB_NAME": job["name"],
           "SLURM_SUBMIT_DIR": os.getcwd(), "SLURM_NTASKS": options.get("--ntasks", "1"),
           "SLURM_CPUS_PER_TASK": options.get("--cpus-per-task", "1"),
           "SLURM_JOB_ACCOUNT": options.get("-A", ""), "SLURM_JOB_PARTITION": options.get("-p", "")}
    if memory_mb:
        env["SLURM_MEM_PER_NODE"] = str(memory_mb)
    started = time.time()
    if limit_s is not None:  # as SLURM sets them: the job's start and its end by its time limit
        env["SLURM_JOB_START_TIME"], env["SLURM_JOB_END_TIME"] = str(int(started)), str(int(started + limit_s))
    cancelled = False

    def cancel(signum, frame):
        nonlocal cancelled
        cancelled = True

    signal.signal(signal.SIGTERM, cancel)
    _write_job(key, state="RUNNING", monitor=os.getpid(), started=started,
               end=None if limit_s is None else int(started + limit_s))
    if comment in os.environ.get("FAKE_SLURM_BROKEN", "").split(","):
        with open(output, "a") as log:
            log.write(f"/var/spool/slurmd/job{job_id}/slurm_script: line 2: /shared/.venv/bin/python: No such file "
                      "or directory\n")
        _write_job(key, state="FAILED", exit_code=127, peak_mb=0, ended=time.time())
        return 0
    with open(output, "ab") as log:
        process = subprocess.Popen(["/bin/bash", "-c", job["script"]], cwd=workdir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    state, peak, oom = None, 0, False
    while process.poll() is None:
        processes = _descendants(os.getpid())
        total = sum(processes.values())
        peak = max(peak, total)
        if cancelled:
            state = "CANCELLED"
            _kill_all(signal.SIGTERM)
            deadline = time.time() + 5
            while process.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            _kill_all(signal.SIGKILL)
            break
        if limit_mb and total > limit_mb and processes:
            largest = max(processes, key=processes.get)
            oom = True
            with open(output, "a") as log:
                log.write(f"slurmstepd: error: Detected 1 oom_kill event in StepId={job_id}.batch "
                          f"({total} MB > {limit_mb} MB). Some of the step tasks have been OOM Killed.\n")
            os.kill(largest, signal.SIGKILL)
        if limit_s is not None and time.time() - started > limit_s:
            state = "TIMEOUT"
            with open(output, "a") as log:
                log.write(f"slurmstepd: error: *** JOB {job_id} ON {socket.gethostname()} CANCELLED AT "
                          f"{time.strftime('%Y-%m-%dT%H:%M:%S')} DUE TO TIME LIMIT ***\n")
            _kill_all(signal.SIGTERM)
            time.sleep(2)
            _kill_all(signal.SIGKILL)
            break
        time.sleep(0.1)
    code = process.wait()
    _kill_all(signal.SIGKILL)  # what the job left running dies with its allocation
    if state is None:
        state = "COMPLETED" if code == 0 else "OUT_OF_MEMORY" if oom else "FAILED"
    _write_job(key, state=state, exit_code=code, peak_mb=peak, ended=time.time())
    return 0


def _states(runid: str | None) -> list[str]:
    lines = []
    for file in sorted((STATE / "jobs").glob("*.json")):
        job = _read_job(file.stem)
        if job is not None and (runid is None or job.get("name") == runid):
            lines.append(f"{file.stem}|{job['state']}")
    return lines


def _status_after_a_change(runid: str | None) -> list[str]:
    """The run's job states, once a job that was pending or running when asked has ended, or after
    ``FAKE_SLURM_STATUS_WAIT`` seconds (default 0: at once). The plugin waits 10 s longer after each status check
    that finds no job ended (1, 11, 21 s ...): a test spent most of its time idle between the checks."""
    deadline = time.time() + float(os.environ.get("FAKE_SLURM_STATUS_WAIT", "0"))
    lines = _states(runid)
    active = {line.split("|")[0] for line in lines if line.split("|")[1] in ("PENDING", "RUNNING")}
    while active and time.time() < deadline:
        time.sleep(0.1)
        lines = _states(runid)
        if any(job_id in active and state not in ("PENDING", "RUNNING")
               for job_id, state in (line.split("|") for line in lines)):
            break
    return lines


def sacct(args: list[str]) -> int:
    options, _ = _options(args, {"--name", "-j", "--format", "-o", "--starttime", "--endtime", "--clusters", "-u"})
    if "-j" in options:  # a step's Reason, a job's nodelist
        return 0
    if "-nu" in options or "-o" in options:  # the account of the user's last job
        print(f"{ACCOUNT:>20}")
        return 0
    print("\n".join(_status_after_a_change(options.get("--name"))))
    return 0


def squeue(args: list[str]) -> int:
    options, _ = _options(args, {"--name", "--format", "--states", "-u"})
    print("\n".join(_status_after_a_change(options.get("--name"))))
    return 0


def scancel(args: list[str]) -> int:
    ids = [arg for arg in args if not arg.startswith("-")]
    _append("scancel.jsonl", {"ids": ids, "time": time.time()})
    for job_id in ids:
        job = _read_job(job_id)
        if job is None:
            print(f"scancel: error: Invalid job id {job_id}", file=sys.stderr)
            continue
        if job.get("state") in ("PENDING", "RUNNING") and job.get("monitor"):
            os.kill(job["monitor"], signal.SIGTERM)
    return 0


def srun(args: list[str]) -> int:
    _, command = _options(args, {"-n", "-c", "--ntasks", "--cpus-per-task", "-N", "--nodes"})
    _append("srun.jsonl", {"job_id": os.environ.get("SLURM_JOB_ID"),
                           "env": {k: v for k, v in os.environ.items() if k.startswith("MEDSEG_")}})
    job = _read_job(os.environ.get("SLURM_JOB_ID", "")) or {}
    if job.get("end") is not None:  # a step is told its job's start and end as the job is (the jobstep plugin drops
        os.environ["SLURM_JOB_START_TIME"] = str(int(job["started"]))  # the job's own SLURM_* for it)
        os.environ["SLURM_JOB_END_TIME"] = str(job["end"])
    os.execvp(command[0], command)


COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "sacctmgr", "scontrol", "srun")


def install(folder: Path, python: str = sys.executable) -> Path:
    """Write the stand-in commands into ``folder`` (to be put first on PATH); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        path = folder / command
        path.write_text(f'#!/bin/sh\nexec {python} {Path(__file__).resolve()} {command} "$@"\n')
        path.chmod(0o755)
    return folder


def put_first(monkeypatch, tmp_path: Path) -> Path:
    """A test's stand-in SLURM: the commands written under ``tmp_path/bin`` and put first on PATH, their state kept in
    ``tmp_path/slurm`` (returned), a status check answering once a job has ended (20 s at most, so that the executor
    plugin does not wait ever longer)."""
    monkeypatch.setenv("PATH", f"{install(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_STATE", str(tmp_path / "slurm"))
    monkeypatch.setenv("FAKE_SLURM_STATUS_WAIT", "20")
    return tmp_path / "slurm"


def main() -> int:
    command, args = Path(sys.argv[0]).name, sys.argv[1:]
    if command not in COMMANDS:  # python fake_slurm.py COMMAND ARGS...
        command, args = args[0], args[1:]
    if command == "_job":
        return run_job(args[0])
    if command == "install":
        print(install(Path(args[0])))
        return 0
    _append("calls.jsonl", {"command": command, "args": args, "time": time.time()})
    if command == "sbatch":
        return sbatch(args)
    if command == "sacct":
        return sacct(args)
    if command == "squeue":
        return squeue(args)
    if command == "scancel":
        return scancel(args)
    if command == "srun":
        return srun(args)
    if command == "sacctmgr":
        print(f"{ACCOUNT:>20}")
        return 0
    if command == "sinfo":
        print("PARTITION\n" + "\n".join(f"{p}*" if i == 0 else p for i, p in enumerate(PARTITIONS)))
        return 0
    if command == "scontrol":
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
        return 0
    print(f"{command}: not faked", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
