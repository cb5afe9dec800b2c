"""A reading library's warnings while medseg reads a file name that file (medseg.io.read_warnings)."""

from __future__ import annotations

import gzip
import shutil
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO, run_cli, run_program

from medseg.errors import ImageReadError
from medseg.io.images import read_grid, read_image
from medseg.io.read_warnings import warnings_naming

EXTENSION_TEXT = ("Extension size is not a multiple of 16 bytes; Assuming size is correct and hoping for the best")


def odd_extension_nifti(path):
    """A real ``.nii`` whose one extension's size field says 24 bytes (not a multiple of 16, as a writer that forgot
    the padding gives it), and a labelled box in it; nibabel reads it with a warning."""
    data = np.zeros((8, 8, 4), np.uint8)
    data[2:6, 2:6, 1:3] = 1
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(0, b"x" * 24))  # 32 bytes with its own 8
    nib.save(image, path.with_suffix(".nii") if path.name.endswith(".gz") else path)
    raw = bytearray((path.with_suffix(".nii") if path.name.endswith(".gz") else path).read_bytes())
    assert struct.unpack("<i", raw[352:356]) == (32,)
    raw[352:356] = struct.pack("<i", 24)
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return data


def test_evaluate_names_the_file_nibabel_warns_about(tmp_path, capsys):
    """`medseg evaluate odd.nii ref.nii` said "warning: UserWarning: Extension size is not a multiple of 16 bytes; …"
    without saying which of the two files it was about: the line names the file, once."""
    odd, reference = tmp_path / "odd.nii", tmp_path / "reference.nii.gz"
    data = odd_extension_nifti(odd)
    nib.save(nib.Nifti1Image(data, np.eye(4)), reference)
    run = run_program(["evaluate", str(odd), str(reference)], capsys)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "Extension size" in line]
    assert warned == [f"warning: UserWarning: {odd}: {EXTENSION_TEXT}"], run.stderr
    assert "1 label_1  1.0000" in run.stdout


@pytest.mark.parametrize("name", ["odd.nii", "odd.nii.gz"])
def test_a_reads_warning_keeps_its_category_and_location_and_names_the_file(tmp_path, name):
    odd = tmp_path / name
    odd_extension_nifti(odd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shape, _ = read_grid(odd)
        volume = read_image(odd)
    assert shape == (8, 8, 4) and int(volume.array.sum()) == 32
    assert {(w.category, str(w.message)) for w in caught} == {(UserWarning, f"{odd}: {EXTENSION_TEXT}")}
    assert all(w.filename == nib.nifti1.__file__ for w in caught)


def test_a_filter_on_the_library_still_silences_its_warning(tmp_path):
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"nibabel\.nifti1$")
        read_grid(odd)
    assert caught == []


def test_a_warning_that_names_the_file_already_is_not_named_twice(tmp_path):
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    with pytest.warns(UserWarning) as caught, warnings_naming(odd), warnings_naming(odd):
        read_grid(odd)
    assert [str(w.message) for w in caught] == [f"{odd}: {EXTENSION_TEXT}"]


@pytest.mark.filterwarnings("ignore:Unknown encoding")  # pydicom, on writing the faulty test value
def test_evaluate_names_the_dicom_seg_pydicom_warns_about_once(tmp_path, capsys):
    """A DICOM SEG whose character set pydicom does not know: pydicom logs and warns "Unknown encoding 'ISO_IR 999'
    - using default encoding instead" as it reads it, and `medseg evaluate pred.nii.gz seg.dcm` said so without
    saying which file; the line names the SEG, once (logged and warned alike)."""
    from dicom_factory import _raw, slice_positions, stored_values, write_series
    from seg_factory import NAMES, SHAPE, label_rule

    from medseg.io.dicom import read_dicom_series, volume_image
    from medseg.io.seg_writing import write_dicom_seg

    write_series(tmp_path / "series", stored_values(SHAPE, seed=14), slice_positions(SHAPE[2], -3.0), seed=2)
    volume = read_dicom_series(tmp_path / "series")
    labels = label_rule(volume.array)
    seg, prediction = tmp_path / "seg.dcm", tmp_path / "pred.nii.gz"
    write_dicom_seg(labels, volume, seg, NAMES, "test-model")
    _raw(seg, "SpecificCharacterSet", "CS", b"ISO_IR 999")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), volume_image(volume).affine), prediction)
    run = run_program(["evaluate", str(prediction), str(seg)], capsys)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "Unknown encoding" in line]
    assert warned == [f"warning: {seg}: Unknown encoding 'ISO_IR 999' - using default encoding instead"], run.stderr
    assert "1 odd     1.0000" in run.stdout and "2 corner  1.0000" in run.stdout


def test_one_read_tells_a_warning_once_where_the_filters_say_once_per_location(tmp_path):
    """Each header read of one ``read_image`` (the load, the raw header, the checked re-read) held nibabel's warning
    and gave it again; every block changed the filters, which empties the registry that keeps a warning to once per
    location, so one read of one file showed the same line four times (Python's "default" action). Once now; a second
    file's warning names that file, once too."""
    odd, other = tmp_path / "odd.nii", tmp_path / "other.nii"
    odd_extension_nifti(odd)
    odd_extension_nifti(other)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        read_image(odd)
        read_grid(odd)
        read_image(other)
    assert [str(w.message) for w in caught] == [f"{odd}: {EXTENSION_TEXT}", f"{other}: {EXTENSION_TEXT}"]
    with warnings.catch_warnings(record=True) as caught:  # "always" still gives each, every read
        warnings.simplefilter("always")
        read_grid(odd)
        once = len(caught)
        read_grid(odd)
    assert once >= 1 and len(caught) == 2 * once
    assert {str(w.message) for w in caught} == {f"{odd}: {EXTENSION_TEXT}"}


def test_a_read_that_fails_ends_in_its_own_error_where_warnings_are_errors(tmp_path):
    """Under an "error" filter (``python -W error``, pytest ``-W error``) a warning held while a read failed was
    raised in the block's end, in place of the read's own error: the one-line ImageReadError naming the file was
    lost to a bare UserWarning. The read's error is raised; where the read succeeds, the warning is the error (which
    the reader names in its one line)."""
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match="truncated"), warnings_naming(odd):
            nib.load(odd)  # nibabel warns about the extension
            raise ImageReadError(f"{odd}: truncated")
        with pytest.raises(ImageReadError, match="Extension size"):  # the reader names it in its one line
            read_grid(odd)


def test_highdicom_s_module_loggers_are_named_too(tmp_path, caplog):
    """highdicom logs through one logger per module (``highdicom.seg.sop``), whose records a filter on the
    ``highdicom`` logger never sees: its warnings while a SEG was read still named no file."""
    import logging

    import highdicom.seg.sop  # noqa: F401 - its module logger exists, as when a SEG is read

    seg = tmp_path / "seg.dcm"
    with caplog.at_level(logging.WARNING), warnings_naming(seg):
        logging.getLogger("highdicom.seg.sop").warning("Segment 1 has no frames")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("highdicom.seg.sop", f"{seg}: Segment 1 has no frames")]


def test_reads_in_two_threads_leave_the_process_warnings_as_they_were(tmp_path):
    """``warnings.catch_warnings`` swaps the process's filters and ``showwarning``: two reads at once in two threads
    (a caller's thread pool) restored each other's state, leaving "always" filters and a recorder of a finished read
    in place, so later warnings vanished. Blocks now take turns."""
    import threading

    files = [tmp_path / f"odd{number}.nii" for number in range(2)]
    for path in files:
        odd_extension_nifti(path)
    before = (list(warnings.filters), warnings.showwarning)
    start = threading.Barrier(2)

    def read(path):
        start.wait()
        for _ in range(200):
            read_grid(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filters = list(warnings.filters)
        threads = [threading.Thread(target=read, args=(path,)) for path in files]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert warnings.filters == filters
    assert (warnings.filters, warnings.showwarning) == before


def test_a_logged_warning_is_named_where_records_carry_no_thread(tmp_path, caplog, monkeypatch):
    """A program may turn off the thread in log records (``logging.logThreads = False``); the block's own records
    (told by the thread they come from) were then let through unnamed."""
    import logging

    monkeypatch.setattr(logging, "logThreads", False)
    seg = tmp_path / "seg.dcm"
    with caplog.at_level(logging.WARNING), warnings_naming(seg):
        logging.getLogger("pydicom").warning("Unknown encoding 'ISO_IR 999' - using default encoding instead")
    assert [r.getMessage() for r in caplog.records] == [
        f"{seg}: Unknown encoding 'ISO_IR 999' - using default encoding instead"]


WARNING_AS_ERROR = f"{EXTENSION_TEXT} (a UserWarning, made an error by the warnings filter)"


def test_a_warning_made_an_error_names_the_file_once(tmp_path, capsys):
    """Under ``-W error`` nibabel's warning was raised as it was: ``read_grid`` wrapped it as "odd.nii: cannot read
    header (odd.nii: Extension size …)", and in a batch of ``medseg infer`` it was "odd.nii: unexpected failure
    (UserWarning: odd.nii: Extension size …); run it alone for the traceback", where alone it was a traceback. It is
    the read's error, one line naming the file once; the other inputs of the batch are segmented."""
    odd, other = tmp_path / "odd.nii", tmp_path / "other.nii.gz"
    data = odd_extension_nifti(odd)
    nib.save(nib.Nifti1Image(data, np.eye(4)), other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for read in (read_grid, read_image):
            with pytest.raises(ImageReadError) as raised:
                read(odd)
            assert str(raised.value) == f"{odd}: {WARNING_AS_ERROR}"
            assert isinstance(raised.value.__cause__, UserWarning)
        code, out, err = run_cli(["infer", str(odd), str(other), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and (tmp_path / "out" / "other_seg.nii.gz").is_file()
    assert f"medseg: error: {odd}: {WARNING_AS_ERROR}" in err.splitlines(), err
    assert err.count(str(odd)) == 2 and f"1 of 2 inputs failed ({odd})" in err, err  # its error and the summary


def test_python_w_error_makes_a_reading_warning_one_error_line(tmp_path):
    """``python -W error -m medseg infer odd.nii``: a traceback ending in the UserWarning; one error line, exit 1."""
    import subprocess
    import sys

    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    run = subprocess.run([sys.executable, "-W", "error", "-m", "medseg", "-q", "infer", str(odd), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 1 and run.stderr.splitlines() == [f"medseg: error: {odd}: {WARNING_AS_ERROR}"], \
        run.stderr
    assert not (tmp_path / "out" / "odd_seg.nii.gz").exists()


def test_verify_under_an_error_filter_says_why_an_untouched_input_cannot_be_hashed(tmp_path, make_package, capsys):
    """``python -W error -m medseg verify``: the input's reading warning, made the read's one-line error, was taken
    by the input check as a file that could not be read at all: "odd.nii: not there or not readable; give its copy
    with --input", of a file that is there, as it was segmented. The line gives the reader's reason, naming the file
    once."""
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    code, _, err = run_cli(["infer", str(odd), "-m", str(make_package()), "-o", str(tmp_path / "out"), "--threads",
                            "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "odd_seg.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, err = run_cli(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 1 and line == f"{sidecar}: input FAILED: {odd}: {WARNING_AS_ERROR}", out + err


def test_a_warning_of_another_thread_during_a_read_is_not_named_after_the_file_read(tmp_path):
    """A caller's pool reads the next file while this thread segments: medseg's own warning about the case being
    segmented (a MedsegWarning naming its file), given while the other thread's read held the process's warnings, was
    told again as that read's, "next.nii.gz: this.nii.gz: ...", and where warnings are errors it failed the other
    thread's read as an ImageReadError of a file it was not about."""
    import threading

    from medseg.caller_warnings import warn
    from medseg.errors import MedsegWarning

    inside, done, failed = threading.Event(), threading.Event(), []

    def read():
        try:
            with warnings_naming(tmp_path / "next.nii.gz"):
                inside.set()
                done.wait(30)
        except Exception as error:  # noqa: BLE001 - the read's error, looked at below
            failed.append(error)

    for action in ("always", "error"):
        inside.clear(), done.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter(action)
            warnings.filterwarnings("always", category=MedsegWarning)  # this thread's: shown, not raised
            reader = threading.Thread(target=read)
            reader.start()
            assert inside.wait(30)
            warn(f"{tmp_path / 'this.nii.gz'}: field of view unlike the volumes model m was trained on")
            done.set()
            reader.join()
        assert failed == [], failed
        assert [str(w.message) for w in caught] == [
            f"{tmp_path / 'this.nii.gz'}: field of view unlike the volumes model m was trained on"], action
        assert caught[0].category is MedsegWarning and caught[0].filename == __file__


def test_verify_of_a_copy_given_by_a_relative_path_tells_its_reading_warning_once(tmp_path, make_package, capsys,
                                                                                monkeypatch):
    """``medseg verify SIDECAR --input odd.nii --rerun``: nibabel's warning was told twice, once as the input was
    hashed (naming the file by its absolute path) and again as it was segmented again (by the path given). The input
    is read as given each time: the warning is told once."""
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    code, _, err = run_cli(["infer", str(odd), "-m", str(make_package()), "-o", str(tmp_path / "out"), "--threads",
                            "1"], capsys)
    assert code == 0, err
    (tmp_path / "copy").mkdir()
    shutil.copyfile(odd, tmp_path / "copy" / "odd.nii")
    monkeypatch.chdir(tmp_path)
    run = run_program(["verify", str(tmp_path / "out" / "odd_seg.json"), "--input", "copy/odd.nii", "--rerun"],
                      capsys)
    assert run.returncode == 0, run.stdout + run.stderr
    told = [line for line in run.stderr.splitlines() if "Extension size" in line]
    assert told == [f"warning: UserWarning: copy/odd.nii: {EXTENSION_TEXT}"], run.stderr
