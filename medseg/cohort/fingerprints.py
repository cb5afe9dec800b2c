"""What a cohort case's results were made for, and whether results made earlier still stand.

A finished record carries a fingerprint of the work it was made for (the input, the model, the settings that change
results; for scores, the segmentation run and the reference). Results are kept while their file is away (an unmounted
share) or where only its size or time changed (its content hashed once, the record signed anew); :func:`stale_cases`
lists those made for other work than the sheet and settings ask for now. A kept segmentation's sidecar takes the
package's DICOM codes of its labels where they have changed since (codes change no segmentation).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from medseg.cohort.attempts import retried_with
from medseg.cohort.forced_runs import redo_for_job
from medseg.cohort.records import (
    ResultsFolder,
    content_sha256,
    fingerprint,
    made_for,
    path_signature,
    readable_again,
    unavailable,
    write_json,
)
from medseg.cohort.samples import Sample
from medseg.io.atomic import atomic_paths
from medseg.jsonfile import RESULT_BYTES, read_json_object

if TYPE_CHECKING:
    from medseg.cohort.run import InferOptions

__all__ = ["equivalent_fingerprints", "evaluate_fingerprint", "evaluate_kept", "evaluate_same_content",
           "FinishedCases", "finished_cases", "infer_fingerprint", "infer_kept", "infer_same_content",
           "package_modalities", "stale_cases"]

# the cohort step's logger, whichever of its modules logs: its lines are told as "INFO medseg.cohort.run: ..."
log = logging.getLogger("medseg.cohort.run")


_NOW = object()  # a file's signature as it is now


def package_modalities(package) -> int:
    """The images a case gives ``package`` (a :class:`medseg.package.ModelPackage`): its modalities, or 1. A
    ``case_0000`` input of a model of several is nnU-Net's channel files, each of which counts where the input's
    signature, hash and availability are looked at (:func:`~medseg.cohort.records.path_signature`)."""
    return int(getattr(package, "n_modalities", 1) or 1)


def infer_fingerprint(sample: Sample, package, options: InferOptions, image_signature=_NOW) -> str:
    """What makes a segmentation: the input (path, sizes, times), the model (its weights and every field of its
    ``model.json`` but the training record and the DICOM SEG codes, which a NIfTI result does not carry: labels,
    preprocessing, tiles, blending, context, version) and the settings that change results (device and precision
    as requested, tile overlap). The batch size does not count. ``image_signature``: the input's
    :func:`path_signature` to use instead of the one it has now (for a multi-modal model, of each of nnU-Net's channel
    files of a ``case_0000`` input)."""
    overlap = package.inference["overlap"] if options.overlap is None else options.overlap
    model_config = {key: value for key, value in package.config.items() if key not in ("training", "label_codes")}
    signature = (path_signature(sample.image, package_modalities(package)) if image_signature is _NOW
                 else image_signature)
    return fingerprint(stage="infer", case_id=sample.case_id, image=str(sample.image),
                       image_signature=signature, series=sample.series,
                       model=package.name, weights_sha256=package.sha256, model_config=model_config,
                       device=options.device, precision=options.precision, overlap=float(overlap))


def equivalent_fingerprints(sample: Sample, package, options: InferOptions, image_signature, device: str,
                            precision: str) -> list[str]:
    """The fingerprints of the other requests that would have made what ``options`` made on ``device`` in
    ``precision`` (what ``auto`` chose): each setting as asked or as used (``cuda`` for ``cuda:0``; precision
    ``auto`` where it resolves to the one used), so that naming what ``auto`` chose does not redo a cohort."""
    from medseg.device import resolve_precision

    devices = {options.device, device} | ({"cuda"} if device == "cuda:0" else set())
    precisions = {options.precision, precision}
    if resolve_precision("auto", device) == precision:
        precisions.add("auto")
    own = infer_fingerprint(sample, package, options, image_signature)
    # precision auto follows the device: with device auto too, it may choose another precision elsewhere (fp16 on a
    # GPU node) than the one asked for here, so that pair counts only where it was the request
    prints = {infer_fingerprint(sample, package, replace(options, device=d, precision=p), image_signature)
              for d in devices for p in precisions if (d, p) != ("auto", "auto")}
    return sorted(prints - {own})


def evaluate_fingerprint(sample: Sample, inferred: dict, reference_signature=_NOW) -> str:
    """What makes a case's scores: the segmentation run they score and the reference (path, sizes, times)."""
    signature = path_signature(sample.reference) if reference_signature is _NOW else reference_signature
    return fingerprint(stage="evaluate", case_id=sample.case_id, infer_run=inferred["run_id"],
                       reference=str(sample.reference), reference_signature=signature)


def _kept_while_unavailable(folder: ResultsFolder, case_id: str, stage: str, key: str, print_with) -> bool:
    """Whether a stage's finished results were made for exactly the work asked now, but for the file being there
    (an unmounted share, an archived file): ``print_with(signature)`` is the fingerprint with the file's recorded
    signature (``key`` in the record). Such results are kept, not cleared, and reused when the file is back
    unchanged. A record without the signature (written before medseg stored it) cannot show that: its results are
    cleared as before."""
    record = folder.status(case_id, stage)
    return bool(record and record.get("outcome") == "ok" and key in record
                and made_for(record, print_with(record[key]))
                and folder.case_outputs_present(case_id, stage))


def infer_kept(sample: Sample, folder: ResultsFolder, package, options: InferOptions) -> bool:
    """Whether the case's image is unavailable (missing, or a folder without files) while its segmentation, made
    for this row, model and settings, is kept (see :func:`_kept_while_unavailable`)."""
    return unavailable(sample.image, package_modalities(package)) and _kept_while_unavailable(
        folder, sample.case_id, "infer", "image_signature", lambda s: infer_fingerprint(sample, package, options, s))


def evaluate_kept(sample: Sample, folder: ResultsFolder, inferred: dict) -> bool:
    """As :func:`infer_kept` for a case's reference and its scores."""
    return sample.reference is not None and unavailable(sample.reference) and _kept_while_unavailable(
        folder, sample.case_id, "evaluate", "reference_signature",
        lambda s: evaluate_fingerprint(sample, inferred, s))


def _recorded(path: Path, key: str) -> str | None:
    """A text field a case's sidecar or metrics (``path``) record (a SHA-256, the device used), or None."""
    try:
        value = read_json_object(path, RESULT_BYTES, "a medseg result record").get(key)
    except (OSError, ValueError):  # a JsonFileError too
        return None
    return value if isinstance(value, str) and value else None


def _same_content(folder: ResultsFolder, case_id: str, stage: str, key: str, path: Path, print_with,
                  made_sha256, series: str | None = None, channels: int = 1) -> str | None:
    """The recorded signature (``key`` in the stage's record) of a file whose size or time differs now but whose
    content does not: the stage's results were made for exactly the work asked now with that signature
    (``print_with(signature)``), and the file's SHA-256 now is ``made_sha256()`` (what the results record having
    read: the sidecar's ``input_sha256``, the metrics' ``reference_sha256``). A file touched, copied without
    ``-p``, or restored from a backup without its times keeps its results. None otherwise (the file is hashed only
    where all else holds). ``channels``: the modalities of the model that reads it (:func:`path_signature`)."""
    record = folder.status(case_id, stage)
    old = record.get(key) if record is not None and record.get("outcome") == "ok" else None
    if old in (None, "missing") or old == path_signature(path, channels) \
            or folder.finished(case_id, stage, print_with(old)) is None:
        return None
    made = made_sha256()
    return old if made is not None and content_sha256(path, series, channels) == made else None


def infer_same_content(sample: Sample, folder: ResultsFolder, package, options: InferOptions) -> str | None:
    """The image signature the case's segmentation was made with, where the image's size or time changed since but
    not its content (see :func:`_same_content`), else None."""
    return _same_content(folder, sample.case_id, "infer", "image_signature", sample.image,
                         lambda s: infer_fingerprint(sample, package, options, s),
                         lambda: _recorded(folder.sidecar(sample.case_id), "input_sha256"), sample.series,
                         package_modalities(package))


def evaluate_same_content(sample: Sample, folder: ResultsFolder, inferred: dict) -> str | None:
    """As :func:`infer_same_content` for a case's reference and its scores."""
    if sample.reference is None:
        return None
    return _same_content(folder, sample.case_id, "evaluate", "reference_signature", sample.reference,
                         lambda s: evaluate_fingerprint(sample, inferred, s),
                         lambda: _recorded(folder.metrics(sample.case_id), "reference_sha256"))


def _resign_infer(sample: Sample, folder: ResultsFolder, package, options: InferOptions, old, signature) -> None:
    """Give a kept segmentation's record the image's signature now (its content unchanged): its fingerprint and
    the equivalent requests' (``also_made_for``) as they are with it, so the image is hashed once, not every run."""
    record = folder.status(sample.case_id, "infer") or {}
    # the requests its fingerprints may stand for: this one, the usual ones, and what the sidecar says was used
    devices = {options.device, "auto", "cpu", "cuda", "cuda:0", _recorded(folder.sidecar(sample.case_id), "device")}
    precisions = {options.precision, "auto", "fp32", "bf16", "fp16",
                  _recorded(folder.sidecar(sample.case_id), "precision")}
    again = {infer_fingerprint(sample, package, replace(options, device=d, precision=p), old):
             infer_fingerprint(sample, package, replace(options, device=d, precision=p), signature)
             for d in devices - {None} for p in precisions - {None}}
    own = again.get(record.get("fingerprint"), infer_fingerprint(sample, package, options, signature))
    also = [again[p] for p in record.get("also_made_for") or [] if p in again]
    write_json(folder.status_path(sample.case_id, "infer"),
               {**record, "fingerprint": own, "image_signature": signature, "also_made_for": also})
    log.info("%s: the image's size or time changed but not its content; its segmentation is kept", sample.case_id)



def _outdated_sidecar(folder: ResultsFolder, case_id: str, package) -> dict | None:
    """A kept case's sidecar whose ``label_codes`` differ from ``package``'s (None where they agree, or where it
    cannot be read: not the infer step's to mend; scoring and the report say what is wrong with it)."""
    try:
        sidecar = read_json_object(folder.sidecar(case_id), RESULT_BYTES, "a prediction sidecar")
    except (OSError, ValueError):  # a JsonFileError too
        return None
    codes = {str(k): v for k, v in package.label_codes.items()}
    return sidecar if sidecar.get("label_codes", {}) != codes else None


def _codes_changed(folder: ResultsFolder, case_id: str, package) -> bool:
    return _outdated_sidecar(folder, case_id, package) is not None


def _recode_sidecar(sample: Sample, folder: ResultsFolder, package) -> None:
    """A kept segmentation's sidecar given the package's DICOM codes of its labels where they have changed since.
    Codes change no segmentation, so the case is not segmented again; but they match a reference DICOM SEG's
    segments, so the infer record gets a new run id first (scores are made for a run: they are made again, and a
    run killed before the sidecar is written recodes it next time)."""
    sidecar = _outdated_sidecar(folder, sample.case_id, package)
    if sidecar is None:
        return
    record = folder.status(sample.case_id, "infer")
    if record is not None:
        write_json(folder.status_path(sample.case_id, "infer"), {**record, "run_id": os.urandom(8).hex()})
    sidecar["label_codes"] = {str(k): v for k, v in package.label_codes.items()}
    with atomic_paths([folder.sidecar(sample.case_id)], overwrite=True) as (temp,):
        temp.write_text(json.dumps(sidecar, indent=2) + "\n")
    log.info("%s: the sidecar's label codes brought up to date with model %s", sample.case_id, package.name)


def stale_cases(samples: Sequence[Sample], results: Path | str, package, options: InferOptions
                ) -> dict[str, list[str]]:
    """Per stage, the cases whose finished record was made for other work than the sheet and settings now ask
    for (another image or series, a replaced file, another model or setting; for scores, another reference or a
    newer segmentation); not a file whose size or time changed but not its content (:func:`_same_content`, which
    the job applies as well). The workflow voids those batches' job records at planning time: Snakemake's own change
    detection lives in the working folder's ``.snakemake`` metadata, which a run from another checkout, or with a
    copied results folder, does not have."""
    folder = ResultsFolder(results)
    stale: dict[str, list[str]] = {"infer": [], "evaluate": []}
    for sample in samples:
        inferred = folder.status(sample.case_id, "infer")
        if inferred is None:
            continue
        if readable_again(inferred):  # failed on a file it could not read, which it may read now
            stale["infer"].append(sample.case_id)
            continue
        if inferred.get("job_failed"):  # not made: its job failed (the planning says so, medseg.cohort.stale_jobs)
            continue
        if not made_for(inferred, infer_fingerprint(sample, package, options)):
            if not infer_kept(sample, folder, package, options) \
                    and infer_same_content(sample, folder, package, options) is None:
                stale["infer"].append(sample.case_id)
                continue
            # a kept segmentation's job would only keep it again; its scores may still be stale (another
            # reference, or none)
        elif inferred.get("outcome") == "ok" and _codes_changed(folder, sample.case_id, package):
            stale["infer"].append(sample.case_id)  # kept, but its sidecar takes the package's codes (_recode_sidecar)
            continue
        scored = folder.status(sample.case_id, "evaluate")
        # not scored: its job failed (the planning says so, as for a segmentation)
        if scored is not None and (sample.reference is None  # scores whose reference left the sheet: to remove
                                   or (not scored.get("job_failed") and readable_again(scored))
                                   or (not scored.get("job_failed")
                                       and scored.get("fingerprint") != evaluate_fingerprint(sample, inferred)
                                       and not evaluate_kept(sample, folder, inferred)
                                       and evaluate_same_content(sample, folder, inferred) is None)):
            stale["evaluate"].append(sample.case_id)
    return stale


class FinishedCases(NamedTuple):
    """A cohort's cases done for a run's work (:func:`finished_cases`)."""

    finished: int  # segmented (or failed for good) and, with a reference, scored
    unscored: int  # segmented, their scores still to be made


def finished_cases(batches: Mapping[str, Sequence[Sample]], results: Path | str, package, options: InferOptions,
                   redo: Mapping[str, str | None] | None = None,
                   memory_mb: Mapping[str, int | None | Mapping[str, int | None]] | None = None) -> FinishedCases:
    """How many of the cases of ``batches`` (batch name: its cases) are finished for the work this run asks for, as
    its jobs judge them: segmented (or failed for good) for this row, model and settings, and, where the segmentation
    stands and the row names a reference, scored against it; and how many more are segmented so but not scored yet.
    ``redo``: the forced run's value per stage (``infer``, ``evaluate``;
    :func:`~medseg.cohort.forced_runs.redo_values`), under whose token a forced batch's cases must be made again.
    ``memory_mb``: per stage, the memory this run's jobs start with, one figure or one per batch (as
    :func:`~medseg.cohort.stale_jobs.void_stale_jobs` takes it): a case given up with less is tried again by them
    (:func:`~medseg.cohort.attempts.retried_with`), so it is not finished either.
    Results made for other work (another model or setting, or before a forcing option) are still in the folder, but
    its jobs make them again, so they do not count."""
    redo = redo or {}
    memory_mb = memory_mb or {}
    finished = unscored = 0
    for batch, samples in batches.items():
        made = ResultsFolder(results, redo=redo_for_job(redo.get("infer"), f"{batch}.infer.json"))
        scored = ResultsFolder(results, redo=redo_for_job(redo.get("evaluate"), f"{batch}.evaluate.json"))
        memory = {stage: figure.get(batch) if isinstance(figure := memory_mb.get(stage), Mapping) else figure
                  for stage in ("infer", "evaluate")}
        for sample in samples:
            inferred = made.finished(sample.case_id, "infer", infer_fingerprint(sample, package, options))
            if retried_with(inferred, memory["infer"]):
                continue
            if inferred is None and (infer_kept(sample, made, package, options)
                                     or infer_same_content(sample, made, package, options) is not None):
                inferred = made.status(sample.case_id, "infer")
            if inferred is None:
                continue
            done = scored.finished(sample.case_id, "evaluate", evaluate_fingerprint(sample, inferred))
            if inferred.get("outcome") != "ok" or sample.reference is None \
                    or (done is not None and not retried_with(done, memory["evaluate"])) \
                    or evaluate_kept(sample, scored, inferred) \
                    or evaluate_same_content(sample, scored, inferred) is not None:
                finished += 1
            else:
                unscored += 1
    return FinishedCases(finished, unscored)
