"""What a process may use: physical memory, and its cgroup's memory limit and CPU quota read from fake /proc and
cgroup trees laid out as Linux lays them out (cgroup v2, v1, a container's view of its own part of the hierarchy);
`medseg infer --threads`; the OpenMP threads' passive wait the command line asks for."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli

from medseg.resources import (
    WAIT_VARIABLES,
    CgroupLimit,
    cgroup_cpus,
    cgroup_limit,
    physical_memory,
    resident_memory,
    set_threads,
    wait_passively,
)

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)

GIB = 2**30


def _proc(tmp_path, mounts: list[str], groups: list[str]):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text("".join(line + "\n" for line in mounts))
    (proc / "cgroup").write_text("".join(line + "\n" for line in groups))
    return proc


def _limits(root, values: dict[str, str], name: str) -> None:
    for folder, value in values.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(value + "\n")


def test_physical_memory_is_the_machines():
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        pytest.skip("no /proc/meminfo on this system")
    total_kib = int(next(line for line in meminfo.read_text().splitlines() if line.startswith("MemTotal:")).split()[1])
    # the same count of pages as MemTotal, or more where a container's /proc/meminfo shows its own limit (LXCFS)
    assert physical_memory() >= total_kib * 1024 > 0


def test_resident_memory_follows_what_the_process_touches():
    """Fresh pages from the system (a heap block could reuse pages an earlier test freed but kept resident, as the
    tuned allocator keeps large blocks on the heap, and the process would not grow by the block)."""
    import mmap

    before = resident_memory()
    block = mmap.mmap(-1, 200 * 2**20)
    np.frombuffer(block, np.uint8)[:] = 1  # touched: resident
    assert before > 10 * 2**20 and resident_memory() - before >= 190 * 2**20
    block.close()


def test_a_cgroup_v2_limit_is_the_smallest_along_the_ancestors(tmp_path):
    """A SLURM job's step under its job's cgroup: the job's 4 GiB binds the step whose own limit is "max"."""
    root = tmp_path / "sys fs cgroup"  # a mount point with a space, escaped in mountinfo
    _limits(root, {"system.slice": "max", "slurm": "max", "slurm/job_7": str(4 * GIB), "slurm/job_7/step_0": "max",
                   "slurm/job_7/step_0/user": str(8 * GIB)}, "memory.max")
    escaped = str(root).replace(" ", "\\040")
    proc = _proc(tmp_path, [f"30 23 0:26 / {escaped} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate",
                            "22 1 8:1 / / rw - ext4 /dev/sda1 rw"], ["0::/slurm/job_7/step_0/user"])
    assert cgroup_limit(proc) == CgroupLimit(4 * GIB, root / "slurm/job_7/memory.max")
    (root / "slurm/job_7/step_0/user/memory.max").write_text(f"{GIB}\n")
    assert cgroup_limit(proc) == CgroupLimit(GIB, root / "slurm/job_7/step_0/user/memory.max")


def test_a_cgroup_v1_limit_seen_from_inside_a_container(tmp_path):
    """Docker without a cgroup namespace: /proc/self/cgroup gives the host's path, the mount shows only the
    container's part of the hierarchy (mountinfo's root field)."""
    mount = tmp_path / "memory"
    _limits(mount, {".": str(2 * GIB)}, "memory.limit_in_bytes")
    proc = _proc(tmp_path, [f"40 31 0:32 /docker/abc123 {mount} ro,nosuid - cgroup cgroup rw,memory",
                            f"41 31 0:33 /docker/abc123 {tmp_path / 'cpu'} ro - cgroup cgroup rw,cpu,cpuacct"],
                 ["5:cpu,cpuacct:/docker/abc123", "4:memory:/docker/abc123", "0::/"])
    assert cgroup_limit(proc) == CgroupLimit(2 * GIB, mount / "memory.limit_in_bytes")


@pytest.mark.parametrize("value", ["9223372036854771712", "max", "", "garbage", "²"])
def test_no_limit_is_none(tmp_path, value):
    """cgroup v1 writes "no limit" as the largest page-aligned 63-bit number, v2 as "max"."""
    mount = tmp_path / "memory"
    _limits(mount, {".": value, "job": value}, "memory.limit_in_bytes")
    proc = _proc(tmp_path, [f"35 31 0:32 / {mount} rw - cgroup cgroup rw,memory"], ["4:memory:/job"])
    assert cgroup_limit(proc) is None


def test_no_cgroup_filesystem_or_no_proc_is_none(tmp_path):
    assert cgroup_limit(tmp_path / "nowhere") is None
    proc = _proc(tmp_path, ["22 1 8:1 / / rw - ext4 /dev/sda1 rw"], ["0::/user.slice"])
    assert cgroup_limit(proc) is None
    # a cgroup path outside what the mount shows (another namespace's): not guessed at
    mount = tmp_path / "cg"
    _limits(mount, {".": str(GIB)}, "memory.max")
    proc2 = tmp_path / "p2"
    proc2.mkdir()
    (proc2 / "mountinfo").write_text(f"30 23 0:26 /a {mount} rw - cgroup2 cgroup2 rw\n")
    (proc2 / "cgroup").write_text("0::/b\n")
    assert cgroup_limit(proc2) is None
    (proc2 / "mountinfo").write_text(f"30 23 0:26 / {mount} rw - cgroup2 cgroup2 rw\n")
    (proc2 / "cgroup").write_text("0::/../../elsewhere\n")  # outside the cgroup namespace's root
    assert cgroup_limit(proc2) is None


def test_this_process_limit_is_read_without_error():
    limit = cgroup_limit()
    assert limit is None or (limit.size > 0 and limit.file.is_file())


def test_a_volume_over_the_cgroup_limit_is_warned_about_and_segmented(tmp_path, make_package, monkeypatch, capsys,
                                                                      caplog):
    """Within the machine's memory but over the job's: segmented (the guard's charge is an upper bound), with a
    warning naming the limit's file, so that a kill for memory has its reason in the log."""
    import medseg.memory_guard as memory_guard
    from medseg.cli import main
    from medseg.synthetic import make_phantom

    phantom = make_phantom((40, 40, 8), seed=11)
    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, np.diag([1.0, 1.0, 2.0, 1.0])), str(image))
    limit_file = tmp_path / "memory.max"
    package = make_package()

    def infer(out: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exit_info:
            main(["infer", str(image), "-m", str(package), "-o", str(tmp_path / out), "--device", "cpu"])
        capsys.readouterr()
        told = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        caplog.clear()
        return exit_info.value.code, told

    monkeypatch.setattr(memory_guard, "cgroup_limit", lambda: CgroupLimit(1000, limit_file))
    code, err = infer("a")
    assert code == 0 and (tmp_path / "a" / "case_seg.nii.gz").is_file()
    assert json.loads((tmp_path / "a" / "case_seg.json").read_text())["input"] == str(image)
    # the package's tile is warned about too (medseg.tile_memory), after the volume: its header is read (and
    # charged) before the network is built
    *warned, tile = [line for line in err.splitlines() if "cgroup" in line]
    assert tile.startswith(f"{package / 'model.json'}: one forward pass of a 32×32 tile with 4 classes needs up to ")
    assert len(warned) == 1 and f"{image}: segmenting it needs up to about " in warned[0]
    assert " of memory beside the " in warned[0] and " GiB this process holds, more than the 9.3e-07 GiB its cgroup " \
        f"allows ({limit_file}): it may be killed for memory; give it more" in warned[0]
    monkeypatch.setattr(memory_guard, "cgroup_limit", lambda: CgroupLimit(64 * GIB, limit_file))  # room enough
    code, err = infer("b")
    assert code == 0 and "cgroup" not in err


def test_a_cgroup_v2_cpu_quota(tmp_path):
    root = tmp_path / "cg"
    _limits(root, {"docker": "max 100000", "docker/abc": "250000 100000"}, "cpu.max")
    proc = _proc(tmp_path, [f"30 23 0:26 / {root} rw - cgroup2 cgroup2 rw"], ["0::/docker/abc"])
    assert cgroup_cpus(proc) == CgroupLimit(2.5, root / "docker/abc/cpu.max")
    (root / "docker/abc/cpu.max").write_text("max 100000\n")
    assert cgroup_cpus(proc) is None


def test_a_cgroup_v1_cpu_quota_and_none(tmp_path):
    mount = tmp_path / "cpu,cpuacct"
    _limits(mount, {"job": "50000"}, "cpu.cfs_quota_us")
    _limits(mount, {"job": "100000"}, "cpu.cfs_period_us")
    proc = _proc(tmp_path, [f"33 31 0:30 / {mount} rw - cgroup cgroup rw,cpu,cpuacct",
                            f"35 31 0:32 / {tmp_path / 'memory'} rw - cgroup cgroup rw,memory"],
                 ["3:cpu,cpuacct:/job", "4:memory:/job"])
    assert cgroup_cpus(proc) == CgroupLimit(0.5, mount / "job/cpu.cfs_quota_us")
    (mount / "job/cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert cgroup_cpus(proc) is None


@pytest.mark.parametrize("quota, given, expected", [(0.5, None, 1), (1.2, None, 2), (64.0, None, "torch's"),
                                                     (None, None, "torch's"), (0.5, 3, 3)])
def test_threads_follow_the_cpu_quota_unless_given(monkeypatch, quota, given, expected):
    """A container limited to 2 CPUs on a 64-core machine: torch would start 64 threads that wait on each other."""
    import torch

    import medseg.resources as resources

    before = torch.get_num_threads()
    monkeypatch.setattr(resources, "cgroup_cpus", lambda: None if quota is None else CgroupLimit(quota, Path("q")))
    monkeypatch.setattr(resources, "usable_cpus", lambda: 64)  # as on a big machine
    try:
        torch.set_num_threads(64)
        set_threads(given)
        assert torch.get_num_threads() == (64 if expected == "torch's" else expected)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, -1, 2.5, "2", True])
def test_threads_that_are_no_whole_number_from_one_are_refused_and_torch_left_alone(threads):
    """``set_threads(0)`` from Python raised torch's RuntimeError; ``set_threads(2.5)`` was taken as 2."""
    import torch

    from medseg.errors import InputError

    before = torch.get_num_threads()
    with pytest.raises(InputError) as raised:
        set_threads(threads)
    assert str(raised.value) == f"threads={threads!r}: give a whole number of CPU threads, 1 or more"
    assert torch.get_num_threads() == before


def test_more_threads_than_usable_cpus_are_capped_with_a_warning(caplog):
    """--threads 100000 exhausted the memory with a traceback (libgomp, or an mmap failure while importing)."""
    import torch

    from medseg.resources import set_threads, usable_cpus

    before = torch.get_num_threads()
    try:
        with caplog.at_level("WARNING", logger="medseg"):
            set_threads(100_000)
        cpus = usable_cpus()
        assert torch.get_num_threads() == cpus
        assert [r.getMessage() for r in caplog.records] == [
            f"threads=100000: this process may use {cpus} CPU{'' if cpus == 1 else 's'}; using {cpus} threads"]
    finally:
        torch.set_num_threads(before)


def test_threads_are_set_and_recorded_without_changing_the_labels(tmp_path, case, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        labels = {}
        for threads in (1, 2):
            out = tmp_path / f"t{threads}"
            code, _, err = run(["infer", str(case), "-o", str(out), "--device", "cpu", "--threads", str(threads)],
                               capsys)
            assert code == 0, err
            sidecar = json.loads(next(out.glob("*_seg.json")).read_text())
            assert sidecar["cpu_threads"] == threads
            labels[threads] = np.asarray(nib.load(next(out.glob("*_seg.nii.gz"))).dataobj)
        np.testing.assert_array_equal(labels[1], labels[2])
    finally:
        torch.set_num_threads(before)


def test_a_passive_wait_is_set_where_the_user_chose_none():
    environ = {"PATH": "/usr/bin"}
    assert wait_passively(environ) is True
    assert environ == {"PATH": "/usr/bin", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize("name", WAIT_VARIABLES)
@pytest.mark.parametrize("value", ["ACTIVE", "1000", ""])
def test_a_wait_the_user_chose_is_kept(name, value):
    """Any of the OpenMP runtimes' own variables, even set empty, is the user's choice, left as it is."""
    environ = {name: value}
    assert wait_passively(environ) is False
    assert environ == {name: value}


def test_no_passive_wait_is_set_in_a_process_whose_torch_is_loaded(monkeypatch):
    """Its OpenMP runtime read the environment when torch was imported: a variable set now would only mislead."""
    import torch  # noqa: F401

    for name in WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert wait_passively() is False
    assert all(name not in os.environ for name in WAIT_VARIABLES)
