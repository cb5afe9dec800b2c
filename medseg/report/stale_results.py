"""Results that no longer describe their case are ``stale``: a failure record older than the results beside it
(:func:`_resolve_stale_failure`), a segmentation changed since its sidecar and metrics were written
(:func:`_check_segmentation`), an input or reference changed or replaced since the case was segmented or scored
(:func:`check_sources`), or, for a cohort's case, one away (an unmounted share, an archived or dropped file)."""

from __future__ import annotations

from pathlib import Path

from medseg.io.files import os_reason
from medseg.report.case_result import CaseResult
from medseg.report.result_records import _GIVE_READ_ACCESS, _number, _shown

__all__ = ["check_sources"]


def _modalities(sidecar: dict | None) -> int:
    """The modalities of the model a sidecar records having segmented with (its ``modalities``), or 1: a
    ``case_0000`` input of several is read with nnU-Net's channel files beside it, each of which counts where the
    input's signature, hash and availability are looked at (:func:`~medseg.cohort.records.path_signature`)."""
    names = (sidecar or {}).get("modalities")
    return len(names) if isinstance(names, list) and len(names) > 1 else 1


def _inputs_away(image: str | None, reference: str | None, modalities: int = 1) -> str | None:
    """Why a cohort's case is not shown while its ``image``, or the ``reference`` its scores were made against, is
    away (:func:`~medseg.cohort.records.unavailable`: an unmounted share, an archived file, a dataset's file dropped),
    or None: the cohort keeps what was made from them, and reuses it once they are back unchanged. Absolute paths, or
    None for a file not to be looked at. ``modalities``: those of the model that read the image (a channel file of
    nnU-Net's beside a ``case_0000`` image, dropped, is the input's being away, named)."""
    import os

    from medseg.cohort.records import cannot_look_at, input_files, unavailable
    from medseg.io.files import absent_content, missing_under
    from medseg.io.pairs import parts_not_here

    def missing(path) -> str:  # a dataset's file dropped since (datalad drop): said, with how to fetch it again
        if os.path.isdir(path):  # a DICOM series some of whose slices were dropped
            what = missing_under(path)
            return f" in part: {what}" if what else ""
        what = absent_content(path)
        if what is None and os.path.exists(path):  # a .hdr's .img, a .mhd's .raw dropped
            part = parts_not_here(path)
            return f" in part: {part}" if part else ""
        return f": {what}" if what else ""

    def why(path) -> str:  # one in a folder this user may not search was called missing
        cannot = cannot_look_at(path)
        return f": cannot read ({cannot})" if cannot is not None else f" is missing{missing(path)}"

    if image is not None and unavailable(image, modalities):
        away = next((str(file) for file in input_files(image, modalities) if unavailable(file)), image)
        what = f"the input {image}" if away == image else f"the input {image}'s channel file {os.path.basename(away)}"
        return (f"{what}{why(away)}; the results made from it earlier are kept in the results folder (not shown "
                "here), and reused if it comes back unchanged")
    if reference is not None and unavailable(reference):
        return (f"the reference {reference}{why(reference)}; the scores made against it earlier are kept in the "
                "results folder (not shown here), and reused if it comes back unchanged")
    return None


def _changed_files(role: str, path: str, modalities: int, recorded) -> str:
    """What changed of an input read from ``path``, as a message names it: ``input PATH``, or for nnU-Net's channel
    files of a ``case_0000`` input (a model of several ``modalities``) whose ``recorded`` signatures show that a
    further one changed, ``input PATH's channel file case_0001.nii.gz`` (those whose size or time differs now), so
    that the user looks at the file that changed rather than at the ``case_0000`` the row names."""

    from medseg.io.channels import channel_files
    from medseg.io.pairs import file_signature

    files = channel_files(path, modalities) if role == "input" else None
    if not files or not isinstance(recorded, list) or len(recorded) != len(files):
        return f"{role} {path}"
    changed = [file.name for file, then in zip(files, recorded) if file_signature(file) != then]
    if not changed or changed == [files[0].name]:
        return f"{role} {path}"
    return f"{role} {path}'s channel file{'s' if len(changed) > 1 else ''} {', '.join(changed)}"


def _resolve_stale_failure(case: CaseResult) -> None:
    """A failure record beside results of the same case: the newer wins. A case that failed after it was
    segmented (say, at stage evaluate) keeps its sidecar, for provenance and its overlay."""
    failure_path = case.paths.get("failure")
    others = [case.paths[kind] for kind in ("sidecar", "metrics") if kind in case.paths and getattr(case, kind)]
    if case.failure is None or failure_path is None or not others:
        return
    if case.failure.get("stage") == "evaluate" and case.metrics is None:
        return  # segmented, then failed at scoring: the sidecar stays for provenance (file times do not matter)
    newest = max(others, key=lambda p: p.stat().st_mtime)
    if newest.stat().st_mtime > failure_path.stat().st_mtime:
        case.notes.append(f"ignored {failure_path.name}: older than {newest.name}")
        case.failure = None
    elif case.metrics is not None:
        case.notes.append(f"ignored {case.paths['metrics'].name}: the case failed after it was written")
        case.metrics = None


def _check_segmentation(case: CaseResult) -> None:
    """A case's files must describe one segmentation: the file the sidecar describes, unchanged since (its SHA-256),
    and metrics that score that file. Otherwise the case is stale: its volumes and scores are not shown as its own.
    Results written before sidecars and metrics recorded the hash are taken as they are."""
    import os

    from medseg.io.atomic import sha256_of

    if case.sidecar is None or (case.failure is not None and not case.failed_at_scoring):
        return  # a case that failed only at scoring shows its segmentation's volumes: that file must be the sidecar's
    described, made = case.sidecar.get("segmentation"), case.sidecar.get("segmentation_sha256")
    path = case.segmentation_path()  # the file the report reads: in the case's folder, or where the metrics say
    if path is None and case.failure is None:
        _missing_segmentation(case)
        return
    metrics = case.metrics or {}
    scored, read = metrics.get("prediction"), metrics.get("prediction_sha256")
    metrics_name = case.paths["metrics"].name if "metrics" in case.paths else None
    why = None
    if isinstance(made, str) and path is not None:
        try:
            found = sha256_of(path)
        except PermissionError:  # the file may be whole: what to do is to let this user read it, not to redo it
            if case.failure is not None:  # failed at scoring: scoring's reason is told
                case.notes.append(f"scoring failed too: {case.failure.get('error')}")
            case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "report",
                            "input": case.sidecar.get("input"), "reference": metrics.get("reference"),
                            "error": f"{_shown(path, case.results_dir)}: cannot read (permission denied); "
                                     f"{_GIVE_READ_ACCESS}", "error_type": "UnreadableResult"}
            case.metrics = None
            return
        except OSError as error:
            found, why = None, f"{path.name}: cannot read ({os_reason(error)})"
        if found is not None and found != made:
            shown = path.name if path.parent == case.folder else str(path)
            why = (f"{shown} is not the file its sidecar {case.paths['sidecar'].name} describes (their SHA-256 "
                   "differ: it was changed or replaced after medseg wrote it)")
    if why is None and isinstance(described, str) and isinstance(scored, str) \
            and os.path.basename(scored) != os.path.basename(described):
        why = f"{metrics_name} scores {os.path.basename(scored)}, but the case's sidecar describes {described}"
    if why is None and isinstance(made, str) and isinstance(read, str) and made != read:
        why = (f"{metrics_name} scores another {described} than the one its sidecar describes (their SHA-256 differ: "
               "the segmentation was written again after it was scored)")
    again = "segment the case again (a cohort redoes a case whose folder was removed)"
    if why is None and case.metrics is not None and read is None and _volumes_differ(metrics, case.sidecar):
        why = (f"{metrics_name} scores another {described} than the one its sidecar describes (written by an earlier "
               "medseg, without the SHA-256 of the file it scored, its predicted volumes are not the sidecar's)")
        again = f"score the segmentation again (medseg evaluate -o ... --overwrite) or remove {metrics_name}"
    if why is None:
        return
    if case.metrics is not None:
        case.notes.append(f"ignored {metrics_name}: it does not score the case's segmentation")
    reference = metrics.get("reference")
    if case.failure is not None:  # failed at scoring: scoring's reason is told, the file's change decides the stage
        case.notes.append(f"scoring failed too: {case.failure.get('error')}")
        reference = case.failure.get("reference")
    case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                    "input": case.sidecar.get("input"), "reference": reference,
                    "error": f"{why}; {again}",
                    "error_type": "StaleResult"}
    case.metrics = None


def _missing_segmentation(case: CaseResult) -> None:
    """A case whose sidecar is there but whose segmentation is not (deleted or moved; a link leading nowhere) fails
    at stage ``report``, its error naming the file: it was listed as scored, or without a reference, with a
    ``geometry`` flag, so a cohort's check let it through where a segmentation cut short failed. Its metrics score a
    file that is gone: in no figure."""
    import os

    from medseg.io.files import not_there, plain_name

    described = case.sidecar.get("segmentation") if case.sidecar else None
    folder = case.paths["sidecar"].parent if "sidecar" in case.paths else case.folder
    if isinstance(described, str) and plain_name(Path(described).name):
        expected = folder / Path(described).name
    else:  # a sidecar that names none: the name medseg gives it
        expected = case.folder / f"{case.case_id}_seg.nii.gz"
    # a name this system's file name encoding cannot hold (a C locale) is not found, but is no deleted file: the
    # command's one line on the encoding, as for any file medseg cannot name here
    os.fsencode(str(expected))
    sidecar = case.paths["sidecar"].name if "sidecar" in case.paths else "sidecar"
    if case.metrics is not None:
        case.notes.append(f"ignored {case.paths['metrics'].name}: the segmentation it scores is missing")
    case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "report",
                    "input": case.sidecar.get("input"), "reference": (case.metrics or {}).get("reference"),
                    "error": f"{_shown(expected, case.results_dir)}: {not_there(expected, 'no such file')}: the "
                             f"segmentation its sidecar {sidecar} describes was deleted or moved; segment the case "
                             f"again (a cohort's next run redoes it; outside a cohort: {_infer_again(case, folder)})",
                    "error_type": "MissingResult"}
    case.metrics = None


def _infer_again(case: CaseResult, folder: Path) -> str:
    """The command that segments ``case`` again into ``folder`` as its records say it was made: its input, model (a
    shipped one by its name), DICOM series and format, and the reference it was scored against (``medseg infer
    --overwrite`` alone segmented it with the default model and dropped its scores), quoted for a shell."""
    import os
    import shlex

    from medseg.package import shipped_package_path

    sidecar = case.sidecar or {}
    model = sidecar.get("model") if isinstance(sidecar.get("model"), dict) else {}
    name, path = model.get("name"), model.get("path")
    shipped = shipped_package_path(name) if isinstance(name, str) and name else None
    if isinstance(path, str) and path and not (shipped is not None and os.path.realpath(path) == os.path.realpath(
            shipped)):
        name = path  # a package folder of the user's: by its folder, which names it
    words = ["medseg", "infer", str(sidecar.get("input") or "INPUT"), "-o", str(folder)]
    if isinstance(name, str) and name:
        words += ["--model", name]
    series = case.input_series()
    if series:
        words += ["--series", str(series)]
    if str(sidecar.get("segmentation") or "").lower().endswith(".dcm"):
        words += ["--format", "dicom-seg"]
    reference = (case.metrics or {}).get("reference")
    if isinstance(reference, str) and reference:
        words += ["--reference", reference]
    return shlex.join([*words, "--overwrite"])


def _volumes_differ(metrics: dict, sidecar: dict) -> bool:
    """Whether metrics score other labels than the sidecar's segmentation holds: a label's predicted volume unlike
    the sidecar's (to the 4 decimals early sidecars kept), for records that do not name the scored file's SHA-256."""
    volumes, labels = sidecar.get("label_volume_ml"), metrics.get("labels")
    if not isinstance(volumes, dict) or not isinstance(labels, dict):
        return False
    for value, entry in labels.items():
        scored, described = _number(entry.get("pred_volume_ml")), _number(volumes.get(value))
        # half a unit of the 4th decimal, and a hair over it: a volume on a rounding midpoint (63 voxels of
        # 0.00025 ml: 0.01575, kept as 0.0158) differs by 5e-5 plus the floats' own error
        if scored is not None and described is not None and abs(scored - described) > max(5e-5, 1e-6 * scored) * (
                1 + 1e-9):
            return True
    return False


def check_sources(cases: list[CaseResult]) -> None:
    """Mark ``stale`` each case whose input or reference changed since (:func:`_check_sources`). Run after
    :func:`~medseg.report.collect.add_expected_cases`, whose message for a cohort's case (checked against
    ``status/``) comes first."""
    for case in cases:
        _check_sources(case)


def _check_sources(case: CaseResult) -> None:
    """A case whose input or reference was changed or replaced at the same path since it was segmented or scored
    is stale: its figures are not those of the file there now (and its overlay would draw the new image under the
    old segmentation). The sidecar and the metrics record each file's size and modification time
    (``input_signature``, ``reference_signature``) and SHA-256; a file whose signature differs now is hashed, and
    its content decides (a copy with new times is the same file), unless a cohort's record of the stage holds the
    file's size and time now: the cohort hashed it at those and kept the case, so it is not hashed on every report.
    A DICOM folder, a missing file and results written before the signatures were recorded are taken as they are (a
    cohort checks those against ``status/``)."""
    import os

    from medseg.cohort.records import content_sha256
    from medseg.io.pairs import input_signature

    if case.failure is not None or case.sidecar is None:
        return
    metrics = case.metrics or {}
    away = _away_from_cohort(case)
    if away is not None:  # as the report with the cohort's sheet says it
        case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                        "input": case.sidecar.get("input"), "reference": metrics.get("reference"), "error": away,
                        "error_type": "StaleResult"}
        return
    # an input of nnU-Net's channel files (a multi-modal model's case_0000): each of them counts
    checks = [("input", case.sidecar, "segmented", "segment the case again", "infer", "image_signature",
               _modalities(case.sidecar)),
              ("reference", metrics, "scored", "score the case again", "evaluate", "reference_signature", 1)]
    for role, record, made, again, stage, key, modalities in checks:
        path, recorded, made_sha256 = record.get(role), record.get(f"{role}_signature"), record.get(f"{role}_sha256")
        if not isinstance(path, str) or not os.path.isabs(path) or recorded is None or not isinstance(made_sha256, str):
            continue
        now = input_signature(path, modalities)
        if now is None or now == recorded or _kept_by_cohort(case, stage, key, now):
            continue
        # hashed as it was then: a DICOM SEG reference's file, an image's files as reading it reads them; None
        # where unreadable now (the overlay and the geometry check say so)
        found = content_sha256(path, modalities=modalities)
        if found is None or found == made_sha256:
            continue
        why = (f"the {_changed_files(role, path, modalities, recorded)} was changed or replaced after the case "
               f"was {made} (its SHA-256 is not the one recorded then); {again} (a cohort redoes such a case)")
        if case.metrics is not None:
            case.notes.append(f"ignored {case.paths['metrics'].name}: its {role} is not the file there now")
        case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                        "input": case.sidecar.get("input"), "reference": metrics.get("reference"), "error": why,
                        "error_type": "StaleResult"}
        case.metrics = None
        return


def _away_from_cohort(case: CaseResult) -> str | None:
    """For a cohort's case (its results folder's record of the case's segmentation), why it is not shown while the
    input its sidecar names, or the reference its metrics name, is away (:func:`_inputs_away`), as the report with
    the cohort's sheet says it (the workflow passes it): without the sheet such a case was shown as scored. Results
    that ``medseg infer`` or ``evaluate`` wrote outside a cohort are taken as they are: their input may be archived
    once they are made, and nothing keeps them apart from others."""
    import os

    from medseg.cohort.records import ResultsFolder, unavailable

    records = ResultsFolder(case.results_dir)

    def made(stage: str, path) -> str | None:  # the file, where the cohort's record of the stage is of a finished one
        record = records.status(case.case_id, stage)
        return path if record is not None and record.get("outcome") == "ok" else None

    image, reference = ((path if isinstance(path, str) and os.path.isabs(path) else None)
                        for path in ((case.sidecar or {}).get("input"), (case.metrics or {}).get("reference")))
    modalities = _modalities(case.sidecar)
    if image is None or not (unavailable(image, modalities) or unavailable(reference)):  # all here: no record read
        return None
    image = made("infer", image)
    return None if image is None else _inputs_away(image, reference and made("evaluate", reference), modalities)


def _kept_by_cohort(case: CaseResult, stage: str, key: str, signature: list) -> bool:
    """Whether a cohort's finished record of the case's stage holds ``signature`` (a file's size and time now) as
    its file's: the cohort made the results from the file so, or found its content the one they were made from and
    kept them (a file touched or copied since; the sidecar and metrics keep the times they were written with)."""
    from medseg.cohort.records import ResultsFolder

    status = ResultsFolder(case.results_dir).status(case.case_id, stage)
    return status is not None and status.get("outcome") == "ok" and status.get(key) == signature
