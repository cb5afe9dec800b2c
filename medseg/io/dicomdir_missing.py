"""The files a folder's DICOMDIR references that are not in the folder, judged against the series candidates found
there: a series missing some of its images is refused (the part of a split series a missing file was of, where its
index record tells which), files of no series found are warned about."""

from __future__ import annotations

import logging
from pathlib import Path

from medseg.io.dicom_candidates import SeriesCandidate
from medseg.io.dicom_geometry import ORIENTATION_ATOL
from medseg.io.dicomdir import DicomdirIndex, missing_text
from medseg.numbers import counted

__all__ = ["judge_missing"]

# the series finder's logger, whichever of its modules warns: its warnings are told as
# "WARNING medseg.io.dicom_series: ..."
log = logging.getLogger("medseg.io.dicom_series")

def judge_missing(folder: Path, index: DicomdirIndex, candidates: list[SeriesCandidate]) -> None:
    """Files the DICOMDIR ``index`` references that are not here: a series missing some of its images is refused
    (read without them, a stack a slice short at an end is a thinner volume, in silence); a series none of whose
    images are here, or files of no series, are warned about (the folder may have been given a part on purpose).
    Of a series read in parts (split by orientation, image type, echo or size), only the part a missing file belonged
    to is refused where the file's index record tells which (:func:`_parts_of_record`); where it does not, every
    part it may have belonged to is, and the message says why. A missing file that fits no part found belonged to a
    part none of whose images are here: warned about, the parts found left as they are."""
    unplaced = []
    partless: list[tuple[SeriesCandidate, object]] = []  # (a part of its series, a file of a part not found)
    known: dict = {}  # what _parts_of_record worked out of each part, once for all its series' files
    for uid, gone in index.missing.items():
        parts = [c for c in candidates if uid and c.uid == uid]
        if not parts:
            unplaced += gone
            continue
        if len(gone) == len(index.by_series[uid]):  # its images are here, under other names: the index is stale
            log.warning("%s: the DICOMDIR names no file of %s that is here (its folders renamed or moved since); "
                        "the series is read as it is, without the index's check", folder, parts[0].label())
            continue
        total = len(index.by_series[uid])
        owned: dict[int, list] = {id(c): [] for c in parts}
        unknown: list = []  # (file, the parts it may have belonged to)
        for file in gone:
            fits = _parts_of_record(index.described.get(file, {}), parts, known)
            if not fits:  # its record gives another orientation, size, image type or echo than every part found
                partless.append((parts[0], file))
            elif len(parts) == 1:
                unknown.append((file, fits))  # the series' one part found: refused as a series missing files is
            elif len(fits) == 1:
                owned[id(fits[0])].append(file)
            else:
                unknown.append((file, fits))
        for candidate in parts:
            mine = owned[id(candidate)]
            maybe = [file for file, fits in unknown if candidate in fits]
            if mine:
                _refuse(candidate, missing_text(mine, total, ", of this part of the series, as the index's records of "
                                                             "them tell"))
            if maybe and len(parts) == 1:
                _refuse(candidate, missing_text(maybe, total))
            elif maybe:
                _refuse(candidate, missing_text(maybe, total, ", and the index's records of them do not tell which "
                                                              "part of the series they were of (no orientation, size, "
                                                              "position or instance number that sets one apart), so "
                                                              "every part they may be of is refused"))
    if unplaced:
        names = ", ".join(str(p) for p in unplaced[:3]) + (", …" if len(unplaced) > 3 else "")
        log.warning("%s: %s the DICOMDIR references %s not here (%s), of no series found in the folder",
                    folder, counted(len(unplaced), "file"), "is" if len(unplaced) == 1 else "are", names)
    by_series: dict[str, list] = {}  # one warning a series (each names its own)
    for part, file in partless:
        by_series.setdefault(part.uid, []).append((part, file))
    for files in by_series.values():
        part = files[0][0]
        names = ", ".join(str(p) for _, p in files[:3]) + (", …" if len(files) > 3 else "")
        log.warning("%s: %s the DICOMDIR references %s not here (%s), of %s but of no part of it found in the "
                    "folder (their index records give another orientation, size, image type or echo); the parts "
                    "found are read as they are", folder, counted(len(files), "file"),
                    "is" if len(files) == 1 else "are", names,
                    f"series {part.number if part.number is not None else part.uid}")


def _refuse(candidate: SeriesCandidate, problem: str) -> None:
    candidate.problem = problem + (f"; and: {candidate.problem}" if candidate.problem else "")


def _parts_of_record(fields: dict, parts: list[SeriesCandidate], known: dict | None = None) -> list[SeriesCandidate]:
    """The parts of a series split in parts that a file its DICOMDIR references, not here, may have belonged to, by
    what the file's index record says (:func:`~medseg.io.dicomdir.record_fields`): its split key where given
    (orientation, size, image type, echo: the parts that agree), then its position (parts of one orientation) or its
    InstanceNumber: the one part whose stack holds it inside, where the parts' stacks (numbers) do not overlap
    (:func:`_one_run_holding`). Every part where the record tells nothing (an IMAGE record need give only its
    InstanceNumber); none where it fits no part found (a part none of whose images are here). A series none of whose
    images here could be read has no frames to compare with: every part, as where the record tells nothing.
    ``known``: what was worked out of the parts for another file of the series (each part's echoes, and the ends of
    its stack and of its numbers), which a file would otherwise work out again from every image of every part."""
    known = {} if known is None else known

    def of(candidate: SeriesCandidate, what: str, work):
        if (id(candidate), what) not in known:
            known[id(candidate), what] = work(candidate)
        return known[id(candidate), what]

    fits = list(parts)
    if not all(c.frames for c in fits):  # its files' frames unreadable (its problem says why): nothing to compare
        return fits
    if "orientation" in fields:
        fits = [c for c in fits if c.frames[0].geometry.orientation is not None and max(
            abs(a - b) for a, b in zip(c.frames[0].geometry.orientation, fields["orientation"])) <= ORIENTATION_ATOL]
    if "size" in fields:
        fits = [c for c in fits if (c.frames[0].geometry.rows, c.frames[0].geometry.columns) == fields["size"]]
    if "image_type" in fields:
        fits = [c for c in fits if c.image_type == fields["image_type"]]
    if "echo" in fields:
        fits = [c for c in fits if of(c, "echo", lambda c: {str(d.get("EchoNumbers")) for d in c.datasets.values()})
                == {fields["echo"]}]
    if len(fits) > 1 and "position" in fields and _one_orientation(fits):  # depths along one normal compare
        held = _one_run_holding({id(c): of(c, "depths", lambda c: _ends(_depths(c))) for c in fits},
                                _depth(fits[0], fields["position"]))
        if held is not None:
            return [c for c in fits if id(c) == held]
    if len(fits) > 1 and "instance" in fields:
        held = _one_run_holding({id(c): of(c, "numbers", lambda c: _ends([f.instance_number for f in c.frames]))
                                 for c in fits}, fields["instance"])
        if held is not None:
            return [c for c in fits if id(c) == held]
    return fits


def _ends(values: list) -> list:
    """The least and the greatest of ``values`` that are not None (none where there is none): all that
    :func:`_one_run_holding` reads of a run."""
    values = [v for v in values if v is not None]
    return [min(values), max(values)] if values else []


def _one_run_holding(runs: dict, value) -> int | None:
    """The key of the one run (a part's positions or instance numbers) that holds values on both sides of ``value``,
    where the runs' ranges do not overlap: a missing image inside one part's stack is that part's. None where the
    ranges overlap (interleaved numbers) or no run holds it so (an image beyond a part's end may be of either part
    beside it)."""
    ranges = {}
    for key, values in runs.items():
        values = [v for v in values if v is not None]
        if not values or value is None:
            return None
        ranges[key] = (min(values), max(values))
    spans = sorted(ranges.values())
    if any(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:])):
        return None
    holding = [key for key, (low, high) in ranges.items() if low < value < high]
    return holding[0] if len(holding) == 1 else None


def _one_orientation(parts: list[SeriesCandidate]) -> bool:
    orientations = [c.frames[0].geometry.orientation for c in parts]
    return None not in orientations and all(
        max(abs(a - b) for a, b in zip(o, orientations[0])) <= ORIENTATION_ATOL for o in orientations)


def _depths(candidate: SeriesCandidate) -> list[float | None]:
    return [_depth(candidate, frame.geometry.position) for frame in candidate.frames]


def _depth(candidate: SeriesCandidate, position) -> float | None:
    """Where ``position`` (LPS mm) lies along ``candidate``'s slice normal (None without an orientation)."""
    orientation = candidate.frames[0].geometry.orientation
    if orientation is None or position is None:
        return None
    (a, b, c), (d, e, f) = orientation[:3], orientation[3:]
    normal = (b * f - c * e, c * d - a * f, a * e - b * d)
    return sum(n * float(p) for n, p in zip(normal, position))
