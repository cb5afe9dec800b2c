"""The Makefile's install step as `make -n` prints it: the long downloads say what they are and show pip's progress."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("index", ["", "https://download.pytorch.org/whl/cpu"])
def test_the_torch_download_is_announced_and_shows_its_progress(tmp_path, index):
    """`make demo` on a fresh machine sat silent for minutes (pip --quiet while torch, a few hundred MB to several GB,
    came down): on a course's shared network a student took it for hung and pressed Ctrl-C."""
    result = subprocess.run(["make", "-n", "-B", "install", f"VENV={tmp_path / 'venv'}", f"TORCH_INDEX={index}"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    torch = next(k for k, line in enumerate(lines) if "pip install" in line and "torch==" in line)
    assert "--quiet" not in lines[torch] and (f"--index-url {index}" in lines[torch]) == bool(index)
    said = lines[torch - 1]
    assert said.startswith("echo ") and "torch" in said and "minutes" in said, said
    assert ("from " + index in said) == bool(index), said
    medseg = next(k for k, line in enumerate(lines) if "pip install" in line and "-e '.[dev]'" in line)
    assert "--quiet" not in lines[medseg] and lines[medseg - 1].startswith("echo ") and "minutes" in lines[medseg - 1]
