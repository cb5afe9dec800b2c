"""A multi-modal case's images as one :class:`~medseg.volume.Volume` of several channels: a 4D NIfTI holding its
modalities on the last axis (the Medical Segmentation Decathlon's ``BRATS_001.nii.gz``, ``(X, Y, Z, 4)``), or
nnU-Net's channel files, one 3D file a modality (``case_0000.nii.gz``, ``case_0001.nii.gz``, ...) on one grid."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from medseg.errors import GeometryError, InputError
from medseg.io.files import exists, nnunet_channel
from medseg.volume import Volume, stem

__all__ = ["case_name", "channel_digests", "channel_file", "channel_files", "channel_siblings", "further_channel_text",
           "modality_names", "modalities_text", "read_channel_files", "read_channels"]


def modalities_text(modalities: list[str] | int) -> str:
    """``4 modalities (flair, t1, t1gd, t2)`` as messages name what a model takes."""
    if isinstance(modalities, int):
        return f"{modalities} modalities" if modalities != 1 else "one image"
    from medseg.numbers import counted

    return f"{counted(len(modalities), 'modality', 'modalities')} ({', '.join(modalities)})"


def modality_names(names, count: int) -> list[str]:
    """``count`` modality names for a config: ``names`` (a dataset.json's ``channel_names`` / ``modality`` values,
    in channel order) made into names a model config takes (letters, digits, ``_.+-``; ``T1 gd`` is ``T1_gd``), or
    ``channel0``, ``channel1``... where there are none, too few, or two that would be alike."""
    made = [re.sub(r"[^A-Za-z0-9_.+-]", "_", str(name).strip())[:64] for name in (names or [])]
    if len(made) != count or not all(made) or len({name.casefold() for name in made}) != count:
        return [f"channel{index}" for index in range(count)]
    return made


def channel_file(first: Path | str, index: int) -> Path:
    """The file of channel ``index`` of a case, as nnU-Net names it, beside ``first``, the case's first channel file
    (``case_0000.nii.gz``; ``case_0002.nii.gz`` for channel 2), of its ending; a name without the ``_0000`` suffix
    (a case's one image, ``case.nii.gz``) is the case's name whole (``case_0002.nii.gz``)."""
    first = Path(first)
    name = stem(first)
    split = nnunet_channel(name)
    case = split[0] if split is not None and split[1] == "0000" else name
    return first.with_name(f"{case}_{index:04d}{first.name[len(name):]}")


def channel_siblings(path: Path | str) -> list[Path] | None:
    """The channel files of the case whose first channel is ``path`` (named as nnU-Net names it, ``case_0000`` and
    an image ending), in channel order: ``path`` and the ``case_0001``, ``case_0002``... of the same ending beside it,
    up to the first number missing. None where ``path`` is not so named."""
    path = Path(path)
    name = stem(path)
    split = nnunet_channel(name)
    if split is None or split[1] != "0000":
        return None
    files = [path]
    while len(files) < 10000:
        sibling = channel_file(path, len(files))
        if not exists(sibling):
            break
        files.append(sibling)
    return files


def case_name(path: Path | str, modalities: int) -> str | None:
    """The case an input named as nnU-Net names a case's first channel file (``case_0000.nii.gz``) is for a model of
    several ``modalities`` (``case``): its outputs are named after it (``case_seg.nii.gz``), as nnU-Net names its
    predictions. None for any other input, and for any input of a model of one image a case (``case_0001`` beside
    it is then a case of its own): named after its file."""
    if modalities < 2:
        return None
    split = nnunet_channel(stem(path))
    return split[0] if split is not None and split[1] == "0000" else None


def channel_files(path: Path | str, modalities: int) -> list[Path] | None:
    """The files a model of ``modalities`` modalities reads for the input ``path`` where it reads nnU-Net's channel
    files: ``case_0000`` … ``case_{modalities - 1:04d}`` of ``path``'s ending beside it, each whether it is there or
    not (one dropped is an input away, as a dropped file is), and any further one that is there (the case is then
    refused for its count). None where ``path`` is read alone: a model of one image a case, a folder, a name without
    the ``_0000`` suffix, or a ``_0000`` file with no channel file beside it that holds several volumes itself (a 4D
    file; only then is its header read). What identifies such a case's input (its signature, hash and availability)
    is all of these files."""
    if modalities < 2:
        return None
    path = Path(path)
    name = stem(path)
    split = nnunet_channel(name)
    if split is None or split[1] != "0000":
        return None
    try:
        if path.is_dir():
            return None
    except OSError:
        return None
    files = [path] + [channel_file(path, index) for index in range(1, modalities)]
    if not any(os.path.lexists(file) for file in files[1:]) and _holds_volumes(path):
        return None
    while len(files) < 10000:
        further = channel_file(path, len(files))
        if not os.path.lexists(further):
            break
        files.append(further)
    return files


def _holds_volumes(path: Path) -> bool:
    """Whether the image at ``path`` holds several volumes (a 4D file), from its header; False where it cannot be
    read."""
    from medseg.errors import MedsegError
    from medseg.io.images import read_grid

    try:
        return len(read_grid(path)[0]) > 3
    except (MedsegError, OSError, ValueError):
        return False


def read_channel_files(paths: list[Path], hash_input: bool = True, names: list[str] | None = None,
                       role: str = "") -> Volume:
    """nnU-Net's channel files of one case (``paths``, in channel order) as one Volume of ``len(paths)`` channels,
    ``(X, Y, Z, C)``, on the first file's grid, with its header; its hash is that of all the files in order. Each
    must be one 3D volume on the first one's grid (the same shape, voxels placed within the scoring tolerance):
    another is a :class:`~medseg.errors.GeometryError` naming it. ``names``: the modalities, for messages; ``role``:
    what the files are read as (:data:`~medseg.io.nifti_files.TRAINING_IMAGE`), for the errors reading them. Its
    ``info`` names the files (``channel_files``) and, where hashed, gives each one's SHA-256 by its name, in channel
    order (``channel_sha256``): what ``medseg verify`` tells a changed or missing channel by."""
    from medseg.grid_match import grid_displacement_mm, grid_tolerance_mm
    from medseg.io.atomic import sha256_of
    from medseg.io.nifti import read_nifti

    paths = [Path(p) for p in paths]
    first = read_nifti(paths[0], hash_input=False, role=role)
    arrays = [first.array]
    for index, path in enumerate(paths[1:], start=1):
        volume = read_nifti(path, hash_input=False, role=role)
        what = f"channel {index}" + (f" ({names[index]})" if names and index < len(names) else "")
        if volume.shape != first.shape:
            raise GeometryError(f"{path}: {what} has {'×'.join(map(str, volume.shape))} voxels, where "
                                f"{paths[0].name} (channel 0) has {'×'.join(map(str, first.shape))}; a case's "
                                "channels must lie on one grid (register and resample them onto one first)")
        off = grid_displacement_mm(first.shape, first.affine, volume.affine)
        if not off <= grid_tolerance_mm(first.affine):
            raise GeometryError(f"{path}: {what} lies on another grid than {paths[0].name} (channel 0): its voxels "
                                f"are placed up to {off:.3g} mm apart; a case's channels must lie on one grid "
                                "(register and resample them onto one first)")
        arrays.append(volume.array)
    array = np.stack(arrays, axis=-1)
    del arrays
    info = dict(first.info)
    info["channel_files"] = [path.name for path in paths]
    source_sha256 = None
    if hash_input:
        source_sha256, each = channel_digests(paths)
        if source_sha256 is None:  # a file that cannot be read now: its reading's error, as hashing it raises
            source_sha256 = sha256_of(paths)
        info["channel_sha256"] = {path.name: digest for path, digest in zip(paths, each)}
    return Volume(array=array, affine=first.affine, source=paths[0], header=first.header,
                  source_sha256=source_sha256, info=info, channel_axis=True)


def channel_digests(paths: list[Path]) -> tuple[str | None, list[str | None]]:
    """The SHA-256 of a case's channel files (``paths``, in channel order) as its input is hashed (their bytes in
    order, as :func:`~medseg.io.atomic.sha256_of` hashes a list), and each one's, read once: each None where that file
    cannot be read (not there, permission denied), and the case's None then too."""
    import hashlib

    whole, each = hashlib.sha256(), []
    for path in paths:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                    whole.update(block)
        except OSError:
            each.append(None)
            continue
        each.append(digest.hexdigest())
    return (whole.hexdigest() if all(digest is not None for digest in each) else None), each


def _segmentation_input(path: Path) -> str | None:
    """Where ``path`` is a segmentation ``medseg infer`` wrote (its sidecar beside it names it), what to give
    instead: the input it was made from. None otherwise (no sidecar, an unreadable one, someone else's)."""
    from medseg.jsonfile import RESULT_BYTES, read_json_object

    try:
        record = read_json_object(path.with_name(f"{stem(path)}.json"), RESULT_BYTES, "a medseg result record")
    except (OSError, ValueError):  # a JsonFileError too
        return None
    if record.get("schema") != "medseg-segmentation/1" or record.get("segmentation") != path.name:
        return None
    made_from = record.get("input")
    return f"give the image it was made from, {made_from}" if isinstance(made_from, str) else "give the case's image"


def further_channel_text(path: Path | str) -> str | None:
    """Why ``path`` is no input of a model of several modalities where it is one of nnU-Net's further channel files
    (``case_0001.nii.gz``, its case's ``case_0000.nii.gz`` beside it), without the file's name: ``channel 1 of case
    case (nnU-Net's channel files); give …/case_0000.nii.gz: the case's other channel files are read beside it``.
    None for any other input (a ``_0001`` file without its ``_0000`` beside it is read as an image of its own; a
    DICOM series folder ``series_0001``, a series of its own)."""
    path = Path(path)
    split = nnunet_channel(stem(path))
    if split is None or split[1] == "0000":
        return None
    try:
        if path.is_dir():
            return None
    except OSError:  # cannot be looked at: its input's own read says so
        return None
    first = path.with_name(f"{split[0]}_0000{path.name[len(stem(path)):]}")
    if not exists(first):
        return None
    return (f"channel {int(split[1])} of case {split[0]} (nnU-Net's channel files); give {first}: the case's other "
            "channel files are read beside it")


def read_channels(path: Path | str, modalities: list[str] | int, model: str = "the model",
                  hash_input: bool = True, role: str = "") -> Volume:
    """The input of a model that takes several ``modalities`` (their names, or their count): a 4D NIfTI holding
    them on its last axis, or the first of nnU-Net's channel files (``case_0000.nii.gz``; the others are found
    beside it, :func:`channel_siblings`). Another channel count, a 3D image alone, a DICOM series (one series is one
    modality) or a missing channel file is an :class:`~medseg.errors.InputError` naming the file and the counts.
    ``role``: what the files are read as (:data:`~medseg.io.nifti_files.TRAINING_IMAGE`): a DICOM file named as NIfTI
    among a training set's images is to be converted, not given by its folder as an input of ``medseg infer``."""
    from medseg.io.nifti import read_nifti

    path = Path(path)
    names = list(modalities) if not isinstance(modalities, int) else None
    count = len(names) if names is not None else int(modalities)
    takes = f"model {model} takes {modalities_text(names or count)}"
    make = (f"give a 4D NIfTI holding them on its last axis (X×Y×Z×{count}, e.g. nibabel: "
            "nib.Nifti1Image(np.stack([flair, t1, ...], axis=-1), affine)), or nnU-Net's channel files "
            f"case_0000 … case_{count - 1:04d}.nii.gz and give case_0000.nii.gz")
    if path.is_dir():
        raise InputError(f"{path}: a DICOM series is one modality, and {takes}; {make}")
    further = further_channel_text(path)
    if further is not None:  # a further channel's file: its case is read from its first channel's
        raise InputError(f"{path}: {further}")
    siblings = channel_siblings(path)
    if siblings is not None and len(siblings) > 1:
        if len(siblings) != count:
            raise InputError(f"{path}: {len(siblings)} channel files ({siblings[0].name} … {siblings[-1].name}), "
                             f"and {takes}" + (f"; {channel_file(siblings[0], len(siblings))} is missing"
                                               if len(siblings) < count else ""))
        return read_channel_files(siblings, hash_input, names, role)
    volume = read_nifti(path, hash_input=hash_input, channels=True, role=role)
    if volume.channels == count:
        return volume
    if volume.channels == 1:
        written = _segmentation_input(path)
        if written is not None:  # an earlier run's output beside its inputs, as `medseg infer imagesTs/*.nii.gz` finds
            raise InputError(f"{path}: a segmentation medseg wrote (its sidecar {stem(path)}.json beside it), not "
                             f"an image of a case; {written}")
        missing = ""
        if siblings is not None:  # case_0000 alone
            missing = f" ({channel_file(path, 1)} is not there)"
        raise InputError(f"{path}: a 3D image (one modality){missing}, and {takes}; {make}")
    raise InputError(f"{path}: {volume.channels} channels ({'×'.join(map(str, volume.array.shape))}), and {takes}; "
                     f"give a 4D image of those {count}, in that order")

