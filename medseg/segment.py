"""One case end to end: read → model space → slice-wise inference → input grid → atomic outputs."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg import stopping
from medseg.caller_warnings import NOT_SCORED, NOTHING_WRITTEN, raised_outcome, warn
from medseg.case_numbers import other_case_note
from medseg.errors import DeviceError, ImageReadError, InputError, OutputWriteError
from medseg.failure_records import stale_failure
from medseg.input_range import (
    check_extent,
    check_intensity,
    check_modality,
    combine_checks,
    intensity_percentiles,
    model_space_extent,
)
from medseg.io.atomic import atomic_paths, check_folders_writable, check_superseded, check_writable, sha256_of
from medseg.io.files import absolute_path, exists, is_path, path_argument, type_text
from medseg.io.free_space import check_free_space
from medseg.io.images import read_image
from medseg.io.nifti_write import write_labels
from medseg.io.pairs import changed_files, file_signature, folder_signatures, input_signature
from medseg.record_time import record_time
from medseg.settings_named import ANY, setting
from medseg.volume import Volume, bottom_row_text, header_precision, singular_affine_text, stem, volume_ml

if TYPE_CHECKING:
    from medseg.inference import Segmenter
    from medseg.package import ModelPackage
    from medseg.segmenter_plan import SegmenterPlan

__all__ = ["CaseOutputs", "case_targets", "check_reference_exists", "in_training_set", "labels_not_trained",
           "named_like_training_case", "output_paths", "seg_algorithm_parameters", "seg_algorithm_version",
           "segment_case", "segment_volume", "superseded_outputs", "versions"]

log = logging.getLogger(__name__)

# the dataset.json files (with the labels compared, and the file's size and modification time: one edited since is
# logged again, in a long-lived process too) whose names for the reference's label values were logged in this process
# (medseg.scoring.warn_if_dataset_names_differ): one log line for a batch of inputs, not one each; the warning to a
# Python caller is given at each call, as a package's at each load (a notebook's second folder hears it too)
_LOGGED_DATASET_NAMES: set = set()


def seg_algorithm_version(package) -> str:
    """A DICOM SEG's Algorithm Version for ``package``: its version and its weights' SHA-256 (the first 12 digits),
    so that a SEG parted from its sidecar (in an archive) still tells which weights made it; at most 64 characters
    (the attribute's LO)."""
    weights = f"weights {package.sha256[:12]}"
    version = str(package.config.get("version", "0"))[:64 - len(weights) - 2]
    return f"{version}; {weights}"


def seg_algorithm_parameters(segmenter) -> dict[str, str]:
    """A DICOM SEG's Algorithm Parameters: the weights' and settings' SHA-256 in full (Algorithm Version holds 12
    digits), the device and the precision, so that a SEG parted from its sidecar can be checked against its model."""
    package = segmenter.package
    return {"weights_sha256": package.sha256, "settings_sha256": package.settings_sha256,
            "device": str(segmenter.device), "precision": segmenter.precision}


@dataclass
class CaseOutputs:
    """Where one case's outputs went, and its sidecar record."""

    segmentation: Path
    sidecar: Path
    metrics: Path | None = None
    record: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        """One short line: the files, and each label's Dice (3 decimals) where the case was scored; the whole sidecar
        record, 4.5 KB of hashes, versions and timings, made a notebook's loop over cases unreadable."""
        shown = [f"{name}={None if value is None else str(value)!r}" for name, value in
                 (("segmentation", self.segmentation), ("sidecar", self.sidecar), ("metrics", self.metrics))]
        labels = (self.record.get("metrics") or {}).get("labels") if isinstance(self.record, dict) else None
        if isinstance(labels, dict):
            shown.append("dice={" + ", ".join(f"{entry.get('name', value)!r}: {_rounded(entry.get('dice'))}"
                                              for value, entry in labels.items()) + "}")
        return f"CaseOutputs({', '.join(shown)})"


def _rounded(value) -> str:
    """A Dice as :meth:`CaseOutputs.__repr__` shows it: 3 decimals, ``nan`` where undefined."""
    return "nan" if value is None or value != value else repr(round(float(value), 3))


def output_paths(
    input_path: Path | str, out_dir: Path | str | None = None, case_id: str | None = None
) -> tuple[Path, Path, Path]:
    """``<name>_seg.nii.gz``, ``<name>_seg.json`` and ``<name>_metrics.json`` in ``out_dir`` (default:
    beside the input, a link's outputs beside the link); ``name`` is ``case_id`` or the input's stem."""
    _check_case_id(case_id)
    input_path = Path(input_path)
    if input_path.name in ("", ".", ".."):  # a folder named by "." or "..": its real place and name
        input_path = Path(os.path.realpath(input_path))
    else:  # the folder it is in, links followed (as the kernel follows them before a ".."), and its own name: a
        # linked input's outputs go beside the link, named after it
        input_path = Path(os.path.realpath(input_path.parent)) / input_path.name
    folder = Path(out_dir) if out_dir is not None else input_path.parent
    name = case_id or stem(input_path)
    return folder / f"{name}_seg.nii.gz", folder / f"{name}_seg.json", folder / f"{name}_metrics.json"


def _check_case_id(case_id) -> None:
    """Refuse a ``case_id`` that is no name of its own: joined to the output folder, ``"../x"`` wrote beside it, an
    absolute path anywhere, ``"sub/x"`` into a folder made for it, and ``"."`` the hidden ``._seg.nii.gz``. ``\\`` is
    a folder's separator on Windows; a control character (a line's end, a C1 control, a line separator) names no file
    a shell or the report shows as it is. None and ``""`` leave the outputs named after the input."""
    if case_id is None or case_id == "":
        return
    if not isinstance(case_id, str):
        raise InputError(f"case_id {case_id!r}: a name for the outputs is text; give a str")
    if case_id in (".", "..") or any(character in case_id for character in "/\\\0"):
        raise InputError(f"case_id {case_id!r}: a name for the outputs, not a path (no '/', '\\' or NUL, not '.' "
                         "or '..'); give the folder as out_dir")
    import unicodedata

    # C0 and C1 controls, DEL and Unicode's line and paragraph separators: those a one-line message escapes
    control = next((character for character in case_id if unicodedata.category(character) in ("Cc", "Zl", "Zp")),
                   None)
    if control is not None:  # "sub-01\n", the last cell of a line split by hand: "sub-01\n_seg.nii.gz" on disk
        raise InputError(f"case_id {case_id!r}: a name for the outputs holds the control character {control!r} (a "
                         "line's end left on a cell read by hand?); give the name without it")


def _check_given_case_id(case_id) -> None:
    """A ``case_id`` given to :func:`segment_case` is also no name of spaces only (``"   "`` wrote ``   _seg.nii.gz``,
    a file a shell and the report show as no name) nor one with spaces around it (``"sub-01 "`` wrote
    ``sub-01 _seg.nii.gz``, shown as if the space were not there). The name of an input file, which the outputs take
    without a ``case_id`` (nnU-Net's ``case_0000`` gives ``case``), stands as the file has it."""
    _check_case_id(case_id)
    if case_id is None or case_id == "":
        return
    if not case_id.strip():
        raise InputError(f"case_id {case_id!r}: a name for the outputs is only spaces, which name nothing; give a "
                         "name, or None to name the outputs after the input")
    if case_id != case_id.strip():
        raise InputError(f"case_id {case_id!r}: a name for the outputs begins or ends with a space (a cell read "
                         f"by hand?); give {case_id.strip()!r}")


def case_targets(input_path: Path | str, out_dir: Path | str | None = None, scored: bool = False,
                 output_format: str = "nifti", case_id: str | None = None) -> list[Path]:
    """The files :func:`segment_case` writes for one input: segmentation (``.nii.gz``, or ``.dcm`` for a DICOM
    SEG), sidecar, and the metrics when ``scored``."""
    seg_path, sidecar_path, metrics_path = output_paths(input_path, out_dir, case_id)
    if output_format == "dicom-seg":  # a DICOM SEG referencing the source series instead of the NIfTI
        seg_path = seg_path.with_name(seg_path.name[: -len(".nii.gz")] + ".dcm")
    elif output_format != "nifti":
        raise InputError(f"unknown output format {output_format!r} (nifti or dicom-seg)")
    return [seg_path, sidecar_path] + ([metrics_path] if scored else [])


def superseded_outputs(input_path: Path | str, out_dir: Path | str | None = None, scored: bool = False,
                       output_format: str = "nifti", case_id: str | None = None,
                       keep: Sequence[Path | str] = ()) -> list[Path]:
    """The outputs an earlier run of the same case wrote that this run does not write: its segmentation in the other
    format, and its metrics when this run is not scored. They would no longer match the new sidecar, so
    :func:`segment_case` removes them with ``overwrite`` (and refuses without). Only medseg's own files count — the
    other format's segmentation when the earlier sidecar names it and its SHA-256 is still the recorded one (a file
    of the user's, or one edited since, is left alone); metrics when the file they score is replaced or removed by
    this run (metrics of a kept file stay with it) — never one in ``keep`` (the input, a reference)."""
    seg_path, sidecar_path, metrics_path = output_paths(input_path, out_dir, case_id)
    dicom_seg = seg_path.with_name(seg_path.name[: -len(".nii.gz")] + ".dcm")
    other = dicom_seg if output_format == "nifti" else seg_path
    earlier = _medseg_json(sidecar_path, "medseg-segmentation/1") or {}
    found = []
    if _is_file(other) and earlier.get("segmentation") == other.name \
            and earlier.get("segmentation_sha256") in (None, sha256_of(other)):
        found.append(other)
    if not scored and _is_file(metrics_path):
        # metrics go with the file they score, when this run replaces it (its target) or removes it (above)
        # (compared with links followed: metrics may name the file by a path through a linked folder)
        replaced = [seg_path if output_format == "nifti" else dicom_seg, *found]
        record = _medseg_json(metrics_path, "medseg-metrics/1") or {}  # never a user's file
        scores = record.get("prediction")
        if isinstance(scores, str) and (os.path.realpath(scores) in {os.path.realpath(p) for p in replaced}
                                        or _moved_here(scores, record.get("prediction_sha256"), replaced)):
            found.append(metrics_path)
    kept = {os.path.realpath(p) for p in keep}
    return [p for p in found if os.path.realpath(p) not in kept]


def _is_file(path: Path) -> bool:
    """``Path.is_file``, with a name the file system cannot hold (an input's name long enough that its
    ``_metrics.json`` would pass 255 bytes) not a file, where ``Path.is_file`` raises."""
    try:
        return path.is_file()
    except OSError:
        return False


def _moved_here(scored: str, sha256, replaced: list[Path]) -> bool:
    """Whether metrics that name ``scored`` (an absolute path) score one of ``replaced`` after their folder was moved
    or copied: a file of that name that is the scored one by its SHA-256 (by name alone, metrics a user filed here
    from another folder would go)."""
    for path in replaced:
        if path.name != Path(scored).name:
            continue
        if path.is_file() and sha256 is not None and sha256_of(path) == sha256:
            return True
    return False


def _medseg_json(path: Path, schema: str) -> dict | None:
    """A medseg record of ``schema`` at ``path``, or None (missing, unreadable, someone else's)."""
    from medseg.jsonfile import RESULT_BYTES, read_json_object

    try:
        record = read_json_object(path, RESULT_BYTES, "a medseg result record")
    except (OSError, ValueError):  # a JsonFileError too
        return None
    return record if record.get("schema") == schema else None


def versions(dicom_syntax: str | None = None) -> dict[str, str]:
    """The versions of medseg and of the libraries that make a result (MONAI, torch, nibabel...), as sidecars
    record them; for a DICOM input (``dicom_syntax``, its transfer syntax UID) also pydicom, which read it, and for
    compressed pixel data the decoders pydicom had for it (``dicom_decoders``)."""
    import monai
    import nibabel
    import torch

    import medseg
    from medseg.checkout import source_commit

    commit = source_commit()  # a checkout's commit: the version number is one for every commit between releases
    return {
        "medseg": medseg.__version__,
        **({"medseg_commit": commit} if commit else {}),
        "monai": monai.__version__,
        "torch": torch.__version__,
        "nibabel": nibabel.__version__,
        "numpy": np.__version__,
        **(_dicom_versions(dicom_syntax) if dicom_syntax is not None else {}),
    }


# the packages behind pydicom's decoding plugins (pylibjpeg hands each syntax to one of its own back-ends)
_DECODER_MODULES = {"pylibjpeg": ("pylibjpeg", "openjpeg", "libjpeg", "rle"), "pillow": ("PIL",),
                    "pyjpegls": ("jpeg_ls",), "gdcm": ("gdcm",), "pydicom": ("pydicom",)}


def _dicom_versions(syntax: str) -> dict[str, str]:
    """pydicom's version, and for a compressed transfer syntax its available decoding plugins (in pydicom's order: the
    first that decodes a frame is used) with the versions of the packages behind them: a lossy JPEG decodes to other
    values under another decoder or release."""
    import importlib
    import sys

    import pydicom

    found = {"pydicom": pydicom.__version__}
    try:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(syntax) if syntax else None
        # the order pydicom tries them in, that of their adding (its `available_plugins` is sorted by name: pillow
        # before pylibjpeg, which decodes a JPEG 2000 frame first)
        plugins = tuple(getattr(decoder, "_available", None) or decoder.available_plugins) if decoder else ()
    except Exception:  # pydicom has no decoder for it: uncompressed data, or a syntax it does not know
        plugins = ()
    described = []
    for plugin in plugins:
        parts = []
        for name in _DECODER_MODULES.get(plugin, ()):
            module = sys.modules.get(name)
            if module is None and name == _DECODER_MODULES[plugin][0]:
                try:
                    module = importlib.import_module(name)
                except ImportError:
                    module = None
            if module is not None and isinstance(getattr(module, "__version__", None), str):
                parts.append(f"{'pillow' if name == 'PIL' else name} {module.__version__}")
        described.append(f"{plugin} ({', '.join(parts)})" if parts else plugin)
    if described:
        found["dicom_decoders"] = "; ".join(described)
    return found


def check_reference_exists(reference: Path | str, input_path: Path | str) -> None:
    """A missing reference is named as the reference of its input (not as a bare missing file)."""
    from medseg.io.files import not_there

    if not exists(reference):
        raise ImageReadError(f"{reference}: {not_there(reference, 'no such file')} (the reference given for "
                             f"{input_path})")


def _check_header_size(input_path: Path | str, pre: dict, per_model_voxel: int = 0, scoring: bool = False,
                       channels: int = 1) -> None:
    """The memory guard of :func:`medseg.memory_guard.check_resampling_size` from an input's header, read apart
    before its voxels are (a 512×512×1500 CT took 13 s and 2.3 GB to read before it was refused): an NRRD or
    MetaImage file's, or the NIfTI files of a multi-modal model's case (a single NIfTI file's is checked as it is
    read, :func:`_header_read_apart`). A header that cannot be read,
    or that is not 3D, is left to :func:`read_image`, which names the problem; a DICOM folder is checked by
    :func:`read_image` through :func:`_check_grid`, from its headers once its series is chosen. ``channels``: the
    modalities a multi-modal model takes (a 4D input's last axis, or nnU-Net's channel files: each charged)."""
    from medseg.errors import MedsegError
    from medseg.io.images import read_grid

    try:
        if Path(input_path).is_dir():
            return
        shape, affine = read_grid(input_path)
    except (MedsegError, OSError, ValueError):
        return
    if channels > 1:  # the channels are checked against the model's as the file is read
        from medseg.io.image_shape import channel_shape

        shape = channel_shape(shape)  # NIfTI's vector layout (X, Y, Z, 1, C) as (X, Y, Z, C)
        shape = shape[:3] if len(shape) == 4 else shape
    _check_grid(input_path, pre, per_model_voxel, shape, affine, scoring, channels)


def _header_read_apart(input_path: Path | str) -> bool:
    """Whether the memory guard reads ``input_path``'s header apart from its voxels (:func:`_check_header_size`):
    an NRRD or MetaImage file's; a NIfTI file's grid is checked by :func:`read_image` as it reads the header for the
    voxels (one opening, where the guard's own was one more load of the header and its geometry checks), and a
    DICOM folder's once its series is chosen."""
    from medseg.io.itk_image import is_itk_name

    return is_itk_name(input_path) and not Path(input_path).is_dir()


def _check_grid(input_path: Path | str, pre: dict, per_model_voxel: int, shape: tuple[int, ...],
                affine: np.ndarray, scoring: bool = False, channels: int = 1) -> None:
    """:func:`medseg.memory_guard.check_grid_size` of a grid read from headers (a DICOM series was decoded whole
    before the guard refused it); a grid that is not 3D or whose affine is degenerate is left to the reader."""
    from medseg.memory_guard import check_grid_size

    if len(shape) != 3 or not np.isfinite(affine).all():
        return
    try:
        check_grid_size(input_path, shape, affine, pre, per_model_voxel, scoring=scoring, channels=channels)
    except InputError:
        raise
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):  # a degenerate affine: read_image names it
        return


def segment_case(
    input_path: Path | str,
    segmenter: Segmenter | SegmenterPlan | str | os.PathLike,
    out_dir: Path | str | None = None,
    overwrite: bool = False,
    series: str | None = None,
    reference: Path | str | None = None,
    progress: Callable[[int], Callable[[int], None] | None] | None = None,
    case_id: str | None = None,
    output_format: str = "nifti",
) -> CaseOutputs:
    """Segment one input file or DICOM folder with a loaded :class:`~medseg.inference.Segmenter` (or a model's name or
    folder, loaded for this case, or a :class:`~medseg.segmenter_plan.SegmenterPlan`). The input is read before a
    network not built yet is built: one that cannot be read is refused without it.

    ``progress(total_slices)`` is called once the number of 2D slices to label is known, and may return a callback
    that is then given the slices labelled as each forward pass of tiles ends (increments that sum to
    ``total_slices``, as tqdm's ``update`` takes them: ``progress=lambda total: tqdm(total=total).update``). With a
    ``reference`` label image, per-label metrics are computed and written to ``<name>_metrics.json``. Outputs are named
    after ``case_id`` when given (a name, in ``out_dir``: one holding ``/`` or ``\\``, or ``.`` or ``..``, or only
    spaces or spaces around it, is an :class:`~medseg.errors.InputError`), else after the input (for a multi-modal
    model, nnU-Net's ``case_0000.nii.gz`` after its case: ``case_seg.nii.gz``,
    :func:`~medseg.io.channels.case_name`). Nothing is written unless every step succeeds.
    ``overwrite`` replaces earlier outputs, and removes those the new ones supersede (:func:`superseded_outputs`:
    the other format's segmentation, metrics of an earlier run that this one does not score); without it, any of
    them existing is an :class:`~medseg.errors.OutputExistsError`.
    """
    input_path = path_argument(input_path, "the input")
    out_dir = None if out_dir is None else path_argument(out_dir, "the output folder")
    reference = None if reference is None else path_argument(reference, "the reference")
    _check_given_case_id(case_id)  # before the model loads
    # the input is read before the network is built (a plan's, or that of a model named here): one that cannot be
    # read is told without torch, MONAI and the weights (seconds)
    segmenter = _segmenter(segmenter, plan=True)
    modalities = segmenter.package.n_modalities
    if case_id is None:  # nnU-Net's case_0000 of a multi-modal model: its case's name, as nnU-Net names its outputs
        from medseg.io.channels import case_name

        case_id = case_name(input_path, modalities)
    targets = case_targets(input_path, out_dir, reference is not None, output_format, case_id)
    seg_path, sidecar_path = targets[:2]
    metrics_path = targets[2] if reference is not None else None
    check_writable(targets, overwrite)  # first: names the file system cannot hold, before any other name is looked up
    def find_superseded() -> list[Path]:
        return superseded_outputs(input_path, out_dir, reference is not None, output_format, case_id,
                                  keep=[input_path] + ([reference] if reference is not None else []))

    check_superseded(find_superseded(), overwrite)
    try:
        check_folders_writable(targets)
    except OutputWriteError as error:
        if out_dir is not None:
            raise
        # beside the input, by default: a read-only share of scans, a folder of another user's
        raise OutputWriteError(f"{error}; write the outputs elsewhere with {setting('out_dir', ANY)}") from error
    timings: dict[str, float] = {}

    clock = time.perf_counter()
    # an ensemble over slicing axes sums float32 class probabilities over the whole volume: two of them
    ensemble_bytes = 8 * segmenter.n_classes if len(segmenter.slice_axes) > 1 else 0
    scoring = reference is not None  # scoring after the inference holds more than it, a speckled mask's most
    # an input this user may not look at (a folder on its way without search permission): one line naming it, where
    # Path.is_dir below raised a bare PermissionError (a cohort's case then failed as "PermissionError: [Errno 13] …")
    exists(input_path)
    _warn_if_channels_unread(input_path, segmenter.package)
    if modalities > 1 or _header_read_apart(input_path):  # else read_image checks the header's grid as it reads it
        _check_header_size(input_path, segmenter.package.preprocessing, ensemble_bytes, scoring, modalities)
    # taken before the read: a file replaced meanwhile shows as changed, and its hash then tells (the QA report); of
    # each of nnU-Net's channel files for a multi-modal model (a case_0001 replaced since shows too)
    signature = input_signature(input_path, modalities)
    # a DICOM series' files likewise (its signature is null): one rewritten during the read shows, not a file of
    # another series added to the folder meanwhile (a PACS client still receiving)
    folder_before = folder_signatures(input_path) if signature is None and Path(input_path).is_dir() else None
    if output_format == "dicom-seg":  # a model whose labels cannot be a SEG's segments: refused before any read
        from medseg.io.seg_labels import check_segment_labels

        check_segment_labels(segmenter.package.labels, input_path)
    if modalities > 1:  # a 4D NIfTI of the modalities, or nnU-Net's channel files (never a DICOM series)
        from medseg.io.channels import read_channels

        if Path(input_path).is_dir():  # refused unread (one series is one modality): its scan kept for the
            from medseg.io.dicom_series import release_scan  # reading (a batch's check before the model) is dropped

            release_scan(input_path)
        if series is not None:
            raise ImageReadError(f"{input_path}: {setting('series', ANY)} applies to DICOM folders only")
        volume = read_channels(input_path, segmenter.package.modalities or modalities, segmenter.package.name)
    else:
        volume = read_image(input_path, series=series,
                            check_grid=partial(_check_grid, input_path, segmenter.package.preprocessing,
                                               ensemble_bytes, scoring=scoring),
                            keep_headers=output_format == "dicom-seg")  # the SEG's sources: read once
    if signature is not None and input_signature(input_path, modalities) != signature:
        # replaced or rewritten during the read: its hash, taken after the voxels, may be of another file than they
        raise ImageReadError(f"{input_path}: changed while it was read (its size or modification time is not what it "
                             "was as the read began); nothing segmented: run it again once the file is written")
    if folder_before is not None and volume.dicom is not None:
        changed = changed_files(folder_before, volume.dicom.paths)
        if changed:
            more = f" and {len(changed) - 1} more of its files" if len(changed) > 1 else ""
            shown = os.path.relpath(changed[0], input_path)
            raise ImageReadError(f"{input_path}: changed while it was read ({shown}{more}: size or modification time "
                                 "not what it was as the read began); nothing segmented: run it again once the series "
                                 "is written")
    # a disk too full for the outputs is found before the minutes of inference, not after them
    check_free_space(targets, volume.shape[:3], segmenter.package.label_map.dtype.itemsize, output_format)
    seg_sources = None
    if output_format == "dicom-seg":
        if volume.dicom is None:
            raise InputError(f"{input_path}: {setting('output_format', 'dicom-seg')} needs a DICOM series folder as "
                             "input")
        from medseg.io.seg_sources import seg_sources as read_seg_sources

        seg_sources = read_seg_sources(volume)  # before inference: a series a SEG cannot be made from fails now
    ref_volume = other_case = None
    if reference is not None:
        from medseg.grid_match import check_same_grid, place_onto_grid
        from medseg.io.files import is_dicom_file
        from medseg.io.label_images import read_reference

        check_reference_exists(reference, input_path)
        other_case = other_case_note(input_path, reference)
        if other_case is not None:  # nothing else tells a reference of another case on a shared grid
            warn(f"{reference}, the reference given for {input_path}: {other_case}", log,
                 raised=f"{reference}, the reference given for {input_path}: " + other_case.replace(
                     "; a reference given out of order is scored all the same)",
                     "); nothing segmented or written (MedsegWarning filtered into an error)"))
        reference_signature = file_signature(reference)
        if is_dicom_file(reference):  # a DICOM SEG: placed frame by frame on the series it segments
            ref_volume = _seg_reference(reference, volume, segmenter.package.labels, segmenter.package.label_codes)
            ref_volume.source_sha256 = sha256_of(reference)
        else:
            from medseg.grid_match import check_header_shape
            from medseg.io.nifti import files_read

            check_header_shape(input_path, volume.shape[:3], reference, outcome="nothing segmented or written",
                               affine=volume.affine)
            ref_volume = read_reference(reference, segmenter.package.labels)
            ref_volume.source_sha256 = sha256_of(files_read(reference))  # the metrics name the file scored against
            ref_volume = place_onto_grid(ref_volume, volume, outcome="nothing segmented or written")
        check_same_grid(volume, ref_volume, outcome="nothing segmented or written")  # checked before any work
    timings["read_s"] = time.perf_counter() - clock

    segmenter = _ready(segmenter)
    stopping.check()  # a Ctrl-C or SIGTERM whose exception an import's bare `except:` swallowed
    tiles_before = segmenter.window_net.tiles
    # only the input's grid is needed once it is in model space: its voxels are released
    labels, input_check = _label_volume(volume, segmenter, input_path, progress, timings, release_voxels=True)
    stopping.check()

    record = _sidecar(volume, labels, segmenter, seg_path, timings, segmenter.window_net.tiles - tiles_before,
                      signature)
    record["case_id"] = case_id or volume.name
    if segmenter.package.modalities is not None:  # which image went in as which modality
        record["modalities"] = segmenter.package.modalities
    if input_check is not None:
        record["input_check"] = input_check
    untrained = labels_not_trained(segmenter.package)
    if untrained:  # declared, but in no training case (a structure the cases lacked): the QA report expects none
        record["labels_not_trained"] = untrained
    trained_on = in_training_set(volume, segmenter.package)
    if trained_on is not None:
        record["in_training_set"] = trained_on
    named = named_like_training_case(volume, segmenter.package) if trained_on is False else None
    if named is not None:  # a decompressed or re-saved copy of a training image has other bytes
        record["named_like_training_case"] = named
        warn(f"{input_path}: named like training case {named} of model {segmenter.package.name}, but not byte for "
             "byte its file (decompressed, converted or re-saved?): if it is that image, its Dice overstates the "
             "model's accuracy on new data", log)
    metrics = None
    if ref_volume is not None and reference is not None:  # read together
        from medseg.metrics import evaluate_volumes

        clock = time.perf_counter()
        # scoring's warnings raised by a caller's "error" filter say "not scored": here nothing is written at all
        with raised_outcome(NOT_SCORED, NOTHING_WRITTEN):
            metrics = evaluate_volumes(
                Volume(labels, volume.affine, source=seg_path), ref_volume, segmenter.package.labels,
                case_id=case_id or volume.name,
            )
        metrics["reference_signature"] = reference_signature
        if segmenter.invocation is not None:  # the command that scored it, as the sidecar records it
            metrics["invocation"] = segmenter.invocation
        if other_case is not None:  # the QA report shows a record's notes on the case's card
            metrics.setdefault("notes", []).append(f"reference: {other_case}")
        timings["metrics_s"] = time.perf_counter() - clock
        from medseg.scoring import warn_if_dataset_names_differ

        # a dataset.json of the reference's dataset that names the values otherwise: warned at each call, logged once
        # per file in a process
        with raised_outcome(NOT_SCORED, NOTHING_WRITTEN):
            warn_if_dataset_names_differ(reference, segmenter.package.labels, f"the model {segmenter.package.name}",
                                         logged=_LOGGED_DATASET_NAMES)
        record["reference"] = str(absolute_path(reference))  # scored against; the metrics file beside it has them
        record["reference_sha256"] = ref_volume.source_sha256  # as the metrics and input_sha256 hash it
        if "reference_sub_box" in metrics:  # a box of the input's grid, zero-padded onto it (3D Slicer's crop)
            record["reference_sub_box"] = metrics["reference_sub_box"]

    clock = time.perf_counter()
    # looked for again as the set is placed: a run beside this one may have placed them since (its metrics)
    # and a failure record of the case (a batch's, an earlier run's) goes as its outputs are placed
    failed_before = partial(stale_failure, sidecar_path.parent, sidecar_path.name[:-len("_seg.json")])
    with atomic_paths(targets, overwrite=overwrite, retire=find_superseded, discard=failed_before) as temps:
        if output_format == "dicom-seg":
            from medseg.io.seg_writing import write_dicom_seg

            # the SEG's identifiers: the sidecar can be matched to the object in an archive
            record["dicom_seg"] = write_dicom_seg(labels, volume, temps[0], segmenter.package.labels,
                                                  segmenter.package.name, seg_algorithm_version(segmenter.package),
                                                  sources=seg_sources,
                                                  label_codes=segmenter.package.label_codes,
                                                  algorithm_parameters=seg_algorithm_parameters(segmenter),
                                                  versions=record["versions"])
        else:
            write_labels(labels, volume, temps[0], top_label=max(segmenter.package.labels))
        # which file the sidecar (and the metrics) describe: the report refuses metrics of another segmentation
        record["segmentation_sha256"] = sha256_of(temps[0])
        if metrics is not None:
            metrics["prediction_sha256"] = record["segmentation_sha256"]
        timings["write_s"] = time.perf_counter() - clock
        record["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        temps[1].write_text(json.dumps(record, indent=2) + "\n")
        if metrics is not None:
            from medseg.metrics import metrics_json

            temps[2].write_text(metrics_json(metrics))
    log.info("%s: wrote %s (%s)", volume.source, seg_path,
             ", ".join(f"{key.removesuffix('_s')} {seconds:.2f} s" for key, seconds in timings.items()))
    written_metrics = metrics_path if metrics is not None else None
    return CaseOutputs(seg_path, sidecar_path, written_metrics, record | {"metrics": metrics})


def segment_volume(
    volume: Volume,
    segmenter: Segmenter | str | os.PathLike,
    progress: Callable[[int], Callable[[int], None] | None] | None = None,
) -> np.ndarray:
    """Label an image held in memory with a :class:`~medseg.inference.Segmenter` (or a model's name or folder), as
    :func:`segment_case` labels a file, writing nothing.

    ``volume`` is a :class:`~medseg.volume.Volume`: a 3D array with the affine that maps its voxel indices to RAS+
    world coordinates in mm, as ``Volume(array, affine)`` (for a nibabel image, ``Volume(image.get_fdata(
    dtype=np.float32), image.affine)``), or a file read with :func:`medseg.io.images.read_image`; for a model of
    several modalities, an ``(X, Y, Z, C)`` array of them in the package's order (``package.modalities``). Returns the
    labels on the volume's own grid: its shape, the package's label values (class k written as its k-th smallest
    declared value), uint8 (uint16 where a value is above 255); ``volume`` is left as it was.
    ``progress`` as for :func:`segment_case`. The input checks are :func:`segment_case`'s (a blank image, a grid
    too large to resample, too few slices: :class:`~medseg.errors.InputError`), and so are its warnings, each a
    :class:`~medseg.errors.MedsegWarning`, and but for the last a log line (a label image given as the input, a
    field of view unlike the training volumes'; nnU-Net's ``case_0000`` file read with
    :func:`~medseg.io.images.read_image`, its ``case_0001`` beside it, for a model of one image a case)."""
    if not isinstance(volume, Volume):  # an array or a nibabel image failed on a missing attribute
        raise InputError(f"{type_text(volume)} given as the volume; give a Volume(array, affine) (for a nibabel "
                         "image, Volume(image.get_fdata(dtype=np.float32), image.affine))")
    segmenter = _segmenter(segmenter)
    name = volume.source if volume.source is not None else "the volume"
    array = np.asarray(volume.array)
    if array.dtype.kind not in "biuf":
        raise InputError(f"{name}: voxels of type {array.dtype}; give numbers (a float or integer array)")
    modalities = segmenter.package.n_modalities
    if modalities > 1 and (array.ndim != 4 or array.shape[3] != modalities or not array.size):
        from medseg.io.channels import modalities_text

        takes = modalities_text(segmenter.package.modalities or modalities)
        raise InputError(f"{name}: an array of shape {array.shape}; model {segmenter.package.name} takes {takes}: "
                         f"give them as one array (X, Y, Z, {modalities}), in that order")
    if modalities == 1 and (array.ndim != 3 or not array.size):
        raise InputError(f"{name}: an array of shape {array.shape}; give one 3D volume (X, Y, Z), a 2D image as "
                         f"X×Y×1{_axes_hint(array.shape)}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise InputError(f"{name}: the image contains NaN or infinite voxels (the first at voxel index {first})")
    try:
        affine = np.array(volume.affine, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name}: the affine is not a 4×4 matrix of numbers ({error})") from None
    if affine.shape != (4, 4):
        raise InputError(f"{name}: an affine of shape {affine.shape}; give the 4×4 voxel-to-RAS+ (mm) matrix")
    if singular_affine_text(affine) is not None:  # measured as reading a NIfTI measures it: 20 µm voxels are fine
        raise InputError(f"{name}: {singular_affine_text(affine)}")
    if bottom_row_text(affine) is not None:  # ignored: the voxels were placed by its top three rows alone
        raise InputError(f"{name}: {bottom_row_text(affine)}; give the 4×4 voxel-to-RAS+ (mm) matrix")
    own = Volume(np.asarray(array, dtype=np.float32), affine, source=name, header=volume.header,
                 source_sha256=volume.source_sha256, info=dict(volume.info), dicom=volume.dicom,
                 channel_axis=modalities > 1)
    if modalities == 1 and array.shape[0] == 1 < min(array.shape[1:]):  # MONAI's channel-first 2D image, (1, X, Y)
        from medseg.preprocess import check_slices_fit

        try:  # refused as one voxel thick, with no word of the channel axis
            check_slices_fit(own, segmenter.package.preprocessing, segmenter.slice_axes)
        except InputError as error:
            raise InputError(f"{error}; a channel-first 2D image, as MONAI's EnsureChannelFirst makes it, is "
                             "array[0][..., None]") from None
    # a float32 copy made here (of an int16 or float64 array) is handed over, not held through inference beside the
    # model-space image and copied again; the caller's own float32 array is left as it was
    if volume.source is not None and is_path(volume.source):  # read from a file: its channel files beside it
        _warn_if_channels_unread(volume.source, segmenter.package)
    mine = not np.may_share_memory(own.array, array)
    return _label_volume(own, segmenter, name, progress, {}, release_voxels=mine)[0]


def _warn_if_channels_unread(path: str | os.PathLike, package: ModelPackage) -> None:
    """A :class:`~medseg.errors.MedsegWarning` where ``path`` is nnU-Net's ``case_0000`` file of a case whose
    ``case_0001`` is beside it, and ``package`` takes one image a case: its case's other channels left unread, in
    silence. Not logged: the command tells a batch's in one line."""
    if package.n_modalities != 1:
        return
    from medseg.io.files import unread_channels

    for _, second in unread_channels([path]):
        warn(f"{path}: the _0000 file of a case of several channels as nnU-Net names them ({second.name} beside it), "
             f"and model {package.name} takes one image a case: segmented from its _0000 file alone, its other "
             "channels unread")


def _axes_hint(shape: tuple[int, ...]) -> str:
    """Which axes of an array of ``shape`` (not 3D) to drop for one volume, as ``": give array[0]"``: the leading ones
    of one voxel (MONAI's channel, a DataLoader's batch: (1, X, Y, Z), (1, 1, X, Y, Z)), then trailing ones (a 4D
    file of one volume, NIfTI's (X, Y, Z, 1, 1)), a 2D image that is left given a third axis; ``""`` where that
    leaves no volume."""
    lead = 0
    while len(shape) - lead > 2 and shape[lead] == 1:
        lead += 1
    trail = 0
    while len(shape) - lead - trail > 3 and shape[-1 - trail] == 1:
        trail += 1
    left = shape[lead:len(shape) - trail]
    if len(left) not in (2, 3) or min(left) == 0 or (len(left) == 2 and min(left) == 1):
        return ""
    index = ["0"] * lead + (["..."] if trail or len(left) == 2 else []) + ["0"] * trail + (
        ["None"] if len(left) == 2 else [])
    if index[-1] == "...":
        index.pop()
    channel = ("" if not lead else "a channel-first array, as MONAI's EnsureChannelFirst makes it: " if lead == 1 else
               "a batch of channel-first arrays, as MONAI's DataLoader makes it: ")
    return f": {channel}give array[{', '.join(index)}]"


def _segmenter(segmenter: Segmenter | SegmenterPlan | str | os.PathLike, plan: bool = False
               ) -> Segmenter | SegmenterPlan:
    """``segmenter`` as a :class:`~medseg.inference.Segmenter`: one given, or a model's name or folder loaded (on the
    device ``auto`` finds); anything else is an :class:`~medseg.errors.InputError`, not a missing attribute. With
    ``plan``, a :class:`~medseg.segmenter_plan.SegmenterPlan` given is kept, and a model's name or folder becomes one:
    its network is built once the input is read (:func:`_ready`)."""
    from medseg.segmenter_plan import SegmenterPlan

    if is_path(segmenter):
        from medseg.package import load_package

        found = SegmenterPlan(load_package(segmenter))
        return found if plan else found.ready()
    if isinstance(segmenter, SegmenterPlan):
        return segmenter if plan else segmenter.ready()
    if not all(hasattr(segmenter, name) for name in ("package", "predict", "window_net")):
        raise InputError(f"{type_text(segmenter)} given as the segmenter; give a medseg.inference.Segmenter, "
                         "or a shipped model's name or a package folder")
    return segmenter  # type: ignore[return-value]  # a Segmenter, or one like it (its attributes checked above)


def _ready(segmenter: Segmenter | SegmenterPlan) -> Segmenter:
    """The segmenter whose network labels the input: a plan's built now, once its input has been read."""
    from medseg.segmenter_plan import SegmenterPlan

    return segmenter.ready() if isinstance(segmenter, SegmenterPlan) else segmenter


def _label_volume(volume: Volume, segmenter, name, progress, timings: dict, release_voxels: bool
                  ) -> tuple[np.ndarray, dict | None]:
    """The labels of ``volume`` on its grid, and the field-of-view check (:func:`_input_check`); ``timings`` gets
    the preprocessing, inference and postprocessing seconds. ``name`` names the input in errors."""
    from medseg.preprocess import (
        build_transforms,
        check_not_constant,
        check_resampling_size,
        check_slices_fit,
        invert_labels,
        label_like_note,
        to_model_space,
        without_voxels,
    )

    ensemble_bytes = 8 * segmenter.n_classes if len(segmenter.slice_axes) > 1 else 0
    clock = time.perf_counter()
    if volume.channels != segmenter.package.n_modalities:  # a caller's Volume: files are checked as they are read
        from medseg.io.channels import modalities_text
        from medseg.numbers import counted

        raise InputError(f"{name}: {counted(volume.channels, 'channel')}, and model {segmenter.package.name} takes "
                         f"{modalities_text(segmenter.package.modalities or 1)}")
    check_not_constant(volume, intensity=segmenter.package.preprocessing.get("intensity"))
    label_like = label_like_note(volume)
    if label_like is not None:  # segmented all the same; the sidecar and the QA report say so
        warn(f"{volume.source}: {label_like}; segmented all the same", log,
             raised=f"{volume.source}: {label_like}; nothing segmented (MedsegWarning filtered into an error)")
        volume.info["label_like_note"] = label_like
    check_resampling_size(volume, segmenter.package.preprocessing, ensemble_bytes)
    check_slices_fit(volume, segmenter.package.preprocessing, segmenter.slice_axes)
    transforms = build_transforms(segmenter.package.preprocessing, channels=volume.channels)
    intensity = _intensity_check(volume, segmenter.package)  # on the values as read, before the transforms
    data = to_model_space(volume, transforms, release_voxels=release_voxels)
    timings["preprocess_s"] = time.perf_counter() - clock
    input_check = _input_check(data["image"], segmenter.package, name, volume.info.get("modality")
                               if volume.dicom is not None else None, intensity)

    clock = time.perf_counter()
    slices = segmenter.slices_to_label(tuple(data["image"].shape))
    callback = progress(slices) if progress is not None else None
    try:
        model_labels = segmenter.predict(data["image"].as_tensor(), progress=callback)
    except DeviceError as error:  # out of GPU memory: which input met it, in a batch's one line
        raise DeviceError(f"{name}: {error}") from None
    timings["inference_s"] = time.perf_counter() - clock
    data = without_voxels(data)  # the model-space image is not needed to invert

    clock = time.perf_counter()
    classes = invert_labels(model_labels, data, transforms, volume.shape, volume.source)
    labels = segmenter.package.label_map.to_values(classes)  # class k → the k-th smallest declared value
    timings["postprocess_s"] = time.perf_counter() - clock
    return labels, input_check


def _source_of(volume: Volume) -> Path | str:
    """The file or folder ``volume`` was read from, which medseg's readers always name (a caller's array, which may
    have none, is never given to the functions that record it)."""
    if volume.source is None:
        raise InputError("the volume: no file or folder it was read from; give the file to segment_case")
    return volume.source


def _seg_reference(reference: Path | str, volume: Volume, labels: dict[int, str], label_codes: dict) -> Volume:
    """A DICOM SEG reference on the grid of ``volume`` (nothing is resampled): frame by frame on the images of the
    DICOM series it segments where ``volume`` is that series, else by its frames' own geometry on ``volume``'s voxel
    grid (an image converted from the series: dcm2niix's NIfTI); its segments matched to ``labels`` by name, else by
    the package's ``label_codes``."""
    from medseg.io.files import check_readable
    from medseg.io.seg_reading import read_dicom_seg_with_info

    check_readable(Path(reference))  # a SEG this user may not read is that, whatever the input is
    if volume.dicom is None:
        from medseg.io.dicom import conversion_series_uid
        from medseg.io.seg_placement import read_seg_on_grid

        series = conversion_series_uid(_source_of(volume))
        array = read_seg_on_grid(reference, volume.shape, volume.affine, volume.source, labels,
                                 label_codes=label_codes, outcome="nothing segmented or written",
                                 series=series and (series[0], f"its conversion's sidecar {series[1]}"),
                                 series_record=series and series[1])
        return Volume(array=array, affine=volume.affine, source=Path(reference),
                      info={"dicom_seg_placed_on": str(volume.source)})
    array, read = read_dicom_seg_with_info(reference, volume, labels, label_codes=label_codes)
    return Volume(array=array, affine=volume.affine, source=Path(reference),
                  info={"dicom_seg_source": str(volume.source), **read})


def labels_not_trained(package: ModelPackage) -> list[int]:
    """The package's labels that no training case held (``training.train_labels_absent``, recorded by `medseg
    train`: a structure missing from the cases it was trained on, or a gap declared), which it never learnt to find;
    empty for packages that do not record it."""
    absent = (package.config.get("training") or {}).get("train_labels_absent")
    if not isinstance(absent, list):
        return []
    return sorted({v for v in absent if type(v) is int and v in package.labels and v != 0})


def in_training_set(volume: Volume, package: ModelPackage) -> bool | None:
    """Whether the input is byte for byte one of the images ``package`` was trained on (its ``training`` record lists
    their SHA-256): a Dice on it overstates what the model does on new data. False says only that no training file
    is identical to it (a training image saved again would not match). None when the package does not list them
    (packages made before it did), the input has no hash, or it is a DICOM series (training reads NIfTI files
    only, and a series' hash covers all its files)."""
    hashes = (package.config.get("training") or {}).get("train_images_sha256")
    if not isinstance(hashes, list) or not volume.source_sha256 or volume.dicom is not None:
        return None
    return volume.source_sha256 in hashes


def named_like_training_case(volume: Volume, package: ModelPackage) -> str | None:
    """The training case id (``training.train_case_ids``) the input's file name matches, case-insensitively and
    without nnU-Net's channel suffix ``_0000`` (which training strips from its ids), or None. For an input
    :func:`in_training_set` found in no training file: a copy saved another way keeps its name."""
    ids = (package.config.get("training") or {}).get("train_case_ids")
    if not isinstance(ids, list) or volume.dicom is not None:
        return None
    names = {volume.name.casefold(), volume.name.casefold().removesuffix("_0000")}
    return next((str(case) for case in ids if str(case).casefold() in names), None)


def _intensity_check(volume: Volume, package) -> dict | None:
    """The input's 1st and 99th intensity percentiles as read, against the package's training images'
    (``input_intensity``) or Hounsfield units (``dicom_modality`` CT); None where the package can know neither, or
    the input has several channels (packages record one channel's intensities)."""
    trained = package.config.get("input_intensity")
    modality = package.config.get("dicom_modality")
    if (not trained and str(modality or "").upper() != "CT") or volume.channels != 1:
        return None
    percentiles = intensity_percentiles(volume.array)
    within, outside = check_intensity(percentiles, trained, modality, scale_free=_zscored(package))
    return {"percentiles": percentiles, "within": within, "outside": outside}


def _zscored(package) -> bool:
    """Whether the package z-scores its input (its segmentation does not change with the intensities' scale)."""
    return ((package.preprocessing or {}).get("intensity") or {}).get("kind") == "zscore"


def _input_check(image, package, input_path, modality: str | None = None, intensity: dict | None = None
                 ) -> dict | None:
    """The input's field of view, DICOM Modality (``modality``, a series') and intensities (:func:`_intensity_check`)
    against the package's training images (:func:`~medseg.input_range.combine_checks`); a warning (before
    inference) where they are unlike. None where the package records nothing to compare with."""
    trained = package.config.get("input_extent_mm")
    declared = package.config.get("dicom_modality")
    if not trained and not declared and not package.config.get("input_intensity"):
        return None
    extent = check_extent(model_space_extent(image), trained) if trained else None
    check = combine_checks(extent, check_modality(modality, declared), intensity)
    if extent is not None and not extent["within_training_range"]:
        warn(f"{input_path}: field of view unlike the volumes model {package.name} was trained on: "
             f"{'; '.join(extent['outside'])}; the result is not covered by its validation figures", log)
    others = [line for line in check["outside"] if extent is None or line not in extent["outside"]]
    if others:
        warn(f"{input_path}: unlike the images model {package.name} was trained on: {'; '.join(others)}; the result "
             "is not covered by its validation figures: check that this is the kind of image the model card names "
             "(modality, intensities as the scanner stores them), or use a model trained on such images", log)
    return check


def _label_counts(labels: np.ndarray, minlength: int, block: int = 1 << 16) -> np.ndarray:
    """``np.bincount(labels.ravel(), minlength)`` a block of voxels at a time: bincount casts its input to int64,
    8 bytes per voxel (315 MB for a 512×512×150 volume) where the labels take one. Blocks of 64 Ki voxels keep that
    cast in the cache: a 512×512×300 segmentation took 0.48-0.55 s of CPU in blocks of 4 Mi voxels, 0.23 s so."""
    flat = labels.reshape(-1)
    counts = np.zeros(minlength, dtype=np.int64)
    for start in range(0, flat.size, block):
        part = np.bincount(flat[start:start + block], minlength=minlength)
        if part.size > counts.size:
            counts = np.pad(counts, (0, part.size - counts.size))
        counts[: part.size] += part
    return counts


def _sidecar(volume: Volume, labels: np.ndarray, segmenter, seg_path: Path, timings: dict, tiles: int,
             input_signature: list | None = None) -> dict:
    import torch

    from medseg.platform_record import platform_record

    package = segmenter.package
    counts = _label_counts(labels, max(package.labels) + 1)
    return {
        "schema": "medseg-segmentation/1",
        "input": str(absolute_path(_source_of(volume))),  # readable from anywhere (the run's folder is not recorded)
        "input_sha256": volume.source_sha256,
        # size and modification time of the input file(s) as read (none for a DICOM folder): the QA report hashes
        # an input again only where they changed
        "input_signature": input_signature,
        "input_info": volume.info,
        "segmentation": seg_path.name,
        "segmentation_sha256": None,  # filled in once the file is written
        "shape": list(volume.shape),
        # from the affine, as the header holds it, as the metrics write it (a CT's 0.48828125 mm, not 0.4882812)
        "spacing_mm": [header_precision(v) for v in np.linalg.norm(volume.affine[:3, :3], axis=0)],
        "affine": volume.affine.tolist(),
        "labels": {str(k): v for k, v in package.labels.items()},
        "label_codes": {str(k): v for k, v in package.label_codes.items()},  # what each label is, coded (or {})
        "label_voxels": {str(k): int(counts[k]) for k in package.labels},
        "label_volume_ml": {str(k): volume_ml(counts[k], volume.voxel_volume_ml) for k in package.labels},
        "model": {
            "name": package.name,
            "version": package.config.get("version"),
            "weights_sha256": package.sha256,
            "config_sha256": package.config_sha256,  # model.json as read: a hand edit shows here
            # what of model.json decides the segmentation: the same under new label codes or notes
            "settings_sha256": package.settings_sha256,
            "path": str(absolute_path(package.path)),  # as the input: readable from anywhere
            # the window the report draws its CT in where it is given none (model.json's report.ct_window)
            **({"ct_window": package.report_ct_window} if package.report_ct_window is not None else {}),
        },
        "inference": {
            "slice_axis": segmenter.slice_axes if len(segmenter.slice_axes) > 1 else segmenter.slice_axis,
            "roi_size": list(segmenter.roi_size),
            "overlap": segmenter.overlap,
            "blend": segmenter.blend,
            "batch_size": segmenter.batch_size,
            "stitch_device": str(segmenter.stitch_device),  # where slabs were blended (CPU after a GPU ran out)
            "context_slices": segmenter.context,
            "flip_tta": segmenter.flips,
            "tiles": tiles,
        },
        "device": segmenter.device_choice.device,
        "device_reason": segmenter.device_choice.reason,
        "cpu_threads": torch.get_num_threads(),
        "precision": segmenter.precision,
        "versions": versions((volume.info.get("transfer_syntax") or "") if volume.dicom is not None else None),
        # the Python, system, CPU and its instruction set torch chose kernels for (another sums in another order)
        "platform": platform_record(segmenter.device_choice.device),
        # the command line and the folder it ran in (null from Python): paths in it are relative to that folder
        "invocation": segmenter.invocation,
        "created": record_time("the sidecar"),  # $SOURCE_DATE_EPOCH's where it is set (the timings are measured)
    }
