"""Label names and data notes from the ``dataset.json`` of a Medical Segmentation Decathlon or nnU-Net dataset
folder (``imagesTr/``, ``labelsTr/`` and ``dataset.json`` side by side), for ``medseg train`` without a config.

Both forms of its ``labels`` are read: the Decathlon's and nnU-Net v1's ``{"0": "background", "1": "Anterior"}``
and nnU-Net v2's ``{"background": 0, "Anterior": 1}``, also with its values quoted (``"1"``). Region-based labels (a
list of values for one name) and several input channels are refused: medseg trains one label map on one image per
case.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import InputError
from medseg.io.files import absent_content, type_text, undecodable
from medseg.jsonfile import json_error_text, size_text
from medseg.label_map import MAX_LABEL_VALUE
from medseg.numbers import values_text
from medseg.settings_named import ANY, has_option, setting

__all__ = ["DatasetDocument", "DatasetJson", "TrainingList", "declared_names", "file_ending_note", "find_dataset_json",
           "load_document",
           "named_as_given", "names_for_scoring", "not_used", "read_dataset_json", "read_document", "renamed_labels",
           "same_label_name", "training_list"]

log = logging.getLogger(__name__)

NAME = "dataset.json"


@dataclass
class DatasetJson:
    """What a Decathlon / nnU-Net ``dataset.json`` gives training: label names and model card notes."""

    path: Path
    names: dict[int, str]  # label value → name, background 0 among them
    data: dict[str, str] = field(default_factory=dict)  # model card notes: description, licence
    # the input channels' names in channel order ("channel_names", nnU-Net v2; "modality", the Decathlon's and
    # nnU-Net v1's), as the file gives them; empty where it gives none
    modalities: list[str] = field(default_factory=list)
    modalities_key: str = "channel_names"  # the key that names them, for messages ("modality" in the Decathlon's)


def named_as_given(found: Path, given: Path | str) -> Path:
    """``found`` (an absolute path, a ``dataset.json`` looked for beside ``given``) named as ``given`` is: relative to
    the working folder where ``given`` is relative (``Task01/dataset.json``, ``../dataset.json``), as the messages
    naming it name the images and labels beside it; absolute where ``given`` is."""
    if Path(given).is_absolute():
        return found
    try:
        return Path(os.path.relpath(found))
    except ValueError:  # another drive than the working folder's (Windows)
        return found


def find_dataset_json(images_dir: Path | str, labels_dir: Path | str) -> Path | None:
    """The ``dataset.json`` of the folder that holds both the images and the labels folder, if there is one: the
    folder they are given in first (``TaskXX/imagesTr`` may be a link to elsewhere), named as the images folder is
    given (:func:`named_as_given`), then the one they resolve to (by its absolute path: a place not given)."""
    for given, parents in ((True, (Path(images_dir).absolute().parent, Path(labels_dir).absolute().parent)),
                           (False, (Path(images_dir).resolve().parent, Path(labels_dir).resolve().parent))):
        # one whose content is not here (a git-annex link that leads nowhere), or any other link that leads nowhere,
        # too: passed over, training went on with label_N names and without its training list, not a word said
        found = parents[0] / NAME
        if parents[0] == parents[1] and (found.is_file() or found.is_symlink() or absent_content(found) is not None):
            return named_as_given(found, images_dir) if given else found
    return None


# A dataset.json holds labels, channel names and notes, and in the Decathlon's form a line per case: some 100 bytes a
# case. Anything near the cap is not one, and is not read whole into memory.
MAX_DATASET_JSON_BYTES = 64 << 20


def _read_capped(path: Path) -> bytes:
    """The bytes of ``path``, at most :data:`MAX_DATASET_JSON_BYTES`: ``ValueError`` for a larger file (read no
    further) or one that is not a regular file (a named pipe: not opened), ``OSError`` as reading raises it."""
    if path.exists() and not path.is_file():  # a named pipe would wait for a writer
        raise ValueError("not a regular file")
    with open(path, "rb") as handle:
        data = handle.read(MAX_DATASET_JSON_BYTES + 1)
    if len(data) > MAX_DATASET_JSON_BYTES:
        raise ValueError(f"more than {size_text(MAX_DATASET_JSON_BYTES)}, where a dataset.json holds at most "
                         f"{size_text(MAX_DATASET_JSON_BYTES)}")
    return data


def _or_config() -> str:
    # a Python caller's train always takes a config: "give config=... with a config" told it nothing
    if has_option("config"):
        return f"; give {setting('config', ANY)} with a config of the labels to train without it"
    return "; train with a config of your own that declares the labels (train's config argument) to do without it"


def read_document(path: Path | str) -> tuple[object, str | None]:
    """The parsed JSON of a ``dataset.json``, or None and why it cannot be read (too large, not UTF-8 or UTF-16
    text, not JSON, nested too deeply, the OS's reason), as ``(document, reason)``. No warnings."""
    data = b""
    absent = absent_content(path, f"a {NAME}")  # was "Expecting value: line 1 column 1 (char 0)"
    if absent is not None:
        return None, absent
    try:
        data = _read_capped(Path(path))
        if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # UTF-32-LE's mark starts as UTF-16-LE's does
            return None, "saved as UTF-32; save it as UTF-8"
        return json.loads(_decoded(data)), None
    except UnicodeDecodeError as error:
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        encoding = "UTF-16" if error.encoding.startswith("utf-16") else "UTF-8"
        return None, f"not {encoding} text: {undecodable(error, bom)}; save it as UTF-8"
    except json.JSONDecodeError as error:  # was json's words alone ("Expecting ',' delimiter: line 3 column 5 …")
        return None, json_error_text(error)
    except (OSError, ValueError) as error:  # ValueError: more than the cap
        return None, " ".join(str(error).split())
    except RecursionError:  # json's own error for brackets nested thousands deep, which no dataset.json holds
        return None, "nested too deeply to be a dataset.json"


@dataclass(frozen=True)
class DatasetDocument:
    """A ``dataset.json`` read once (:func:`load_document`): its parsed JSON, or None and why it cannot be read. The
    readers below take it in place of a path, so that one training run reads the file once, not once for its training
    list, again for its names and again for a warning (a file changed in between gave the training list of one
    version and the names of another)."""

    path: Path
    document: object
    reason: str | None = None


def load_document(path: Path | str) -> DatasetDocument:
    """``path`` read and parsed once, as :func:`read_document` reads it. No warnings."""
    document, reason = read_document(path)
    return DatasetDocument(Path(path), document, reason)


def _read(source: Path | str | DatasetDocument) -> DatasetDocument:
    return source if isinstance(source, DatasetDocument) else load_document(source)


def not_used(path: Path | str, reason: str, labels: str = "labels are named label_N") -> str:
    """The warning for a ``dataset.json`` beside the training folders that cannot be read (``reason``): neither its
    training list nor its label names are used; ``labels``: how the labels are named instead."""
    return (f"{path}: not read ({reason}); its training list and label names are not used (the cases are paired by "
            f"file name; {labels})")


def read_dataset_json(source: Path | str | DatasetDocument) -> DatasetJson | None:
    """Label names (checked: text, whole values with 0 among them, one input channel) and data notes of a
    ``dataset.json`` (its path, or the file as :func:`load_document` read it). None for a file that is not one medseg
    can take names from (not JSON, no ``labels`` mapping: a datalist, say), with a warning; an :class:`InputError`
    naming the file for labels it cannot train as they are meant."""
    read = _read(source)
    path, doc, reason = read.path, read.document, read.reason
    if reason is not None:
        log.warning("%s", not_used(path, reason))
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("labels"), dict) or not doc["labels"]:
        log.warning("%s: no \"labels\" mapping of label values and names; labels are named label_N", path)
        return None
    modalities = channel_names(doc)
    names = _names(doc["labels"], path)
    values = sorted(names)
    if values[0] < 0:  # told as labels without 0 before, when 0 was among them
        raise InputError(f"{path}: label value {values[0]} '{names[values[0]]}' is negative; label values are whole "
                         f"numbers from 0 (background) up{_or_config()}")
    if values[-1] > MAX_LABEL_VALUE:  # told before as a value the labels folder held
        raise InputError(f"{path}: label value {values[-1]} '{names[values[-1]]}' is above {MAX_LABEL_VALUE}, the "
                         f"largest a segmentation (uint16) holds{_or_config()}")
    if values[0] != 0:  # values may skip (BraTS's 0, 1, 2, 4), but 0 is the background every label file holds
        raise InputError(f"{path}: label values {values_text(values)} do not hold 0 (background), as a model's labels "
                         f"must; declare label 0 (background) in the dataset.json{_or_config()}")
    ignore = [value for value, name in names.items() if name.casefold() == "ignore"]
    if ignore:
        raise InputError(f"{path}: label {ignore[0]} 'ignore' is nnU-Net's ignore label (voxels without annotation), "
                         f"which medseg would train as a class; recode those voxels{_or_config()}")
    data = {}
    title, description = _text(doc.get("name")), _text(doc.get("description"))
    if title or description:
        # the dataset's folder by name, also where the file is given from inside it (``dataset.json``, whose parent
        # ``.`` has no name: the card said "from /dataset.json")
        folder = Path(os.path.abspath(path)).parent.name
        data["description"] = ": ".join(t for t in (title, description) if t) + f" (from {folder}/{NAME})"
    licence = _text(doc.get("licence") or doc.get("license"))
    reference = _text(doc.get("reference"))
    if licence or reference:
        data["licence"] = "; ".join(t for t in (licence, f"reference: {reference}" if reference else "") if t)
    key = "channel_names" if doc.get("channel_names") else "modality"
    return DatasetJson(path=path, names=names, data=data, modalities=modalities, modalities_key=key)


# nnU-Net v2's ``file_ending``: the format of the images, labels and the predictions nnU-Net writes. medseg reads
# those that training's folders are searched for (medseg.io.itk_image.IMAGE_ENDINGS: a list of its own here left
# .nii.bz2 and .nii.zst out, and refused them as images medseg cannot read), and writes its segmentations as NIfTI,
# ``.nii.gz``, whatever the input's format.
WRITTEN_ENDING = ".nii.gz"


def file_ending_note(source: Path | str | DatasetDocument) -> str | None:
    """What a ``dataset.json``'s ``file_ending`` (nnU-Net v2) means for medseg, as one line: None where it gives none,
    or ``.nii.gz`` (what medseg writes); a warning where it names a format medseg reads but does not write (its
    segmentations stay ``.nii.gz``, which a tool expecting that format will not find); an :class:`InputError` for a
    format medseg cannot read (``.png``, ``.tif``: 2D images, which medseg does not segment) or a value that is no
    file ending. A file that cannot be read, or holds no mapping, is left to the readers that tell so."""
    read = _read(source)
    if read.reason is not None or not isinstance(read.document, dict) or "file_ending" not in read.document:
        return None
    ending = read.document["file_ending"]
    if not isinstance(ending, str) or not re.fullmatch(r"\.[A-Za-z0-9][A-Za-z0-9.]*", ending.strip()):
        raise InputError(f"{read.path}: file_ending {json.dumps(ending)} is not a file name ending; give one such as "
                         f"\"{WRITTEN_ENDING}\"")
    from medseg.io.itk_image import IMAGE_ENDINGS

    ending = ending.strip().lower()
    if ending == WRITTEN_ENDING:
        return None
    if ending not in IMAGE_ENDINGS:
        raise InputError(f"{read.path}: file_ending \"{ending}\" names images medseg cannot read or write (it reads "
                         f"{', '.join(IMAGE_ENDINGS)}; it writes {WRITTEN_ENDING}); convert the images and labels to "
                         f"NIfTI and set file_ending to \"{WRITTEN_ENDING}\"")
    return (f"{read.path}: file_ending \"{ending}\": the images are read as they are, but medseg writes its "
            f"segmentations as NIfTI ({WRITTEN_ENDING}), not {ending}; convert them where a tool expects {ending}")


def _decoded(data: bytes) -> str:
    """A dataset.json's text: UTF-8 (a byte order mark allowed), or UTF-16 with its byte order mark, as Windows
    PowerShell 5 writes ``python make_dataset.py > dataset.json`` and Notepad saves "Unicode" text."""
    wide = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    return data.decode("utf-16" if wide else "utf-8-sig")


@dataclass
class TrainingList:
    """The training cases a Decathlon / nnU-Net v1 ``dataset.json`` lists (``training``: image and label paths,
    relative to its folder, as written) and the count it states (``numTraining``)."""

    path: Path
    pairs: list[tuple[str, str]]  # (image, label) as written, e.g. ("./imagesTr/la_003.nii.gz", "./labelsTr/…")
    num_training: int | None = None


def training_list(source: Path | str | DatasetDocument) -> TrainingList | None:
    """The ``training`` list and ``numTraining`` of a ``dataset.json`` (its path, or the file as
    :func:`load_document` read it); None for a file that states neither, or that is not one medseg can read
    (:func:`read_dataset_json` warns about that where it reads the names). A ``training`` entry that is not an image
    and a label path is an :class:`InputError` naming the file."""
    read = _read(source)
    path, doc = read.path, read.document
    if not isinstance(doc, dict):
        return None
    count = doc.get("numTraining")
    count = int(count) if _whole_text(count) or (isinstance(count, int) and not isinstance(count, bool)) else None
    listed = doc.get("training")
    if listed is None or listed == []:
        return None if count is None else TrainingList(path=path, pairs=[], num_training=count)
    if not isinstance(listed, list):
        raise InputError(f"{path}: \"training\" is {type_text(listed)}, not a list of image and label paths "
                         "(as the Decathlon's: [{\"image\": \"./imagesTr/case.nii.gz\", \"label\": "
                         "\"./labelsTr/case.nii.gz\"}, …])")
    pairs = []
    for number, entry in enumerate(listed, 1):
        image = entry.get("image") if isinstance(entry, dict) else None
        label = entry.get("label") if isinstance(entry, dict) else None
        if isinstance(image, list) and len(image) > 1:
            raise InputError(f"{path}: training entry {number} gives {len(image)} images for one case; medseg trains "
                             "on one image per case and does not support multi-channel input")
        image = image[0] if isinstance(image, list) and len(image) == 1 else image
        if not (isinstance(image, str) and image.strip() and isinstance(label, str) and label.strip()):
            shown = json.dumps(entry, ensure_ascii=False)
            raise InputError(f"{path}: training entry {number} is not an image and a label path (got "
                             f"{shown[:80]}{'…' if len(shown) > 80 else ''}); the Decathlon's form is "
                             "{\"image\": \"./imagesTr/case.nii.gz\", \"label\": \"./labelsTr/case.nii.gz\"}")
        pairs.append((image.strip(), label.strip()))
    return TrainingList(path=path, pairs=pairs, num_training=count)


def declared_names(source: Path | str | DatasetDocument) -> dict[int, str] | None:
    """The label names a ``dataset.json`` (its path, or the file as :func:`load_document` read it) declares (value →
    name), whether or not medseg could train them as they are (an ``ignore`` label, gaps, several channels); None
    where it declares none it can read. No warnings."""
    read = _read(source)
    doc = read.document
    try:
        return _names(doc["labels"], read.path) if isinstance(doc, dict) and isinstance(doc.get("labels"), dict) \
            else None
    except (ValueError, AttributeError, InputError):
        return None


def names_for_scoring(source: Path | str | DatasetDocument) -> tuple[dict[int, str] | None, str | None]:
    """The label names a ``dataset.json`` declares, for scoring, as ``(names, None)``; ``(None, why)`` where it is there
    but its names cannot be used (it cannot be read, or its labels are nnU-Net's regions, lists of values, which
    scoring, label value by label value, does not score); ``(None, None)`` where it declares no labels (a datalist).
    No warnings."""
    read = _read(source)
    if read.reason is not None:
        return None, f"not read ({read.reason})"
    doc = read.document
    if not isinstance(doc, dict) or not isinstance(doc.get("labels"), dict):
        return None, None
    regions = [(name, value) for name, value in doc["labels"].items() if isinstance(value, list)]
    if regions:
        name, value = regions[0]
        return None, (f"its labels are nnU-Net regions ('{name}' is the values {value}): medseg scores each label "
                      "value on its own, not the regions nnU-Net's evaluation scores")
    try:
        return _names(doc["labels"], read.path), None
    except (ValueError, AttributeError, InputError) as error:
        text = str(error)
        return None, text.removeprefix(f"{read.path}: ")


def renamed_labels(declared: dict[int, str], names: dict[int, str], *,
                   separators_aside: bool = False) -> tuple[dict[int, str], dict[int, str]]:
    """The labels a dataset.json (``declared``) and a config (``names``; both value → name) name differently, beyond
    letter case, as (the dataset.json's names, the config's); a value only one of them has is named "no label" by
    the other. Background (0) is not compared, nor how an accent is composed (``ä`` as one character or as ``a``
    and its accent, as macOS may write it); with ``separators_aside``, nor how the words of a name are joined
    (``left_kidney``, ``Left Kidney``, ``left-kidney``: one structure, where the question is whether the two name
    the same structures). Both empty where they agree."""
    theirs, ours = {}, {}
    for value in sorted((set(declared) | set(names)) - {0}):
        a, b = declared.get(value), names.get(value)
        if a is None or b is None or _folded(a, separators_aside) != _folded(str(b), separators_aside):
            theirs[value], ours[value] = a or "no label", "no label" if b is None else str(b)
    return theirs, ours


def same_label_name(a: str, b: str, *, separators_aside: bool = False) -> bool:
    """Whether two label names are one, as :func:`renamed_labels` compares them."""
    return _folded(a, separators_aside) == _folded(b, separators_aside)


def _folded(name: str, separators_aside: bool = False) -> str:
    """A label name as compared: accents composed, letter case and surrounding spaces aside; with
    ``separators_aside``, the spaces, underscores and hyphens between its words too."""
    folded = unicodedata.normalize("NFC", name).strip().casefold()
    return "".join(ch for ch in folded if not (ch.isspace() or ch in "_-")) if separators_aside else folded


def _names(labels: dict, path: Path) -> dict[int, str]:
    """Label value → name from either form of ``labels``."""
    names: dict[int, str] = {}
    keyed_by_value = all(str(key).isascii() and str(key).isdigit() for key in labels)
    if all(isinstance(value, str) for value in labels.values()) and (
            keyed_by_value or not any(_whole_text(value) for value in labels.values())):
        # {"0": "background", "1": "Anterior"}
        odd = [key for key in labels if not (str(key).isascii() and str(key).isdigit())]
        if odd:
            raise InputError(f"{path}: label key '{odd[0]}' is not a label value (the labels map values to names, "
                             "or names to values as nnU-Net v2 does)")
        pairs = [(int(key), value) for key, value in labels.items()]
    elif keyed_by_value and any(isinstance(value, str) for value in labels.values()):  # values to names, one not a text
        key, value = next((k, v) for k, v in labels.items() if not isinstance(v, str))
        raise InputError(f"{path}: label {key} is named {value!r}, not a text (the labels map values to names, or "
                         "names to values as nnU-Net v2 does)")
    else:  # {"background": 0, "Anterior": 1}, also with the values quoted ("0", "1")
        pairs = []
        for name, value in labels.items():
            if _whole_text(value):
                value = int(value)
            if isinstance(value, (list, tuple)):
                raise InputError(f"{path}: label '{name}' is a region of values {list(value)} (nnU-Net's region-based "
                                 f"training); medseg trains one label per value{_or_config()}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{path}: label '{name}' has the value {value!r}, not a whole number")
            pairs.append((value, name))
    for value, name in pairs:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{path}: label {value} has no name (got {name!r})")
        if value in names:
            raise InputError(f"{path}: label value {value} is named twice ('{names[value]}', '{name}')")
        names[value] = name.strip()
    return dict(sorted(names.items()))


def channel_names(doc) -> list[str]:
    """The input channels' names of a dataset.json document in channel order (nnU-Net v2's ``channel_names``, the
    Decathlon's and nnU-Net v1's ``modality``: ``"0": "FLAIR", "1": "T1w"``, numbered as texts); empty where it
    gives none."""
    channels = doc.get("channel_names") or doc.get("modality") if isinstance(doc, dict) else None
    if not isinstance(channels, dict) or not all(_whole_text(key) for key in channels):
        return []
    return [str(channels[key]) for key in sorted(channels, key=lambda key: int(str(key).strip()))]


def _whole_text(value) -> bool:
    """A whole number written as a text ("1", "-1"), as some tools write nnU-Net v2's label values."""
    return isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()) is not None


def _text(value) -> str:
    return " ".join(str(value).split()) if isinstance(value, (str, int, float)) and str(value).strip() else ""
