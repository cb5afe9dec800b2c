"""`medseg verify` of a case of nnU-Net's channel files (``case_0000.nii.gz``, ``case_0001.nii.gz``): the sidecar
records each channel file's SHA-256 (``input_info.channel_sha256``), so a channel that changed or is not there is
named and the others are compared all the same; a sidecar from before it was recorded is read and says what it
cannot check."""

import json
import shutil

import pytest
from conftest import run_cli

from medseg.errors import InputError
from medseg.io.atomic import sha256_of
from medseg.verification import verify_sidecar

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


@pytest.fixture(scope="module")
def segmented_case(tmp_path_factory):
    """A two-channel case segmented once for the module: (its images folder, its output folder)."""
    import torch
    from test_channels import modal_config, write_modal_set

    from medseg.cli import main
    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package

    root = tmp_path_factory.mktemp("channels")
    config = modal_config()
    config.pop("training")
    torch.manual_seed(0)
    save_package(UNet2D(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "type"})), config,
                 root / "pkg")
    images, _ = write_modal_set(root / "set", "nnunet", count=2)
    with pytest.raises(SystemExit) as exit_info:
        main(["infer", str(images / "case0_0000.nii.gz"), "-m", str(root / "pkg"), "-o", str(root / "out"),
              "--threads", "1"])
    assert exit_info.value.code == 0
    return images, root / "out"


@pytest.fixture
def case(segmented_case, tmp_path):
    """A copy of the segmented case's images and outputs: (the channel files, the other case's files, the sidecar)."""
    images, out = segmented_case
    shutil.copytree(images, tmp_path / "images")
    shutil.copytree(out, tmp_path / "out")
    files = [tmp_path / "images" / f"case0_{index:04d}.nii.gz" for index in range(2)]
    others = [tmp_path / "images" / f"case1_{index:04d}.nii.gz" for index in range(2)]
    return files, others, tmp_path / "out" / "case0_seg.json"


def _input_line(sidecar, files, capsys):
    code, out, err = run(["verify", str(sidecar), "--input", str(files[0])], capsys)
    (line,) = [line for line in out.splitlines() if ": input " in line]
    return code, line.removeprefix(f"{sidecar}: "), err


def test_the_sidecar_records_each_channel_files_sha256(case):
    files, _, sidecar = case
    info = json.loads(sidecar.read_text())["input_info"]
    assert info["channel_sha256"] == {file.name: sha256_of(file) for file in files}
    assert list(info["channel_sha256"]) == info["channel_files"]  # in channel order
    assert json.loads(sidecar.read_text())["input_sha256"] == sha256_of(files)  # the case's as before


def test_a_channel_file_not_there_is_named_and_the_others_still_compared(case, capsys):
    """A case whose case0_0001 is gone exited 1 with nothing compared ("case0_0001.nii.gz: not there, so not
    compared"): case0_0000 is compared with its recorded SHA-256 all the same."""
    files, others, sidecar = case
    named = f"{files[0]} (channel files case0_0000.nii.gz, case0_0001.nii.gz)"
    files[1].unlink()
    code, line, err = _input_line(sidecar, files, capsys)
    assert code == 1 and line == (f"input FAILED: {named}: of its 2 recorded channel files, 1 not there "
                                  "(case0_0001.nii.gz), 1 as recorded (case0_0000.nii.gz): not compared whole"), line
    shutil.copyfile(others[0], files[0])  # and the one there changed: a difference found
    code, line, _ = _input_line(sidecar, files, capsys)
    assert code == 3 and line == (f"input FAILED: {named}: not the input segmented: of its 2 recorded channel files, "
                                  "1 changed (case0_0000.nii.gz), 1 not there (case0_0001.nii.gz)"), line


def test_a_changed_channel_file_is_named(case, capsys):
    files, others, sidecar = case
    record = json.loads(sidecar.read_text())
    shutil.copyfile(others[1], files[1])
    code, line, _ = _input_line(sidecar, files, capsys)
    assert code == 3 and line == (
        f"input FAILED: {files[0]} (channel files case0_0000.nii.gz, case0_0001.nii.gz): SHA-256 "
        f"{sha256_of(files)[:12]}…, the sidecar records {record['input_sha256'][:12]}…: not the input segmented: of "
        "its 2 recorded channel files, 1 changed (case0_0001.nii.gz)"), line


def test_a_copy_of_the_case_under_another_name_is_compared_channel_by_channel(case, tmp_path, capsys):
    """``--input`` a copy elsewhere, named otherwise: its files are compared by their place in the channel order."""
    files, others, sidecar = case
    copies = [tmp_path / f"copy_{index:04d}.nii.gz" for index in range(2)]
    for file, copy in zip(files, copies):
        shutil.copyfile(file, copy)
    code, line, _ = _input_line(sidecar, copies, capsys)
    assert code == 0 and line.startswith("input ok: "), line
    shutil.copyfile(others[0], copies[0])
    code, line, _ = _input_line(sidecar, copies, capsys)
    assert code == 3 and line.endswith("of its 2 recorded channel files, 1 changed (copy_0000.nii.gz)"), line


def test_a_sidecar_from_before_the_channel_digests_says_what_it_cannot_check(case, capsys):
    files, others, sidecar = case
    record = json.loads(sidecar.read_text())
    del record["input_info"]["channel_sha256"]
    sidecar.write_text(json.dumps(record))
    code, line, _ = _input_line(sidecar, files, capsys)
    assert code == 0 and line.startswith("input ok: "), line
    shutil.copyfile(others[1], files[1])
    code, line, _ = _input_line(sidecar, files, capsys)
    assert code == 3 and line.endswith(
        ": not the input segmented; the sidecar records no SHA-256 per channel file (written by medseg before "
        "2026-12-08): which one changed is not known"), line
    files[1].unlink()
    code, line, _ = _input_line(sidecar, files, capsys)
    assert code == 1 and line == (
        f"input FAILED: {files[1]}: not there (no such file or folder), so not compared; the sidecar records no "
        "SHA-256 per channel file (written by medseg before 2026-12-08), so the other channel files are not compared "
        "either"), line


def test_an_edited_channel_digest_is_told(case, capsys):
    files, _, sidecar = case
    record = json.loads(sidecar.read_text())
    record["input_info"]["channel_sha256"][files[1].name] = "0" * 64
    sidecar.write_text(json.dumps(record))
    code, line, _ = _input_line(sidecar, files, capsys)
    assert code == 3 and line.endswith(
        f"; but the sidecar's input_info.channel_sha256 is not that of the channel files (case0_0001.nii.gz "
        f"recorded as 000000000000…, its SHA-256 {sha256_of(files[1])[:12]}…); the sidecar was edited or damaged "
        "since medseg infer wrote it"), line
    record["input_info"]["channel_sha256"] = ["0" * 64]
    sidecar.write_text(json.dumps(record))
    with pytest.raises(InputError, match=r"input_info\.channel_sha256 is a list, not an object; the sidecar was "):
        verify_sidecar(sidecar)
