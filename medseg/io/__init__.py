"""Reading images and writing outputs."""

from __future__ import annotations

from medseg.io.atomic import atomic_paths, sha256_of

__all__ = ["atomic_paths", "sha256_of", "read_image", "read_nifti", "write_labels"]

_IMAGES = {"read_image": "medseg.io.images", "read_nifti": "medseg.io.nifti", "write_labels": "medseg.io.nifti_write"}


def __dir__() -> list[str]:
    return sorted([*globals(), *_IMAGES])


def __getattr__(name: str):
    """The image readers and writer, imported on first use: they bring nibabel (about 0.2 s), which code writing
    only records does not need, such as every Snakemake call planning a cohort (``medseg.cohort`` imports
    ``medseg.io.atomic``). So are the submodules (``medseg.io.images.read_image`` after ``import medseg.io``), which
    importing these names brought with them."""
    import importlib

    if name in _IMAGES:
        return getattr(importlib.import_module(_IMAGES[name]), name)
    if not name.startswith("_"):
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
