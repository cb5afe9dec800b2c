"""Whether an image (or a prediction) and the reference given for it are named for different cases: each name
holds a number the other lacks (``hippocampus_004.nii.gz`` scored against ``hippocampus_006.nii.gz``).

Nothing in two label images tells a reference of another case from the right one where they share a grid, and the
Decathlon's hippocampus crops all share the identity affine: a smaller reference is scored as a box of the image's
grid, a larger one cropped to it, and a wrong pairing (references given in another order than the inputs) scored a
plausible Dice in silence. Names are the one hint left; they are only a hint, so the result is a warning.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

__all__ = ["other_case_note"]

_NUMBER = re.compile(r"\d+")


def _numbers(path: Path | str) -> Counter:
    from medseg.volume import stem

    return Counter(int(number) for number in _NUMBER.findall(stem(path)))


def _written(path: Path | str, numbers: Counter) -> str:
    """``numbers`` as the name writes them (``004``, not ``4``), in its order, each as often as counted."""
    from medseg.volume import stem

    left, written = Counter(numbers), []
    for number in _NUMBER.findall(stem(path)):
        if left[int(number)] > 0:
            left[int(number)] -= 1
            written.append(number)
    return ", ".join(written)


def other_case_note(image: Path | str, reference: Path | str, role: str = "image") -> str | None:
    """A note where the file names of ``image`` (an input, or a prediction) and ``reference`` each hold a number that
    the other's lacks, compared as whole numbers (``004`` and ``4`` alike): the reference of another case? None where
    they agree, where either name holds no number the other lacks (``case001_0000.nii.gz`` and ``case001.nii.gz``,
    ``scan.nii.gz`` and ``scan_label.nii.gz``), and for a DICOM series folder or a DICOM SEG, which are paired by
    their UIDs, not by name. ``role``: what ``image`` is, as the note names it (``image``, ``prediction``)."""
    from medseg.io.files import is_dicom_file

    image, reference = Path(image), Path(reference)
    if image.is_dir() or reference.is_dir() or is_dicom_file(image) or is_dicom_file(reference):
        return None
    image_numbers, reference_numbers = _numbers(image), _numbers(reference)
    image_only, reference_only = image_numbers - reference_numbers, reference_numbers - image_numbers
    if not image_only or not reference_only:
        return None
    return (f"named for another case than {image.name}? ({_written(reference, reference_only)} in its name, "
            f"{_written(image, image_only)} in the {role}'s; a reference given out of order is scored all the same)")
