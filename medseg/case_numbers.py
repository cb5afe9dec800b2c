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
# numbers a name holds that say what the file is, not whose: a BIDS entity the other name lacks (run-1, echo-2, res-2
# on a derivative only) and a BIDS suffix (T1w, T2w); a version or a rater (label_v2, case_004_rater1); a short number
# inside a word (T1w, T2star); 3D Slicer's default names (Segmentation-label_1); TotalSegmentator's numbered structures
# (rib_left_12, vertebrae_T12)
_BIDS_ENTITY = re.compile(r"(?:^|(?<=_))([A-Za-z]+)-([A-Za-z0-9]+)")
_BIDS_CASE = ("sub", "ses")
_ATTRIBUTE = re.compile(r"(?i)(?:^|(?<=[_\-. ]))(?:v|ver|version|rev|rater|reader|annotator|observer|expert)[_-]?\d+"
                        r"(?=$|[_\-. ])"
                        r"|(?<=[A-Za-z])[1-9]\d?(?=[A-Za-z])"
                        r"|(?i:rib_(?:left|right)_\d+|vertebrae_[CTLS]\d+)")
_SLICER_DEFAULT = re.compile(r"(?i)^segmentation(?:[-_ ]?(?:segment|label|\d+))*$")


def _bids_entities(name: str) -> dict[str, str] | None:
    """A BIDS name's entities (``sub-01_ses-2_run-1_T1w``: sub 01, ses 2, run 1); None for a name without ``sub-``."""
    entities = {key.lower(): value for key, value in _BIDS_ENTITY.findall(name)}
    return entities if "sub" in entities else None


def _case_numbers(path: Path | str, other: Path | str) -> list[str]:
    """The numbers in the file name of ``path`` that may name its case, as written, in order; ``other``: the name it
    is compared with (a BIDS entity counts where both names have it, the subject and session always)."""
    from medseg.volume import stem

    name = stem(path)
    if _SLICER_DEFAULT.match(name):
        return []
    entities = _bids_entities(name)
    if entities is not None:  # a BIDS name: its subject and session, and the entities the other name has too
        others = _bids_entities(stem(other)) or {}
        return [number for key, value in entities.items() if key in _BIDS_CASE or key in others
                for number in _NUMBER.findall(value)]
    return _NUMBER.findall(_ATTRIBUTE.sub(" ", name))


def _numbers(path: Path | str, other: Path | str) -> Counter:
    return Counter(int(number) for number in _case_numbers(path, other))


def _written(path: Path | str, other: Path | str, numbers: Counter) -> str:
    """``numbers`` as the name writes them (``004``, not ``4``), in its order, each as often as counted; of a number
    written more than once, the last (``sub-01_run-1`` against ``run-2``: the run's 1, not the subject's 01)."""
    left, written = Counter(numbers), []
    for number in reversed(_case_numbers(path, other)):
        if left[int(number)] > 0:
            left[int(number)] -= 1
            written.append(number)
    return ", ".join(reversed(written))


def other_case_note(image: Path | str, reference: Path | str, role: str = "image") -> str | None:
    """A note where the file names of ``image`` (an input, or a prediction) and ``reference`` each hold a number that
    the other's lacks, compared as whole numbers (``004`` and ``4`` alike): the reference of another case? None where
    they agree, where either name holds no number the other lacks (``case001_0000.nii.gz`` and ``case001.nii.gz``,
    ``scan.nii.gz`` and ``scan_label.nii.gz``), and for a DICOM series folder or a DICOM SEG, which are paired by
    their UIDs, not by name. Numbers that say what a file is, not whose, are left out (a BIDS entity other than
    ``sub-`` and ``ses-`` that one name lacks, ``T1w``, ``label_v2``, ``rater1``, ``Segmentation-label_1``).
    ``role``: what ``image`` is, as the note names it (``image``, ``prediction``)."""
    from medseg.io.files import is_dicom_file

    image, reference = Path(image), Path(reference)
    if image.is_dir() or reference.is_dir() or is_dicom_file(image) or is_dicom_file(reference):
        return None
    image_numbers, reference_numbers = _numbers(image, reference), _numbers(reference, image)
    image_only, reference_only = image_numbers - reference_numbers, reference_numbers - image_numbers
    if not image_only or not reference_only:
        return None
    return (f"named for another case than {image.name}? ({_written(reference, image, reference_only)} in its "
            f"name, {_written(image, reference, image_only)} in the {role}'s; a reference given out of order is scored "
            "all the same)")
