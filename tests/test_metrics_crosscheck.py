"""benchmarks/metrics_crosscheck.py: medseg's figures beside SimpleITK's and MONAI's (dependencies of the tests),
libraries not installed named and skipped, records it cannot set index by index left out with a line."""

from __future__ import annotations

import io
import json
import sys

import nibabel as nib
import numpy as np
from conftest import benchmark_main

from medseg.metrics import metrics_json
from medseg.scoring import evaluate_files


def _scored(folder, name: str, pred: np.ndarray, ref: np.ndarray, spacing) -> None:
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(pred, affine), folder / f"{name}_seg.nii.gz")
    nib.save(nib.Nifti1Image(ref, affine), folder / f"{name}.nii.gz")
    record = evaluate_files(folder / f"{name}_seg.nii.gz", folder / f"{name}.nii.gz", case_id=name)
    (folder / "scores").mkdir(exist_ok=True)
    (folder / "scores" / f"{name}_metrics.json").write_text(metrics_json(record))


def test_the_crosscheck_sets_sitk_and_monai_beside_medseg_and_skips_what_is_not_installed(tmp_path, monkeypatch,
                                                                                        capsys):
    ref = np.zeros((20, 18, 8), np.uint8)
    ref[4:12, 5:11, 2:6] = 1
    _scored(tmp_path, "inside", np.roll(ref, 1, axis=0), ref, (0.7, 0.7, 3.0))  # away from the volume's faces
    slab = np.zeros((20, 20, 8), np.uint8)
    slab[0:5] = 1
    wider = slab.copy()
    wider[5] = 1
    _scored(tmp_path, "slab", wider, slab, (1.0, 1.0, 1.0))  # on four faces of the volume
    other = json.loads((tmp_path / "scores" / "slab_metrics.json").read_text())
    other.update(case_id="seg", reference=str(tmp_path / "slab.dcm"))
    (tmp_path / "scores" / "seg_metrics.json").write_text(json.dumps(other))
    for module in ("medpy", "surface_distance"):
        monkeypatch.setitem(sys.modules, module, None)  # not installed, whatever this machine has
    main = benchmark_main("metrics_crosscheck")
    assert main([str(tmp_path / "scores")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"{tmp_path / 'scores' / 'seg_metrics.json'}: left out: its reference is not a "
                                    f"NIfTI file ({tmp_path / 'slab.dcm'})")
    lines = captured.out.splitlines()
    assert lines[:2] == ["medpy: not installed, skipped (pip install medpy)",
                         "surface-distance: not installed, skipped (pip install surface-distance)"]
    sitk = lines[lines.index("SimpleITK (overlap filter; LabelContour + Maurer distance map, voxel centres):") + 1:]
    assert sitk[0].startswith("  dice: 2 labels, 0 differ;")
    assert sitk[1].startswith("  hd95_mm: 2 labels, 0 differ;")
    # ITK's contour leaves out the voxels on the volume's faces: the slab's ASSD 1.0 mm there, medseg's 0.27
    assert sitk[2].startswith("  assd_mm: 2 labels, 1 differ; largest |medseg - SimpleITK| 0.733, mean -0.367")
    monai = lines[lines.index("MONAI (compute_hausdorff_distance(percentile=95), compute_average_surface_distance):")
                  + 1:]
    assert monai[0].startswith("  hd95_mm: 2 labels, 0 differ;")
    assert monai[1].startswith("  assd_mm: 2 labels, 0 differ;")
    assert len(lines) == 2 + 4 + 3


def test_the_crosscheck_pairs_are_medsegs_figures_and_the_librarys(tmp_path, monkeypatch):
    ref = np.zeros((16, 16, 6), np.uint8)
    ref[3:9, 4:10, 1:4] = 1
    _scored(tmp_path, "c", np.roll(ref, 2, axis=1), ref, (1.0, 1.0, 2.0))
    record = json.loads((tmp_path / "scores" / "c_metrics.json").read_text())
    for module in ("medpy", "surface_distance"):
        monkeypatch.setitem(sys.modules, module, None)
    compare = benchmark_main("metrics_crosscheck").__globals__["compare"]
    pairs = compare([tmp_path / "scores"], out=io.StringIO())
    assert pairs[("SimpleITK", "dice")] == [(record["labels"]["1"]["dice"], record["labels"]["1"]["dice"])]
    assert record["labels"]["1"]["dice"] == 2 * 4 * 6 * 3 / (2 * 6 * 6 * 3)
    ours, theirs = pairs[("MONAI", "hd95_mm")][0]
    assert ours == record["labels"]["1"]["hd95_mm"] == 2.0 and abs(theirs - 2.0) < 1e-6
