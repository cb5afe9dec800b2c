"""Cohort statistics per label, provenance, and the ``summary.json`` record (schema ``medseg-summary/1``)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from medseg.numbers import counted
from medseg.report.case_result import CaseResult
from medseg.report.flags import Flag
from medseg.report.result_records import METRIC_FIELDS

__all__ = ["SUMMARY_SCHEMA", "describe", "foreground_mean", "label_statistics", "model_text", "models_text",
           "pooled_models", "provenance", "report_time", "summary_record", "training_images"]

SUMMARY_SCHEMA = "medseg-summary/1"


def describe(values: list[float]) -> dict:
    """n, mean, median, std (sample, ddof=1), min and max of the defined values; ``None`` where undefined."""
    data = np.array([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return {"n": 0, "mean": None, "median": None, "std": None, "min": None, "max": None}
    same = bool(data.min() == data.max())  # equal values: mean exact, std 0 (numpy's sums gave 2.4e-16)
    middle = np.sort(data)[(data.size - 1) // 2:data.size // 2 + 1]  # one value, or the two a median averages
    return {
        "n": int(data.size),
        "mean": float(data[0]) if same else _without_last_bits(data.mean(), data),
        "median": float(middle[0]) if middle[0] == middle[-1] else _without_last_bits(middle.mean(), middle),
        "std": (0.0 if same else float(data.std(ddof=1))) if data.size > 1 else None,
        "min": float(data.min()),
        "max": float(data.max()),
    }


def _without_last_bits(value, values: np.ndarray) -> float:
    """A mean to 15 significant digits: sums and halves leave binary residue in the last bits (the median of 0.1
    and 0.2 is 0.15000000000000002, of two volumes 0.343 ml 0.34299999999999997); a double holds 15 sure digits.
    Kept within the ``values`` averaged: of values closer than that, the rounding could leave them (a mean Dice of
    1.0 over 0.9999999999999998 and 0.9999999999999999)."""
    return min(max(float(f"{float(value):.15g}"), float(values.min())), float(values.max()))


STATISTIC_FIELDS = (*METRIC_FIELDS, "volume_difference_ml")


def report_time() -> str:
    """When the report is made, as ISO 8601 in UTC: now, or the time ``$SOURCE_DATE_EPOCH`` gives (seconds since
    1970, the reproducible-builds convention), so that two reports of the same results are byte-identical (a QA
    team diffing them sees only what changed); an unreadable value is named in a warning and now is used
    (:func:`medseg.record_time.record_time`)."""
    from medseg.record_time import record_time

    return record_time("the report")


def label_statistics(cases: list[CaseResult]) -> dict[str, dict]:
    """Per label value: its name, the statistics of every metric, and how many cases had each status: one per case
    whose results name the label, and ``failed`` for each case that failed before it was segmented (it has no labels
    of its own), so that where every case's model has the same labels a label's counts add up to the cases.

    Predicted volumes come from every segmented case, reference volumes only from scored ones, so their means may
    be over different cases; ``volume_difference_ml`` (predicted − reference) pairs them case by case."""
    gathered: dict[str, dict] = {}
    for case in cases:
        for label in case.labels():
            entry = gathered.setdefault(label.value, {"names": [], "unnamed": label.name, "status": Counter(),
                                                      **{key: [] for key in STATISTIC_FIELDS}})
            if label.named and label.name not in entry["names"]:  # not the label_N of a case scored without names
                entry["names"].append(label.name)
            entry["status"][label.status] += 1
            for key in METRIC_FIELDS:
                entry[key].append(getattr(label, key))
            paired = label.pred_volume_ml is not None and label.ref_volume_ml is not None
            entry["volume_difference_ml"].append(label.pred_volume_ml - label.ref_volume_ml if paired else None)
    failed = sum(case.failed_before_scoring for case in cases)  # left out, the counts fell short of the cases
    out = {}
    for value in sorted(gathered, key=lambda v: int(v) if v.isdigit() else 1 << 30):
        entry = gathered[value]
        if failed:
            entry["status"]["failed"] += failed
        out[value] = {
            "name": "/".join(entry["names"]) or entry["unnamed"],
            "status_counts": dict(sorted(entry["status"].items())),
            **{key: describe(entry[key]) for key in STATISTIC_FIELDS},
        }
        volumes = [abs(v) for key in ("pred_volume_ml", "ref_volume_ml") for v in entry[key] if v]
        out[value]["volume_difference_ml"] = _without_float_residue(out[value]["volume_difference_ml"], volumes)
    return out


def foreground_mean(labels: dict[str, dict]) -> dict:
    """The mean over the labels of each label's mean Dice, nnU-Net's ``foreground_mean`` of its ``summary.json``
    (background is no label here): ``dice`` (``None`` where no label has a Dice), ``labels`` (how many labels' means
    it averages) and ``without_dice`` (the values of the labels that have none, all their cases both empty or
    failed: nnU-Net's mean is NaN then, since a NaN label mean enters it)."""
    means = {value: (entry.get("dice") or {}).get("mean") for value, entry in labels.items()}
    defined = np.array([mean for mean in means.values() if mean is not None], dtype=float)
    return {
        "dice": _without_last_bits(defined.mean(), defined) if defined.size else None,
        "labels": int(defined.size),
        "without_dice": [value for value, mean in means.items() if mean is None],
    }


def _without_float_residue(stats: dict, volumes: list[float]) -> dict:
    """Differences of volumes carry the volumes' float noise (0.09 − 0.09 over two cases gave a mean of −2.2e-16
    ml, shown as a real value): values are kept to 12 significant digits of the label's largest volume, as the
    volumes themselves are written."""
    if not volumes:
        return stats
    places = 12 - math.ceil(math.log10(max(volumes)))
    return {k: (round(v, places) + 0.0 if isinstance(v, float) else v) for k, v in stats.items()}


def training_images(cases: list[CaseResult], labels: dict[str, dict]) -> dict | None:
    """Where some cases are images the model was trained on: how many, and the Dice per label of those and of the
    other cases apart (a training image's Dice overstates what the model does on new data); else None. ``labels``:
    :func:`label_statistics` of all the cases, for the labels' names."""
    trained = [case for case in cases if case.in_training_set is True]
    if not trained:
        return None
    # a case that failed before its input was hashed is in neither group; one that does not tell (a DICOM series, a
    # sidecar of an older medseg) is among the others, as outliers are judged (flags._apart)
    unknown = [case for case in cases if case.failed_before_scoring]
    others = [case for case in cases if case.in_training_set is not True and not case.failed_before_scoring]
    names = {value: stats["name"] for value, stats in labels.items()}
    groups = {"training": label_statistics(trained), "other": label_statistics(others)}
    return {
        "cases": len(trained),
        "other_cases": len(others),
        "unknown_cases": len(unknown),
        "dice": {value: {"name": name, **{group: stats[value]["dice"] if value in stats else describe([])
                                          for group, stats in groups.items()}}
                 for value, name in names.items()},
    }


def provenance(cases: list[CaseResult]) -> dict:
    """Models, software versions, devices, precisions, tile overlaps and the time span recorded in the cases'
    sidecars."""
    models: dict[tuple, int] = Counter()
    versions: dict[str, set] = {}
    devices: Counter = Counter()
    # settings that change labels beyond the model and the device: fp32 and bf16 labels differ in a few voxels
    precisions: Counter = Counter()
    overlaps: Counter = Counter()
    created = []
    for case in cases:
        sidecar = case.sidecar or {}
        model = sidecar.get("model") or {}
        if model:
            # model.json's hash too: the same weights under an edited config (labels, preprocessing) are another model
            models[(model.get("name"), model.get("version"), model.get("weights_sha256"),
                    model.get("config_sha256"), model.get("settings_sha256"))] += 1
        for package, version in (sidecar.get("versions") or {}).items():
            versions.setdefault(str(package), set()).add(str(version))
        if sidecar.get("device"):
            devices[str(sidecar["device"])] += 1
        if sidecar.get("precision"):
            precisions[str(sidecar["precision"])] += 1
        inference = sidecar.get("inference")
        if isinstance(inference, dict) and inference.get("overlap") is not None:
            overlaps[str(inference["overlap"])] += 1
        if sidecar.get("created"):  # when it was segmented (a failure record's time is when it failed)
            created.append(str(sidecar["created"]))
    return {
        "models": [
            {"name": name, "version": version, "weights_sha256": sha, "config_sha256": config,
             "settings_sha256": settings, "cases": count}
            for (name, version, sha, config, settings), count in sorted(models.items(),
                                                                       key=lambda kv: (-kv[1], str(kv[0])))
        ],
        "versions": {package: sorted(found) for package, found in sorted(versions.items())},
        "devices": dict(devices),
        "precisions": dict(precisions),
        "overlaps": dict(overlaps),
        "created_first": min(created) if created else None,
        "created_last": max(created) if created else None,
    }


def pooled_models(cases: list[CaseResult]) -> list[dict]:
    """The models whose cases the label statistics and outlier flags pool (cases with labels of their own: a failed
    one has none), as :func:`provenance` lists them, when there are more than one; empty otherwise. Entries that
    differ only in ``model.json``'s hash, with the same ``settings_sha256`` (new label codes, an edited training
    record), are one model: its ``config_sha256`` is null where they had several."""
    listed = provenance([case for case in cases if case.labels()])["models"]
    # a sidecar of an earlier medseg records no settings_sha256: that of a later one under the same model.json
    settings = {m["config_sha256"]: m["settings_sha256"] for m in listed if m["config_sha256"] and m["settings_sha256"]}
    merged: dict[tuple, dict] = {}
    for model in listed:
        made_by = _made_by(model, settings)
        if made_by in merged:
            same = merged[made_by]
            same["cases"] += model["cases"]
            if same["config_sha256"] != model["config_sha256"]:
                same["config_sha256"] = None
        else:
            kind, sha = made_by[3]
            merged[made_by] = {**model, "settings_sha256": sha if kind == "settings" else None}
    models = sorted(merged.values(), key=lambda m: (-m["cases"], str(_made_by(m, settings))))
    return models if len(models) > 1 else []


def _made_by(model: dict, settings: dict) -> tuple:
    """What tells a provenance entry's segmentations from another's: name, version, weights and the settings of
    model.json that decide them (``settings``: those of each model.json hash, for a sidecar of an earlier medseg,
    which does not record them), or, where those are not known, all of model.json."""
    known = model.get("settings_sha256") or settings.get(model.get("config_sha256"))
    return (model.get("name"), model.get("version"), model.get("weights_sha256"),
            ("settings", known) if known else ("config", model.get("config_sha256")))


def model_text(model: dict) -> str:
    """A model as ``medseg models`` and its card name it: ``phantom version 2`` (``phantom 2`` read as one name),
    ``phantom`` where no version is recorded, ``unknown`` where not even a name is."""
    name = str(model.get("name") or "")
    version = model.get("version")
    return (f"{name} version {version}" if name and version not in (None, "") else name) or "unknown"


def models_text(models: list[dict]) -> str:
    """``phantom version 2: 2 cases; phantom version 1: 1 case``, from :func:`provenance`'s list; where two share a
    name and a version (weights retrained or edited without a new version), with the start of each one's weights
    SHA-256 and model.json settings SHA-256 (of model.json, where the sidecars do not record its settings')."""
    names = [model_text(m) for m in models]
    return "; ".join(
        (f"{name} (weights {_short(m.get('weights_sha256'))}, {_settings_text(m)})"
         if names.count(name) > 1 else name) + f": {counted(m['cases'], 'case')}"
        for name, m in zip(names, models))


def _settings_text(model: dict) -> str:
    if model.get("settings_sha256"):
        return f"model.json settings {_short(model['settings_sha256'])}"
    return f"model.json {_short(model.get('config_sha256'))}"


def _short(sha256) -> str:
    """A SHA-256 shortened as medseg's lines shorten one (``e43d0f2b9f34…``); ``unknown`` where a sidecar recorded
    none (an earlier medseg's, or model.json hashes merged: "None…" read as a hash)."""
    return f"{str(sha256)[:12]}…" if sha256 else "unknown"


def summary_record(
    results_dir: Path,
    cases: list[CaseResult],
    flags: list[list[Flag]],
    settings: dict,
    rules: dict,
    policy: dict,
) -> dict:
    """The content of ``summary.json``, ``results_dir`` made absolute as the cases' paths are."""
    import medseg
    from medseg.io.files import absolute_path

    flag_counts = Counter(flag.code for case_flags in flags for flag in case_flags)
    cases_per_flag = Counter(code for case_flags in flags for code in {flag.code for flag in case_flags})
    status = Counter(case.status for case in cases)
    labels = label_statistics(cases)
    return {
        "schema": SUMMARY_SCHEMA,
        "created": report_time(),
        "medseg_version": medseg.__version__,
        "results_dir": str(absolute_path(results_dir)),
        "settings": settings,
        "cases": {
            "total": len(cases),
            "scored": status.get("scored", 0),
            "no_reference": status.get("no_reference", 0),
            "failed": status.get("failed", 0),
            "flagged": sum(1 for case_flags in flags if case_flags),
            "in_training_set": sum(case.in_training_set is True for case in cases),
            # segmented, but no label predicted anywhere (a blank or unusual scan, the wrong model)
            "empty": sum(_predicted_empty(case) for case in cases),
        },
        "training_images": training_images(cases, labels),
        "flags": {code: {"cases": cases_per_flag[code], "flags": flag_counts[code]} for code in rules
                  if cases_per_flag[code]},
        "labels": labels,
        "foreground_mean": foreground_mean(labels),
        "provenance": provenance(cases),
        "pooled_models": pooled_models(cases),
        "policy": policy,
        "flag_rules": rules,
    }


def _predicted_empty(case: CaseResult) -> bool:
    """A case whose segmentation holds no label: every label's predicted volume is 0 (a case that failed before it
    was segmented has none)."""
    labels = case.labels()
    return bool(labels) and all(label.pred_volume_ml == 0 for label in labels)
