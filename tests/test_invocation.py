"""Which Snakemake command lines only preview the workflow (and so must change nothing in the results)."""

from __future__ import annotations

import pytest

from medseg.cohort import previewing


@pytest.mark.parametrize(("argv", "expected"), [
    (["-n"], True), (["--dry-run", "--cores", "2"], True), (["-np", "--cores", "1"], True), (["--unlock"], True),
    (["--lint"], True), (["--summary"], True), (["-S"], True), (["--list-rules"], True), (["--touch"], True),
    (["--executor", "dryrun"], True), (["--executor=touch"], True), (["--dag"], True),
    (["--cores", "2"], False), (["--profile", "profiles/slurm", "--config", "device=cuda"], False),
    (["-j", "4", "-k"], False), (["--config", "note=-n"], False), (["-s", "Snakefile", "-c2"], False),
    (["--executor", "slurm"], False), ([], False),
])
def test_previewing(argv, expected):
    assert previewing(argv) is expected
