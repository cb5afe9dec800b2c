"""pydicom's warnings while a DICOM folder is read (medseg/io/dicom_messages.py): one line per kind of message,
naming the files, shown once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import SHAPE, _raw, make_series, slice_positions, write_series


def test_a_library_message_both_logged_and_warned_is_shown_once(tmp_path):
    """pydicom logs and warns many messages (warn_and_log); the command line shows each once."""
    import subprocess
    import sys

    paths = write_series(tmp_path / "s", (np.zeros((16, 16, 4)) + 1000).astype(np.int16), slice_positions(4, 2.0))
    raw = paths[0].read_bytes()
    paths[0].write_bytes(raw[:330] + b"\xff" * 40)  # the header ends inside a sequence
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "medseg", "convert", str(tmp_path / "s"), str(tmp_path / "o.nii")],
                         capture_output=True, text=True, cwd=repo)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    # the file's own error says it is cut short: pydicom's words about it (a line before the error) are dropped
    assert lines == [line for line in lines if "End of file reached before delimiter" not in line], lines
    assert lines[-1].startswith(f"medseg: error: {paths[0]}: truncated or incomplete DICOM file")


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")  # pydicom, on re-reading the faulty test values
@pytest.mark.filterwarnings("ignore:Unknown encoding")
def test_library_warnings_are_one_line_per_kind_naming_files_for_every_input(tmp_path):
    """pydicom warns once per file and value, naming neither (300 slices: 300 lines), and the command line used
    to show a message only for the first input of a batch. Now: one line per kind of message and input, with the
    folder, the number of files and the first of them."""
    import subprocess
    import sys

    folders = [tmp_path / "a", tmp_path / "b"]
    for seed, folder in enumerate(folders):
        _, paths = make_series(folder, seed=seed)
        for number, path in enumerate(sorted(paths), start=1):
            _raw(path, "InstanceNumber", "IS", f"{number}.0 ".encode())  # IS must be a whole number
            _raw(path, "SpecificCharacterSet", "CS", b"ISO_IR 999")
    run = subprocess.run([sys.executable, "-m", "medseg", "infer", *map(str, folders), "--model", "phantom", "-o",
                          str(tmp_path / "out"), "--device", "cpu"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    names = ", ".join(f"{k:04d}.dcm" for k in range(3))
    for folder in folders:
        mine = [line for line in warned if f": {folder}: " in line]
        assert len([line for line in mine if "Invalid value for VR IS" in line]) == 1, warned
        # logged and warned both by pydicom (warn_and_log), shown once
        assert sum(f"Unknown encoding 'ISO_IR 999' - using default encoding instead (in {SHAPE[2]} files: "
                   f"{names}, ...)" in line for line in mine) == 1, warned
        assert any(line.endswith(f"; {SHAPE[2]} different values") and "Invalid value for VR IS: '" in line
                   for line in mine), warned
    assert len(warned) <= 2 * len(folders) + 2, warned
    assert all("Please see <" not in line for line in warned)


@pytest.mark.filterwarnings("ignore:Unknown encoding")
def test_a_dicom_seg_output_does_not_repeat_the_series_warnings(tmp_path):
    """The SEG writer reads the headers again; pydicom's charset warning then came a second and third time
    (a bare UserWarning and a pydicom log line), after the gathered one."""
    import subprocess
    import sys

    _, paths = make_series(tmp_path / "a", seed=0)
    for path in paths:
        _raw(path, "SpecificCharacterSet", "CS", b"ISO_IR 999")
    run = subprocess.run([sys.executable, "-m", "medseg", "infer", str(tmp_path / "a"), "--model", "phantom", "-o",
                          str(tmp_path / "out"), "--device", "cpu", "--format", "dicom-seg"], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "a_seg.dcm").is_file()
    assert sum("Unknown encoding 'ISO_IR 999'" in line for line in run.stderr.splitlines()) == 1, run.stderr
    assert "UserWarning" not in run.stderr and "WARNING pydicom" not in run.stderr, run.stderr
    assert sum("SpecificCharacterSet ISO_IR 999 is not a DICOM term" in line
               for line in run.stderr.splitlines()) == 1, run.stderr


def test_the_collector_counts_log_only_messages_of_every_input_and_passes_other_warnings_on(tmp_path):
    """The command line puts a once-per-message filter on pydicom's logger; the collector must see each record
    first, and leave warnings of other libraries to the usual display."""
    import logging
    import warnings

    from medseg.cli import _OncePerMessage
    from medseg.io.dicom_messages import FileMessages

    logger = logging.getLogger("pydicom")
    once = _OncePerMessage()
    logger.addFilter(once)
    shown = []
    previous = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        reports = []
        for folder in ("input1", "input2"):
            collector = FileMessages(tmp_path / folder)
            with collector:
                for name in ("a.dcm", "b.dcm", "c.dcm"):
                    with collector.about(tmp_path / folder / name):
                        logger.warning("Expected length between 2 and 16, got length 17")
                warnings.warn("not pydicom's", UserWarning, stacklevel=1)
            reports.append({kind.text: sorted(p.name for p in kind.files) for kind in collector.kinds.values()})
    finally:
        logger.removeFilter(once)
        warnings.showwarning = previous
    assert reports == [{"Expected length between 2 and 16, got length 17": ["a.dcm", "b.dcm", "c.dcm"]}] * 2
    assert shown == ["not pydicom's", "not pydicom's"]
    assert once not in logger.filters and not any(type(f).__name__ == "_Collect" for f in logger.filters)
