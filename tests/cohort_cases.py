"""Sample sheets and a small cohort shared by the tests of medseg.cohort's modules and `medseg cohort`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medseg.cohort.records import ResultsFolder
from medseg.synthetic import write_phantom

SHAPE = (48, 48, 16)
# the phantom model's warning that an image is unlike its training volumes, which these small images are: a job's
# command leaves it to the job's log (its filters ignore MedsegWarnings); a test module segmenting cases in its own
# process, as a job does, and not testing that warning leaves it out of Python's warnings with this mark (it reached
# pytest's summary, unasked)
SMALL_IMAGES_SEGMENTED = pytest.mark.filterwarnings(
    r"ignore:.*field of view unlike the volumes model phantom was trained on:medseg.errors.MedsegWarning")
MODEL = os.environ.get("MEDSEG_TEST_MODEL", "phantom")  # the shipped phantom model, or a package folder


def _sheet(folder: Path, text: str) -> Path:
    path = folder / "samples.tsv"
    path.write_text(text)
    return path


def write_cohort_data(data: Path, seeds: tuple[int, int, int]) -> Path:
    """``data`` made and filled with phantoms a, b and c (each with its ``_label``; ``seeds`` theirs) and
    ``bad.nii.gz``, the first half of a's image (a truncated file)."""
    data.mkdir()
    for name, seed in zip(("a", "b", "c"), seeds):
        write_phantom(data / f"{name}.nii.gz", data / f"{name}_label.nii.gz", shape=SHAPE, seed=seed)
    raw = (data / "a.nii.gz").read_bytes()
    (data / "bad.nii.gz").write_bytes(raw[: len(raw) // 2])
    return data


@pytest.fixture(name="cohort")
def cohort_folder(tmp_path):
    """Two phantoms with references, one without, one truncated file, one missing file."""
    data = write_cohort_data(tmp_path / "data", seeds=(1, 2, 3))
    sheet = _sheet(data, "case_id\timage\treference\n"
                         "a\ta.nii.gz\ta_label.nii.gz\n"
                         "b\tb.nii.gz\tb_label.nii.gz\n"
                         "c\tc.nii.gz\n"
                         "bad\tbad.nii.gz\ta_label.nii.gz\n"
                         "gone\tgone.nii.gz\n")
    return sheet, tmp_path / "results"


def broken_install(tmp_path: Path, package: str, error: str = "RuntimeError") -> dict[str, str]:
    """The environment of a job (``python -m medseg`` from the repository) whose ``package`` (``monai``, ``scipy``)
    fails as it is imported with ``error`` (``this scipy install is broken``), as a broken install does: the import
    is the job's, not one case's."""
    shadow = tmp_path / "shadow"
    (shadow / package).mkdir(parents=True)
    (shadow / package / "__init__.py").write_text(f'raise {error}("this {package} install is broken")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), str(shadow)])}


def half_erased(label: Path) -> None:
    """``label`` replaced by one on the same grid whose first half of slices is background: another reference."""
    import nibabel as nib
    import numpy as np

    image = nib.load(label)
    voxels = np.asarray(image.dataobj).copy()
    voxels[..., : voxels.shape[-1] // 2] = 0
    nib.save(nib.Nifti1Image(voxels, image.affine, image.header), label)


def _run_ids(folder: ResultsFolder, stage: str) -> dict[str, str]:
    return {p.name.split(".")[0]: json.loads(p.read_text())["run_id"]
            for p in sorted((folder.root / "status").glob(f"*.{stage}.json"))}
