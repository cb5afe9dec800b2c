"""The training cases (:class:`TrainCase`) found in an images and a labels folder: image and label files paired by
name (a label's suffix, nnU-Net's channel suffix), or by a dataset.json's training list (:func:`pair_cases`), a
multi-modal case's channel files taken with it, 3D Slicer's scene folder read as both; files left out are named,
files a dataset has not fetched, unpaired files and two files of one case refused in one line."""

from __future__ import annotations

import contextlib
import logging
import os
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from medseg.caller_warnings import warning
from medseg.errors import MedsegError, TrainingError
from medseg.io.files import (
    absent_content,
    absent_files,
    name_difference,
    nnunet_channel,
    not_there,
    os_reason,
    path_argument,
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
from medseg.numbers import counted
from medseg.volume import slicer_segmentation_ending, stem

if TYPE_CHECKING:
    from medseg.io.dataset_json import DatasetDocument

__all__ = ["TrainCase", "pair_cases"]

# the training cases' logger, whichever of their modules warns: their warnings are told as
# "WARNING medseg.training_cases: ..."
log = logging.getLogger("medseg.training_cases")


@dataclass
class TrainCase:
    """One image and its label file; their tensors in model space once loaded."""

    case_id: str
    image_path: Path
    label_path: Path
    image: torch.Tensor | None = None  # (C, X, Y, Z) model space
    label: torch.Tensor | None = None  # (X, Y, Z) uint8 class indices (package.label_map), model space
    extent_mm: list[float] | None = None  # field of view per model-space axis (for the package's input range)
    # the image's 1st and 99th intensity percentiles as read, one channel's (for the package's input_intensity)
    intensity_p1_p99: list[float] | None = None
    sha256: tuple[str, str] | None = None  # of the image and label files, as read (a resumed run checks them)
    # where the label file is a box of the image's voxel lattice, zero-padded onto its grid: the box's shape and its
    # first voxel's index on the image's grid (as scoring records ``reference_sub_box``)
    label_box: dict | None = None
    # of such a box, the voxels of the image's grid it left out, filled with background (0 where the label file
    # holds the whole grid and reaches past it: cropped to it, nothing padded)
    label_padded_voxels: int = 0
    # nnU-Net's channel files of a multi-modal case (case_0000, case_0001, ...; ``image_path`` is the first), in
    # channel order; None for a case of one image file (3D, or 4D holding its modalities)
    channel_paths: list[Path] | None = None

    def __repr__(self) -> str:
        """One line: the case, its files and, once loaded, its tensors' shapes and types (the dataclass's repr printed
        both tensors, some 40 lines a case in a notebook)."""
        parts = [f"case_id={self.case_id!r}", f"image_path={str(self.image_path)!r}",
                 f"label_path={str(self.label_path)!r}"]
        if self.channel_paths is not None:
            parts.append(f"channels={len(self.channel_paths)}")
        for name in ("image", "label"):
            tensor = getattr(self, name)
            if tensor is not None:
                parts.append(f"{name}={tuple(int(n) for n in tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}")
        return f"TrainCase({', '.join(parts)})"

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
    left_out: list[str] = []
    broken: list[str] = []
    hidden: list[str] = []
    segmentations: list[str] = []
    scene_images: list[str] = []
    dicom_segs: list[str] = []
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
            if path.is_file() and len(dicom_segs) + len(left_out) < _SEGS_LOOKED_FOR and _is_dicom_seg(path):
                dicom_segs.append(path.name)
            else:
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
        not_read = (f"1 entry that is not a {IMAGE_FILE_KINDS} file" if len(left_out) == 1
                    else f"{len(left_out)} entries that are not {IMAGE_FILE_KINDS} files")
        warning(log, "%s: left out %s (subfolders are not searched): %s", folder, not_read, shown)
    if dicom_segs:
        shown = ", ".join(dicom_segs[:5]) + (" …" if len(dicom_segs) > 5 else "")
        warning(log, "%s: left out %s: %s; %s", folder, counted(len(dicom_segs), "DICOM SEG"), shown, SEG_AS_LABELS)
    if segmentations:
        shown = ", ".join(segmentations[:5]) + (" …" if len(segmentations) > 5 else "")
        endings = "/".join(sorted({ending for name in segmentations  # each named so: each has one
                                   if (ending := slicer_segmentation_ending(name)) is not None}))
        warning(log, "%s: left out %s (%s: labels, not images to train on; a case's goes in the labels "
                    "folder): %s", folder, counted(len(segmentations), "3D Slicer segmentation"), endings, shown)
    if scene_images:
        warning(log, "%s: %s", folder, scene_images_text(scene_images))
    if hidden:
        shown = ", ".join(hidden[:5]) + (" …" if len(hidden) > 5 else "")
        warning(log, "%s: left out %s (names starting with a dot are hidden): %s", folder,
                    counted(len(hidden), "hidden image file"), shown)
    if broken:
        shown = ", ".join(broken[:5]) + (" …" if len(broken) > 5 else "")
        links = "1 link that leads" if len(broken) == 1 else f"{len(broken)} links that lead"
        warning(log, "%s: left out %s nowhere (moved or deleted targets, or a loop): %s", folder, links, shown)
    return files


SEG_AS_LABELS = ("medseg scores against a DICOM SEG (evaluate, infer --reference) but trains on label images: write "
                 "its labels as a NIfTI on its image's grid first (docs/training.md, 'A DICOM SEG as training labels')")
_SEGS_LOOKED_FOR = 50  # files of a folder whose headers are looked at for a DICOM SEG (a series' slices dumped there)


def _is_dicom_seg(path: Path) -> bool:
    """Whether ``path`` is a DICOM SEG file (its header alone read), with or without ``.dcm``."""
    from medseg.io.files import part10_seg_series

    return part10_seg_series(path) is not None


def _no_nifti(folder: Path) -> str:
    """Why a folder gave no case: empty, or only files of other formats or subfolders (named in a warning before)."""
    others, folders, segs = [], 0, []
    with contextlib.suppress(OSError):
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                folders += 1
            elif path.is_file() and not path.name.startswith("."):
                others.append(path.suffix.lower() or path.name)
                if len(others) <= _SEGS_LOOKED_FOR and _is_dicom_seg(path):
                    segs.append(path.name)
    if segs and len(segs) == len(others):
        shown = ", ".join(segs[:3]) + (" …" if len(segs) > 3 else "")
        return (f"{folder}: no {IMAGE_FILE_KINDS} file, only {counted(len(segs), 'DICOM SEG')} ({shown}); "
                f"{SEG_AS_LABELS}")
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
               dataset_json: Path | str | DatasetDocument | None = None,
               declared: Collection[int] | None = None) -> list[TrainCase]:
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
    out, named in one warning; a ``numTraining`` that disagrees with the cases is warned about. Its ``file_ending``
    (nnU-Net v2) is checked first (:func:`~medseg.io.dataset_json.file_ending_note`): a format medseg cannot read is
    an :class:`~medseg.errors.InputError`; one it reads but does not write (``.nrrd``) a
    :class:`~medseg.errors.MedsegWarning` (and a log line), since its segmentations are ``.nii.gz``.

    ``declared``: the label values the config declares, where there is one. The error about unpaired (or unlisted)
    files then also names the paired cases whose label file holds other values (each label file read for its values
    alone), as it names those whose label is not on its image's grid: one run shows every case to fix.
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
    described = dataset_json if dataset_json is None or isinstance(dataset_json, (str, os.PathLike)) \
        else dataset_json.path  # a DatasetDocument's file
    _check_present(Path(images_dir), Path(labels_dir), files=[Path(described)] if described is not None else [])
    listed = None
    if dataset_json is not None:
        from medseg.caller_warnings import warn
        from medseg.io.dataset_json import file_ending_note, training_list

        # nnU-Net v2's file_ending: a format medseg cannot read refused (InputError), one it does not write warned of
        # (it was the command line's check alone: a Python caller paired .png files without a word)
        ending = file_ending_note(dataset_json)
        if ending is not None:
            warn(ending, log)
        listed = training_list(dataset_json)
    if listed is not None and listed.pairs:
        cases = _listed_cases(Path(images_dir), Path(labels_dir), listed, scene, declared)
    else:
        cases = _paired_by_name(images_dir, labels_dir, allow_unpaired, scene, declared)
    if listed is not None and listed.num_training is not None and listed.num_training != len(cases):
        what = (f"its training list holds {counted(len(listed.pairs), 'pair')}" if listed.pairs else
                f"{images_dir} and {labels_dir} hold {counted(len(cases), 'case')}")
        warning(log, "%s: numTraining is %d, but %s; training takes the %d %s", listed.path, listed.num_training, what,
                    len(cases), "listed" if listed.pairs else "found")
    return cases


def _check_present(*folders: Path, files: Collection[Path] = ()) -> None:
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
                    scene: bool = False, declared: Collection[int] | None = None) -> list[TrainCase]:
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
        warning(log, "%s: left out %s without a counterpart of the same name: %s", images_dir,
                    counted(len(unpaired), "file"), shown)
    if unpaired and not allow_unpaired:
        paired_cases = [TrainCase(name, images[name], labels[name]) for name in paired]
        raise TrainingError(
            f"{unpaired[0]}: {counted(len(unpaired), 'file')} {'has' if len(unpaired) == 1 else 'have'} no counterpart "
            "of the same name "
            f"(images in {images_dir}, labels in {labels_dir}): {shown}{_case_only(images, labels)}"
            + _shape_mismatches(paired_cases) + _undeclared_values(paired_cases, declared)
        )
    return _with_channels([TrainCase(name, images[name], labels[name]) for name in paired], channel_files)


def _listed_cases(images_dir: Path, labels_dir: Path, listed, scene: bool = False,
                  declared: Collection[int] | None = None) -> list[TrainCase]:
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
                            f"take {'its entry' if one else 'their entries'} out of the dataset.json's training list"
                            + _undeclared_values([cases[case_id] for case_id in sorted(cases)], declared))
    unlisted = [path for path in [*image_files.values(), *label_files.values()] if path not in used]
    # beside a listed case_0000: its further channels (nnU-Net's multi-modal layout), taken with it
    by_case = {case_id: case.image_path for case_id, case in cases.items()}
    unused = {name: path for name, path in image_files.items() if path not in used}
    channel_files, taken = _channel_files({**unused, **by_case}, list(cases))
    unlisted = [path for path in unlisted if path not in {unused[name] for name in taken}]
    if unlisted:
        shown = ", ".join(f"{path.parent.name}/{path.name}" for path in unlisted[:5])
        warning(log, "%s: left out %s of %s and %s that its training list does not name (trained on: the %s it "
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


def _undeclared_values(cases: list[TrainCase], declared: Collection[int] | None) -> str:
    """"; besides, ..." naming each of the paired ``cases`` whose label file holds values that are not ``declared``
    (the config's labels), with those values; for the error about unpaired files, which stopped the run before the
    cases were read, so that such a case showed only on the next run. Each label file is read for its values alone
    (no image is read). Empty where none does, ``declared`` is None, or a file cannot be read (reading the cases
    names that)."""
    if declared is None:
        return ""
    import numpy as np

    from medseg.io.nifti import read_nifti
    from medseg.numbers import values_text

    known = {int(value) for value in declared}
    found = []
    for case in cases:
        try:
            label = read_nifti(case.label_path, hash_input=False, labels=True)
        except (MedsegError, OSError, ValueError):
            continue
        values = np.unique(label.array)
        unknown = sorted({int(v) for v in values[values == np.round(values)]} - known)
        del label
        if unknown:
            found.append(f"{case.label_path.name} ({values_text(unknown)})")
    if not found:
        return ""
    have = "holds" if len(found) == 1 else "hold"
    shown = ", ".join(found[:_UNDECLARED_SHOWN]) + (f" … and {len(found) - _UNDECLARED_SHOWN} more"
                                                    if len(found) > _UNDECLARED_SHOWN else "")
    return (f"; besides, {counted(len(found), 'label file')} of paired cases {have} label values the config does not "
            f"declare (its labels {values_text(sorted(known))}): {shown}")


_UNDECLARED_SHOWN = 10  # label files named with their values; a config for other data would name every file
