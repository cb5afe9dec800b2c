"""The cases training reads: image and label files paired by name (:func:`pair_cases`), each read, checked and
brought into model space (:func:`load_cases`, :class:`TrainCase`), the label values the files hold, and the checks on
which labels the training and validation cases hold."""

from __future__ import annotations

import contextlib
import logging
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from medseg.errors import InputError, MedsegError, TrainingError
from medseg.inference import slice_axes
from medseg.input_range import model_space_extent
from medseg.io.files import (
    absent_content,
    absent_files,
    name_difference,
    nnunet_channel,
    not_there,
    os_reason,
    path_argument,
    type_text,
)
from medseg.io.itk_image import (
    IMAGE_ENDINGS,
    IMAGE_FILE_KINDS,
    SLICER_SEGMENTATION,
    data_files_among,
    is_slicer_scene,
    is_slicer_segmentation,
    scene_images_text,
    slicer_scene_images,
)
from medseg.label_map import label_map
from medseg.numbers import IMAGE_AMONG_LABELS, IMAGE_LIKE_VALUES, counted, odd_values, values_text
from medseg.training_labels import LabelsFrom, check_label_presence, check_training_foreground, label_values
from medseg.volume import slicer_segmentation_ending, stem

if TYPE_CHECKING:
    from medseg.io.dataset_json import DatasetDocument

__all__ = ["LabelsFrom", "TrainCase", "case_channels", "check_case_channels", "check_case_list",
           "read_case_image", "check_label_presence", "check_training_foreground",
           "data_hashes", "label_values", "load_cases", "padded_labels_text", "pair_cases"]

log = logging.getLogger(__name__)


@dataclass
class TrainCase:
    """One image and its label file; their tensors in model space once loaded."""

    case_id: str
    image_path: Path
    label_path: Path
    image: torch.Tensor | None = None  # (C, X, Y, Z) model space
    label: torch.Tensor | None = None  # (X, Y, Z) uint8 class indices (package.label_map), model space
    extent_mm: list[float] | None = None  # field of view per model-space axis (for the package's input range)
    sha256: tuple[str, str] | None = None  # of the image and label files, as read (a resumed run checks them)
    # where the label file is a box of the image's voxel lattice, zero-padded onto its grid: the box's shape and its
    # first voxel's index on the image's grid (as scoring records ``reference_sub_box``)
    label_box: dict | None = None
    # nnU-Net's channel files of a multi-modal case (case_0000, case_0001, ...; ``image_path`` is the first), in
    # channel order; None for a case of one image file (3D, or 4D holding its modalities)
    channel_paths: list[Path] | None = None

    def view(self, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image ``(C, A, B, S)`` and label ``(A, B, S)`` turned so that model-space ``axis`` is last."""
        return torch.movedim(self.image, 1 + axis, -1), torch.movedim(self.label, axis, -1)


_IMAGE_SUFFIXES = IMAGE_ENDINGS  # NIfTI (.nii.zst too), NRRD and MetaImage through SimpleITK (the itk extra)
_LABEL_SUFFIXES = ("_label", "_labels", "_seg", "_mask", "_gt")  # _gt: ACDC's ground truth


def _image_files(folder: Path, kind: str, scene: bool = False) -> dict[str, Path]:
    """The image files (NIfTI, NRRD, MetaImage) directly in ``folder`` by case name; anything else there (a
    subfolder, a DICOM folder, another format) is left out with a warning naming it, never silently. A folder this
    user may not read (list, or look into) is one error naming it: Python's ``PermissionError`` ended training on a
    traceback. ``scene``: ``folder`` is both the images and the labels folder, a 3D Slicer scene
    (:func:`~medseg.io.itk_image.is_slicer_scene`): its labels are its segmentations (``case.seg.nrrd``) alone, its
    images the other files, and neither listing warns about the other's files (the images' warns about the rest)."""
    try:
        return _listed_image_files(folder, kind, scene)
    except PermissionError as error:
        what = "cannot read" if error.filename == str(folder) else "cannot look at its files"
        raise TrainingError(f"{folder}: {what} ({os_reason(error)})") from error


def _listed_image_files(folder: Path, kind: str, scene: bool = False) -> dict[str, Path]:
    """:func:`_image_files`, its folder's entries looked at."""
    if not folder.is_dir():
        raise TrainingError(f"{folder}: no such {kind} folder")
    files: dict[str, Path] = {}
    left_out, broken, hidden, segmentations, scene_images = [], [], [], [], []
    entries = sorted(folder.iterdir())
    data_files = data_files_among(entries)  # a .mhd's .raw: part of its image
    # 3D Slicer's scene: case.nrrd beside case.seg.nrrd; among labels the segmentation is the case's, among images
    # the image
    beside = set(slicer_scene_images(entries)) if kind == "labels" else set()
    for path in entries:
        if path in data_files:
            continue
        if scene and kind == "labels" and not (not path.name.startswith(".") and path.is_file()
                                               and is_slicer_segmentation(path)):
            continue  # the scene's images, and what its listing of images warns about
        if scene and kind == "images" and is_slicer_segmentation(path):
            continue  # the scene's labels
        if path.name.startswith("."):  # said where it looks like a case (not macOS's ._ companions, .DS_Store, …)
            if not path.name.startswith("._") and path.name.lower().endswith(_IMAGE_SUFFIXES):
                hidden.append(path.name)
            continue
        if path.is_symlink() and not path.exists():
            broken.append(path.name)
            continue
        if not path.is_file() or not path.name.lower().endswith(_IMAGE_SUFFIXES):  # .NII.GZ too
            left_out.append(path.name + ("/" if path.is_dir() else ""))
            continue
        if kind == "images" and is_slicer_segmentation(path):
            segmentations.append(path.name)
            continue
        if path in beside:
            scene_images.append(path.name)
            continue
        # é as one character or as e and its accent (as macOS names files): one case name, so that an image named
        # on a Mac pairs with its label named elsewhere
        _add_case(files, unicodedata.normalize("NFC", stem(path)), path)
    if left_out:
        shown = ", ".join(left_out[:5]) + (" …" if len(left_out) > 5 else "")
        entries = (f"1 entry that is not a {IMAGE_FILE_KINDS} file" if len(left_out) == 1
                   else f"{len(left_out)} entries that are not {IMAGE_FILE_KINDS} files")
        log.warning("%s: left out %s (subfolders are not searched): %s", folder, entries, shown)
    if segmentations:
        shown = ", ".join(segmentations[:5]) + (" …" if len(segmentations) > 5 else "")
        endings = "/".join(sorted({slicer_segmentation_ending(name) for name in segmentations}))
        log.warning("%s: left out %s (%s: labels, not images to train on; a case's goes in the labels "
                    "folder): %s", folder, counted(len(segmentations), "3D Slicer segmentation"), endings, shown)
    if scene_images:
        log.warning("%s: %s", folder, scene_images_text(scene_images))
    if hidden:
        shown = ", ".join(hidden[:5]) + (" …" if len(hidden) > 5 else "")
        log.warning("%s: left out %s (names starting with a dot are hidden): %s", folder,
                    counted(len(hidden), "hidden image file"), shown)
    if broken:
        shown = ", ".join(broken[:5]) + (" …" if len(broken) > 5 else "")
        links = "1 link that leads" if len(broken) == 1 else f"{len(broken)} links that lead"
        log.warning("%s: left out %s nowhere (moved or deleted targets, or a loop): %s", folder, links, shown)
    return files


def _no_nifti(folder: Path) -> str:
    """Why a folder gave no case: empty, or only files of other formats or subfolders (named in a warning before)."""
    others, folders = [], 0
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.is_dir():
                folders += 1
            elif path.is_file() and not path.name.startswith("."):
                others.append(path.suffix.lower() or path.name)
    if others:
        kinds = ", ".join(sorted(set(others))[:5])
        return (f"{folder}: no {IMAGE_FILE_KINDS} file, only {counted(len(others), 'file')} of other kinds "
                f"({kinds}); medseg trains on NIfTI, NRRD and MetaImage files: convert them first")
    if folders:
        return (f"{folder}: no {IMAGE_FILE_KINDS} file directly in it, only {counted(folders, 'subfolder')} "
                "(subfolders are not searched; a DICOM series: convert it first, e.g. with medseg convert)")
    return f"{folder}: no {IMAGE_FILE_KINDS} file in it"


def _add_case(files: dict[str, Path], name: str, path: Path) -> None:
    """Add ``path`` as case ``name``; two files for one case are an error, never a silent pick."""
    if name in files:
        how = ""
        if files[name].name != path.name and unicodedata.normalize("NFC", files[name].name) == \
                unicodedata.normalize("NFC", path.name):  # they look alike: say how they differ
            how = f", names that differ only {name_difference(files[name].name, path.name)}"
        raise TrainingError(f"{path}: case {name!r} has two files ({files[name].name} and {path.name}{how}); "
                            "keep one of them")
    files[name] = path


def pair_cases(images_dir: Path | str, labels_dir: Path | str, allow_unpaired: bool = False,
               dataset_json: Path | str | DatasetDocument | None = None) -> list[TrainCase]:
    """Pair images and labels by file name (a label may add ``_label(s)``, ``_seg``, ``_mask`` or ``_gt``; an image
    may add nnU-Net's channel suffix ``_0000``, as in ``imagesTr/case_0000.nii.gz`` with ``labelsTr/case.nii.gz``).
    A case's further channel files (``case_0001.nii.gz``…, a multi-modal case) are its ``channel_paths``, all its
    files in channel order; every case must then have as many, each named (a missing one is a
    :class:`TrainingError` naming it).

    Images without a label and labels without an image are an error naming them, unless ``allow_unpaired``.
    Where ``dataset_json`` (a Decathlon / nnU-Net v1 ``dataset.json``, as
    :func:`~medseg.io.dataset_json.find_dataset_json` finds it, or as
    :func:`~medseg.io.dataset_json.load_document` read it) lists the ``training`` pairs, those pairs are the
    cases: a listed file that is not there is an error naming it, files of the folders it does not list are left
    out, named in one warning; a ``numTraining`` that disagrees with the cases is warned about.
    """
    images_dir = path_argument(images_dir, "the images folder")
    labels_dir = path_argument(labels_dir, "the labels folder")
    scene = False
    with contextlib.suppress(OSError):
        if Path(images_dir).is_dir() and Path(images_dir).samefile(labels_dir):  # each image would be its own label
            # but for a 3D Slicer scene: case.seg.nrrd is the label of case.nrrd beside it
            scene = is_slicer_scene(labels_dir)
            if not scene:
                raise TrainingError(f"{labels_dir}: given as both the images and the labels folder; put the label "
                                    "files in a folder of their own (one folder serves as both only as 3D Slicer "
                                    f"saves a scene: case{SLICER_SEGMENTATION} beside case.nrrd)")
    described = dataset_json.path if hasattr(dataset_json, "path") else dataset_json  # a DatasetDocument, or a path
    _check_present(Path(images_dir), Path(labels_dir), files=[Path(described)] if described is not None else [])
    listed = None
    if dataset_json is not None:
        from medseg.io.dataset_json import training_list

        listed = training_list(dataset_json)
    if listed is not None and listed.pairs:
        cases = _listed_cases(Path(images_dir), Path(labels_dir), listed, scene)
    else:
        cases = _paired_by_name(images_dir, labels_dir, allow_unpaired, scene)
    if listed is not None and listed.num_training is not None and listed.num_training != len(cases):
        what = (f"its training list holds {counted(len(listed.pairs), 'pair')}" if listed.pairs else
                f"{images_dir} and {labels_dir} hold {counted(len(cases), 'case')}")
        log.warning("%s: numTraining is %d, but %s; training takes the %d %s", listed.path, listed.num_training, what,
                    len(cases), "listed" if listed.pairs else "found")
    return cases


def _check_present(*folders: Path, files: list[Path] = ()) -> None:
    """Refuse, in one line naming them and how to fetch them, the image files of ``folders`` that are a DataLad /
    git-annex or Git LFS dataset's whose content is not here: a git-annex link that leads nowhere was left out, its
    counterpart then 'without a counterpart', and each absent label stopped the run alone, one per run. So are
    ``files`` (the dataset.json beside the folders: one not fetched was only warned about as unreadable, and the run
    went on without its training list and label names). A folder that cannot be listed is left to the listing,
    which names it."""
    absent, holding = [], []
    for folder in folders:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        images = [path for path in entries if not path.name.startswith(".")
                  and path.name.lower().endswith(_IMAGE_SUFFIXES)]
        found = [path for path in images if absent_content(path) is not None]
        # the data files (.raw) that the .mhd / .nhdr headers here name: each absent one stopped the run alone
        found += [path for path in sorted(data_files_among(set(images) - set(found)))
                  if absent_content(path) is not None]
        absent += sorted(found)
        holding += [folder] if found else []
    for path in files:
        if absent_content(path) is not None:
            absent.append(path)
            holding.append(path)
    if absent:
        raise TrainingError(f"{counted(len(absent), 'file')} of the training set "
                            f"{'is' if len(absent) == 1 else 'are'} {absent_files(absent, holding)}")
    for path in files:  # a link that leads nowhere, not git-annex's: missing, as an absent annexed one is
        if path.is_symlink() and not path.exists():
            raise TrainingError(f"{path}: {not_there(path)}; it gives the training folders' training list and label "
                                "names: restore its target, or remove the link to pair the cases by file name")


def _paired_by_name(images_dir: Path | str, labels_dir: Path | str, allow_unpaired: bool,
                    scene: bool = False) -> list[TrainCase]:
    """:func:`pair_cases` by the files' names (``scene``: one folder, a 3D Slicer scene, gives both)."""
    label_files = _image_files(Path(labels_dir), "labels", scene)
    image_files = _image_files(Path(images_dir), "images", scene)

    def bare(name: str) -> str:
        return name[:-5] if name.endswith("_0000") else name

    # a label may name its case with a label suffix, when an image (with or without nnU-Net's _0000) has the name
    # without it; a name that is both an image's and, stripped, another image's goes to whichever is left free
    image_names = set(image_files) | {bare(name) for name in image_files}

    def stripped(name: str) -> str | None:
        for suffix in _LABEL_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in image_names:
                return name[: -len(suffix)]
        return None

    case_of = {name: stripped(name) for name in label_files if name not in image_names}  # only one reading
    taken = {case for case in case_of.values() if case is not None}
    for name in label_files:
        if name in image_names:  # its own name is an image's, unless another label has claimed that image
            case_of[name] = stripped(name) if name in taken and stripped(name) not in taken else name
    labels: dict[str, Path] = {}
    for name, path in label_files.items():
        _add_case(labels, case_of[name] or name, path)
    images: dict[str, Path] = {}
    for name, path in image_files.items():
        if name.endswith("_0000") and bare(name) in labels and name not in labels:
            name = bare(name)
        _add_case(images, name, path)
    paired = sorted(set(images) & set(labels))
    for folder, found in ((images_dir, images), (labels_dir, labels)):
        if not found:  # not "0 images": the usual cause is files of another format (an nnU-Net .mha set)
            raise TrainingError(_no_nifti(Path(folder)))
    if not paired:
        example = (f"; e.g. image '{min(images)}', label '{min(labels)}'; a label may add "
                   f"{', '.join(_LABEL_SUFFIXES)} to its image's name, an image nnU-Net's _0000"
                   if images and labels else "")
        raise TrainingError(
            f"{images_dir}: no image has a label of the same name in {labels_dir} "
            f"({counted(len(images), 'image')}, {counted(len(labels), 'label')}{example})"
        )
    unpaired = [images[n] for n in sorted(set(images) - set(labels))]
    unpaired += [labels[n] for n in sorted(set(labels) - set(images))]
    shown = ", ".join(str(p) for p in unpaired[:5]) + (" …" if len(unpaired) > 5 else "")
    # beside a paired case_0000: its channels 1, 2… (nnU-Net's layout of a multi-modal case), taken with it
    channel_files, taken = _channel_files(images, paired)
    if taken:
        unpaired = [images[n] for n in sorted(set(images) - set(labels) - taken)]
        unpaired += [labels[n] for n in sorted(set(labels) - set(images))]
        shown = ", ".join(str(p) for p in unpaired[:5]) + (" …" if len(unpaired) > 5 else "")
    if unpaired and allow_unpaired:  # left out as asked, but said
        log.warning("%s: left out %s without a counterpart of the same name: %s", images_dir,
                    counted(len(unpaired), "file"), shown)
    if unpaired and not allow_unpaired:
        raise TrainingError(
            f"{unpaired[0]}: {counted(len(unpaired), 'file')} {'has' if len(unpaired) == 1 else 'have'} no counterpart "
            "of the same name "
            f"(images in {images_dir}, labels in {labels_dir}): {shown}{_case_only(images, labels)}"
            + _shape_mismatches([TrainCase(name, images[name], labels[name]) for name in paired])
        )
    return _with_channels([TrainCase(name, images[name], labels[name]) for name in paired], channel_files)


def _listed_cases(images_dir: Path, labels_dir: Path, listed, scene: bool = False) -> list[TrainCase]:
    """:func:`pair_cases` by a dataset.json's ``training`` list (``listed``, a
    :class:`~medseg.io.dataset_json.TrainingList`): its files are looked for by name in the folders given (which
    may be others than those it lists, as a folder of preprocessed images beside ``imagesTr``); an image listed as
    ``case.nii.gz`` may be ``case_0000.nii.gz`` on disk, as nnU-Net v1 lists them."""
    image_files = _image_files(images_dir, "images", scene)
    label_files = _image_files(labels_dir, "labels", scene)
    cases: dict[str, TrainCase] = {}
    missing: list[str] = []
    used: set[Path] = set()
    for image_text, label_text in listed.pairs:
        image_path, label_path = images_dir / Path(image_text).name, labels_dir / Path(label_text).name
        name = unicodedata.normalize("NFC", stem(Path(image_text)))
        image = image_files.get(name) or image_files.get(name + "_0000")
        label = label_files.get(unicodedata.normalize("NFC", stem(Path(label_text))))
        missing += [str(path) for path, found in ((image_path, image), (label_path, label)) if found is None]
        if image is None or label is None:
            continue
        case_id = name[:-5] if name.endswith("_0000") else name
        if case_id in cases or image in used or label in used:
            raise TrainingError(f"{listed.path}: lists case {case_id!r} ({image.name}, {label.name}) twice in its "
                                "training list; list each case once")
        used.update((image, label))
        cases[case_id] = TrainCase(case_id, image, label)
    if missing:
        shown = ", ".join(missing[:5]) + (f" … and {len(missing) - 5} more" if len(missing) > 5 else "")
        one = len(missing) == 1
        raise TrainingError(f"{listed.path}: lists {counted(len(missing), 'training file')} that "
                            f"{'is' if one else 'are'} not there: {shown}; restore {'it' if one else 'them'}, or "
                            f"take {'its entry' if one else 'their entries'} out of the dataset.json's training list")
    unlisted = [path for path in [*image_files.values(), *label_files.values()] if path not in used]
    # beside a listed case_0000: its further channels (nnU-Net's multi-modal layout), taken with it
    by_case = {case_id: case.image_path for case_id, case in cases.items()}
    unused = {name: path for name, path in image_files.items() if path not in used}
    channel_files, taken = _channel_files({**unused, **by_case}, list(cases))
    unlisted = [path for path in unlisted if path not in {unused[name] for name in taken}]
    if unlisted:
        shown = ", ".join(f"{path.parent.name}/{path.name}" for path in unlisted[:5])
        log.warning("%s: left out %s of %s and %s that its training list does not name (trained on: the %s it "
                    "lists): %s%s", listed.path, counted(len(unlisted), "file"), images_dir, labels_dir,
                    counted(len(cases), "case"), shown, f" … and {len(unlisted) - 5} more" if len(unlisted) > 5 else "")
    return _with_channels([cases[case_id] for case_id in sorted(cases)], channel_files)


def _channel_files(images: dict[str, Path], cases) -> tuple[dict[str, dict[int, Path]], set[str]]:
    """nnU-Net's further channel files (``case_0001``, ``case_0002``…, keys of ``images`` by file stem) of the
    ``cases`` whose image is ``case_0000`` (``images[case]``): each such case's files by channel number, its
    ``_0000`` among them, and the keys of ``images`` so taken."""
    cases = set(cases)
    found: dict[str, dict[int, Path]] = {}
    taken: set[str] = set()
    for name, path in images.items():
        split = nnunet_channel(name)
        if split is None or split[1] == "0000" or split[0] not in cases or split[0] not in images or name in cases:
            continue  # a case of its own (a label of its name) is not another case's channel
        if not stem(images[split[0]]).endswith("_0000"):
            continue
        found.setdefault(split[0], {0: images[split[0]]})[int(split[1])] = path
        taken.add(name)
    return found, taken


def _with_channels(cases: list[TrainCase], channel_files: dict[str, dict[int, Path]]) -> list[TrainCase]:
    """``cases`` with their nnU-Net channel files (:func:`_channel_files`) as ``channel_paths``. Every case needs one
    file per channel, numbered from ``_0000`` without a gap, and as many as the others: a missing one is refused in
    one line naming the file, and the case that has it."""
    if not channel_files:
        return cases
    from medseg.io.channels import channel_file

    count = max(max(files) + 1 for files in channel_files.values())
    fullest = next(case for case, files in sorted(channel_files.items()) if max(files) + 1 == count)
    for case in cases:
        files = channel_files.get(case.case_id, {0: case.image_path})
        missing = next((index for index in range(count) if index not in files), None)
        if missing is not None:
            expected = channel_file(files[0], missing)
            raise TrainingError(f"{expected}: not there, where case {fullest!r} has {count} channel files "
                                f"(_0000 … _{count - 1:04d}); every case needs one file per input channel (modality), "
                                "numbered alike")
        case.channel_paths = [files[index] for index in range(count)]
    return cases


def case_channels(cases: list[TrainCase]) -> int:
    """The input channels (modalities) the ``cases`` give, the same for all of them: nnU-Net's channel files, or a
    4D image's last axis (from its header), else 1. Cases that differ are a :class:`TrainingError` naming the
    first that differs from the first case."""
    from medseg.errors import ImageReadError
    from medseg.io.image_shape import channel_shape
    from medseg.io.images import read_grid

    def channels(case: TrainCase) -> int:
        if case.channel_paths:
            return len(case.channel_paths)
        try:
            shape, _ = read_grid(case.image_path)
        except (ImageReadError, InputError):
            return 1  # reading the case names the problem
        shape = channel_shape(shape)  # (X, Y, Z, C), or NIfTI's vector layout (X, Y, Z, 1, C)
        return int(shape[3]) if len(shape) == 4 else 1

    if not cases:
        return 1
    first = channels(cases[0])
    for case in cases[1:]:
        found = channels(case)
        if found != first:
            raise TrainingError(f"{case.image_path}: {_channels_text(found)}, where {cases[0].image_path} has "
                                f"{_channels_text(first)}; every case needs the same modalities, in the same order")
    return first


def _channels_text(count: int) -> str:
    return "one channel (a 3D image)" if count == 1 else f"{count} channels"


def check_case_channels(cases: list[TrainCase], config: dict, where: str = "the config") -> None:
    """Refuse cases whose channel count (:func:`case_channels`) is not the modalities ``config`` declares (one
    image per case when it declares none), in one line naming a case's file, the counts, and what to change."""
    declared = config.get("modalities")
    wanted = len(declared) if declared else 1
    found = case_channels(cases)
    if found == wanted:
        return
    if declared:
        raise TrainingError(f"{cases[0].image_path}: {_channels_text(found)}, but {where} declares {wanted} modalities "
                            f"({', '.join(declared)}); give images of {wanted} channels, or declare the modalities "
                            "they hold")
    names = ", ".join(f'"channel{index}"' for index in range(found))
    raise TrainingError(f"{cases[0].image_path}: {found} channels (modalities), but {where} declares none (one image "
                        f"a case); declare them, as \"modalities\": [{names}] with in_channels = {found} × (2 × "
                        "context_slices + 1), or train without -c")


def _case_only(images: dict[str, Path], labels: dict[str, Path]) -> str:
    """" (Case1 and case1 differ only in letter case)" for the unpaired images and labels whose case names match but
    for letter case (pairing does not ignore it: a case-sensitive file system may hold both); empty where none do."""
    lonely_labels: dict[str, list[str]] = {}
    for name in sorted(set(labels) - set(images)):
        lonely_labels.setdefault(name.casefold(), []).append(name)
    found = [f"{image} and {label}" for image in sorted(set(images) - set(labels))
             for label in lonely_labels.get(image.casefold(), [])]
    if not found:
        return ""
    return f" ({', '.join(found[:3])}{' …' if len(found) > 3 else ''} differ only in letter case)"


def _shape_mismatches(cases: list[TrainCase]) -> str:
    """"; besides, ..." naming the paired cases whose label (from the headers) is not on its image's grid: of
    another shape, or placed elsewhere; for the error about unpaired files: one run then shows both things to fix.
    A label in another voxel order (LPS beside RAS) is re-indexed, and one that is a box of its image's voxel lattice
    (3D Slicer's cropped segmentation) zero-padded, not named. Empty where none is, or a header cannot be read
    (reading the case names that)."""
    from medseg.grid_match import grid_offset_mm, grid_tolerance_mm, sub_box_placement
    from medseg.io.images import read_grid

    shapes, placed = [], []
    for case in cases:
        try:
            (image, image_affine), (label, label_affine) = read_grid(case.image_path), read_grid(case.label_path)
        except (MedsegError, OSError, ValueError):
            continue
        image, label = tuple(image[:3]), tuple(label[:3])
        off = grid_offset_mm(label, label_affine, image, image_affine)
        if off is None and isinstance(sub_box_placement(label, label_affine, image, image_affine, beyond=True),
                                      tuple):  # zero-padded onto the image's grid as the case is read (a box
            continue  # reaching past the grid cropped to it where its voxels there are all 0, else refused then)
        if off is None:  # as reading the case would say: "shape … differs from …'s"
            shapes.append(f"{case.case_id} ({'×'.join(map(str, label))} against {'×'.join(map(str, image))})")
            continue
        if not off <= grid_tolerance_mm(image_affine):
            placed.append(f"{case.case_id} (up to {off:.3g} mm off)")
    text = ""
    for found, what in ((shapes, "a label of another shape than the image"),
                        (placed, "a label off the image's grid")):
        if found:
            shown = ", ".join(found[:3]) + (f" … and {len(found) - 3} more" if len(found) > 3 else "")
            have = "has" if len(found) == 1 else "have"
            text += f"; besides, {counted(len(found), 'paired case')} {have} {what}: {shown}"
    return text


def check_case_list(cases, role: str) -> None:
    """Refuse as an :class:`InputError` a ``cases`` that is not a list of :class:`TrainCase` (a folder's name, where
    :func:`pair_cases` makes the list, failed on a missing attribute of its first letter)."""
    if isinstance(cases, (list, tuple)) and all(isinstance(case, TrainCase) for case in cases):
        return
    given = type_text(cases) if not isinstance(cases, (list, tuple)) else \
        f"{type_text(cases)} holding {type_text(next(c for c in cases if not isinstance(c, TrainCase)))}"
    raise InputError(f"{given} given as {role}; give a list of TrainCase, as "
                     "load_cases(pair_cases(images_folder, labels_folder), config) returns")


def load_cases(cases: list[TrainCase], config: dict, where: str = "the config") -> list[TrainCase]:
    """Read, check and bring every case into model space. A case that cannot be trained on does not stop the
    others' checks: every such case is named in one line (the error itself where there is one). Label files that
    are boxes of their image's grid, zero-padded onto it, are told in one info line for all
    (:func:`padded_labels_text`). The cases' channels must be the modalities the config declares (``where`` names
    it): :func:`check_case_channels`. Cases that cannot be trained on are a :class:`~medseg.errors.TrainingError`
    naming each."""
    check_case_list(cases, "the cases")
    check_case_channels(cases, config, where)
    from medseg.preprocess import build_transforms, physical_memory  # one name for the memory checks to patch

    pre = config["preprocessing"]
    n_channels = len(config.get("modalities") or [None])
    transforms = build_transforms(pre, with_label=True, channels=n_channels)
    declared = {int(k) for k in config["labels"]}
    axes = slice_axes(config["inference"])
    first: MedsegError | None = None
    problems: list[str] = []
    _check_cases_fit(cases, pre, physical_memory())
    for case in cases:
        try:
            _load_case(case, pre, transforms, declared, axes, config.get("modalities"))
        except MedsegError as error:
            if isinstance(error.__cause__ or error.__context__, MemoryError):
                raise  # the machine is short of memory: the other cases would only be short of it too
            problems.append(str(error))
            if first is None:  # kept without its traceback, which would hold the case's volumes
                first = error.with_traceback(None)
                first.__cause__ = first.__context__ = None
    if len(problems) == 1:
        raise first
    if problems:
        shown = "; ".join(problems[:3])
        more = ""
        if len(problems) > 3:  # each on a line of its own, so that all can be fixed before the next run
            for problem in problems:
                log.warning("%s", problem)
            more = f"; … ({len(problems) - 3} more; all {len(problems)} are listed above)"
        raise TrainingError(f"{len(problems)} of {counted(len(cases), 'case')} cannot be trained on: {shown}{more}")
    padded = padded_labels_text(cases)
    if padded is not None:  # 3D Slicer's cropped segmentations: one line for all of them
        log.info("%s", padded)
    return cases


def _check_cases_fit(cases: list[TrainCase], pre: dict, memory: int | None) -> None:
    """Refuse, from the headers alone, a set of cases that training could not hold in memory: it keeps every case in
    model space (float32 image, uint8 label), and each volume may fit alone (six of 3 GiB on a 23 GiB machine) where
    all do not. A header that cannot be read counts nothing here: reading the case reports it."""
    from medseg.preprocess import warn_over_cgroup

    if memory is None or not cases:
        return
    total = 0
    for case in cases:
        charge = _case_memory(case, pre)
        if charge is None:
            continue
        alone, held = charge
        if held <= 0 or alone > memory:
            return  # a case that cannot fit even alone: its own check names it and its voxel size, in one line
        total += held
    if total > memory:
        spacing = pre.get("spacing_mm")
        fix = (f"check preprocessing.spacing_mm ({spacing}) against the images' voxel sizes, or train on fewer "
               "cases" if spacing else "train on fewer or smaller cases")
        raise TrainingError(f"{cases[0].image_path.parent}: the {counted(len(cases), 'case')} would hold about "
                            f"{total / 2**30:.1f} GiB in model space, more than this machine's {memory / 2**30:.1f} "
                            f"GiB of memory; {fix}")
    warn_over_cgroup(cases[0].image_path.parent, total, memory, f"training on its {counted(len(cases), 'case')}")


def _case_memory(case: TrainCase, pre: dict) -> tuple[int, int] | None:
    """From its header alone, the bytes one case needs: read and brought into model space on its own (what the
    memory guard charges a volume of its modalities, :func:`~medseg.preprocess.grid_memory`: a 4D image's channels
    or its channel files count each), and held there by training (float32 a modality, uint8 the label). None where
    its header cannot be read: reading the case reports it."""
    import warnings

    from medseg.errors import ImageReadError, InputError
    from medseg.io.images import read_grid
    from medseg.preprocess import grid_memory

    try:
        shape, affine = read_grid(case.image_path)
    except (ImageReadError, InputError):
        return None
    channels = len(case.channel_paths) if case.channel_paths else math.prod(shape[3:]) if len(shape) > 3 else 1
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            alone, model_shape = grid_memory(shape[:3], affine, pre, channels=channels)
    except (ValueError, OverflowError):
        return None
    return alone, math.prod(model_shape) * (4 * channels + 1)


def read_case_image(case: TrainCase, n_channels: int | list[str] = 1, hash_input: bool = True):
    """A case's image as a :class:`~medseg.volume.Volume`: its nnU-Net channel files stacked, a 4D image of
    ``n_channels`` modalities (their count, or their names), or one 3D image."""
    names = n_channels if isinstance(n_channels, list) else None
    n_channels = len(n_channels) if isinstance(n_channels, list) else n_channels
    from medseg.io.nifti import read_nifti

    if case.channel_paths:
        from medseg.errors import GeometryError
        from medseg.io.channels import read_channel_files

        try:
            return read_channel_files(case.channel_paths, hash_input, names)
        except GeometryError as error:
            raise TrainingError(f"{error}; not trained") from error
    if n_channels > 1:
        from medseg.io.channels import read_channels

        return read_channels(case.image_path, names or n_channels, hash_input=hash_input)
    return read_nifti(case.image_path, hash_input=hash_input)


def _load_case(case: TrainCase, pre: dict, transforms, declared: set[int], axes,
               modalities: list[str] | None = None) -> None:
    """Read and check one case and bring it into model space (``case.image``, ``case.label``)."""
    from monai.data import MetaTensor

    from medseg.errors import GeometryError
    from medseg.grid_match import check_same_grid, place_onto_grid
    from medseg.io.label_images import header_scaling_note
    from medseg.io.nifti import read_nifti
    from medseg.preprocess import (
        apply_transforms,
        check_finite,
        check_not_constant,
        check_resampling_size,
        check_slices_fit,
    )

    image = read_case_image(case, modalities or 1)
    # what `medseg infer` refuses is refused here too: it could not reproduce figures measured on such a case
    check_not_constant(image, "nothing to learn from")
    # first: a nonsense voxel size gives the other check a nonsense shape; a cgroup is warned about for the whole set
    check_resampling_size(image, pre, doing=None)
    check_slices_fit(image, pre, axes)
    label = stored = read_nifti(case.label_path, labels=True)
    case.sha256 = (image.source_sha256, label.source_sha256)
    # as scoring places a reference: the same voxels stored in another order (LPS vs RAS, dcm2niix's reversed rows)
    # are re-indexed, a box of the image's voxel lattice (3D Slicer's cropped segmentation) is zero-padded onto its
    # grid (nothing resampled; told for all cases in one line, not here), and the grid is checked with the tolerance
    # and the words `medseg evaluate`, `medseg infer --reference` and evaluate_model.py score with
    try:
        label = place_onto_grid(label, image, log_box=False, outcome="not trained")
        check_same_grid(image, label, outcome="not trained")
    except GeometryError as error:
        raise TrainingError(str(error)) from error
    case.label_box = label.info.get("sub_box")
    values = np.unique(label.array)
    if not np.all(values == np.round(values)):
        hint = IMAGE_AMONG_LABELS if len(values) > IMAGE_LIKE_VALUES else ""
        raise TrainingError(f"{case.label_path}: label values are not whole numbers, found {odd_values(values)}{hint}"
                            f"{header_scaling_note(stored)}")
    unknown = sorted(set(int(v) for v in values) - declared)
    if unknown:
        hint = IMAGE_AMONG_LABELS if len(values) > IMAGE_LIKE_VALUES else ""
        raise TrainingError(f"{case.label_path}: label values {values_text(unknown)} are not declared in the "
                            f"config's labels {values_text(sorted(declared))}{hint}")
    affine = torch.from_numpy(image.affine)
    peak = float(np.abs(image.array).max())  # before the transforms, which may work on the array in place
    data = apply_transforms(transforms, {
        "image": MetaTensor(torch.from_numpy(image.array), affine=affine),
        "label": MetaTensor(torch.from_numpy(_as_classes(label.array, declared)), affine=affine.clone()),
    }, case.image_path)
    check_finite(data["image"].as_tensor(), image, peak)
    case.extent_mm = model_space_extent(data["image"])
    case.image = data["image"].as_tensor().float().contiguous()
    case.label = data["label"].as_tensor()[0].round().to(torch.uint8).contiguous()


def padded_labels_text(cases: list[TrainCase]) -> str | None:
    """One line telling of the loaded cases whose label file is a box of its image's voxel lattice (3D Slicer saves
    a segmentation cropped to its segments), zero-padded onto the image's grid: how many, and the first three by
    name; None where there is none. One line for all, not one a case: a set exported from Slicer has hundreds."""
    padded = [case for case in cases if case.label_box is not None]
    if not padded:
        return None
    shown = ", ".join(case.case_id for case in padded[:3]) + (f" … and {len(padded) - 3} more"
                                                               if len(padded) > 3 else "")
    boxes = ("is a box of its image's voxel grid", "it") if len(padded) == 1 else \
        ("are boxes of their images' voxel grids", "them")
    return (f"{len(padded)} of {counted(len(cases), 'label image')} {boxes[0]} (cropped, as 3D Slicer saves a "
            f"segmentation), zero-padded onto {boxes[1]} with background, nothing resampled: {shown}")


def _as_classes(values: np.ndarray, declared: set[int]) -> np.ndarray:
    """A label file's values (all ``declared``) as the network's class indices, float32 for the transforms (resampled
    by nearest neighbour: the class of the nearest value): class k is the k-th smallest declared value. Labels
    0..N-1 are their own classes."""
    classes = label_map(declared)
    if classes.identity:
        return values.astype(np.float32)
    return classes.to_classes(values).astype(np.float32)


def data_hashes(cases: list[TrainCase]) -> dict[str, list[str]]:
    """Case id → [image SHA-256, label SHA-256], as the cases were read (what a checkpoint records)."""
    return {c.case_id: list(c.sha256) for c in cases if c.sha256 is not None}
