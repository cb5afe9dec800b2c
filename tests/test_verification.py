"""`medseg verify` and :func:`medseg.verification.verify_sidecar`: a segmentation's sidecar checked against the
segmentation, the input and the model it names, and the input segmented again."""

import json
import os
import shutil
import sys

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli

from medseg.errors import InputError
from medseg.verification import verify_sidecar

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


@pytest.fixture
def segmented(tmp_path, case, make_package, capsys):
    """``case`` segmented by a random-weight package: (the package, the sidecar)."""
    package = make_package()
    code, _, err = run(["infer", str(case), "-m", str(package), "-o", str(tmp_path / "out"), "--threads", "1"],
                       capsys)
    assert code == 0, err
    return package, tmp_path / "out" / "case_seg.json"


def test_an_untouched_output_verifies_and_segments_again_to_the_same_voxels(segmented, case, capsys):
    _, sidecar = segmented
    code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == ["segmentation ok", "input ok", "model ok", "versions ok",
                                                         "rerun ok"]
    record = json.loads(sidecar.read_text())
    assert f"matches input_sha256 ({record['input_sha256'][:12]}…)" in lines[1] and str(case) in lines[1]
    assert "segmented again on cpu (fp32, batch 16, overlap 0.25, 1 thread): 0 of 12,800 voxels differ" in lines[4]


def test_an_edited_segmentation_fails_and_the_rerun_counts_the_voxels(segmented, capsys):
    _, sidecar = segmented
    seg = sidecar.parent / "case_seg.nii.gz"
    image = nib.load(str(seg))
    labels = np.asarray(image.dataobj).copy()
    labels[0, 0, 0] = 3 if labels[0, 0, 0] != 3 else 1
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), str(seg))
    code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 3
    assert "segmentation FAILED" in out and "changed since medseg wrote it" in out
    assert "1 of 12,800 voxels differ from case_seg.nii.gz" in out
    assert err.strip() == f"medseg: the sidecar does not match: {sidecar} (segmentation, rerun)"


def test_another_input_or_a_missing_one_fails_the_input_check(segmented, case, tmp_path, capsys):
    _, sidecar = segmented
    other = tmp_path / "other.nii.gz"
    image = nib.load(str(case))
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) + 1, image.affine), str(other))
    code, out, _ = run(["verify", str(sidecar), "--input", str(other)], capsys)
    assert code == 3 and f"input FAILED: {other}: SHA-256 " in out and "not the input segmented" in out

    moved = tmp_path / "moved.nii.gz"
    shutil.move(case, moved)
    code, out, _ = run(["verify", str(sidecar)], capsys)
    assert code == 1 and f"input FAILED: {case}: not there (no such file or folder), so not compared; give its copy " \
        "with --input" in out
    code, out, err = run(["verify", str(sidecar), "--input", str(moved)], capsys)  # a copy elsewhere is the input
    assert code == 0, out + err


def test_a_recorded_input_gone_is_a_check_not_made_and_a_mistyped_input_given_is_an_error(segmented, case, tmp_path,
                                                                                           capsys):
    """Both said "input FAILED: <path>: not there or not readable" among the other checks, exit 1: the input the
    sidecar records gone (moved to an archive: give its copy), and a path mistyped with ``--input``, which checked
    the segmentation and the model against a sidecar whose input was never looked at. Neither compared a file with
    the record, so neither exits 3 (a difference found). The recorded input gone is the input check not made (exit 1,
    "could not be checked", the others checked); a path given that is not there is the user's mistake, one error
    line naming it before any check (exit 1, as a missing input of every medseg command), nothing checked."""
    _, sidecar = segmented
    typo = tmp_path / "cse.nii.gz"
    code, out, err = run(["verify", str(sidecar), "--input", str(typo)], capsys)
    assert code == 1 and out == "", out
    assert err == (f"medseg: error: {typo}: no such file or folder (--input: the input to check {sidecar} against); "
                   "nothing was checked\n"), err
    with pytest.raises(InputError, match=r"\(input_path=\.\.\.: the input to check "):
        verify_sidecar(sidecar, typo)

    case.rename(tmp_path / "archived.nii.gz")
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and [line.split(": ", 2)[1] for line in out.splitlines()] == [
        "segmentation ok", "input FAILED", "model ok", "versions ok"], out
    assert _input_line(out) == (f"{sidecar}: input FAILED: {case}: not there (no such file or folder), so not "
                                "compared; give its copy with --input"), out
    assert err == f"medseg: the sidecar could not be checked: {sidecar} (input)\n", err
    assert not verify_sidecar(sidecar).differs


@pytest.mark.parametrize("given", ["relative", "absolute"])
def test_a_nifti_that_cannot_be_read_is_named_once_in_its_lines(segmented, case, tmp_path, monkeypatch, capsys,
                                                                given):
    """nibabel names the file in its own message, which the reader's error wraps: verify's lines named it twice,
    ``input FAILED: bad.nii: cannot read (Cannot work out file type of "bad.nii")`` and ``rerun FAILED: cut.nii.gz:
    segmenting it again failed: truncated or corrupt image data (Expected 51200 bytes, got 44800 bytes from
    cut.nii.gz)``. Each line names it once, given relative or absolute."""
    import gzip

    from medseg.io.atomic import sha256_of

    _, sidecar = segmented
    monkeypatch.chdir(tmp_path)
    raw = gzip.decompress(case.read_bytes())
    (tmp_path / "bad.nii").write_bytes(b"x" * 400)  # no NIfTI header at all
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw[:len(raw) - 6400]))  # 6400 bytes short, a whole stream
    recorded = json.loads(sidecar.read_text())["input_sha256"][:12]
    lines = {}
    for name in ("bad.nii", "cut.nii.gz"):
        path = name if given == "relative" else str(tmp_path / name)
        code, out, _ = run(["verify", str(sidecar), "--input", path, "--rerun"], capsys)
        assert code == 3, out
        lines[name] = [line.removeprefix(f"{sidecar}: ") for line in out.splitlines()
                       if line.startswith((f"{sidecar}: input ", f"{sidecar}: rerun "))]
        assert all(line.count(name) == 1 for line in lines[name]), lines[name]
    path = "" if given == "relative" else f"{tmp_path}/"
    assert lines["bad.nii"] == [
        f"input FAILED: {path}bad.nii: cannot read (Cannot work out file type); SHA-256 "
        f"{sha256_of(tmp_path / 'bad.nii')[:12]}…, the sidecar records {recorded}…: not the input segmented",
        f"rerun FAILED: {path}bad.nii: segmenting it again failed: not a NIfTI image (Cannot work out file type)"]
    assert lines["cut.nii.gz"][1] == (f"rerun FAILED: {path}cut.nii.gz: segmenting it again failed: truncated or "
                                      "corrupt image data (Expected 51200 bytes, got 44800 bytes)")


def test_another_model_fails_the_model_check(segmented, make_package, capsys):
    _, sidecar = segmented
    code, out, _ = run(["verify", str(sidecar), "-m", "phantom"], capsys)
    recorded = json.loads(sidecar.read_text())["model"]["weights_sha256"]
    assert code == 3 and "model FAILED: model phantom (" in out
    assert f"the sidecar records {recorded[:12]}…" in out and "not the model that segmented it" in out


def test_a_file_that_is_no_sidecar_is_one_error_line(segmented, tmp_path, capsys):
    _, sidecar = segmented
    metrics = tmp_path / "case_metrics.json"
    metrics.write_text(json.dumps({"schema": "medseg-metrics/1"}))
    code, out, err = run(["verify", str(metrics)], capsys)
    assert code == 1 and out == ""
    assert err.strip() == (f"medseg: error: {metrics}: not a segmentation sidecar (schema 'medseg-metrics/1', not "
                           "'medseg-segmentation/1'); give the _seg.json that medseg infer wrote beside the "
                           "segmentation")
    with pytest.raises(InputError, match="not a segmentation sidecar"):
        verify_sidecar(metrics)
    code, _, err = run(["verify", str(sidecar), str(sidecar), "--input", str(sidecar)], capsys)
    assert code == 2 and "--input names the input of one SIDECAR" in err


@pytest.mark.shared_data
def test_a_hippocampus_case_and_a_dicom_series_verify_from_their_sidecars(shared_data, tmp_path, capsys):
    """The real data: a hippocampus crop segmented with two threads, verified and segmented again with one (the
    same labels); a DICOM series' sidecar hashes the recorded series' files."""
    image = shared_data / "hippocampus" / "images" / "hippocampus_004.nii.gz"
    code, _, err = run(["infer", str(image), "-m", "hippocampus", "-o", str(tmp_path / "h"), "--threads", "2"], capsys)
    assert code == 0, err
    result = verify_sidecar(tmp_path / "h" / "hippocampus_004_seg.json", rerun=True, threads=1)
    assert result.ok and result.differing_voxels == 0, result.checks
    assert [check.what for check in result.checks] == ["segmentation", "input", "model", "versions", "rerun"]

    series = shared_data / "dicom" / "ct-seg" / "series"
    code, _, err = run(["infer", str(series), "-o", str(tmp_path / "d"), "--threads", "2"], capsys)
    assert code == 0, err
    result = verify_sidecar(tmp_path / "d" / "series_seg.json")
    assert result.ok and [check.ok for check in result.checks[:3]] == [True, True, True], result.checks


def test_the_sidecar_records_the_platform_its_labels_were_computed_on(segmented):
    """The CPU's instruction set decides which of torch's kernels ran (another sums in another order, its last bits
    able to flip a label), and the Python version and system are part of a result's environment: none was recorded."""
    import platform

    import torch

    _, sidecar = segmented
    recorded = json.loads(sidecar.read_text())["platform"]
    assert recorded["python"] == platform.python_version() and recorded["machine"] == platform.machine()
    assert recorded["system"] == f"{platform.system()} {platform.release()}"
    assert recorded["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and recorded["cpu"]
    assert "gpu" not in recorded  # run on the CPU
    record = json.loads(sidecar.read_text())
    record["platform"]["cpu_capability"] = "AVX2" if recorded["cpu_capability"] != "AVX2" else "AVX512"
    sidecar.write_text(json.dumps(record))
    result = verify_sidecar(sidecar)
    assert result.ok and result.checks[3].ok is None  # told, not failed: --rerun says whether the labels differ
    edited, here = record["platform"]["cpu_capability"], recorded["cpu_capability"]
    assert result.checks[3].text.startswith(f"versions or platform differ: cpu_capability {edited} (here {here})")


def _edit(sidecar, **changes):
    """Rewrite ``sidecar`` with top-level ``changes`` (a value None removes the key)."""
    record = json.loads(sidecar.read_text())
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    sidecar.write_text(json.dumps(record))
    return record


def test_a_bad_sidecar_in_a_batch_fails_alone_while_the_others_are_checked(segmented, tmp_path, capsys):
    """One sidecar that cannot be read stopped `medseg verify A B C` at it: the sidecars after it were never checked
    and no closing line named what failed."""
    _, sidecar = segmented
    broken, missing = tmp_path / "broken_seg.json", tmp_path / "missing_seg.json"
    broken.write_text("{bad")
    code, out, err = run(["verify", str(broken), str(sidecar), str(missing)], capsys)
    assert code == 1
    assert [line.split(": ", 2)[1] for line in out.splitlines()] == ["segmentation ok", "input ok", "model ok",
                                                                    "versions ok"]
    assert err.splitlines() == [
        f"medseg: error: {broken}: not valid JSON at line 1, column 2: a key in double quotes was expected",
        f"medseg: error: {missing}: no such file or folder (give a sidecar, the _seg.json medseg infer wrote, "
        "or a folder of them)",
        f"medseg: 2 of 3 sidecars could not be checked: {broken} (not read); {missing} (not read)"]
    code, out, err = run(["verify", str(missing)], capsys)  # alone: its error line is the whole answer
    assert (code, out) == (1, "")
    assert err == (f"medseg: error: {missing}: no such file or folder (give a sidecar, the _seg.json medseg infer "
                   "wrote, or a folder of them)\n")


def test_a_gpu_sidecar_verifies_on_a_machine_without_that_gpu(segmented, capsys):
    """A sidecar written on a CUDA device was compared with the GPU of that index here: without CUDA, torch's
    AssertionError came out as a traceback. Now the platform is compared with the device a rerun uses (--device)."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    _edit(sidecar, device="cuda:0", platform={**record["platform"], "gpu": "NVIDIA H100 80GB HBM3"})
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 0, err
    versions = out.splitlines()[3]
    assert versions.startswith(f"{sidecar}: versions note: versions or platform differ: device cuda:0 (here cpu), "
                               "gpu NVIDIA H100 80GB HBM3 (here none); re-segment")


def test_a_rerun_of_a_gpu_sidecars_fp16_on_the_cpu_says_which_device_to_give(segmented, capsys):
    """fp16 (auto's precision on CUDA) cannot run on the CPU, verify's default device: the line told to use bf16 or
    fp32, which verify has no option for."""
    _, sidecar = segmented
    _edit(sidecar, device="cuda:0", precision="fp16")
    code, out, _ = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 1
    assert out.splitlines()[4] == (f"{sidecar}: rerun FAILED: not segmented again: it was segmented on cuda:0 in "
                                   "fp16, which needs a CUDA device; give --device cuda (this run: cpu)")


def test_a_sidecar_from_before_the_platform_and_settings_were_recorded_says_so(segmented, capsys):
    """An older sidecar, without ``platform`` or ``model.settings_sha256``: the lines read 'versions and platform as
    recorded' and 'settings none recorded as recorded'."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    model = {key: value for key, value in record["model"].items() if key != "settings_sha256"}
    _edit(sidecar, platform=None, model=model)
    result = verify_sidecar(sidecar)
    assert result.ok
    assert result.checks[2].text.endswith(f"weights {model['weights_sha256'][:12]}… as recorded (the sidecar "
                                          "records no settings_sha256)")
    assert result.checks[3].text == "versions as recorded; the sidecar records no platform (written before it was)"


def test_a_multimodal_case_names_the_channel_file_that_is_missing_or_changed(tmp_path, capsys):
    """nnU-Net's channel files of one case: a missing case_0001 was reported as 'case_0000…: not there', a changed
    one as case_0000's SHA-256, and the rerun's line read 'model the model takes 2 modalities'."""
    import torch
    from test_channels import modal_config, write_modal_set

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package

    config = modal_config()
    config.pop("training")
    torch.manual_seed(0)
    save_package(UNet2D(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "type"})), config,
                 tmp_path / "pkg")
    images, _ = write_modal_set(tmp_path / "set", "nnunet", count=2)
    first, second = images / "case0_0000.nii.gz", images / "case0_0001.nii.gz"
    code, _, err = run(["infer", str(first), "-m", str(tmp_path / "pkg"), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "case0_seg.json"
    assert verify_sidecar(sidecar, rerun=True).ok

    shutil.copy(images / "case1_0001.nii.gz", second)  # another case's second channel
    lines = run(["verify", str(sidecar)], capsys)[1].splitlines()
    assert lines[1].startswith(f"{sidecar}: input FAILED: {first} (channel files case0_0000.nii.gz, "
                               "case0_0001.nii.gz): SHA-256 ")
    second.unlink()
    code, out, _ = run(["verify", str(sidecar), "--rerun"], capsys)
    lines = out.splitlines()
    assert code == 1 and lines[1] == (f"{sidecar}: input FAILED: {first} (channel files case0_0000.nii.gz, "
                                      "case0_0001.nii.gz): of its 2 recorded channel files, 1 not there "
                                      "(case0_0001.nii.gz), 1 as recorded (case0_0000.nii.gz): not compared whole")
    assert "model tiny takes 2 modalities" in lines[4] and "model the model" not in lines[4]


def test_a_rerun_that_runs_out_of_memory_fails_its_check_and_the_batch_goes_on(segmented, tmp_path, monkeypatch,
                                                                                capsys):
    """torch's out-of-memory RuntimeError (or a MemoryError) in a rerun came out as a traceback and stopped a batch
    of sidecars at it; now it is the rerun check's failure, and the next sidecar is checked."""
    import medseg.segment

    _, sidecar = segmented
    second = tmp_path / "out" / "copy_seg.json"
    shutil.copy(sidecar, second)
    real, calls = medseg.segment.segment_volume, []

    def first_runs_out(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError()
        return real(*args, **kwargs)

    monkeypatch.setattr(medseg.segment, "segment_volume", first_runs_out)
    code, out, err = run(["verify", str(sidecar), str(second), "--rerun"], capsys)
    lines = out.splitlines()
    assert code == 1 and len(lines) == 10
    assert lines[4] == f"{sidecar}: rerun FAILED: {sidecar.parent.parent / 'case.nii.gz'}: segmenting it again " \
                       "failed (out of memory)"
    assert lines[9].startswith(f"{second}: rerun ok: ")
    assert err == f"medseg: 1 of 2 sidecars could not be checked: {sidecar} (rerun)\n"


def test_a_dicom_series_without_a_uid_verifies_and_segments_again(tmp_path, make_package, capsys):
    """An anonymised series with an empty SeriesInstanceUID (the TotalSegmentator CT series is one): its recorded
    ``series_uid`` '' was passed as the series to hash and read, so the input check said 'not there or not readable'
    and the rerun '--series is empty'. The series is the one :func:`medseg.io.seg_volume.recorded_series` names."""
    from dicom_factory import make_series

    make_series(tmp_path / "study", shape=(24, 20, 6), extra={"SeriesInstanceUID": ""})
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    assert json.loads(sidecar.read_text())["input_info"]["series_uid"] == ""
    result = verify_sidecar(sidecar, rerun=True)
    assert [check.ok for check in result.checks] == [True, True, True, True, True], result.checks
    assert result.differing_voxels == 0


def test_a_truncated_segmentation_fails_the_rerun_in_one_line(segmented, capsys):
    """A segmentation cut short (a copy interrupted): gzip's EOFError came out of --rerun as a traceback."""
    _, sidecar = segmented
    seg = sidecar.parent / "case_seg.nii.gz"
    seg.write_bytes(seg.read_bytes()[:-40])
    code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    lines = out.splitlines()
    assert code == 3 and "Traceback" not in err and len(lines) == 5, out + err
    assert lines[0].startswith(f"{sidecar}: segmentation FAILED: {seg}: SHA-256 ")
    # the segmentation named once (its reader's error named it again: "seg: cannot be read to compare: seg: ...")
    assert lines[4].startswith(f"{sidecar}: rerun FAILED: {seg}: cannot be read to compare: ") and \
        lines[4].count(str(seg)) == 1, lines[4]
    assert err == f"medseg: the sidecar does not match: {sidecar} (segmentation, rerun)\n"


def test_a_dicom_seg_output_is_segmented_again_and_compared(tmp_path, make_package, capsys):
    """--rerun of a --format dicom-seg output said 'not segmented again' and exited 0: the SEG is read back onto its
    series' grid (as medseg evaluate reads it) and compared voxel by voxel."""
    from dicom_factory import make_series

    make_series(tmp_path / "study", shape=(24, 20, 6))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--format", "dicom-seg", "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 0, out + err
    assert out.splitlines()[4] == (f"{sidecar}: rerun ok: segmented again on cpu (fp32, batch 16, overlap 0.25, 1 "
                                   "thread): 0 of 2,880 voxels differ from study_seg.dcm")


def test_the_rerun_line_gives_the_threads_it_ran_with(segmented, capsys):
    """The rerun's line gave the recorded cpu_threads, not those it ran with: a sidecar of 64 threads checked on a
    machine of fewer CPUs (capped, with a warning) read '64 threads'."""
    import torch

    from medseg.resources import set_threads, usable_cpus

    _, sidecar = segmented
    _edit(sidecar, cpu_threads=10_000)
    before = torch.get_num_threads()
    try:
        code, out, _ = run(["verify", str(sidecar), "--rerun"], capsys)
    finally:
        set_threads(before)  # the tests after this one in the process run with the threads they had
    used = usable_cpus()
    assert code == 0
    assert f"(fp32, batch 16, overlap 0.25, {used} thread{'' if used == 1 else 's'}): 0 of 12,800" in out


def test_an_older_sidecars_relative_input_is_found_as_other_readers_find_it(segmented, case, capsys):
    """Sidecars from before medseg recorded absolute input paths hold one relative to the folder the run started in:
    verify looked for it in the folder it runs in only, where the report and evaluate also try the sidecar's folder
    and the one above it (find_recorded_source)."""
    _, sidecar = segmented
    _edit(sidecar, input=case.name)  # the run started in the case's folder; out/ beside it
    result = verify_sidecar(sidecar)
    assert result.checks[1].ok is True and result.checks[1].text.startswith(f"{case}: matches input_sha256")


def test_a_compressed_series_decoders_are_compared(tmp_path, make_package, capsys):
    """A DICOM sidecar records the decoders pydicom had for its transfer syntax (a lossy JPEG decodes to other values
    under another): verify compared pydicom's version alone and never named another decoder."""
    from dicom_factory import make_series
    from pydicom.uid import RLELossless

    make_series(tmp_path / "study", shape=(24, 20, 6), transfer_syntax=RLELossless)
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    record = json.loads(sidecar.read_text())
    decoders = record["versions"]["dicom_decoders"]
    assert verify_sidecar(sidecar).checks[3].ok is True
    _edit(sidecar, versions={**record["versions"], "dicom_decoders": "gdcm (gdcm 3.0.0)"})
    check = verify_sidecar(sidecar).checks[3]
    assert check.ok is None
    assert check.text.startswith(f"versions or platform differ: dicom_decoders gdcm (gdcm 3.0.0) (now {decoders})")


def test_a_segmentation_of_another_shape_is_named_in_the_rerun_line(segmented, capsys):
    """The rerun's line for a segmentation of another grid gave the two shapes without the file."""
    _, sidecar = segmented
    seg = sidecar.parent / "case_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 7), np.uint8), np.eye(4)), str(seg))
    code, out, _ = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 3
    assert out.splitlines()[4] == (f"{sidecar}: rerun FAILED: {seg}: shape (40, 40, 7), and segmented again "
                                   "(40, 40, 8): not a segmentation of this input")


def test_a_results_folder_verifies_every_sidecar_under_it(segmented, case, tmp_path, capsys):
    """`medseg verify out/` took sidecars only ("out: a folder, not a file"): a batch's output folder, or a cohort's
    results folder (cases/<id>/<id>_seg.json), is searched for its sidecars, which are counted and each checked."""
    package, sidecar = segmented
    out = sidecar.parent
    second = shutil.copy(case, tmp_path / "b.nii.gz")
    nested = out / "cases" / "b"
    code, _, err = run(["infer", str(second), "-m", str(package), "-o", str(nested), "--threads", "1"], capsys)
    assert code == 0, err
    code, stdout, err = run(["verify", str(out)], capsys)
    assert code == 0, err
    assert err == f"{out}: 2 sidecars found\n"
    checked = [(line.split(": ", 1)[0], line.split(": ", 2)[1]) for line in stdout.splitlines()]
    assert checked == [(str(out / name), check) for name in ("case_seg.json", "cases/b/b_seg.json")
                       for check in ("segmentation ok", "input ok", "model ok", "versions ok")]


def test_a_bad_sidecar_in_a_results_folder_fails_alone(segmented, case, tmp_path, capsys):
    """In a folder, a sidecar whose segmentation was edited and one that is not JSON each fail on their own line;
    the others are checked, and the command exits 1 naming the two."""
    package, sidecar = segmented
    out = sidecar.parent
    for name in ("b", "c"):
        copy = shutil.copy(case, tmp_path / f"{name}.nii.gz")
        code, _, err = run(["infer", str(copy), "-m", str(package), "-o", str(out), "--threads", "1"], capsys)
        assert code == 0, err
    seg = out / "b_seg.nii.gz"
    image = nib.load(str(seg))
    labels = np.asarray(image.dataobj).copy()
    labels[0, 0, 0] = 3 if labels[0, 0, 0] != 3 else 1
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), str(seg))
    broken = out / "a_seg.json"
    broken.write_text("{bad")
    code, stdout, err = run(["verify", str(out)], capsys)
    assert code == 3
    assert [line.split(": ", 2)[1] for line in stdout.splitlines()] == [
        "segmentation FAILED", "input ok", "model ok", "versions ok", "segmentation ok", "input ok", "model ok",
        "versions ok", "segmentation ok", "input ok", "model ok", "versions ok"]
    assert stdout.splitlines()[0].startswith(f"{out / 'b_seg.json'}: ")
    assert err.splitlines() == [
        f"{out}: 4 sidecars found",
        f"medseg: error: {broken}: not valid JSON at line 1, column 2: a key in double quotes was expected",
        f"medseg: 1 of 4 sidecars does not match: {out / 'b_seg.json'} (segmentation)",
        f"medseg: 1 of 4 sidecars could not be checked: {broken} (not read)"]


def test_a_folder_without_sidecars_is_one_error_naming_it(tmp_path, case, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(case, empty / "case.nii.gz")  # an image, no sidecar
    code, stdout, err = run(["verify", str(empty)], capsys)
    assert (code, stdout) == (1, "")
    assert err == (f"medseg: error: {empty}: no sidecar found in this folder or under it (looked for *_seg.json, "
                   "the sidecars medseg infer writes)\n")


def test_a_sidecar_named_and_found_in_a_folder_given_too_is_checked_once(segmented, tmp_path, capsys):
    """A folder and a sidecar in it given together (`medseg verify out out/case_seg.json`, or a folder and its
    subfolder) checked that sidecar twice, and a failed one was counted twice: "2 of 2 sidecars do not match" for
    one sidecar. Each sidecar is checked once, in the order first given."""
    _, sidecar = segmented
    out = sidecar.parent
    code, stdout, err = run(["verify", str(out), str(sidecar), str(out / "." / sidecar.name)], capsys)
    assert code == 0, err
    assert [line.split(": ", 2)[1] for line in stdout.splitlines()] == [
        "segmentation ok", "input ok", "model ok", "versions ok"]
    seg = out / "case_seg.nii.gz"
    seg.write_bytes(seg.read_bytes() + b"\0")  # no longer the recorded file
    code, stdout, err = run(["verify", str(sidecar), str(out)], capsys)
    assert code == 3
    assert err.splitlines()[-1] == f"medseg: the sidecar does not match: {sidecar} (segmentation)"


def test_a_folders_hidden_subfolders_are_not_searched(tmp_path):
    """`medseg verify .` in a checkout walked `.venv`, `.snakemake` and `.git` (slow, and a sidecar kept there by a
    tool, or an unlistable hidden folder, was checked or refused); hidden folders are passed over as hidden files
    are."""
    import os

    from medseg.verification import find_sidecars

    (tmp_path / "cases" / "a").mkdir(parents=True)
    (tmp_path / "cases" / "a" / "a_seg.json").write_text("{}")
    (tmp_path / ".snakemake" / "shadow").mkdir(parents=True)
    (tmp_path / ".snakemake" / "shadow" / "b_seg.json").write_text("{}")
    locked = tmp_path / ".venv"
    locked.mkdir()
    locked.chmod(0)
    try:
        if os.geteuid() == 0:  # root lists it anyway: the found list still leaves it out
            (locked / "c_seg.json").write_text("{}")
        assert find_sidecars(tmp_path) == [tmp_path / "cases" / "a" / "a_seg.json"]
    finally:
        locked.chmod(0o755)


def test_a_changed_dicom_series_is_told_file_by_file(tmp_path, make_package, capsys):
    """A series changed since it was segmented failed the input check with its combined SHA-256 alone: which of its
    files changed, or went, was not said. The sidecar's ``input_info.file_sha256`` names each file's own digest."""
    import pydicom
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 6))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    names = sorted(json.loads(sidecar.read_text())["input_info"]["file_sha256"])
    edited = tmp_path / "study" / names[2]
    dataset = pydicom.dcmread(edited)
    dataset.ImageComments = "re-exported"
    dataset.save_as(edited)
    code, out, err = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and line.startswith(f"{sidecar}: input FAILED: "), out + err
    assert line.endswith(f"not the input segmented: of its 6 recorded files, 1 changed ({names[2]})"), line
    # the input check only: the series is read as it is now
    (tmp_path / "study" / names[4]).unlink()
    code, out, _ = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert line.endswith(f"of its 6 recorded files, 1 changed ({names[2]}), 1 not there ({names[4]})"), line


def test_a_changed_copy_of_a_dicom_series_given_with_input_names_the_file_that_changed(tmp_path, make_package,
                                                                                       capsys):
    """``verify --input COPY`` checks a copy of the series elsewhere: its files' recorded names are relative to the
    folder segmented (``a/0003.dcm`` for a study folder given), and a copy of the series folder itself had every file
    said to be not there when one had changed."""
    import pydicom
    from dicom_factory import make_series

    make_series(tmp_path / "study" / "a", shape=(24, 20, 6))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    names = sorted(json.loads(sidecar.read_text())["input_info"]["file_sha256"])
    assert names[2].startswith("a/")
    shutil.copytree(tmp_path / "study" / "a", tmp_path / "copy")
    edited = tmp_path / "copy" / names[2].removeprefix("a/")
    dataset = pydicom.dcmread(edited)
    dataset.ImageComments = "re-exported"
    dataset.save_as(edited)
    code, out, err = run(["verify", str(sidecar), "--input", str(tmp_path / "copy")], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and line.endswith(f"not the input segmented: of its 6 recorded files, 1 changed ({names[2]})"), \
        out + err


def test_a_changed_dicom_series_of_a_sidecar_without_file_digests_fails_its_input_check_as_before(tmp_path,
                                                                                                  make_package, capsys):
    """A sidecar written before ``input_info.file_sha256`` (or one of a series it was taken out of) still fails a
    changed series' input check, on its combined SHA-256, with no files named and no error."""
    import pydicom
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 6))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    record = json.loads(sidecar.read_text())
    del record["input_info"]["file_sha256"]
    sidecar.write_text(json.dumps(record))
    dataset = pydicom.dcmread(paths[0])
    dataset.ImageComments = "re-exported"
    dataset.save_as(paths[0])
    code, out, err = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and line.startswith(f"{sidecar}: input FAILED: ") and line.endswith(
        f"the sidecar records {record['input_sha256'][:12]}…: not the input segmented"), out + err


def test_files_added_to_a_dicom_series_are_named(tmp_path, make_package, capsys):
    """A series given slices since it was segmented failed its input check with "files were added to the series",
    naming none of them: the added files are named (the first three and how many more), after any changed one."""
    import pydicom
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 8))
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in paths[4:]:  # segmented without its last four slices
        shutil.move(path, aside / path.name)
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    names = sorted(json.loads(sidecar.read_text())["input_info"]["file_sha256"])
    assert len(names) == 4
    shutil.move(aside / paths[4].name, paths[4])
    code, out, err = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    added = paths[4].relative_to(tmp_path / "study").as_posix()
    assert code == 3 and line.endswith(f"not the input segmented: its 4 recorded files are as they were; 1 file "
                                       f"added ({added})"), out + err
    for path in paths[5:]:
        shutil.move(aside / path.name, path)
    edited = tmp_path / "study" / names[1]
    dataset = pydicom.dcmread(edited)
    dataset.ImageComments = "re-exported"
    dataset.save_as(edited)
    code, out, _ = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    shown = ", ".join(sorted(path.relative_to(tmp_path / "study").as_posix() for path in paths[4:])[:3])
    assert code == 3 and line.endswith(f"of its 4 recorded files, 1 changed ({names[1]}); 4 files added ({shown} "
                                       "and 1 more)"), line


@pytest.mark.shared_data
def test_a_slice_added_to_a_real_ct_series_is_named(shared_data, tmp_path, capsys):
    """The real 3-slice CT series segmented with two of its slices, then given its third: the line names it."""
    series = tmp_path / "series"
    series.mkdir()
    for name in ("01.dcm", "02.dcm"):
        shutil.copyfile(shared_data / "dicom" / "ct-seg" / "series" / name, series / name)
    code, _, err = run(["infer", str(series), "-o", str(tmp_path / "out"), "--threads", "1"], capsys)
    assert code == 0, err
    shutil.copyfile(shared_data / "dicom" / "ct-seg" / "series" / "03.dcm", series / "03.dcm")
    code, out, err = run(["verify", str(tmp_path / "out" / "series_seg.json")], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and line.endswith("its 2 recorded files are as they were; 1 file added (03.dcm)"), out + err


_OPENED: dict = {"paths": None}  # the files this process opens while a test records them (an audit hook: real opens)


def _record_open(event: str, args: tuple) -> None:
    if event == "open" and _OPENED["paths"] is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED["paths"].append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_record_open)


def _verified_opening(sidecar, capsys):
    """``medseg verify SIDECAR``: (exit code, stdout, stderr, the real paths of the files it opened)."""
    _OPENED["paths"] = []
    try:
        code, out, err = run(["verify", str(sidecar)], capsys)
        return code, out, err, list(_OPENED["paths"])
    finally:
        _OPENED["paths"] = None


def _segmented_study_beside_a_secret(tmp_path, make_package, capsys):
    """A 4-slice DICOM study segmented into ``out/``, and ``secret.dcm`` beside the study's folder, not part of it:
    (the study's file paths, the secret file)."""
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 4))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    secret = tmp_path / "secret.dcm"
    secret.write_bytes(b"not part of the series")
    return paths, secret


@pytest.mark.parametrize("entry", ["../secret.dcm", "ABSOLUTE", "a/../../secret.dcm", pytest.param(
    "..\\secret.dcm", marks=pytest.mark.skipif(os.name != "nt", reason="on POSIX a name with '\\' is in the folder"))])
def test_a_sidecar_naming_a_file_outside_the_series_folder_is_refused_unread(tmp_path, make_package, capsys, entry):
    """A crafted or damaged sidecar whose ``input_info.file_sha256`` named ``../secret.dcm`` (or an absolute path)
    had verify hash that file, outside the series folder, once the series differed. Such an entry is one error line
    naming the sidecar and the entry, and the file is not opened."""
    import pydicom

    paths, secret = _segmented_study_beside_a_secret(tmp_path, make_package, capsys)
    entry = str(secret) if entry == "ABSOLUTE" else entry
    sidecar = tmp_path / "out" / "study_seg.json"
    record = json.loads(sidecar.read_text())
    record["input_info"]["file_sha256"][entry] = "0" * 64
    sidecar.write_text(json.dumps(record))
    dataset = pydicom.dcmread(paths[0])
    dataset.ImageComments = "re-exported"
    dataset.save_as(paths[0])
    code, out, err, opened = _verified_opening(sidecar, capsys)
    assert code == 1 and out == "", out
    assert err.strip() == (f"medseg: error: {sidecar}: input_info.file_sha256 names {entry!r}, not a file in the "
                           "series folder; the sidecar was edited or damaged since medseg infer wrote it"), err
    assert os.path.realpath(secret) not in opened and os.path.realpath(sidecar) in opened


@pytest.mark.parametrize("named", ["../case_seg.nii.gz", "ABSOLUTE", "sub/case_seg.nii.gz"])
def test_a_sidecar_naming_a_segmentation_outside_its_folder_is_refused_unread(segmented, tmp_path, capsys, named):
    """The sidecar's ``segmentation`` is the name of the file beside it; ``../x_seg.nii.gz`` had verify hash a file
    elsewhere, and say "segmentation ok" of a copy outside the output folder."""
    _, sidecar = segmented
    elsewhere = tmp_path / "case_seg.nii.gz"
    shutil.copyfile(sidecar.parent / "case_seg.nii.gz", elsewhere)
    (sidecar.parent / "sub").mkdir()
    shutil.copyfile(elsewhere, sidecar.parent / "sub" / "case_seg.nii.gz")
    named = str(elsewhere) if named == "ABSOLUTE" else named
    record = json.loads(sidecar.read_text())
    record["segmentation"] = named
    sidecar.write_text(json.dumps(record))
    code, out, err, opened = _verified_opening(sidecar, capsys)
    assert code == 1 and out == "", out
    assert err.strip() == (f"medseg: error: {sidecar}: segmentation is {named!r}, not the name of a file beside the "
                           "sidecar; the sidecar was edited or damaged since medseg infer wrote it"), err
    # the hook records real paths: compared as such, the sidecar's own read showing that it records at all
    assert os.path.realpath(sidecar) in opened, opened
    assert os.path.realpath(elsewhere) not in opened
    assert os.path.realpath(sidecar.parent / "sub" / "case_seg.nii.gz") not in opened


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("segmentation", ["a"], "a list, not a file name"),
    ("segmentation", None, "null, not a file name"),
    ("segmentation_sha256", 5, "a number, not a SHA-256 in hex (64 of 0-9 and a-f)"),
    ("input_sha256", "ab", "'ab', not a SHA-256 in hex (64 of 0-9 and a-f)"),
    ("input", 7, "a number, not a path"),
    ("model", "hippocampus", "a string, not an object"),
    ("input_info", [1], "a list, not an object"),
    ("modalities", 5, "a number, not a list"),
    ("versions", [1], "a list, not an object"),
    ("platform", "x", "a string, not an object"),
    ("inference", "x", "a string, not an object"),
    ("input_info.file_sha256", [1], "a list, not an object"),
    ("input_info.copy_files", ["b.dcm"], "a list, not an object"),
    ("model.weights_sha256", None, "null, not a SHA-256 in hex (64 of 0-9 and a-f)"),
    ("model.settings_sha256", 12, "a number, not a SHA-256 in hex (64 of 0-9 and a-f)"),
])
def test_a_hand_edited_sidecar_field_of_the_wrong_type_is_one_error_line(segmented, capsys, key, value, expected):
    """A sidecar edited by hand: a field of another type gave a traceback (``input_info`` a list, ``modalities`` a
    number), a check of a made-up path (``segmentation`` null: ``out/None: not there``) or no word at all
    (``versions`` a list). One error line names the sidecar and the field."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    if key.startswith("input_info."):
        record["input_info"] = {"format": "dicom", key.removeprefix("input_info."): value}
    elif key.startswith("model."):
        record["model"][key.removeprefix("model.")] = value
    else:
        record[key] = value
    sidecar.write_text(json.dumps(record))
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and out == "", out
    assert err.strip() == (f"medseg: error: {sidecar}: {key} is {expected}; the sidecar was edited or damaged since "
                           "medseg infer wrote it"), err
    with pytest.raises(InputError, match=f"{key} is "):
        verify_sidecar(sidecar)


def test_a_copy_files_entry_that_is_not_a_file_name_names_its_value_not_its_copy(segmented, capsys):
    """``input_info.copy_files`` maps each copy skipped to the file it copies. An entry whose value is not a string
    (``{"b_copy.dcm": 5}``, a hand edit) was told as "copy_files names 'b_copy.dcm', not a file in the series folder",
    a name that is one; the line says what the entry gives instead."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    for value, shown in ((5, "a number"), (None, "null")):
        record["input_info"] = {"format": "dicom", "copy_files": {"b_copy.dcm": value}}
        sidecar.write_text(json.dumps(record))
        code, out, err = run(["verify", str(sidecar)], capsys)
        assert code == 1 and out == "", out
        assert err.strip() == (f"medseg: error: {sidecar}: input_info.copy_files gives 'b_copy.dcm' {shown}, not the "
                               "name of a file in the series folder; the sidecar was edited or damaged since medseg "
                               "infer wrote it"), err
    record["input_info"]["copy_files"] = {"../b_copy.dcm": 5}  # a name outside the folder: that is told first
    sidecar.write_text(json.dumps(record))
    with pytest.raises(InputError, match=r"copy_files names '\.\./b_copy\.dcm', not a file in the series folder"):
        verify_sidecar(sidecar)


def test_a_model_that_cannot_be_loaded_is_named_once(segmented, tmp_path, capsys):
    """``verify -m missing``: "model FAILED: missing: missing: no such model folder ..." named it twice."""
    _, sidecar = segmented
    missing = tmp_path / "missing"
    code, out, _ = run(["verify", str(sidecar), "-m", str(missing)], capsys)
    (line,) = [line for line in out.splitlines() if ": model " in line]
    assert code == 1 and line.startswith(f"{sidecar}: model FAILED: {missing}: no such model folder") and \
        line.count(str(missing)) == 1, line


def test_a_hand_edited_input_sha256_of_an_unchanged_series_is_not_told_as_files_added(tmp_path, make_package,
                                                                                       capsys):
    """A series' sidecar whose input_sha256 was edited by hand, its files as they were: the input line said "files
    were added to the series", which none were. It says the recorded input_sha256 is not that of the files the
    sidecar records."""
    from dicom_factory import make_series

    make_series(tmp_path / "study", shape=(24, 20, 4))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "study_seg.json"
    record = json.loads(sidecar.read_text())
    record["input_sha256"] = "0" * 64
    sidecar.write_text(json.dumps(record))
    code, out, err = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and line.endswith(
        "its 4 recorded files are as they were and the series holds no other: the sidecar's input_sha256 is not "
        "that of the files it records; the sidecar was edited or damaged since medseg infer wrote it"), out + err


@pytest.mark.skipif(os.name == "nt", reason="'\\' and 'C:' name folders and drives on Windows: no file is so named")
def test_outputs_of_files_named_with_a_backslash_or_a_drive_like_prefix_verify_on_posix(tmp_path, make_package,
                                                                                          capsys):
    """On POSIX ``\\`` and ``C:`` are characters of a file's name: a series unzipped from a Windows archive holds
    ``DICOM\\IM0001`` files, an input may be named ``C:004.nii.gz``. medseg infer records them as they are, and verify
    refused its own fresh sidecars as "edited or damaged" (``input_info.file_sha256 names 'DICOM\\\\IM0001', not a
    file in the series folder``; ``segmentation is 'C:004_seg.nii.gz', not the name of a file beside the sidecar``)."""
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 4))
    for path in paths:
        path.rename(path.parent / f"DICOM\\{path.name}")
    image = np.random.default_rng(0).random((16, 16, 4), dtype=np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp_path / "C:004.nii.gz"))
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp_path / "scan\\006.nii.gz"))
    package = make_package()
    code, _, err = run(["infer", str(tmp_path / "study"), str(tmp_path / "C:004.nii.gz"),
                        str(tmp_path / "scan\\006.nii.gz"), "-m", str(package), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    recorded = json.loads((tmp_path / "out" / "study_seg.json").read_text())["input_info"]["file_sha256"]
    assert sorted(recorded) == sorted(f"DICOM\\{path.name}" for path in paths)
    code, out, err = run(["verify", str(tmp_path / "out")], capsys)
    assert code == 0 and err.strip() == f"{tmp_path / 'out'}: 3 sidecars found", err
    assert len([line for line in out.splitlines() if ": input ok: " in line]) == 3, out


@pytest.mark.skipif(os.name == "nt", reason="on Windows '..\\secret.dcm' leads out of the folder: refused above")
def test_a_recorded_name_with_a_backslash_names_a_file_in_the_series_folder_on_posix(tmp_path, make_package, capsys):
    """On POSIX ``..\\secret.dcm`` is one name in the series folder, not a way out of it: the changed series' line
    names it as not there, and ``../secret.dcm`` beside the folder is not opened."""
    import pydicom

    paths, secret = _segmented_study_beside_a_secret(tmp_path, make_package, capsys)
    sidecar = tmp_path / "out" / "study_seg.json"
    record = json.loads(sidecar.read_text())
    record["input_info"]["file_sha256"]["..\\secret.dcm"] = "0" * 64
    sidecar.write_text(json.dumps(record))
    dataset = pydicom.dcmread(paths[0])
    dataset.ImageComments = "re-exported"
    dataset.save_as(paths[0])
    code, out, err, opened = _verified_opening(sidecar, capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and "of its 5 recorded files, 1 changed (" in line and "1 not there (..\\secret.dcm)" in line, \
        out + err
    assert os.path.realpath(secret) not in opened and os.path.realpath(sidecar) in opened


def test_a_sidecar_from_before_the_segmentation_sha256_was_recorded_verifies_its_other_checks(segmented, capsys):
    """medseg recorded ``segmentation_sha256`` from 2026-12-02 on; its earlier sidecars (schema
    ``medseg-segmentation/1`` too) were refused whole: "the sidecar has no 'segmentation_sha256'; it was not written
    whole by medseg infer", which medseg infer had written so. Their input, model and versions are checked, and the
    segmentation's line says it is not compared (``--rerun`` compares its voxels). Such a pass, exit 0, gave no last
    line, as a full pass gives none: a QA user reading the exit code could take it for one; its last line says the
    segmentation file was not checked."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    del record["segmentation_sha256"]
    sidecar.write_text(json.dumps(record))
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 0 and err == ("medseg: the segmentation file was not checked (no segmentation_sha256 recorded: "
                                 f"written by medseg before 2026-12-02; --rerun compares its voxels): {sidecar}\n")
    code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 0 and err == ("medseg: the segmentation file was not checked (no segmentation_sha256 recorded: "
                                 f"written by medseg before 2026-12-02; its voxels compared by --rerun): {sidecar}\n")
    lines = out.splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == ["segmentation note", "input ok", "model ok", "versions ok",
                                                         "rerun ok"], out
    assert lines[0] == (f"{sidecar}: segmentation note: {sidecar.parent / 'case_seg.nii.gz'}: the sidecar records no "
                        "segmentation_sha256 (written by medseg before 2026-12-02): not compared; --rerun compares "
                        "its voxels")
    record["segmentation_sha256"] = None  # written so by no medseg: a hand edit
    sidecar.write_text(json.dumps(record))
    with pytest.raises(InputError, match="segmentation_sha256 is null, not a SHA-256 in hex"):
        verify_sidecar(sidecar)


def test_a_python_caller_of_a_sidecar_without_segmentation_sha256_is_told_rerun_true_not_the_option(segmented):
    """The note on a sidecar from before ``segmentation_sha256`` was recorded said "--rerun compares its voxels" to
    a Python caller of :func:`verify_sidecar` too, which has no such option: it names the keyword argument, as the
    library's messages name a setting (the command names its option, above)."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    del record["segmentation_sha256"]
    sidecar.write_text(json.dumps(record))
    check = verify_sidecar(sidecar).checks[0]
    assert (check.what, check.ok) == ("segmentation", None)
    assert check.text.endswith("(written by medseg before 2026-12-02): not compared; rerun=True compares its "
                               "voxels"), check.text


@pytest.mark.parametrize(("key", "edit"), [("input_sha256", str.upper), ("segmentation_sha256", lambda v: v + " "),
                                           ("model.weights_sha256", lambda v: v[:-1] + "g")])
def test_a_long_hash_that_is_not_one_is_shown_in_the_error_line(segmented, capsys, key, edit):
    """A hash of 64 capitals, one with a space after it or a letter beyond f (a hand edit) was told as "input_sha256
    is a string, not a SHA-256 in hex": which string, and what is wrong with it, the line did not say."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    holder, field_name = (record["model"], "weights_sha256") if key.startswith("model.") else (record, key)
    holder[field_name] = value = edit(holder[field_name])
    sidecar.write_text(json.dumps(record))
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and out == "", out
    assert err.strip() == (f"medseg: error: {sidecar}: {key} is {value[:12]!r}… ({len(value)} characters), not a "
                           "SHA-256 in hex (64 of 0-9 and a-f); the sidecar was edited or damaged since medseg infer "
                           "wrote it"), err


def test_a_series_folder_that_no_longer_holds_the_recorded_series_says_so(tmp_path, make_package, capsys):
    """The series' folder is there and readable, but the series the sidecar records is not in it (its files replaced
    by another series' export): the input line said "<folder>: not there or not readable; give its copy with
    --input", of a folder that is there. It gives the reader's reason and the recorded files that are not there."""
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 4))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    for path in paths:
        path.unlink()
    _, others = make_series(tmp_path / "other", seed=1, shape=(24, 20, 3), series_number=4)
    for path in others:
        path.rename(tmp_path / "study" / f"new_{path.name}")
    sidecar = tmp_path / "out" / "study_seg.json"
    uid = json.loads(sidecar.read_text())["input_info"]["series_uid"]
    code, out, err = run(["verify", str(sidecar)], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    assert code == 3 and "not there or not readable" not in line, out + err
    assert line.startswith(f"{sidecar}: input FAILED: {tmp_path / 'study'}: no series has the SeriesInstanceUID "
                           f"asked for, {uid!r}") and line.count(str(tmp_path / "study")) == 1, line
    first = ", ".join(sorted(path.name for path in paths)[:3])
    assert line.endswith(f"; of its 4 recorded files, 4 not there ({first} and 1 more)"), line


def test_a_model_whose_model_json_cannot_be_read_names_that_file_alone(segmented, tmp_path, capsys):
    """``verify -m pkg`` of a package whose model.json is cut short: "model FAILED: pkg: pkg/model.json: not valid
    JSON …" named the package folder, then the file in it. The file in it names the package once."""
    package, sidecar = segmented
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    (broken / "model.json").write_text("{")
    code, out, _ = run(["verify", str(sidecar), "-m", str(broken)], capsys)
    (line,) = [line for line in out.splitlines() if ": model " in line]
    assert code == 1 and line.startswith(f"{sidecar}: model FAILED: {broken / 'model.json'}: not valid JSON") and \
        line.count(str(broken)) == 1, line


def _input_line(out: str) -> str:
    (line,) = [line for line in out.splitlines() if ": input " in line]
    return line


@pytest.fixture
def ct_series(shared_data, tmp_path, make_package, capsys):
    """The real 3-slice CT series (a copy) segmented: (the series folder, its sidecar)."""
    series = tmp_path / "series"
    shutil.copytree(shared_data / "dicom" / "ct-seg" / "series", series)
    code, _, err = run(["infer", str(series), "-m", str(make_package()), "-o", str(tmp_path / "out"), "--threads",
                        "1"], capsys)
    assert code == 0, err
    return series, tmp_path / "out" / "series_seg.json"


@pytest.mark.shared_data
def test_a_renamed_file_of_a_real_series_is_told_renamed_not_gone_and_added(ct_series, shared_data, capsys):
    """A slice renamed since the series was segmented read as "1 not there (02.dcm); 1 file added (02b.dcm)": two
    findings for one rename. Its bytes, and so its recorded digest, are the same: it is told as renamed. Renamed
    alone, the series is the input segmented (its SHA-256 is that of its files' contents): the check passes and
    names the rename."""
    import pydicom

    series, sidecar = ct_series
    (series / "02.dcm").rename(series / "02b.dcm")
    dataset = pydicom.dcmread(series / "03.dcm")
    dataset.ImageComments = "re-exported"
    dataset.save_as(series / "03.dcm")
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 3 and _input_line(out).endswith(
        "not the input segmented: of its 3 recorded files, 1 changed (03.dcm), 1 renamed (02.dcm → 02b.dcm)"), out
    shutil.copyfile(shared_data / "dicom" / "ct-seg" / "series" / "03.dcm", series / "03.dcm")
    code, out, err = run(["verify", str(sidecar)], capsys)
    recorded = json.loads(sidecar.read_text())["input_sha256"]
    assert code == 0 and _input_line(out) == (f"{sidecar}: input ok: {series}: matches input_sha256 "
                                              f"({recorded[:12]}…); 1 file renamed (02.dcm → 02b.dcm)"), out + err


def test_a_deleted_slice_whose_copy_the_folder_held_is_told_not_there_not_renamed(tmp_path, make_package, capsys):
    """A series with a copy of a slice beside it (``b_copy.dcm``, which the reader skips: same SOPInstanceUID, same
    bytes), segmented; then the slice deleted: the copy is read in its place, and verify told "1 file renamed (b.dcm
    → b_copy.dcm)", though the copy was there when the series was segmented (seen on the real CT series, ``02.dcm``
    and ``02_copy.dcm``). The sidecar records the copies skipped (``input_info.copy_files``): the deleted slice is
    told not there, its copy named; a file the folder did not hold is still told renamed."""
    import pydicom
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "series", shape=(24, 20, 4))
    names = [path.name for path in sorted(paths)]
    deleted, changed = tmp_path / "series" / names[1], tmp_path / "series" / names[2]
    copy = deleted.with_name(f"{deleted.stem}_copy.dcm")
    shutil.copyfile(deleted, copy)
    code, _, err = run(["infer", str(tmp_path / "series"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    sidecar = tmp_path / "out" / "series_seg.json"
    record = json.loads(sidecar.read_text())
    assert record["input_info"]["copy_files"] == {copy.name: deleted.name}
    assert sorted(record["input_info"]["file_sha256"]) == names
    deleted.unlink()
    code, out, err = run(["verify", str(sidecar)], capsys)
    told = f"{deleted.name}: its copy {copy.name} read in its place (the folder held both when segmented)"
    assert code == 0 and _input_line(out) == (
        f"{sidecar}: input ok: {tmp_path / 'series'}: matches input_sha256 ({record['input_sha256'][:12]}…); 1 "
        f"recorded file not there ({told})"), out + err
    dataset = pydicom.dcmread(changed)
    dataset.ImageComments = "re-exported"
    dataset.save_as(changed)
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 3 and _input_line(out).endswith(
        f"not the input segmented: of its 4 recorded files, 1 changed ({changed.name}), 1 not there ({told})"), out
    # the copy renamed since: a file the folder did not hold, so a rename of the deleted slice, as before
    copy.rename(deleted.with_name("renamed.dcm"))
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 3 and _input_line(out).endswith(
        f"of its 4 recorded files, 1 changed ({changed.name}), 1 renamed ({deleted.name} → renamed.dcm)"), out
    record["input_info"]["copy_files"] = {copy.name: f"../{deleted.name}"}  # compared by name, never opened
    sidecar.write_text(json.dumps(record))
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and out == "" and err.strip() == (
        f"medseg: error: {sidecar}: input_info.copy_files names '../{deleted.name}', not a file in the series "
        "folder; the sidecar was edited or damaged since medseg infer wrote it"), err


@pytest.mark.shared_data
def test_a_hand_edited_file_digest_of_a_real_series_is_told_though_the_series_matches(ct_series, capsys):
    """``input_info.file_sha256`` edited by hand, the series as it was: its combined SHA-256 matched, so the input
    check passed and the edit went unnoticed. The recorded digests are not those of its files: the check fails,
    naming the entry, its recorded digest and the file's."""
    from medseg.io.atomic import sha256_of

    series, sidecar = ct_series
    record = json.loads(sidecar.read_text())
    record["input_info"]["file_sha256"]["02.dcm"] = "0" * 64
    sidecar.write_text(json.dumps(record))
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 3 and _input_line(out) == (
        f"{sidecar}: input FAILED: {series}: matches input_sha256 ({record['input_sha256'][:12]}…); but the "
        "sidecar's input_info.file_sha256 is not that of the series' files (02.dcm recorded as 000000000000…, its "
        f"SHA-256 {sha256_of(series / '02.dcm')[:12]}…); the sidecar was edited or damaged since medseg infer "
        "wrote it"), out
    assert err == f"medseg: the sidecar does not match: {sidecar} (input)\n"


@pytest.mark.shared_data
def test_a_series_uid_edited_to_the_series_number_does_not_match_that_series(ct_series, capsys):
    """A sidecar's ``series_uid`` edited to ``2``, the real series' SeriesNumber (and key): the series was chosen by
    that number, and the input check passed. A recorded UID is matched as a UID only."""
    series, sidecar = ct_series
    record = json.loads(sidecar.read_text())
    number = record["input_info"]["series_number"]
    record["input_info"]["series_uid"] = str(number)
    sidecar.write_text(json.dumps(record))
    code, out, _ = run(["verify", str(sidecar)], capsys)
    line = _input_line(out)
    assert code == 3 and line.startswith(f"{sidecar}: input FAILED: {series}: no series has the SeriesInstanceUID "
                                         f"asked for, '{number}'; found series {number} "), out
    assert line.endswith("its 3 recorded files are as they were, and none is of the series_uid the sidecar records; "
                         "the sidecar was edited or damaged since medseg infer wrote it"), line


def test_a_change_found_exits_3_and_a_sidecar_not_checked_exits_1(segmented, case, tmp_path, capsys):
    """A QA script could not tell "the files changed" from "the check could not be made": both exited 1. A check
    that compared a file and found it changed exits 3; a sidecar that cannot be read, or a file it names that is not
    there, exits 1, as every medseg error does; with both, 3, each told on its own last line."""
    _, sidecar = segmented
    moved = tmp_path / "moved.nii.gz"
    shutil.move(case, moved)
    code, _, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and err == f"medseg: the sidecar could not be checked: {sidecar} (input)\n", err
    shutil.move(moved, case)
    seg = sidecar.parent / "case_seg.nii.gz"
    seg.write_bytes(seg.read_bytes() + b"\0")
    code, _, err = run(["verify", str(sidecar)], capsys)
    assert code == 3 and err == f"medseg: the sidecar does not match: {sidecar} (segmentation)\n", err
    missing = tmp_path / "gone_seg.json"
    code, _, err = run(["verify", str(sidecar), str(missing)], capsys)
    assert code == 3 and err.splitlines() == [
        f"medseg: error: {missing}: no such file or folder (give a sidecar, the _seg.json medseg infer wrote, "
        "or a folder of them)",
        f"medseg: 1 of 2 sidecars does not match: {sidecar} (segmentation)",
        f"medseg: 1 of 2 sidecars could not be checked: {missing} (not read)"], err


def test_a_rerun_out_of_gpu_memory_names_what_the_verify_user_can_change(segmented, monkeypatch, caplog, capsys):
    """A rerun that ran out of GPU memory went on with fewer tiles, saying "batch_size=... (a keyword argument of
    medseg's Python functions; medseg verify has no option for it) sets it": a setting verify lacks, as a rerun keeps
    the batch the sidecar records. It names that batch, and --device, which the verify user can give."""
    from test_inference import _SmallGPU

    import medseg.inference

    _, sidecar = segmented
    real_init = medseg.inference.Segmenter.__init__

    def on_a_small_gpu(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.window_net.net = _SmallGPU(self.window_net.net, room=5)

    monkeypatch.setattr(medseg.inference.Segmenter, "__init__", on_a_small_gpu)
    with caplog.at_level("WARNING", logger="medseg.inference"):
        code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 0, err
    assert out.splitlines()[4].split(": ", 2)[1] == "rerun ok"
    told = [message for message in caplog.messages if "out of GPU memory" in message]
    assert told == ["cpu: out of GPU memory with 16 tiles per forward pass; going on with 8 (a rerun starts from "
                    "the batch its sidecar records, 16 tiles; --device cpu segments it again without the GPU)",
                    "cpu: out of GPU memory with 8 tiles per forward pass; going on with 4 (a rerun starts from "
                    "the batch its sidecar records, 16 tiles; --device cpu segments it again without the GPU)"]


def test_a_rerun_out_of_gpu_memory_of_a_sidecar_without_a_batch_size_names_the_default(segmented, monkeypatch,
                                                                                       caplog, capsys):
    """A sidecar that records no ``inference.batch_size`` (one written before it was, or edited): the rerun starts
    from medseg's default batch, and its out-of-GPU-memory note said "the batch its sidecar records, 16 tiles", a
    record there is not. It says the sidecar records none and gives the default, as the segmenter defines it."""
    import inspect

    from test_inference import _SmallGPU

    import medseg.inference

    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    del record["inference"]["batch_size"]
    sidecar.write_text(json.dumps(record))
    default = inspect.signature(medseg.inference.Segmenter).parameters["batch_size"].default
    real_init = medseg.inference.Segmenter.__init__

    def on_a_small_gpu(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.window_net.net = _SmallGPU(self.window_net.net, room=default - 1)

    monkeypatch.setattr(medseg.inference.Segmenter, "__init__", on_a_small_gpu)
    with caplog.at_level("WARNING", logger="medseg.inference"):
        code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
    assert code == 0, err
    assert f"on cpu (fp32, batch {default // 2}, overlap" in out.splitlines()[4], out
    told = [message for message in caplog.messages if "out of GPU memory" in message]
    assert told == [f"cpu: out of GPU memory with {default} tiles per forward pass; going on with {default // 2} (the "
                    f"sidecar records no batch size: a rerun starts from medseg's default, {default} tiles; --device "
                    "cpu segments it again without the GPU)"]


def test_a_recorded_batch_size_that_is_not_a_whole_number_is_told_as_the_sidecar_edited(segmented, capsys):
    """A sidecar whose ``inference.batch_size`` is not a whole number of 1 or more (edited by hand): the rerun's line
    named the input, "case.nii.gz: segmenting it again failed: batch size 'x': give a whole number of tiles per
    forward pass, 1 or more", advice verify has no option to follow, of a file that is as it was. It names the
    sidecar's field, not segmented again; the other checks are made (exit 1: nothing compared)."""
    _, sidecar = segmented
    record = json.loads(sidecar.read_text())
    for value, shown in (("x", "'x'"), (0, "0"), (True, "true or false")):
        record["inference"]["batch_size"] = value
        sidecar.write_text(json.dumps(record))
        code, out, err = run(["verify", str(sidecar), "--rerun"], capsys)
        assert code == 1 and [line.split(": ", 2)[1] for line in out.splitlines()] == [
            "segmentation ok", "input ok", "model ok", "versions ok", "rerun FAILED"], out
        assert out.splitlines()[4] == (
            f"{sidecar}: rerun FAILED: not segmented again: the sidecar's inference.batch_size is {shown}, not a "
            "whole number of tiles of 1 or more; the sidecar was edited or damaged since medseg infer wrote it"), out
        assert err == f"medseg: the sidecar could not be checked: {sidecar} (rerun)\n", err


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs a file whose reading fails (Linux's /proc)")
def test_a_segmentation_that_cannot_be_read_fails_its_check_alone_and_a_difference_still_exits_3(segmented, case,
                                                                                                  tmp_path, capsys):
    """A segmentation file that is there and whose reading fails (an I/O error; permission denied on a shared
    disk) stopped the whole batch with a traceback and exit 1, hiding another sidecar's difference found before it.
    It is a check that could not compare; the other sidecar's difference exits 3, each told on its last line."""
    package, sidecar = segmented
    code, _, err = run(["infer", str(case), "-m", str(package), "-o", str(tmp_path / "other"), "--threads", "1"],
                       capsys)
    assert code == 0, err
    seg = sidecar.parent / "case_seg.nii.gz"
    seg.write_bytes(seg.read_bytes() + b"\0")
    unreadable = tmp_path / "other" / "case_seg.nii.gz"
    unreadable.unlink()
    unreadable.symlink_to("/proc/self/mem")  # a regular file whose reading fails (EIO)
    other = tmp_path / "other" / "case_seg.json"
    code, out, err = run(["verify", str(sidecar), str(other)], capsys)
    (line,) = [line for line in out.splitlines() if line.startswith(f"{other}: segmentation ")]
    assert line == f"{other}: segmentation FAILED: {unreadable}: cannot read (input/output error)", out
    assert code == 3 and "Traceback" not in err and err.splitlines() == [
        f"medseg: 1 of 2 sidecars does not match: {sidecar} (segmentation)",
        f"medseg: 1 of 2 sidecars could not be checked: {other} (segmentation)"], err
    result = verify_sidecar(other)
    assert result.failed == ["segmentation"] and not result.differs


def test_an_emptied_series_folder_could_not_be_checked_as_a_folder_not_there(tmp_path, make_package, capsys):
    """A series' folder emptied (a share not mounted on its mount point, a dataset's files dropped) exited 3, "the
    sidecar does not match", as if its files had been changed, where the folder gone exits 1, "could not be
    checked": both are an input not there. An emptied folder exits 1 too, its line naming the files not there."""
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 4))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    (tmp_path / "held").mkdir()
    for path in paths:
        path.rename(tmp_path / "held" / path.name)
    sidecar = tmp_path / "out" / "study_seg.json"
    code, out, err = run(["verify", str(sidecar)], capsys)
    line = _input_line(out)
    assert line.startswith(f"{sidecar}: input FAILED: {tmp_path / 'study'}: ") and "4 not there (" in line, line
    assert code == 1 and err == f"medseg: the sidecar could not be checked: {sidecar} (input)\n", err
    assert not verify_sidecar(sidecar).differs


def test_an_input_nifti_overwritten_with_what_is_no_image_is_a_difference_found(segmented, case, capsys):
    """An input NIfTI overwritten since it was segmented (cut short, another file's bytes) was "cannot read (...)",
    exit 1, "could not be checked", as if the check were to run again: its bytes, which are what input_sha256
    hashes for a NIfTI, are there and differ from the record. It exits 3, its line giving both SHA-256s."""
    from medseg.io.atomic import sha256_of

    _, sidecar = segmented
    recorded = json.loads(sidecar.read_text())["input_sha256"]
    case.write_bytes(case.read_bytes()[:300])
    code, out, err = run(["verify", str(sidecar)], capsys)
    line = _input_line(out)
    assert line.startswith(f"{sidecar}: input FAILED: {case}: cannot read (") and line.endswith(
        f"; SHA-256 {sha256_of(case)[:12]}…, the sidecar records {recorded[:12]}…: not the input segmented"), line
    assert code == 3 and err == f"medseg: the sidecar does not match: {sidecar} (input)\n", err
    assert verify_sidecar(sidecar).differs


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs a file whose reading fails (Linux's /proc)")
def test_a_series_file_that_cannot_be_read_is_named_and_the_check_could_not_be_made(tmp_path, make_package, capsys):
    """A recorded slice that is there and whose reading fails (an I/O error; permission denied on a shared disk)
    stopped verify with a traceback as the series' files were compared one by one. It is named, and the input could
    not be checked (exit 1)."""
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "study", shape=(24, 20, 4))
    code, _, err = run(["infer", str(tmp_path / "study"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    unreadable = sorted(paths)[1]
    unreadable.unlink()
    unreadable.symlink_to("/proc/self/mem")  # a regular file whose reading fails (EIO)
    sidecar = tmp_path / "out" / "study_seg.json"
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert "Traceback" not in err, err
    line = _input_line(out)
    assert line.startswith(f"{sidecar}: input FAILED: {tmp_path / 'study'}") and \
        f"1 not readable ({unreadable.name})" in line, line
    assert code == 1 and err == f"medseg: the sidecar could not be checked: {sidecar} (input)\n", err


def test_a_path_that_is_not_there_is_said_not_to_exist(tmp_path, capsys, monkeypatch):
    """`medseg verify some-folder-that-does-not-exist` said "cannot read the sidecar (No such file or directory)": a
    mistyped path is no sidecar. It is said not to exist, with what verify expects there; exit 1."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["verify", "some-folder-that-does-not-exist"], capsys)
    assert (code, out) == (1, "")
    assert err == ("medseg: error: some-folder-that-does-not-exist: no such file or folder (give a sidecar, the "
                   "_seg.json medseg infer wrote, or a folder of them)\n")
    (tmp_path / "link_seg.json").symlink_to(tmp_path / "moved_seg.json")  # a link whose target moved: said so
    code, _, err = run(["verify", "link_seg.json"], capsys)
    assert code == 1 and err == (f"medseg: error: link_seg.json: a link to {tmp_path / 'moved_seg.json'} that leads "
                                 "nowhere (its target moved or deleted, or a loop of links)\n")
    with pytest.raises(InputError, match="no such file or folder"):
        verify_sidecar(tmp_path / "gone_seg.json")


def test_a_segmentation_gone_beside_its_sidecar_is_said_not_there_and_a_link_where_it_leads(segmented, tmp_path,
                                                                                             capsys):
    """A segmentation deleted beside its sidecar (the report's failed case at stage report, MissingResult) is a check
    that could not be made: exit 1, its line saying the file is not there. One replaced by a link whose target moved
    read "not there" alone, where the report (and verify's own input line) names the link and where it leads."""
    _, sidecar = segmented
    seg = sidecar.parent / "case_seg.nii.gz"
    seg.unlink()
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and out.splitlines()[0] == f"{sidecar}: segmentation FAILED: {seg}: not there", out
    assert err == f"medseg: the sidecar could not be checked: {sidecar} (segmentation)\n"
    seg.symlink_to(tmp_path / "archive" / "case_seg.nii.gz")
    code, out, err = run(["verify", str(sidecar)], capsys)
    assert code == 1 and out.splitlines()[0] == (
        f"{sidecar}: segmentation FAILED: {seg}: not there (a link to {tmp_path / 'archive' / 'case_seg.nii.gz'} that "
        "leads nowhere (its target moved or deleted, or a loop of links))"), out


def test_a_file_named_like_a_word_of_the_message_keeps_the_message_whole(segmented, tmp_path, monkeypatch, capsys):
    """A check's line names its file once: where the reader's message names the file again (nibabel's ``of
    "bad.nii"``, ``from cut.nii.gz``), that name is taken out. A file named like a word of the message itself (a DICOM
    slice given as ``--input its``) took that word out of it: ``give the folder series``, for ``give the folder of its
    series``. A name quoted as nibabel quotes it is still taken out."""
    from dicom_factory import make_series

    from medseg.verification import _naming

    _, sidecar = segmented
    _, paths = make_series(tmp_path / "dcm", shape=(24, 20, 4))
    monkeypatch.chdir(tmp_path)
    for name in ("its", "file"):
        shutil.copyfile(sorted(paths)[0], tmp_path / name)
        code, out, _ = run(["verify", str(sidecar), "--input", name, "--rerun"], capsys)
        (rerun,) = [line for line in out.splitlines() if ": rerun " in line]
        assert code == 3 and rerun.startswith(
            f"{sidecar}: rerun FAILED: {name}: segmenting it again failed: a DICOM file, not a NIfTI image; give the "
            "folder of its series (.)"), rerun
        assert _naming(name, f'cannot read (Cannot work out file type of "{name}")') == \
            f"{name}: cannot read (Cannot work out file type)"


def test_a_series_holding_a_copy_is_warned_of_once(tmp_path, make_package, capsys, caplog):
    """The reader warns of a file that copies another (same SOPInstanceUID, same bytes): verify told it once for each
    look at the series, the hash, the files that changed, and the rerun's reading: three times. Once per sidecar."""
    import logging

    import pydicom
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "series", shape=(24, 20, 4))
    original = sorted(paths)[1]
    shutil.copyfile(original, original.with_name(f"{original.stem}_copy.dcm"))
    code, _, err = run(["infer", str(tmp_path / "series"), "-m", str(make_package()), "-o", str(tmp_path / "out"),
                        "--threads", "1"], capsys)
    assert code == 0, err
    changed = sorted(paths)[2]
    dataset = pydicom.dcmread(changed)
    dataset.ImageComments = "re-exported"
    dataset.save_as(changed)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        code, out, _ = run(["verify", str(tmp_path / "out" / "series_seg.json"), "--rerun"], capsys)
    told = [record.getMessage() for record in caplog.records if "each image used once" in record.getMessage()]
    assert code == 3 and ": input FAILED: " in out and told == [
        f"{tmp_path / 'series' / f'{original.stem}_copy.dcm'}: a copy of {original} (same SOPInstanceUID, same "
        "bytes); each image used once"], told


def test_each_threads_verification_tells_its_warnings_once_and_the_handlers_come_back(caplog):
    """Two threads verifying at once: each tells a warning once (its own sidecar's), and the ``medseg`` logger has
    its handlers back once both are done, whichever ends first."""
    import logging
    import threading

    from medseg.verification import _each_warning_once

    medseg_log, reader = logging.getLogger("medseg"), logging.getLogger("medseg.io.dicom_series")
    before = (list(medseg_log.handlers), medseg_log.propagate)
    both = threading.Barrier(2)

    def verify(index: int) -> None:
        with _each_warning_once():
            both.wait()
            for _ in range(3):
                reader.warning("a.dcm: a copy of b.dcm; each image used once")
            both.wait()
            if index:
                both.wait()  # the second ends after the first
        if not index:
            both.wait()

    threads = [threading.Thread(target=verify, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert [record.getMessage() for record in caplog.records] == ["a.dcm: a copy of b.dcm; each image used once"] * 2
    assert (medseg_log.handlers, medseg_log.propagate) == before
