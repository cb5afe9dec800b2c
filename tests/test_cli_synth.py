"""`medseg synth`: the files it writes and what it says of them (medseg.cli.synth)."""


import nibabel as nib
import numpy as np
from conftest import run_cli

from medseg.io import read_image

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_quiet_silences_the_wrote_line_of_synth(tmp_path, capsys):
    """`-q` left synth's (and train's) "wrote" line, which it hides for infer, convert, report and evaluate."""
    code, out, err = run(["-q", "synth", str(tmp_path / "p.nii.gz"), "--shape", "16", "16", "4"], capsys)
    assert (code, out, err) == (0, "", "") and (tmp_path / "p.nii.gz").is_file()
    code, out, _ = run(["synth", str(tmp_path / "q.nii.gz"), "--shape", "16", "16", "4"], capsys)
    assert out == f"wrote {tmp_path / 'q.nii.gz'}\n"


def test_synth_writes_the_name_given_in_mixed_letter_case(tmp_path, capsys):
    """``phantom.Nii`` was written as ``phantom.nii`` (nibabel's choice of name) while "wrote phantom.Nii" was
    printed: the file named was not there."""
    code, out, err = run(["synth", str(tmp_path / "p.Nii"), "--label", str(tmp_path / "l.Nii.Gz"), "--shape", "16",
                          "16", "4"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.Nii.Gz", "p.Nii"]
    assert (tmp_path / "l.Nii.Gz").read_bytes()[:2] == b"\x1f\x8b"
    assert read_image(tmp_path / "p.Nii").shape == (16, 16, 4)  # (nib.load reads .Nii as .nii)


def test_synth_warns_when_the_grid_is_too_small_for_the_structures(tmp_path, capsys):
    """--shape 1 1 1 wrote a label file holding only background, with "wrote" and exit 0."""
    code, out, err = run(["synth", str(tmp_path / "p.nii.gz"), "--label", str(tmp_path / "l.nii.gz"), "--shape", "2",
                          "2", "2"], capsys)
    assert code == 0 and out.startswith("wrote ")
    assert err == ("warning: --shape 2 2 2 is too small for the ellipsoid, the box and the tube (no voxel); give 16 "
                   "or more voxels per axis for all three structures\n")
    assert set(np.unique(np.asarray(nib.load(tmp_path / "l.nii.gz").dataobj))) == {0}
    code, out, err = run(["synth", str(tmp_path / "q.nii.gz"), "--shape", "24", "24", "16"], capsys)
    assert code == 0 and err == ""
