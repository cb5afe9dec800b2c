"""Datasets laid out in code as git-annex and Git LFS lay them out (neither tool is needed), for the tests of inputs in
a DataLad / git-annex or Git LFS dataset: a locked annexed file is a link to ``.git/annex/objects/Xk/Mv/KEY/KEY`` (the
content read-only, its folder too), a link that leads nowhere where the content is not here; an unlocked one whose
content is not here is a pointer file holding ``/annex/objects/KEY``; a Git LFS file not pulled is a pointer file of
three lines. The ``dataset`` fixture is a dataset folder of four phantoms."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.synthetic import make_phantom

ANNEX = "a git-annex link whose content is not present here (not fetched, or dropped)"


POINTER = "a git-annex pointer file, not an image (an unlocked file whose content is not present here)"


LFS = "a Git LFS pointer file, not an image (its content was not pulled): fetch it with git lfs pull"


def _key(data: bytes, suffix: str = ".nii.gz") -> str:
    return f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}{suffix}"


def annex(path: Path, dataset: Path, present: bool = True) -> Path:
    """``path``'s content moved into ``dataset``'s git-annex store and ``path`` made the link to it (``present``
    false: the content dropped, the link leading nowhere)."""
    data = path.read_bytes()
    key = _key(data, "".join(path.suffixes))
    folder = dataset / ".git" / "annex" / "objects" / "Xk" / "Mv" / key
    path.unlink()
    path.symlink_to(os.path.relpath(folder / key, path.parent))
    if present:
        folder.mkdir(parents=True)
        (folder / key).write_bytes(data)
        (folder / key).chmod(0o444)
        folder.chmod(0o555)
    return path


def annex_pointer(path: Path) -> Path:
    """``path`` as an unlocked git-annex file whose content is not here: a pointer file."""
    path.write_text(f"/annex/objects/{_key(path.read_bytes())}\n")
    return path


def lfs_pointer(path: Path) -> Path:
    """``path`` as a Git LFS file whose content was not pulled."""
    data = path.read_bytes()
    path.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                    f"size {len(data)}\n")
    return path


@pytest.fixture(name="dataset")
def annexed_dataset(tmp_path):
    """A dataset folder with images/ and labels/ of three 40x40x8 phantoms (plain files, to be annexed)."""
    root = tmp_path / "ds"
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for index in (1, 2, 3, 4):
        phantom = make_phantom((40, 40, 8), seed=index)
        affine = np.diag([1.0, 1.0, 2.0, 1.0])
        nib.save(nib.Nifti1Image(phantom.image, affine), str(root / "images" / f"case{index}.nii.gz"))
        nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), affine), str(root / "labels" / f"case{index}.nii.gz"))
    return root


def _annexed_series(tmp_path) -> tuple[Path, list[Path]]:
    """A 12-slice DICOM series in a dataset, every file annexed; its paths in slice order."""
    from dicom_factory import slice_positions, stored_values, write_series

    paths = write_series(tmp_path / "ds" / "study", stored_values((16, 16, 12)), slice_positions(12, 2.0))
    return tmp_path / "ds" / "study", [annex(path, tmp_path / "ds") for path in paths]
