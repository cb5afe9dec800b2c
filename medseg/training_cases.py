"""The cases training reads: image and label files paired by name (:func:`pair_cases`), each read, checked and
brought into model space (:func:`load_cases`, :class:`TrainCase`), the label values the files hold, and the checks on
which labels the training and validation cases hold.

Its parts are modules of their own: :mod:`medseg.training_pairing` (the cases found in the folders, :class:`TrainCase`
and :func:`pair_cases`) and :mod:`medseg.training_labels` (the label values the files hold, and the checks on which
labels the cases hold). The public names this module listed before they moved there are still importable from here
(``__all__``)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from medseg.errors import InputError, MedsegError, TrainingError, UntrainableCasesError
from medseg.inference import slice_axes
from medseg.input_range import intensity_percentiles, model_space_extent
from medseg.io.files import type_text
from medseg.label_map import label_map
from medseg.numbers import IMAGE_LIKE_VALUES, counted, image_among_labels, odd_values, values_text
from medseg.settings_named import ANY, has_option, setting
from medseg.training_labels import LabelsFrom, check_label_presence, check_training_foreground, label_values
from medseg.training_pairing import TrainCase, pair_cases

__all__ = ["LabelsFrom", "TrainCase", "case_channels", "channels_text", "check_case_channels", "check_case_list",
           "read_case_image", "check_label_presence", "check_training_foreground",
           "data_hashes", "label_box_record", "label_values", "load_cases", "padded_labels_text", "pair_cases",
           "untrainable_text"]

log = logging.getLogger(__name__)
# training's progress lines (the cases read, the first epoch starting): info records of their own logger, which
# `medseg train` shows without -v
PROGRESS_LOGGER = "medseg.training_progress"
progress_log = logging.getLogger(PROGRESS_LOGGER)
PROGRESS_SECONDS = 5.0  # the first progress line while the cases are read, after this long
SHOWN_PROBLEMS = 3  # the cases an error of several that cannot be trained on names in its line; the rest as warnings
PROGRESS_MAX_SECONDS = 60.0  # the wait for the next, doubled after each line (a 33-minute read: 36 lines, not 333)
_clock = time.monotonic


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
            raise TrainingError(f"{case.image_path}: {channels_text(found)}, where {cases[0].image_path} has "
                                f"{channels_text(first)}; every case needs the same modalities, in the same order")
    return first


def channels_text(count: int) -> str:
    """``one channel (a 3D image)``, ``2 channels``: a case's input channels as messages name them."""
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
        from medseg.io.channels import modalities_text

        raise TrainingError(f"{cases[0].image_path}: {channels_text(found)}, but {where} declares "
                            f"{modalities_text(list(declared))}; give images of {counted(wanted, 'channel')}, or "
                            "declare the modalities they hold")
    names = ", ".join(f'"channel{index}"' for index in range(found))
    raise TrainingError(f"{cases[0].image_path}: {found} channels (modalities), but {where} declares none (one image "
                        f"a case); declare them, as \"modalities\": [{names}] with in_channels = {found} × (2 × "
                        f"context_slices + 1), or train {_default_config()}")


def _default_config() -> str:
    """Training with the default config, which declares an image's channels: without ``-c`` on the command line;
    a Python caller's train always takes a config (it was told to train "without config=...")."""
    if has_option("config"):
        return f"without {setting('config', ANY)}"
    return "with the default config, which declares them (medseg.training_setup.default_training_config)"


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
    others' checks: every such case is named in one line (the error itself where there is one), with each of its
    problems (its image's, its label's grid, its label's values). Label files that
    are boxes of their image's grid, zero-padded onto it, are told in one info line for all
    (:func:`padded_labels_text`). The cases' channels must be the modalities the config declares (``where`` names
    it): :func:`check_case_channels`. Cases that cannot be trained on are a :class:`~medseg.errors.TrainingError`:
    one, its own error; several, an :class:`~medseg.errors.UntrainableCasesError` whose line names the first
    :data:`SHOWN_PROBLEMS` and whose ``problems`` holds each (beyond that many, each is also logged as a warning).
    Progress is told at info level on the ``medseg.training_progress`` logger, at most every
    :data:`PROGRESS_SECONDS` (how many are read), the wait doubled after each line up to
    :data:`PROGRESS_MAX_SECONDS`, and then the time it took; a quicker read tells nothing."""
    check_case_list(cases, "the cases")
    check_case_channels(cases, config, where)
    from medseg.memory_guard import physical_memory  # one name for the memory checks to patch
    from medseg.preprocess import build_transforms

    pre = config["preprocessing"]
    n_channels = len(config.get("modalities") or [None])
    transforms = build_transforms(pre, with_label=True, channels=n_channels)
    declared = {int(k) for k in config["labels"]}
    axes = slice_axes(config["inference"])
    first: MedsegError | None = None
    problems: list[str] = []
    started = last = _clock()
    wait = PROGRESS_SECONDS
    _check_cases_fit(cases, pre, physical_memory())  # every header read
    for done, case in enumerate(cases):
        now = _clock()
        # minutes for hundreds of cases on a busy machine; a short read (a bad case's one-line error) tells nothing
        if done and now - last >= wait:
            last, wait = now, min(2 * wait, PROGRESS_MAX_SECONDS)
            progress_log.info("reading %s: %d read (%.0f s)", counted(len(cases), "case"), done, now - started)
        try:
            _load_case(case, pre, transforms, declared, axes, config.get("modalities"))
        except MedsegError as error:
            if isinstance(error.__cause__ or error.__context__, MemoryError):
                raise  # the machine is short of memory: the other cases would only be short of it too
            problems.append(str(error))
            if first is None:  # kept without its traceback, which would hold the case's volumes
                first = error.with_traceback(None)
                first.__cause__ = first.__context__ = None
    if last != started:  # progress was told: so is its end (a short read tells its start alone)
        progress_log.info("read %s in %.0f s", counted(len(cases), "case"), _clock() - started)
    if len(problems) == 1 and first is not None:  # the one case's own error (kept as it was found)
        raise first
    if problems:
        if len(problems) > SHOWN_PROBLEMS:  # each on a line of its own, so that all can be fixed before the next run
            for problem in problems:
                log.warning("%s", problem)
        # where the rest are: a program that has not configured logging shows none of these lines
        untrainable = UntrainableCasesError(untrainable_text(problems, len(cases), f"all {len(problems)} are in "
                                                             f"this error's problems, and logged as warnings by the "
                                                             f"{log.name} logger"))
        untrainable.problems, untrainable.case_count = tuple(problems), len(cases)
        raise untrainable
    padded = padded_labels_text(cases)
    if padded is not None:  # 3D Slicer's cropped segmentations: one line for all of them
        log.info("%s", padded)
    return cases


def untrainable_text(problems: list[str] | tuple[str, ...], case_count: int, rest: str) -> str:
    """The one line of an :class:`~medseg.errors.UntrainableCasesError`: how many of the ``case_count`` cases cannot
    be trained on, the first :data:`SHOWN_PROBLEMS` ``problems``, and beyond them how many more and ``rest``, where
    they all are (``medseg train`` says "listed above" where its warning lines show them, and what shows them under
    ``-q``)."""
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = f"; … ({len(problems) - SHOWN_PROBLEMS} more; {rest})" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(problems)} of {counted(case_count, 'case')} cannot be trained on: {shown}{more}"


def _check_cases_fit(cases: list[TrainCase], pre: dict, memory: int | None) -> None:
    """Refuse, from the headers alone, a set of cases that training could not hold in memory: it keeps every case in
    model space (float32 image, uint8 label), and each volume may fit alone (six of 3 GiB on a 23 GiB machine) where
    all do not. A header that cannot be read counts nothing here: reading the case reports it."""
    from medseg.memory_guard import warn_over_cgroup

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
    from medseg.io.nifti_files import TRAINING_IMAGE

    if case.channel_paths:
        from medseg.errors import GeometryError
        from medseg.io.channels import read_channel_files

        try:
            return read_channel_files(case.channel_paths, hash_input, names, TRAINING_IMAGE)
        except GeometryError as error:
            raise TrainingError(f"{error}; not trained") from error
    if n_channels > 1:
        from medseg.io.channels import read_channels

        return read_channels(case.image_path, names or n_channels, hash_input=hash_input, role=TRAINING_IMAGE)
    return read_nifti(case.image_path, hash_input=hash_input, role=TRAINING_IMAGE)


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
    problems: list[str] = []  # every problem of the case, in one error: fixing one showed the next on the next run

    def noted(check) -> bool:
        """Run ``check``; a problem it raises is noted (a memory error raised at once); whether it passed."""
        try:
            check()
        except MedsegError as error:
            if isinstance(error.__cause__ or error.__context__, MemoryError):
                raise
            problems.append(str(error))
            return False
        return True

    # what `medseg infer` refuses is refused here too: it could not reproduce figures measured on such a case
    noted(lambda: check_not_constant(image, "nothing to learn from", pre.get("intensity")))
    # first: a nonsense voxel size gives the other check a nonsense shape; a cgroup is warned about for the whole set
    if noted(lambda: check_resampling_size(image, pre, doing=None)):
        noted(lambda: check_slices_fit(image, pre, axes))
    try:
        label = stored = read_nifti(case.label_path, labels=True)
    except MedsegError as error:
        if problems:  # the image's problems too
            raise TrainingError("; ".join([*problems, str(error)])) from error
        raise
    case.sha256 = (image.source_sha256, label.source_sha256)
    # as scoring places a reference: the same voxels stored in another order (LPS vs RAS, dcm2niix's reversed rows)
    # are re-indexed, a box of the image's voxel lattice (3D Slicer's cropped segmentation) is zero-padded onto its
    # grid (nothing resampled; told for all cases in one line, not here), and the grid is checked with the tolerance
    # and the words `medseg evaluate`, `medseg infer --reference` and evaluate_model.py score with
    try:
        label = place_onto_grid(label, image, log_box=False, outcome="not trained")
        check_same_grid(image, label, outcome="not trained")
    except GeometryError as error:
        problems.append(str(error))
    # the values as stored (a box zero-padded onto its image adds only background), checked whatever the grid
    values = np.unique(stored.array)
    if not np.all(values == np.round(values)):
        hint = image_among_labels() if len(values) > IMAGE_LIKE_VALUES else ""
        problems.append(f"{case.label_path}: label values are not whole numbers, found {odd_values(values)}{hint}"
                        f"{header_scaling_note(stored)}")
    else:
        unknown = sorted(set(int(v) for v in values) - declared)
        if unknown:
            hint = image_among_labels() if len(values) > IMAGE_LIKE_VALUES else ""
            problems.append(f"{case.label_path}: label values {values_text(unknown)} are not declared in the "
                            f"config's labels {values_text(sorted(declared))}{hint}")
    if problems:
        raise TrainingError("; ".join(problems))
    case.label_box = label.info.get("sub_box")
    if case.label_box is not None:  # the grid's voxels the box did not hold, zero-padded
        box = case.label_box
        case.label_padded_voxels = int(np.prod(label.shape[:3])) - (int(np.prod(box["shape"][:3]))
                                                                     - int(box.get("voxels_outside_grid", 0)))
    affine = torch.from_numpy(image.affine)
    peak = float(np.abs(image.array).max())  # before the transforms, which may work on the array in place
    case.intensity_p1_p99 = intensity_percentiles(image.array) if image.channels == 1 else None
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
    a segmentation cropped to its segments), zero-padded onto the image's grid, and of those whose label file reaches
    past that grid (an image cropped after it was labelled), background alone out there, cropped to it: how many,
    and the first three by name; None where there is none. One line for all, not one a case: a set exported from
    Slicer has hundreds."""
    def named(chosen: list[TrainCase]) -> str:
        return ", ".join(case.case_id for case in chosen[:3]) + (f" … and {len(chosen) - 3} more"
                                                                 if len(chosen) > 3 else "")

    padded, cropped = _boxed_cases(cases)
    parts = []
    if padded:
        boxes = ("is a box of its image's voxel grid", "it") if len(padded) == 1 else \
            ("are boxes of their images' voxel grids", "them")
        parts.append(f"{len(padded)} of {counted(len(cases), 'label image')} {boxes[0]} (cropped, as 3D Slicer saves "
                     f"a segmentation), zero-padded onto {boxes[1]} with background, nothing resampled: "
                     f"{named(padded)}")
    if cropped:
        past = ("reaches past its image's voxel grid (its voxels out there all background), cropped to it"
                if len(cropped) == 1 else "reach past their images' voxel grids (their voxels out there all "
                "background), cropped to them")
        parts.append(f"{len(cropped)} of {counted(len(cases), 'label image')} {past}, nothing resampled: "
                     f"{named(cropped)}")
    return "; ".join(parts) or None


def _boxed_cases(cases: list[TrainCase]) -> tuple[list[TrainCase], list[TrainCase]]:
    """The cases whose label file was zero-padded onto its image's grid, and those whose label file reached past
    it (cropped to it); a box may be both."""
    boxed = [case for case in cases if case.label_box is not None]
    return ([case for case in boxed if case.label_padded_voxels > 0],
            [case for case in boxed if case.label_box.get("voxels_outside_grid")])


def label_box_record(cases: list[TrainCase]) -> dict[str, list[str]]:
    """What a package's training record says of the label files placed onto their images' grids: the cases
    zero-padded (``labels_zero_padded``) and those cropped to the grid (``labels_cropped_to_grid``), sorted; each
    key only where there is such a case."""
    padded, cropped = _boxed_cases(cases)
    record = {"labels_zero_padded": sorted(c.case_id for c in padded),
              "labels_cropped_to_grid": sorted(c.case_id for c in cropped)}
    return {key: ids for key, ids in record.items() if ids}


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
