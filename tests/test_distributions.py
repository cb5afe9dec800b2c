"""What the distributions carry: the wheel, every file of the package (the shipped models and the schemas that
medseg reads at run time); the source distribution, the whole project, so that its tests run from it (it had the
test files, which setuptools takes by their names, but not conftest.py and the helpers they import, nor the
Snakefile, configs and benchmarks they use)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tracked() -> list[str]:
    """The project's files: those git tracks, and new ones it does not ignore."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout (its tracked files)")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60)
    return [name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def test_the_distributions_carry_the_package_and_the_project(tmp_path):
    pytest.importorskip("setuptools", minversion="77")  # pyproject's build requirement
    tracked = _tracked()
    source = tmp_path / "source"  # a copy: a build writes medseg.egg-info and build/ beside the code
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path / "dist"
    code = ("import sys\nfrom setuptools import build_meta\n"  # which rewrites sys.argv
            "out = sys.argv[1]\nsdist = build_meta.build_sdist(out)\nwheel = build_meta.build_wheel(out)\n"
            "print('BUILT', sdist, wheel)")
    build = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr
    sdist_name, wheel_name = next(line for line in build.stdout.splitlines() if line.startswith("BUILT ")).split()[1:]
    prefix = sdist_name.removesuffix(".tar.gz") + "/"
    with tarfile.open(out / sdist_name) as sdist:
        in_sdist = {member.name.removeprefix(prefix) for member in sdist.getmembers() if member.isfile()}
    assert sorted(set(tracked) - in_sdist - {".gitignore"}) == []
    with zipfile.ZipFile(out / wheel_name) as wheel:
        in_wheel = set(wheel.namelist())
    assert sorted(name for name in tracked if name.startswith("medseg/") and name not in in_wheel) == []
    assert {"medseg/models/hippocampus/weights.safetensors", "medseg/schemas/model.schema.json",
            "medseg/py.typed"} <= in_wheel  # PEP 561: type checkers read the package's annotations
    assert not [name for name in in_wheel if name.split("/")[0] in ("tests", "configs", "benchmarks", "workflow")]
    from medseg import __version__  # one version: --version prints what the metadata says

    assert wheel_name.startswith(f"medseg-{__version__}-") and sdist_name == f"medseg-{__version__}.tar.gz"
