"""Files a DICOM series has lost at its ends, told by its InstanceNumbers: a series without its first or last file
still has evenly spaced positions (a lost file inside it leaves a gap there, which its geometry refuses), so it was
read as a whole series, a slice short, without a word."""

from __future__ import annotations

from collections.abc import Sequence

from medseg.io.dicom_candidates import SeriesCandidate
from medseg.io.dicom_frames import _int
from medseg.numbers import counted

__all__ = ["missing_instances_text"]


def missing_instances_text(candidate: SeriesCandidate, others: Sequence[SeriesCandidate] = ()) -> str | None:
    """What the InstanceNumbers of ``candidate``'s files say is missing, as the end of a warning (``InstanceNumbers
    1-2 missing (those here run 3 to 6): ...``); None where nothing is, or the numbers cannot tell:

    * where a file states the images of its acquisition (ImagesInAcquisition, the same in every file, all of one
      AcquisitionNumber), fewer files than that are short of the numbers 1..N not here (the last file's loss, which
      nothing else tells); as many, whatever their numbers, are whole, and a whole multiple of the files here (2, 3
      ... times as many) is the count of an acquisition saved as several series (an echo each, the maps derived
      from a DWI acquisition's b-values), not a loss; numbering from 0 counts 0..N-1;
    * else the numbers are those from 1 to the last here: a series that starts at 3 lost 1 and 2. Numbering that
      starts further from 1 than the series has images (a scanner's count across a study, an excerpt) is the
      series' own; so is numbering whose missing numbers the other series of its study among ``others`` (the
      folder's other candidates) hold, none of them a number of its own (a scanner numbering across the study: a
      localizer 1 to 3, then the series 4 to 103). Without them nothing tells such numbering from lost files (no
      header states a series' place in its study's count): a series alone numbered 4 to 103 is warned about, the
      warning saying that the numbers cannot tell lost files from such a count.

    Not judged (None): numbers with holes between those here (the slices of a series read are evenly spaced, so
    those holes are no slices of it: one echo of a series numbered echo by echo, 1, 3, 5 ...), a part of a series
    split for mixing images (its numbers interleave with the other part's), a multi-frame file (NumberOfFrames
    counts its images, all in the one file), a file without an InstanceNumber, or numbers given twice."""
    if candidate.part is not None or any(frame.frame is not None for frame in candidate.frames):
        return None
    numbers = [frame.instance_number for frame in candidate.frames]
    if not numbers or any(number is None for number in numbers) or len(set(numbers)) != len(numbers):
        return None
    numbers = sorted(numbers)
    if any(b - a != 1 for a, b in zip(numbers, numbers[1:])):
        # numbers between the slices of an evenly spaced stack (a slice lost inside leaves a gap, which the geometry
        # refuses) are no slices of it: one echo of a series numbered echo by echo (1, 3, 5 ...), a stride of its own
        return None
    present = set(numbers)
    first, last = numbers[0], numbers[-1]
    stated = _stated_count(candidate)
    if stated is not None:
        if len(numbers) >= stated or stated % len(numbers) == 0:
            # a whole multiple: the count of an acquisition saved as several series (an echo each, a derived map of
            # a DWI acquisition's b-values), not files lost
            return None
        base = 0 if first == 0 else 1  # some vendors number from 0
        missing = sorted(set(range(base, base + stated)) - present) if last < base + stated else []
        why = f"ImagesInAcquisition says {counted(stated, 'image')}, {len(numbers)} here"
        if not missing:
            return f"{why}: files of the series may have been lost; {_ADVICE}"
    else:
        start = 1 if first - 1 < len(numbers) else first
        missing = sorted(set(range(start, last + 1)) - present)
        if not missing or _numbered_across_the_study(candidate, present, missing, others):
            return None
        why = f"those here run {first} to {last}"
    lost = "files of the series may have been lost, their slices left out of the volume"
    across = _across_the_study_untold(candidate, others) if stated is None else None
    if across is not None:  # a loss, or a count across the study: untold
        lost = f"{lost}, or the scanner numbered its images across the study, {across}"
    word = "InstanceNumber" if len(missing) == 1 else "InstanceNumbers"
    return f"{word} {_ranges(missing)} missing ({why}): {lost}; {_ADVICE}"


_ADVICE = "copy the series again from its source"


def _numbered_across_the_study(candidate: SeriesCandidate, present: set[int], missing: list[int],
                               others: Sequence[SeriesCandidate]) -> bool:
    """Whether the ``missing`` numbers are those of the other series of ``candidate``'s study among ``others``, which
    hold none of the numbers ``present``: a scanner numbering its images across the study, not files lost. Series
    numbered each from 1 share numbers (a localizer 1 to 3 beside a series that lost 1 and 2: 3 is both's)."""
    from medseg.io.dicom_series import study_value

    study = study_value(candidate, "StudyInstanceUID")
    if not study:
        return False
    held: set[int] = set()
    for other in others:
        if other is candidate or other.uid == candidate.uid or study_value(other, "StudyInstanceUID") != study:
            continue
        held.update(frame.instance_number for frame in other.frames if frame.instance_number is not None)
    return not held & present and set(missing) <= held


def _across_the_study_untold(candidate: SeriesCandidate, others: Sequence[SeriesCandidate]) -> str | None:
    """Why nothing tells ``candidate``'s numbers, starting past 1, from a count across its study, as the warning's
    words; None where the study's other series are among ``others`` (the folder's series) and, not holding the
    missing numbers, tell it is no such count. Files that state no StudyInstanceUID cannot be told to be of the study
    of the folder's other series: those are no proof either way (they are here, so the words do not say otherwise)."""
    from medseg.io.dicom_series import study_value

    study = study_value(candidate, "StudyInstanceUID")
    beside = [other for other in others if other is not candidate and other.uid != candidate.uid]
    if not study and beside:
        return ("which its files do not name (no StudyInstanceUID: the folder's other series cannot tell the two "
                "apart)")
    if not study or not any(study_value(other, "StudyInstanceUID") == study for other in beside):
        return "whose other series are not here (the numbers cannot tell the two apart)"
    return None


def _stated_count(candidate: SeriesCandidate) -> int | None:
    """ImagesInAcquisition where every file of ``candidate`` states the same and all are of one acquisition, else
    None."""
    datasets = [candidate.datasets[path] for path in candidate.files if path in candidate.datasets]
    if not datasets or len(datasets) != len(candidate.files):
        return None
    counts = {_int(dataset.get("ImagesInAcquisition")) for dataset in datasets}
    acquisitions = {str(dataset.get("AcquisitionNumber", "")).strip() for dataset in datasets}
    if len(counts) != 1 or len(acquisitions) != 1:
        return None
    count = counts.pop()
    return count if count is not None and count > 0 else None


def _ranges(numbers: list[int], shown: int = 8) -> str:
    """``1-2, 7``: sorted whole numbers as runs, cut short after ``shown`` runs."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    texts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs]
    more = f", … ({len(numbers)} in all)" if len(texts) > shown else ""
    return ", ".join(texts[:shown]) + more
