"""The series candidates of a DICOM folder (:class:`SeriesCandidate`): its images grouped by SeriesInstanceUID (by
study, number and description where that is gone), a group split where it mixes orientations, image types, echoes
or image sizes, files that are copies, without orientation or unreadable placed with the parts they belong to, and
each candidate judged: whether it can be one 3D volume (and why not), and its flags (localizer, non-HU, ...)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from medseg.caller_warnings import warning
from medseg.io.atomic import sha256_of
from medseg.io.dicom_frames import DicomFrame, _count, _floats, _frame_name, _frames, _image_type, _int
from medseg.io.dicom_geometry import ORIENTATION_ATOL, GeometryProblem, SeriesGeometry, series_geometry
from medseg.io.dicom_header import _encoding_unlike_syntax, _pixels_cut_short
from medseg.io.dicom_messages import FileMessages
from medseg.numbers import counted

__all__ = ["SeriesCandidate", "series_name"]

# the series finder's logger, whichever of its modules warns: its warnings are told as
# "WARNING medseg.io.dicom_series: ..."
log = logging.getLogger("medseg.io.dicom_series")

LOCALIZER_WORDS = re.compile(r"locali[sz]er|scout|survey|topogram|surview|3[- ]?pl(ane)?[ _-]?loc|aahscout", re.I)


@dataclass
class SeriesCandidate:
    """One series (or one part of a series split for mixing images), and whether it can be one 3D volume."""

    uid: str
    number: int | None
    part: int | None  # 1-based part when the series was split, else None
    description: str
    modality: str
    frames: list[DicomFrame]
    datasets: dict[Path, pydicom.Dataset] = field(repr=False, default_factory=dict)
    image_type: tuple[str, ...] = ()
    localizer: bool = False
    problem: str | None = None  # why this cannot be one 3D volume
    geometry: SeriesGeometry | None = None
    flags: list[str] = field(default_factory=list)
    split_reason: str | None = None
    split_values: str | None = None  # what sets this part apart, e.g. "size 128×256"
    index: int = 0  # 1-based place in the folder's listing, the key of last resort
    number_shared: bool = False  # another series in the folder (another UID) has the same SeriesNumber
    unusable_files: int = 0  # files of a series none of whose images could be read (it has no frames then)
    copies: dict[Path, Path] = field(default_factory=dict)  # a file skipped as a copy -> the file of this one it copies

    @property
    def key(self) -> str:
        """How ``--series`` names this candidate: the number (else, or when another series in the folder has the
        same number, the UID, else ``#INDEX``), with ``-PART`` when the series was split. Keys are unique in a
        folder, so every key ``inspect`` lists can be given."""
        unique_number = self.number is not None and not self.number_shared
        base = str(self.number) if unique_number else (self.uid or f"#{self.index}")
        return base if self.part is None else f"{base}-{self.part}"

    @property
    def eligible(self) -> bool:
        return self.problem is None and not self.localizer

    @property
    def files(self) -> list[Path]:
        return sorted({frame.path for frame in self.frames})

    def label(self) -> str:
        text = series_name(self.key, self.number, self.uid)
        if self.description:
            text += f" '{self.description}'"
        count = (f"{counted(self.unusable_files, 'file')}, none usable" if not self.frames and self.unusable_files
                 else counted(len(self.frames), "image"))
        return f"{text} ({self.modality}, {count}, UID {self.uid or 'none'})"


def series_name(key: str, number: int | None, uid: str | None) -> str:
    """How messages name a series: ``series KEY``; when the key is the UID (another series in the folder has the
    same number), by its number and part instead, so that a listing does not give the UID twice."""
    if uid and number is not None and (key == uid or key.startswith(f"{uid}-")):
        return f"series {number}{key[len(uid):]}"
    return f"series {key}"


SPLIT_KEY_NAMES = ("orientation", "image type", "echo", "size")  # the parts of a split key (see :func:`_key`)


def _split_values(key: tuple, names: list[str]) -> str:
    """What sets a part of a split series apart, in the words of its split key (see :func:`_key`)."""
    orientation, image_type, echo, size = key
    shown = {"orientation": "orientation " + ("?" if orientation is None else
                                              "\\".join(f"{v:.4g}" for v in orientation)),
             "image type": "image type " + ("\\".join(image_type) or "(none)"),
             "echo": f"echo {echo}",
             "size": "size ?" if size is None else f"size {size[0]}×{size[1]} (rows×columns)"}
    return ", ".join(shown[name] for name in names)


def _group(images: list[tuple[Path, pydicom.Dataset]], messages: FileMessages) -> list[SeriesCandidate]:
    by_uid: dict[tuple, list[tuple[Path, pydicom.Dataset]]] = {}
    for path, dataset in images:
        with messages.about(path):
            uid = str(dataset.get("SeriesInstanceUID", "") or "")
            # anonymised data may have lost the UID: fall back on what else tells series apart
            group = (uid,) if uid else ("", str(dataset.get("StudyInstanceUID", "")),
                                        str(dataset.get("SeriesNumber", "")), str(dataset.get("SeriesDescription", "")),
                                        str(dataset.get("Modality", "")))
        by_uid.setdefault(group, []).append((path, dataset))
    candidates: list[SeriesCandidate] = []
    for group, members in by_uid.items():
        uid = group[0]
        parts: dict[tuple, list[tuple[Path, pydicom.Dataset, DicomFrame]]] = {}
        problems: list[str] = []  # of the whole series
        left_out: list[tuple[pydicom.Dataset, str]] = []  # files whose geometry cannot be read, and why
        orientations: list[tuple[float, ...]] = []
        seen: dict[str, Path] = {}  # SOPInstanceUID -> the file that has it
        copies: list[tuple[Path, Path]] = []  # (copy, the file it copies)
        for path, dataset in sorted(members, key=lambda item: str(item[0])):
            with messages.about(path):
                sop = str(dataset.get("SOPInstanceUID", "") or "")
                if sop and sop in seen:
                    if sha256_of(path) == sha256_of(seen[sop]):  # a copy (a backup/ folder, a second export)
                        copies.append((path, seen[sop]))
                    else:
                        problems.append(f"{seen[sop].name} and {path.name} carry the same SOPInstanceUID {sop} but "
                                        "differ; remove the wrong one")
                    continue
                if sop:
                    seen[sop] = path
                try:
                    frames = _frames(path, dataset)
                except GeometryProblem as error:
                    left_out.append((dataset, f"{path.name}: {error}"))
                    frames = []
                for frame in frames:
                    key = _split_key(dataset, frame, orientations)
                    parts.setdefault(key, []).append((path, dataset, frame))
        if copies:
            more = (f"; {counted(len(copies) - 1, 'more file')} {'copies' if len(copies) == 2 else 'copy'} others of "
                    "the series") if len(copies) > 1 else ""
            warning(log, "%s: a copy of %s (same SOPInstanceUID, same bytes)%s; each image used once", copies[0][0],
                        copies[0][1], more)
        unoriented = _leave_out_unoriented(parts)
        # what differs between the parts (after the unoriented images left): the split's reason
        split_names = [name for i, name in enumerate(SPLIT_KEY_NAMES) if len({key[i] for key in parts}) > 1]
        split_reason = ", ".join(split_names) or None
        ordered = sorted(parts.items(), key=lambda item: min(str(p) for p, _, _ in item[1]))
        # a file left out of a part is that part's problem, not what its absence does to the others' geometry;
        # it belongs to the parts whose split key agrees with what its header does give (a broken localizer
        # does not block the series it was acquired with)
        left_keys = [(_file_key(dataset, orientations), why) for dataset, why in left_out]
        unoriented = [(_file_key(dataset, orientations), why, positions) for dataset, why, positions in unoriented]
        for file_key, why, *_ in left_keys + unoriented:
            if parts and not any(_same_part(file_key, key) for key in parts):
                warning(log, "%s; it belongs to no usable part of its series and is left out", why)
        placed = _place_unoriented(unoriented, parts)
        for index, (key, items) in enumerate(ordered):
            found = problems + [why for file_key, why in left_keys if _same_part(file_key, key)]
            candidate = _candidate(uid, items, index + 1 if len(ordered) > 1 else None, split_reason,
                                   _first_of(found))
            _judge_unoriented(candidate, *placed[key])
            candidate.copies = {copy: original for copy, original in copies if original in candidate.datasets}
            if candidate.part is not None:
                candidate.split_values = _split_values(key, split_names)
            candidates.append(candidate)
        if not parts:
            _, first = members[0]
            candidate = SeriesCandidate(uid=uid, number=_int(first.get("SeriesNumber")), part=None,
                                        description=str(first.get("SeriesDescription", "")),
                                        modality=str(first.get("Modality", "")), frames=[],
                                        unusable_files=len(members),
                                        problem=_first_of(problems + [why for _, why in left_out]) or "no images")
            candidates.append(candidate)
    candidates.sort(key=lambda c: (c.number if c.number is not None else 1 << 30, c.uid, c.part or 0))
    uids_of_number: dict[int, set[str]] = {}
    for candidate in candidates:
        if candidate.number is not None:
            uids_of_number.setdefault(candidate.number, set()).add(candidate.uid)
    for index, candidate in enumerate(candidates, start=1):
        candidate.index = index
        candidate.number_shared = len(uids_of_number.get(candidate.number, ())) > 1
        if not candidate.uid:
            candidate.flags.append("no-series-uid")
    _mark_localizer_sets(candidates)
    return candidates


def _candidate(uid: str, items: list, part: int | None, split_reason: str | None,
               file_problem: str | None = None) -> SeriesCandidate:
    first = items[0][1]
    candidate = SeriesCandidate(
        uid=uid,
        number=_int(first.get("SeriesNumber")),
        part=part,
        description=str(first.get("SeriesDescription", "") or first.get("ProtocolName", "") or ""),
        modality=str(first.get("Modality", "")),
        frames=[frame for _, _, frame in items],
        datasets={path: dataset for path, dataset, _ in items},
        image_type=_image_type(first),
        split_reason=split_reason if part is not None else None,
    )
    candidate.localizer = "LOCALIZER" in candidate.image_type or bool(LOCALIZER_WORDS.search(candidate.description))
    if candidate.localizer:
        candidate.flags.append("localizer")
    if part is not None:
        # one word per reason: `inspect` joins the flags with commas ("split:orientation, image type" ran on)
        candidate.flags.append("split:" + "+".join(name.replace(" ", "-") for name in split_reason.split(", ")))
    candidate.problem = file_problem or _dataset_problem(candidate)
    if candidate.problem is None:
        try:
            candidate.geometry = series_geometry([frame.geometry for frame in candidate.frames])
            candidate.flags.extend(candidate.geometry.flags)
        except GeometryProblem as error:
            candidate.problem = str(error)
            if error.frames:
                candidate.problem += ": " + " and ".join(_frame_name(candidate.frames[i]) for i in error.frames)
            for word in ("missing slices", "uneven", "4D"):
                if word in str(error):
                    candidate.flags.append({"missing slices": "gaps", "uneven": "uneven", "4D": "4D"}[word])
    if not _is_hounsfield(candidate):
        candidate.flags.append("non-HU")
    if len({(frame.slope, frame.intercept) for frame in candidate.frames}) > 1:
        candidate.flags.append("per-slice-rescale")
    if any(str(d.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
           for d in candidate.datasets.values()):
        candidate.flags.append("monochrome1")  # read as stored, not inverted: said, never silent
    bits = {(str(d.get("BitsAllocated", "")), str(d.get("BitsStored", ""))) for d in candidate.datasets.values()}
    if len(bits) > len({allocated for allocated, _ in bits}):  # files of one BitsAllocated with other BitsStored
        candidate.flags.append("per-slice-bits")
    return candidate


# what every file of one series that states them must agree on: its coordinate system, its study and its kind.
# (Not BitsStored: some exports set it per slice to what that slice's values need, and each file is decoded by its
# own header.)
SERIES_CONSTANTS = ("FrameOfReferenceUID", "StudyInstanceUID", "Modality")


def _disagreement(candidate: SeriesCandidate) -> str | None:
    """Which of :data:`SERIES_CONSTANTS` the files of ``candidate`` do not agree on, naming the odd files."""
    from collections import Counter

    for keyword in SERIES_CONSTANTS:
        # a file without the attribute says nothing against the others (anonymisers drop some)
        values = {path: text for path, dataset in candidate.datasets.items()
                  if (text := str(dataset.get(keyword, "") or ""))}
        counts = Counter(values.values())
        if len(counts) < 2:
            continue
        common, count = counts.most_common(1)[0]
        odd = sorted(path for path, value in values.items() if value != common)
        more = f" and {len(odd) - 1} more" if len(odd) > 1 else ""
        return (f"its files disagree on {keyword} ({common} in {counted(count, 'file')}, {values[odd[0]]} in "
                f"{odd[0].name}{more}); they do not make one volume")
    return None


def _dataset_problem(candidate: SeriesCandidate) -> str | None:
    disagreement = _disagreement(candidate)
    if disagreement is not None:
        return disagreement
    for path, dataset in candidate.datasets.items():
        if "MOSAIC" in candidate.image_type or (0x0019, 0x100A) in dataset:
            return "Siemens mosaic (several slices tiled in each image): not supported, convert it with dcm2niix"
        if not any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            # (a file cut inside its header reads as a shorter header: where the cut lies cannot be told)
            return f"{path.name} has no pixel data (the file was cut short, or written without its pixels)"
        cut = _pixels_cut_short(path, dataset) or _encoding_unlike_syntax(path, dataset)
        if cut is not None:
            return cut
        try:
            samples = _count(dataset, "SamplesPerPixel", 1)
        except GeometryProblem as error:
            return f"{path.name}: {error}"
        if samples != 1:
            return _colour_problem(candidate, dataset)
    return None


def _colour_problem(candidate: SeriesCandidate, dataset: pydicom.Dataset) -> str:
    """A series with colour images: refused, naming the colour files when the series has grey-level ones too (a
    screenshot filed in the series): "colour images are not supported" alone left the user searching for them."""
    kind = str(dataset.get('PhotometricInterpretation'))
    colour = sorted(path for path, other in candidate.datasets.items()
                    if str(other.get("SamplesPerPixel", "") or "1").strip() != "1")
    grey = len(candidate.datasets) - len(colour)
    if not grey or not colour:
        return f"colour images ({kind}) are not supported"
    more = f" and {counted(len(colour) - 1, 'more file')}" if len(colour) > 1 else ""
    return (f"{colour[0].name}{more}: colour ({kind}) among {counted(grey, 'grey-level file')} of the series; colour "
            "images "
            f"are not supported (move {'it' if len(colour) == 1 else 'them'} out of the folder)")


def _is_hounsfield(candidate: SeriesCandidate) -> bool:
    if candidate.modality != "CT" or not candidate.datasets:
        return False
    dataset = next(iter(candidate.datasets.values()))
    rescale_type = str(dataset.get("RescaleType", "HU") or "HU").upper()
    if rescale_type != "HU":
        return False
    has_rescale = "RescaleIntercept" in dataset or "SharedFunctionalGroupsSequence" in dataset
    return has_rescale or _int(dataset.get("PixelRepresentation")) == 1


def _mark_localizer_sets(candidates: list[SeriesCandidate]) -> None:
    """A series split into three or more orientations of a few images each is a tri-planar localizer."""
    by_uid: dict[str, list[SeriesCandidate]] = {}
    for c in candidates:
        by_uid.setdefault(c.uid, []).append(c)
    for parts in by_uid.values():
        if len(parts) >= 3 and all(p.split_reason and "orientation" in p.split_reason for p in parts) \
                and all(len(p.frames) <= 5 for p in parts):
            for p in parts:
                if not p.localizer:
                    p.localizer = True
                    p.flags.append("localizer")


def _split_key(dataset: pydicom.Dataset, frame: DicomFrame, orientations: list[tuple[float, ...]]) -> tuple:
    """What splits a series: orientation (the first seen within the geometry's tolerance stands for all
    orientations near it, so values straddling a rounding boundary stay together), image type, echo, size."""
    geometry = frame.geometry
    return _key(dataset, geometry.orientation, (geometry.rows, geometry.columns), orientations, remember=True)


def _key(dataset: pydicom.Dataset, orientation, size, orientations: list[tuple[float, ...]], remember: bool) -> tuple:
    if orientation is not None:
        near = [o for o in orientations if max(abs(a - b) for a, b in zip(o, orientation)) <= ORIENTATION_ATOL]
        if near:
            orientation = near[0]
        elif remember:
            orientations.append(orientation)
    echo = dataset.get("EchoNumbers")
    return orientation, _image_type(dataset), str(echo) if echo is not None else None, size


def _file_key(dataset: pydicom.Dataset, orientations: list[tuple[float, ...]]) -> tuple:
    """The split key of a file whose geometry could not be read, as far as its header gives it (None where not)."""
    try:
        orientation = _floats(dataset.get("ImageOrientationPatient"), 6, "ImageOrientationPatient")
    except GeometryProblem:
        orientation = None
    size = (_int(dataset.get("Rows")), _int(dataset.get("Columns")))
    return _key(dataset, orientation, None if None in size else size, orientations, remember=False)


def _first_of(problems: list[str]) -> str | None:
    if not problems:
        return None
    return problems[0] + (f" (and {counted(len(problems) - 1, 'more file')})" if len(problems) > 1 else "")


def _leave_out_unoriented(parts: dict[tuple, list]) -> list[tuple]:
    """Take the images without ImageOrientationPatient out of a series whose other images have it, as (dataset,
    problem, positions of its frames): faulty files, not a part of their own (their absence was reported as
    missing slices in the rest, their own fault second). :func:`_place_unoriented` decides what they mean."""
    if all(key[0] is None for key in parts):
        return []
    named: dict[Path, tuple] = {}
    for key in [key for key in parts if key[0] is None]:
        for path, dataset, frame in parts.pop(key):
            entry = named.setdefault(path, (dataset, f"{path.name}: without ImageOrientationPatient (the series' "
                                                     "other images have it)", []))
            entry[2].append(frame.geometry.position)
    return list(named.values())


SPARE_ATOL_MM = 0.01  # an unoriented image this close to a slice of a part stands where that slice stands


def _place_unoriented(unoriented: list[tuple], parts: dict[tuple, list]) -> dict:
    """For each part key, ([spares], [problems]) among the images without orientation (file key, problem,
    positions) that may belong to it. An
    image standing where a slice of a part stands (a spare copy) is that part's spare only: left out with a
    warning. Any other (one a slice short at an end of the stack, or one of another acquisition) is the problem
    of every part it may belong to: a stack is not read one slice short without a word."""
    placed: dict[tuple, tuple[list, list]] = {key: ([], []) for key in parts}
    for file_key, why, positions in unoriented:
        candidates = [key for key in parts if _same_part(file_key, key)]
        home = [key for key in candidates
                if positions and all(p is not None and any(q is not None and max(abs(a - b) for a, b in zip(p, q))
                                                          <= SPARE_ATOL_MM
                                                          for q in (f.geometry.position for _, _, f in parts[key]))
                                     for p in positions)]
        if home:
            placed[home[0]][0].append(why)
        else:
            where = ("nor ImagePositionPatient" if not positions or any(p is None for p in positions)
                     else "and it stands on no slice of the stack")
            for key in candidates:
                placed[key][1].append(f"{why}, {where}")
    return placed


def _judge_unoriented(candidate: SeriesCandidate, spares: list[str], problems: list[str]) -> None:
    """Images without orientation placed with ``candidate`` (see :func:`_place_unoriented`): spares (each standing
    on one of its slices) are left out with a warning; problems make it unusable, named first."""
    if spares:
        warning(log, "%s; left out of %s: it stands on a slice of it", _first_of(spares), candidate.label())
    if not problems:
        return
    without = f"; without them: {candidate.problem}" if candidate.problem else ""
    candidate.problem = _first_of(problems) + without
    if candidate.geometry is not None:
        candidate.flags = [f for f in candidate.flags if f not in candidate.geometry.flags]
    candidate.geometry = None
    # what their absence does to the geometry is not the series' own flag (as for any file left out)
    candidate.flags = [flag for flag in candidate.flags if flag not in ("gaps", "uneven", "4D")]


def _same_part(file_key: tuple, part_key: tuple) -> bool:
    return all(mine is None or mine == theirs for mine, theirs in zip(file_key, part_key))
