"""The free-space check before a case is segmented: the lower bound of its outputs, and where it says nothing;
a disk that fills up during a batch of `medseg infer`."""

from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path

import nibabel as nib
import pytest
from conftest import _files, run_cli

from medseg.errors import OutputWriteError
from medseg.io.atomic import results_unwritable
from medseg.io.free_space import check_free_space, free_bytes, least_output_bytes

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def fake_statvfs(monkeypatch, free: int, blocks: int = 1000, fragment: int = 1) -> None:
    real = os.statvfs

    def statvfs(path):
        status = real(path)
        return os.statvfs_result((1, fragment, blocks, free, free, *status[5:]))

    monkeypatch.setattr(os, "statvfs", statvfs)


def test_the_bound_is_the_voxels_as_far_as_deflate_compresses_and_1_kib_per_json():
    assert least_output_bytes(1032 * 100, 1, "nifti", 1) == 100 + 1024
    assert least_output_bytes(1032 * 100 + 1, 2, "nifti", 2) == 201 + 2048  # uint16 labels, rounded up; metrics
    assert least_output_bytes(512 * 512 * 600, 1, "dicom-seg", 1) == 1024  # a SEG's frames depend on what is found


def test_a_missing_output_folder_is_measured_on_the_folder_it_will_be_made_in(tmp_path, monkeypatch):
    fake_statvfs(monkeypatch, 5000)
    assert free_bytes(tmp_path / "new" / "deeper") == (tmp_path, 5000)
    target = tmp_path / "new" / "a_seg.nii.gz"
    with pytest.raises(OutputWriteError) as error:
        check_free_space([target, tmp_path / "new" / "a_seg.json"], (200, 200, 200), 1)
    needed = -(-200 ** 3 // 1032) + 1024
    assert str(error.value) == (f"{tmp_path / 'new'}: no room for a_seg.nii.gz and 1 JSON file: 5,000 bytes free on "
                                f"its file system, at least {needed:,} needed; nothing segmented: free some space, or "
                                "write the outputs elsewhere")
    assert results_unwritable(error.value)  # a batch stops writing there, as on a full disk
    assert error.value.__cause__.errno == errno.ENOSPC
    assert not (tmp_path / "new").exists()
    check_free_space([target, tmp_path / "new" / "a_seg.json"], (100, 100, 100), 1)  # 1,993 bytes: room


@pytest.mark.parametrize(("blocks", "fragment"), [(0, 1), (1000, 0)])
def test_a_file_system_that_reports_no_size_is_not_checked(tmp_path, monkeypatch, blocks, fragment):
    fake_statvfs(monkeypatch, 0, blocks=blocks, fragment=fragment)  # some network and FUSE file systems
    assert free_bytes(tmp_path) is None
    check_free_space([tmp_path / "a_seg.nii.gz", tmp_path / "a_seg.json"], (512, 512, 600), 1)


def test_a_full_output_folder_stops_the_batch_instead_of_segmenting_every_input_in_vain(tmp_path, case, monkeypatch,
                                                                                          capsys):
    """A full disk or quota (or a mount turned read-only) refuses every later input's outputs alike: the batch went
    on segmenting each remaining input, minutes each, only to fail it at the write. It stops now, saying what was
    done; an input's own write failure (a file size limit) still lets the others carry on."""
    import errno

    import medseg.segment
    from medseg.errors import OutputWriteError

    real = medseg.segment.segment_case
    inputs = [tmp_path / f"{name}.nii.gz" for name in ("a", "b", "c", "d")]
    for path in inputs:
        path.write_bytes(case.read_bytes())
    calls = []

    def refused(code):
        def segment(path, *args, **kwargs):
            calls.append(Path(path).name)
            if Path(path).name == "b.nii.gz":
                target = tmp_path / "out" / "b_seg.json"
                raise OutputWriteError(f"{target}: cannot write ({os.strerror(code).lower()})") from OSError(code,
                                                                                                  os.strerror(code))
            return real(path, *args, **kwargs)
        return segment

    monkeypatch.setattr(medseg.segment, "segment_case", refused(errno.ENOSPC))
    code, out, err = run(["infer", *map(str, inputs), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and calls == ["a.nii.gz", "b.nii.gz"]
    assert err.strip().splitlines()[-2:] == [
        f"medseg: error: {tmp_path / 'out' / 'b_seg.json'}: cannot write (no space left on device)",
        f"medseg: stopped after {inputs[1]}: {tmp_path / 'out'} takes no more outputs; 1 of 4 inputs done, 1 failed, "
        "2 not segmented"]
    assert _files(tmp_path / "out") == ["a_seg.json", "a_seg.nii.gz"]
    calls.clear()
    monkeypatch.setattr(medseg.segment, "segment_case", refused(errno.EFBIG))  # that input's own: the others go on
    code, out, err = run(["infer", *map(str, inputs), "-o", str(tmp_path / "out2")], capsys)
    assert code == 1 and calls == ["a.nii.gz", "b.nii.gz", "c.nii.gz", "d.nii.gz"]
    assert err.strip().splitlines()[-1] == f"medseg: 1 of 4 inputs failed ({inputs[1]})"


def test_a_full_disk_beside_the_inputs_stops_the_inputs_written_there(tmp_path, case, make_package, monkeypatch,
                                                                     capsys):
    """Without -o (outputs beside each input) a full disk failed every later input in turn, each after its whole
    segmentation, where -o stopped the batch at the first. Both stop now: every later input whose outputs go on the
    full file system is not segmented, with one line saying how many; inputs in folders on other file systems go on.
    Nothing partial is left beside the inputs."""
    import errno

    import medseg.batch_outputs
    import medseg.segment

    (tmp_path / "full").mkdir()
    (tmp_path / "other").mkdir()
    full = [tmp_path / "full" / f"{name}.nii.gz" for name in ("a", "b", "c")]
    other = tmp_path / "other" / "d.nii.gz"
    for path in [*full, other]:
        path.write_bytes(case.read_bytes())
    real_write, real_segment = medseg.segment.write_labels, medseg.segment.segment_case
    calls = []

    def segment(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real_segment(path, *args, **kwargs)

    def write_labels(labels, volume, path, *args, **kwargs):
        if Path(path).parent.name == "full":  # part of the file written, then the disk is full
            Path(path).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(labels, volume, path, *args, **kwargs)

    monkeypatch.setattr(medseg.segment, "segment_case", segment)
    monkeypatch.setattr(medseg.segment, "write_labels", write_labels)
    model = str(make_package())
    code, out, err = run(["-q", "infer", *map(str, full), "-m", model], capsys)
    assert (code, calls) == (1, ["a.nii.gz"])
    assert err.splitlines() == [
        f"medseg: error: {full[0].parent / 'a_seg.nii.gz'}: cannot write (no space left on device)",
        f"medseg: stopped after {full[0]}: {full[0].parent} takes no more outputs; 0 of 3 inputs done, 1 failed, 2 not "
        "segmented"]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
    # the inputs' folders on two file systems: those on the full one stop, the other's input is segmented
    monkeypatch.setattr(medseg.batch_outputs, "output_file_system",
                        lambda path, output_dir: 1 if Path(path).parent.name == "full" else 2)
    calls.clear()
    code, out, err = run(["-q", "infer", str(full[0]), str(other), str(full[1]), str(full[2]), "-m", model], capsys)
    assert (code, calls) == (1, ["a.nii.gz", "d.nii.gz"])
    assert err.splitlines() == [
        f"medseg: error: {full[0].parent / 'a_seg.nii.gz'}: cannot write (no space left on device)",
        f"medseg: {full[0].parent} takes no more outputs: 2 later inputs written on its file system not segmented; "
        "1 on another file system goes on",
        f"medseg: 1 of 4 inputs failed ({full[0]}), 2 not segmented (their outputs' file system took no more)"]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
    assert _files(tmp_path / "other") == ["d.nii.gz", "d_seg.json", "d_seg.nii.gz"]


def test_output_file_system_is_that_of_the_nearest_existing_folder(tmp_path):
    """The file system an input's outputs go on: the output folder's, or where a missing one will be made."""
    from medseg.batch_outputs import output_file_system

    device = os.stat(tmp_path).st_dev
    assert output_file_system(tmp_path / "scan.nii.gz", None) == device  # beside the input
    assert output_file_system(tmp_path / "scan.nii.gz", tmp_path / "not" / "yet") == device  # made under tmp_path
    assert output_file_system("scan.nii.gz", tmp_path) == device


def test_a_disk_too_full_for_the_outputs_is_refused_before_segmenting(tmp_path, case, monkeypatch, capsys):
    """A full disk was found only as the outputs were written, after the case's inference (minutes on a CPU): the
    check that a file can be made passes on an almost full disk, as an empty file takes no space. The free space
    (statvfs) is now checked against a lower bound of the outputs (the voxels compressed as far as gzip can, 1 KiB
    per JSON) before inference: below it nothing is segmented, and a batch stops as on a full disk."""
    import medseg.segment

    voxels = math.prod(nib.load(case).shape[:3])
    needed = -(-voxels // 1032) + 1024  # uint8 labels; one sidecar
    real_statvfs = os.statvfs
    free = {"bytes": needed - 1}

    def statvfs(path):
        status = real_statvfs(path)
        if not Path(path).is_relative_to(tmp_path):
            return status
        blocks = free["bytes"]  # in 1-byte fragments: the bound is met or missed by one byte
        return os.statvfs_result((1, 1, status.f_blocks, blocks, blocks, *status[5:]))

    segmented = []
    real_label_volume = medseg.segment._label_volume

    def label_volume(volume, *args, **kwargs):
        segmented.append(volume.source)
        return real_label_volume(volume, *args, **kwargs)

    monkeypatch.setattr(os, "statvfs", statvfs)
    monkeypatch.setattr(medseg.segment, "_label_volume", label_volume)
    inputs = [tmp_path / f"{name}.nii.gz" for name in ("a", "b")]
    for path in inputs:
        shutil.copyfile(case, path)
    out = tmp_path / "out"
    code, _, err = run(["infer", *map(str, inputs), "-o", str(out)], capsys)
    assert code == 1 and segmented == []
    assert err.strip().splitlines()[-2:] == [
        f"medseg: error: {out}: no room for a_seg.nii.gz and 1 JSON file: {needed - 1:,} bytes free on its file "
        f"system, at least {needed:,} needed; nothing segmented: free some space, or write the outputs elsewhere",
        f"medseg: stopped after {inputs[0]}: {out} takes no more outputs; 0 of 2 inputs done, 1 failed, 1 not "
        "segmented"]
    assert not out.exists()
    free["bytes"] = needed  # room for the least the outputs take: segmented, and not a word about it
    code, _, err = run(["infer", str(inputs[0]), "-o", str(out)], capsys)
    assert code == 0 and len(segmented) == 1 and "room" not in err
    assert _files(out) == ["a_seg.json", "a_seg.nii.gz"]
