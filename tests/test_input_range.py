"""Inputs unlike the volumes a package was trained on: segmented, but flagged in the sidecar and warned about
(medseg.input_range)."""

import json

import nibabel as nib
import numpy as np
from conftest import run_cli

from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_input_unlike_the_training_volumes_is_segmented_but_flagged(tmp_path, capsys, caplog):
    """The shipped hippocampus package records its training crops' field of view (31–43 × 40–59 × 24–47 mm)."""
    rng = np.random.default_rng(0)
    like = tmp_path / "crop.nii.gz"  # an MSD-sized crop, 1 mm
    nib.save(nib.Nifti1Image(rng.normal(size=(36, 50, 36)).astype(np.float32), np.eye(4)), str(like))
    wide = tmp_path / "wide.nii.gz"  # 100 mm left-right: more than twice the largest training crop
    nib.save(nib.Nifti1Image(rng.normal(size=(100, 50, 36)).astype(np.float32), np.eye(4)), str(wide))
    code, _, err = run(["infer", str(like), str(wide), "--model", "hippocampus", "-o", str(tmp_path / "out"),
                        "--device", "cpu"], capsys)
    assert code == 0, err
    crop = json.loads((tmp_path / "out" / "crop_seg.json").read_text())["input_check"]
    assert crop == {"extent_mm": [36.0, 50.0, 36.0], "trained_extent_mm": {"min": [31.0, 40.0, 24.0],
                                                                           "max": [43.0, 59.0, 47.0]},
                    "tolerance": 2.0, "within_training_range": True, "outside": []}
    check = json.loads((tmp_path / "out" / "wide_seg.json").read_text())["input_check"]
    assert check["within_training_range"] is False and check["outside"] == ["x 100 mm against 31–43 mm trained"]
    assert (tmp_path / "out" / "wide_seg.nii.gz").is_file()  # still segmented: a warning, not a refusal
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"{wide}: field of view unlike the volumes model hippocampus was trained on: x 100 mm against" in w
               for w in warnings), warnings
    assert not any("crop.nii.gz" in w for w in warnings)


def test_one_slice_is_flagged_even_for_a_2d_package_without_context(tmp_path, capsys):
    """A single slice is unlike training even where each slice is segmented on its own: the z-score runs over the
    whole input, so a slice alone is normalised with other statistics (this slice of a phantom scored box Dice
    0.60 alone, 0.997 inside its volume). Both bounds hold along the slicing axis; a 2.5D package flags too."""
    phantom = make_phantom((96, 96, 40), seed=21)
    one = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image[:, :, 20:21], np.diag([1.0, 1.0, 1.5, 1.0])), str(one))
    code, _, err = run(["infer", str(one), "-m", "phantom", "-o", str(tmp_path / "p")], capsys)
    check = json.loads((tmp_path / "p" / "one_seg.json").read_text())["input_check"]
    assert code == 0 and check["extent_mm"] == [96.0, 96.0, 1.5] and check["within_training_range"] is False
    assert check["outside"] == ["z 1.5 mm against 58.83–279.36 mm trained"]
    wide = tmp_path / "wide.nii.gz"
    nib.save(nib.Nifti1Image(np.tile(phantom.image, (1, 1, 5)), np.diag([1.0, 1.0, 3.0, 1.0])), str(wide))
    code, _, err = run(["infer", str(wide), "-m", "phantom", "-o", str(tmp_path / "p")], capsys)
    check = json.loads((tmp_path / "p" / "wide_seg.json").read_text())["input_check"]
    assert code == 0 and check["within_training_range"] is False
    assert check["outside"] == ["z 600 mm against 58.83–279.36 mm trained"]

    coronal = tmp_path / "coronal.nii.gz"  # hippocampus: 2 context slices each side along y
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.normal(size=(36, 1, 36)).astype(np.float32), np.eye(4)), str(coronal))
    code, _, err = run(["infer", str(coronal), "-m", "hippocampus", "-o", str(tmp_path / "h")], capsys)
    check = json.loads((tmp_path / "h" / "coronal_seg.json").read_text())["input_check"]
    assert code == 0 and check["outside"] == ["y 1 mm against 40–59 mm trained"]
