"""`medseg convert` (medseg/cli/convert.py): a DICOM series folder to NIfTI, written atomically, with its sidecar."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from conftest import run_cli
from dicom_factory import SAGITTAL, make_series

from medseg.io import read_image
from medseg.io.dicom import read_dicom_series


def test_convert_writes_nifti_atomically_and_refuses_overwrite(tmp_path, capsys):
    values, _ = make_series(tmp_path / "dcm", seed=7, orientation=SAGITTAL)
    out = tmp_path / "out" / "t1.nii.gz"
    code, stdout, _ = run_cli(["convert", str(tmp_path / "dcm"), str(out), "--sidecar"], capsys)
    assert code == 0 and "series 3 'synthetic' 10x8x6" in stdout
    image = nib.load(out)
    volume = read_dicom_series(tmp_path / "dcm")
    assert image.get_data_dtype() == np.int16
    np.testing.assert_allclose(image.affine, volume.affine, atol=1e-5)
    assert image.header["sform_code"] == 1 and image.header["qform_code"] == 1
    np.testing.assert_array_equal(image.get_fdata(), values - 1024.0)
    sidecar = json.loads((tmp_path / "out" / "t1.json").read_text())
    assert sidecar["series_number"] == 3 and sidecar["policy"]["gantry_tilt"].startswith("kept exactly")
    code, _, stderr = run_cli(["convert", str(tmp_path / "dcm"), str(out)], capsys)
    assert code == 1 and "output exists already; pass --overwrite" in stderr


def test_convert_writes_the_name_given_in_any_letter_case(tmp_path, capsys):
    """``ct.NII.GZ`` was refused ("the output must be a .nii or .nii.gz file") though every command reads it, and a
    mixed-case ``ct.Nii`` failed with "cannot write (No such file or directory)": nibabel wrote ``ct.nii`` instead
    of the temporary file's name, which was left behind, hidden."""
    values, _ = make_series(tmp_path / "dcm", seed=7, orientation=SAGITTAL)
    out = tmp_path / "out"
    for name, gzipped in (("a.NII.GZ", True), ("b.Nii", False), ("c.Nii.Gz", True), ("d.NII", False)):
        code, stdout, stderr = run_cli(["convert", str(tmp_path / "dcm"), str(out / name), "--sidecar"], capsys)
        assert code == 0, stderr
        assert (out / name).read_bytes()[:2] == b"\x1f\x8b" if gzipped else (out / name).read_bytes()[344:347] == b"n+1"
        np.testing.assert_array_equal(read_image(out / name).array, values - 1024.0)  # nib.load reads .Nii as .nii
    assert sorted(p.name for p in out.iterdir()) == ["a.NII.GZ", "a.json", "b.Nii", "b.json", "c.Nii.Gz", "c.json",
                                                     "d.NII", "d.json"]


def test_convert_failure_writes_nothing(tmp_path, capsys):
    make_series(tmp_path / "dcm", seed=1, series_number=3, prefix="a")
    make_series(tmp_path / "dcm", seed=2, series_number=4, prefix="b")
    out = tmp_path / "out.nii.gz"
    code, _, stderr = run_cli(["convert", str(tmp_path / "dcm"), str(out)], capsys)
    assert code == 1
    assert stderr.startswith("medseg: error: ") and "2 eligible series, choose one with --series" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.glob("*.nii.gz")) == [] and list(tmp_path.glob(".*")) == []


def test_convert_over_an_earlier_conversion_takes_its_stale_sidecar_away(tmp_path, capsys):
    """`convert --overwrite` without --sidecar over a conversion made with one left the old sidecar, which then
    described another series than the file beside it. A .png output is a usage error (exit 2), as for synth."""
    make_series(tmp_path / "study", seed=1, series_number=3, description="a", series_uid="1.2.3.3", prefix="a")
    make_series(tmp_path / "study", seed=2, series_number=4, description="b", series_uid="1.2.3.4", prefix="b")
    out = tmp_path / "t1.nii.gz"
    assert run_cli(["convert", str(tmp_path / "study"), str(out), "--series", "3", "--sidecar"], capsys)[0] == 0
    assert json.loads((tmp_path / "t1.json").read_text())["series_uid"] == "1.2.3.3"
    assert run_cli(["convert", str(tmp_path / "study"), str(out), "--series", "4", "--overwrite"], capsys)[0] == 0
    assert not (tmp_path / "t1.json").exists()
    (tmp_path / "t1.json").write_text('{"mine": true}')  # not medseg's: left alone
    assert run_cli(["convert", str(tmp_path / "study"), str(out), "--series", "3", "--overwrite"], capsys)[0] == 0
    assert (tmp_path / "t1.json").read_text() == '{"mine": true}'
    code, _, err = run_cli(["convert", str(tmp_path / "study"), str(tmp_path / "t1.png"), "--series", "3"], capsys)
    assert code == 2 and "t1.png: the output must be a .nii or .nii.gz file" in err


def test_convert_leaves_the_sidecar_of_the_twin_name_alone(tmp_path, capsys):
    """t1.nii and t1.nii.gz share t1.json: converting to t1.nii with --overwrite removed t1.nii.gz's sidecar."""
    make_series(tmp_path / "study", seed=1)
    assert run_cli(["convert", str(tmp_path / "study"), str(tmp_path / "t1.nii.gz"), "--sidecar"], capsys)[0] == 0
    assert run_cli(["convert", str(tmp_path / "study"), str(tmp_path / "t1.nii"), "--overwrite"], capsys)[0] == 0
    assert (tmp_path / "t1.json").is_file()


def test_the_sidecar_names_the_series_folder_by_its_absolute_path(tmp_path, capsys, monkeypatch):
    """The sidecar's `source` was the folder as typed (`dcm`), where an infer sidecar's `input` and every path of the
    metrics and the report are absolute: read from elsewhere it named no folder. `inspect --json` says it alike."""
    make_series(tmp_path / "dcm", seed=7, orientation=SAGITTAL)
    monkeypatch.chdir(tmp_path)
    assert run_cli(["-q", "convert", "dcm", "out/t1.nii.gz", "--sidecar"], capsys)[0] == 0
    assert json.loads((tmp_path / "out" / "t1.json").read_text())["source"] == str(tmp_path / "dcm")
    code, stdout, _ = run_cli(["-q", "inspect", "out/../dcm", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["folder"] == str(tmp_path / "dcm")
