"""Reading images and writing outputs."""

from medseg.io.atomic import atomic_paths, sha256_of
from medseg.io.images import read_image
from medseg.io.nifti import read_nifti, write_labels

__all__ = ["atomic_paths", "sha256_of", "read_image", "read_nifti", "write_labels"]
