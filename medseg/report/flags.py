"""QA flags: per-case rules, the cohort volume-outlier rule, and the worst-first order.

Every rule is stated in :func:`flag_rules`, which the report prints, so a reader knows why a case is flagged.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from medseg.numbers import counted, dice_text, with_minus
from medseg.report.case_result import CaseResult
from medseg.report.checks import SegmentationCheck

__all__ = ["DEFAULT_DICE_THRESHOLD", "DEFAULT_OUTLIER_Z", "MIN_CASES_FOR_OUTLIERS", "Flag", "flag_cases", "flag_rules",
           "robust_z", "worst_first"]

DEFAULT_DICE_THRESHOLD = 0.7
DEFAULT_OUTLIER_Z = 3.5
MIN_CASES_FOR_OUTLIERS = 5
MIN_VOLUME_DIFFERENCE_SCALE = 0.05  # of the reference volume: closer to the cohort's median is never an outlier
# of the cohort's median predicted volume: people differ by 15-20 % (hippocampus), and the MAD of 6-8 cases can come
# out far smaller by chance (one 6-case subset in seven of 200 real reference volumes then had a flag on a label)
MIN_VOLUME_SCALE = 0.10
# Dice: a cohort scored near 0.99 throughout is not told 0.97 is an outlier; 0.02 is about the spread of Dice between
# two raters on a small structure
MIN_DICE_SCALE = 0.02
# a label predicted where the reference has another: flagged from this share of its prediction or of the other label
# (a shared boundary's disagreement, a voxel or two deep, stays below it)
CONFUSION_SHARE = 0.10
# ... and from this depth past the boundary the two labels share in the reference, in voxel layers (its voxels over
# the faces they share): over the 200 hippocampus cases of the shipped model a boundary between anterior and posterior
# placed elsewhere than the reference's reached 10-20 % of a label at 1.8-3.1 layers (at most 3.1 of all 200); a leak
# of a fifth of the stomach into the liver lies 18 layers deep, a swap is the whole structure deep
CONFUSION_LAYERS = 4.0
# the groups whose accuracy outliers are judged apart (see _apart), as their medians are named in a flag
_COHORT_GROUP, _TRAINING_GROUP, _HELD_OUT_GROUP = "cohort", "training images'", "other cases'"
_APART_RULE = ("; where some cases are images the model was trained on (their sidecars say so), those and the "
               f"others are judged apart, each against its own median (a group of fewer than {MIN_CASES_FOR_OUTLIERS} "
               "cases is not judged)")
FACE_WORDS = {"i-": "first i", "i+": "last i", "j-": "first j", "j+": "last j", "k-": "first k", "k+": "last k"}


@dataclass(frozen=True)
class Flag:
    """One reason to look at a case. ``label`` names the label concerned, if any, and ``value`` is its label value:
    two values may share a name (a label file with two entries called alike), so code matches labels by value."""

    code: str
    message: str
    label: str | None = None
    value: str | None = None
    faces: tuple[str, ...] = ()  # touches_border: the faces touched (i-, k+, …), for the overlay to slice through

    @property
    def text(self) -> str:
        return f"{self.code}({self.label})" if self.label else self.code


def flag_rules(dice_threshold: float = DEFAULT_DICE_THRESHOLD, outlier_z: float = DEFAULT_OUTLIER_Z) -> dict:
    """Each flag code and the rule that raises it."""
    return {
        "failed": "the case failed (the stage and the error are shown); it has no usable result, except when it "
                  "failed only at scoring: its segmentation stands and gets the flags of an unscored one",
        "empty_prediction": "a label has no predicted voxel (when there is a reference: while the reference has it; "
                            "without one: a label the model learnt, not one that no training case held)",
        "false_positive": "a label is predicted where the reference has none",
        "label_confusion": f"a label is predicted where the reference has another label, for {CONFUSION_SHARE:.0%} "
                           f"or more of its predicted volume or of that label's reference volume, and, where the two "
                           f"share a boundary in the reference, {CONFUSION_LAYERS:.0f} voxels or more deep past it on "
                           f"average: a left/right swap (said as swapped where each took the other's place) or a "
                           f"leak into a neighbour, not a shared boundary placed a voxel or three off",
        "untrained_label": "a label the model declares but no training case of it held (the sidecar's "
                           "labels_not_trained) is predicted: the network never learnt it, so its voxels are another "
                           "structure's or noise",
        "low_dice": f"Dice below {dice_threshold:g} (of a label scored ok: an empty prediction or a false positive "
                    "has its own flag)",
        "volume_outlier": (
            f"a label's predicted volume is far from the cohort's: robust z = 0.6745·(v − median) / MAD over the "
            f"non-empty predicted volumes of that label in the cohort, |z| > {outlier_z:g} (Iglewicz–Hoaglin); "
            f"needs {MIN_CASES_FOR_OUTLIERS} cases or more; when the MAD is 0, (v − median) / (1.2533·mean absolute "
            f"deviation); the scale is never below {MIN_VOLUME_SCALE:.0%} of the median (within "
            f"{MIN_VOLUME_SCALE * outlier_z:.0%} of the median is never an outlier: a small cohort's MAD can be far "
            f"below the natural spread of volumes by chance)"
        ),
        "dice_outlier": (
            f"a label's Dice is far below the cohort's: robust z as for volume_outlier over that label's Dice in the "
            f"scored cases, z < −{outlier_z:g} (far below only), for a Dice not below {dice_threshold:g} (low_dice "
            f"flags those); the scale is never below {MIN_DICE_SCALE:g}; needs {MIN_CASES_FOR_OUTLIERS} cases or "
            f"more (a reference of another scan on the same grid can keep Dice above the threshold and the volumes "
            f"alike){_APART_RULE}"
        ),
        "touches_border": "a predicted label has voxels on a face of the volume where its reference, if there is "
                          "one, has none (it may be cut off by the field of view, or leak out of it); faces are "
                          "named in the file's voxel axes (first/last along i, j, k)",
        "distance_outlier": (
            f"a label's HD95 is far above the cohort's: robust z = 0.6745·(d − median) / MAD over that label's HD95 "
            f"in the cohort, z > {outlier_z:g}; needs {MIN_CASES_FOR_OUTLIERS} cases or more; when the MAD is 0, "
            f"(d − median) / (1.2533·mean absolute deviation); the scale is never below one voxel (the cohort's "
            f"median largest voxel size) (a stray island far from the structure barely moves Dice){_APART_RULE}"
        ),
        "geometry": "the segmentation is missing or unreadable, is not on the grid recorded for its input, the input "
                    "image or the reference as they are now is not on the segmentation's grid (a reference holding "
                    "the same voxels in another order counts as on it: scoring re-indexes it; so does a box of the "
                    "grid, as 3D Slicer crops a segmentation: scoring zero-pads it), or the case failed because two "
                    "grids differ; checked for every case",
        "volume_difference_outlier": (
            f"a label's predicted − reference volume, in percent of the reference, is far from the cohort's: robust z "
            f"as for volume_outlier over the scored cases of that label, |z| > {outlier_z:g}, the scale never below "
            f"{MIN_VOLUME_DIFFERENCE_SCALE:.0%} (a wrong reference, or a systematic over- or under-segmentation that "
            f"Dice above the threshold hides); needs {MIN_CASES_FOR_OUTLIERS} cases or more{_APART_RULE}"
        ),
        "duplicate_id": "the same case id appears in more than one folder",
        "duplicate_input": "the input is byte for byte the input of another case (same SHA-256 in the sidecars, and "
                           "for DICOM the same series): a sample sheet row pointing at the wrong file, or the same "
                           "scan twice (as a sheet for inter-rater comparison has it on purpose)",
        "unlike_training": "the input's field of view (mm per model-space axis) lies outside half the smallest to "
                           "twice the largest of the volumes the model was trained on (as its package records), or "
                           "the input is of another kind than they: a DICOM series whose DICOM Modality is not the "
                           "package's dicom_modality, or intensities unlike its training images' (negative where "
                           "none of theirs were, or the reverse; Hounsfield units for a CT package); the flag gives "
                           "the lines of the sidecar's input_check; the model's validation figures do not speak for "
                           "such an input",
        "label_like_input": "the input's voxels hold only a few small whole numbers, 0 among them, as a label image's "
                            "do: a label file given as the input (image and label folders swapped, or a sheet's "
                            "columns the wrong way round)",
        "frame_of_reference": "the reference (or the prediction), a DICOM SEG placed on the images of its series, "
                              "states another FrameOfReferenceUID than theirs, which a SEG of them shares (the "
                              "metrics' reference_frame_of_reference_mismatch, or "
                              "prediction_frame_of_reference_mismatch, names both; for a prediction SEG no record "
                              "scored, the report's reading of it; one flag where both SEGs do): its frames lie on "
                              "the images they reference and were scored or drawn there, but check that it segments "
                              "this series",
        "nothing_scored": "the metrics hold no label at all: neither image has a foreground voxel and no model named "
                          "the labels expected (scored by `medseg evaluate` without --model), so the case says "
                          "nothing about the segmentation",
    }


def robust_z(values: np.ndarray, min_scale: float = 0.0) -> np.ndarray | None:
    """Modified z-scores (x − median)/s with s = MAD/0.6745. When more than half the values are equal the MAD is
    0 (HD95 is often a whole number of voxels: eleven cases at 1.00 mm), and s = 1.2533·MeanAD stands in for it;
    s is never below ``min_scale`` (a measurement's resolution: one voxel of HD95). ``None`` when s is 0."""
    values = np.asarray(values, dtype=float)
    median = np.median(values)
    deviations = np.abs(values - median)
    mad = np.median(deviations)
    scale = max(mad / 0.6745 if mad > 0 else 1.253314 * deviations.mean(), min_scale)
    if scale == 0:
        return None
    return (values - median) / scale


def flag_cases(
    cases: list[CaseResult],
    checks: list[SegmentationCheck],
    dice_threshold: float = DEFAULT_DICE_THRESHOLD,
    outlier_z: float = DEFAULT_OUTLIER_Z,
) -> list[list[Flag]]:
    """The flags of every case (aligned with ``cases``)."""
    flags = [_case_flags(case, check, dice_threshold) for case, check in zip(cases, checks)]
    groups = _apart(cases)  # accuracy is judged within each group; the anatomy's size over all cases
    for index, flag in (_volume_outliers(cases, outlier_z) + _distance_outliers(cases, outlier_z, groups)
                        + _volume_difference_outliers(cases, outlier_z, groups)
                        + _dice_outliers(cases, outlier_z, dice_threshold, groups)):
        flags[index].append(flag)
    counts = Counter(case.case_id for case in cases)
    inputs: dict[tuple[str, str | None], list[int]] = {}
    for index, case in enumerate(cases):
        if counts[case.case_id] > 1:
            others = counted(counts[case.case_id] - 1, "other folder")
            flags[index].append(Flag("duplicate_id", f"case id also used in {others}; this one is {case.folder.name}"))
        sidecar = case.sidecar or {}
        digest = sidecar.get("input_sha256")
        # a case that failed at scoring was segmented from this input (a wrong reference beside the wrong image)
        if isinstance(digest, str) and digest and (case.status != "failed" or case.failed_at_scoring):
            # a DICOM input's digest covers the series' files: two stacks of one multi-frame file share it
            series = (sidecar.get("input_info") or {}).get("series_key")
            inputs.setdefault((digest, str(series) if series is not None else None), []).append(index)
    for same in inputs.values():
        for index in same:
            # one case id in two folders is duplicate_id's business: the same input is expected there
            others = sorted({cases[i].case_id for i in same} - {cases[index].case_id})
            if others:
                flags[index].append(Flag("duplicate_input", f"input identical to that of {', '.join(others)} (same "
                                                            "SHA-256)"))
    return _told_apart(cases, flags)


def _told_apart(cases: list[CaseResult], flags: list[list[Flag]]) -> list[list[Flag]]:
    """Flags of labels whose name another label value has too (left and right both ``hippocampus``) name the label
    as ``<value>_<name>``, as the table's columns do: ``dice_outlier(hippocampus)`` would not say which."""
    from medseg.report.table import label_names

    counts = Counter(label_names(cases).values())
    return [[replace(flag, label=f"{flag.value}_{flag.label}") if flag.label and counts[flag.label] > 1 else flag
             for flag in case_flags] for case_flags in flags]


def _frame_of_reference_reason(metrics: dict) -> str | None:
    """The reason of a case's one ``frame_of_reference`` flag: the DICOM SEGs (reference, prediction) whose
    FrameOfReferenceUID the metrics record as not that of their series' images, each named with its UID; None where
    none is. One flag for both: two of one code, unlabelled, read ``frame_of_reference;frame_of_reference``."""
    found = [(role, mismatch) for role in ("reference", "prediction")
             if isinstance(mismatch := metrics.get(f"{role}_frame_of_reference_mismatch"), dict)]
    if not found:
        return None
    series = ", ".join(dict.fromkeys(str(mismatch.get("series")) for _, mismatch in found))
    if len(found) == 1:
        role, mismatch = found[0]
        return (f"the {role} SEG's FrameOfReferenceUID {mismatch.get('seg')} is not that of its series' images "
                f"({series}): check that it segments this series")
    (_, reference), (_, prediction) = found
    return (f"the reference SEG's FrameOfReferenceUID {reference.get('seg')} and the prediction SEG's "
            f"{prediction.get('seg')} are not that of their series' images ({series}): check that they segment this "
            "series")


def _case_flags(case: CaseResult, check: SegmentationCheck, dice_threshold: float) -> list[Flag]:
    out: list[Flag] = []
    if case.failure is not None:
        failure = case.failure
        job = failure.get("job") if isinstance(failure.get("job"), dict) else {}
        # a case failed for its job's error: the error is the job's, shown once on the page (Jobs that failed)
        error = (f"its job {job['name']} failed on its last attempt for a reason of the whole job (its error is under "
                 "Jobs that failed)" if isinstance(job.get("name"), str) else failure.get("error", ""))
        out.append(Flag("failed", f"at stage {failure.get('stage', '?')}: "
                                  f"{failure.get('error_type', 'error')}: {error}"))
        if failure.get("error_type") == "GeometryError":
            out.append(Flag("geometry", "not scored: prediction and reference are on different grids"))
        if not case.failed_at_scoring:
            return out
        # failed at scoring: the segmentation stands, and is flagged as any unscored one would be
    if check.geometry:
        found = next((index for index, flag in enumerate(out) if flag.code == "geometry"), None)
        if found is None:
            out.append(Flag("geometry", "; ".join(check.geometry)))
        else:  # one geometry flag, saying both
            out[found] = replace(out[found], message="; ".join([out[found].message, *check.geometry]))
    input_check = (case.sidecar or {}).get("input_check") or {}
    if input_check.get("within_training_range") is False:
        out.append(Flag("unlike_training", _unlike_training(input_check)))
    if case.metrics is not None and not case.metrics.get("labels"):
        out.append(Flag("nothing_scored", "no label scored: neither image has a foreground voxel, and no model named "
                                          "the expected labels"))
    metrics = case.metrics or {}
    if check.frame_of_reference_mismatch is not None and "prediction_frame_of_reference_mismatch" not in metrics:
        # a prediction SEG no record scored (segmented without a reference), or scored before records kept it: the
        # report's own reading of it says so
        metrics = {**metrics, "prediction_frame_of_reference_mismatch": check.frame_of_reference_mismatch}
    frame = _frame_of_reference_reason(metrics)
    if frame is not None:
        out.append(Flag("frame_of_reference", frame))
    label_like = ((case.sidecar or {}).get("input_info") or {}).get("label_like_note")
    if isinstance(label_like, str):
        out.append(Flag("label_like_input", f"input {label_like}"))
    untrained = case.labels_not_trained  # never learnt (declared, but in no training case): empty is expected
    for label in case.labels():
        if label.status == "empty_prediction" or (label.status in ("no_reference", "not_scored")
                                                  and label.pred_volume_ml == 0 and label.value not in untrained):
            where = f" (reference {label.ref_volume_ml:.3g} ml)" if label.ref_volume_ml else ""
            out.append(Flag("empty_prediction", f"{label.name} predicted empty{where}", label.name, label.value))
        elif label.status == "false_positive":
            volume = "?" if label.pred_volume_ml is None else f"{label.pred_volume_ml:.3g}"
            out.append(Flag("false_positive", f"{label.name}: {volume} ml predicted, none in the reference",
                            label.name, label.value))
        if label.value in untrained and label.pred_volume_ml:  # the network never saw it, yet finds it
            out.append(Flag("untrained_label", f"{label.name}: {label.pred_volume_ml:.3g} ml predicted of a label no "
                                               "training case held", label.name, label.value))
        if label.dice is not None and label.dice < dice_threshold and label.status == "ok":
            out.append(Flag("low_dice", f"{label.name} Dice {dice_text(label.dice, dice_threshold)} < "
                                        f"{dice_threshold:g}", label.name, label.value))
        faces = check.border.get(label.value) or {}
        if check.reference_border is not None:  # only where the reference does not reach: a cut-off organ is fine
            # (read only for segmentations that touch a face; a scored case without it touched none)
            faces = {face: n for face, n in faces.items() if face not in check.reference_border.get(label.value, {})}
        if faces:
            where = ", ".join(f"{FACE_WORDS[face]} {count}" for face, count in faces.items())
            unlike = " where the reference does not" if check.reference_border is not None else ""
            out.append(Flag("touches_border", f"{label.name} touches the volume border{unlike} ({where} voxels)",
                            label.name, label.value, tuple(faces)))
    out.extend(_confusion_flags(case.labels()))
    return out


def _confusion_flags(labels: list) -> list[Flag]:
    """``label_confusion``: a label whose false positives in another label of the reference are
    :data:`CONFUSION_SHARE` or more of its prediction or of that label's reference and, where the two share a boundary
    in the reference, :data:`CONFUSION_LAYERS` voxel layers or more deep past it (a boundary between two labels of one
    structure placed a few voxels off is no confusion); "swapped" where the other label is so predicted in its place
    too."""
    by_value = {label.value: label for label in labels}

    def shares(label, other: str, ml: float) -> list[float] | None:
        target = by_value.get(other)
        if target is None:
            return None
        found = [ml / label.pred_volume_ml if label.pred_volume_ml else 0.0,
                 ml / target.ref_volume_ml if target.ref_volume_ml else 0.0]
        layers = label.false_positive_in_layers.get(other)  # None: no shared boundary (or a record without it)
        return found if max(found) >= CONFUSION_SHARE and (layers is None or layers >= CONFUSION_LAYERS) else None

    confused = {(label.value, other): (ml, found) for label in labels
                for other, ml in label.false_positive_in_ml.items() if (found := shares(label, other, ml)) is not None}
    out = []
    for label in labels:
        parts = []
        for (value, other), (ml, (of_prediction, of_reference)) in confused.items():
            if value != label.value:
                continue
            name = by_value[other].name
            layers = label.false_positive_in_layers.get(other)
            deep = f", {layers:.3g} voxels deep past their boundary" if layers is not None else ""
            part = (f"{ml:.3g} ml ({100 * of_prediction:.0f} % of its prediction, {100 * of_reference:.0f} % of the "
                    f"reference's {name}{deep}) where {'the reference' if not parts else 'it'} has {name}")
            if (other, value) in confused:
                part += f", and {name} where it has {label.name}: swapped"
            parts.append(part)
        if parts:
            out.append(Flag("label_confusion", f"{label.name}: " + "; ".join(parts), label.name, label.value))
    return out


def _volume_outliers(cases: list[CaseResult], outlier_z: float) -> list[tuple[int, Flag]]:
    return _outliers(cases, outlier_z, "pred_volume_ml", ("volume_outlier", "predicted volume", "ml"), lambda v: v > 0,
                     side="both", min_scale=lambda values: MIN_VOLUME_SCALE * float(np.median(values)))


def _distance_outliers(cases: list[CaseResult], outlier_z: float, groups: list[str]) -> list[tuple[int, Flag]]:
    """HD95 far above the cohort's for that label: a stray island far from the structure barely moves Dice
    (316 mm off at Dice 0.825), so Dice alone would not flag it. The scale is at least one voxel (the cohort's
    median largest voxel size): HD95 moves in voxel steps, and 2 mm against a median of 1 mm is one step."""
    voxels = [max(spacing) for case in cases if (spacing := (case.metrics or {}).get("spacing_mm"))
              and all(isinstance(v, (int, float)) for v in spacing)]
    voxel = float(np.median(voxels)) if voxels else 0.0
    return _outliers(cases, outlier_z, "hd95_mm", ("distance_outlier", "HD95", "mm"), lambda v: True,
                     side="high", min_scale=voxel, groups=groups)


def _volume_difference_outliers(cases: list[CaseResult], outlier_z: float, groups: list[str]
                                ) -> list[tuple[int, Flag]]:
    """Predicted − reference volume (percent of the reference) far from the cohort's: a reference of another case
    on the same grid can keep Dice above the threshold (0.71) while the volumes differ by 73 %."""
    def relative(label) -> float | None:  # scored labels only: an empty prediction is flagged as such
        if label.status != "ok" or label.pred_volume_ml is None or not label.ref_volume_ml:
            return None
        return 100.0 * (label.pred_volume_ml - label.ref_volume_ml) / label.ref_volume_ml

    return _outliers(cases, outlier_z, relative, ("volume_difference_outlier", "predicted − reference volume", "%"),
                     lambda v: True, side="both", min_scale=100.0 * MIN_VOLUME_DIFFERENCE_SCALE,
                     groups=groups)


def _dice_outliers(cases: list[CaseResult], outlier_z: float, dice_threshold: float, groups: list[str]
                   ) -> list[tuple[int, Flag]]:
    """Dice far below the cohort's for that label though not below the threshold (low_dice says that): a reference
    that belongs to another scan on the same grid scored 0.776 / 0.718 against a threshold of 0.7, with volumes
    within 7 %. The cohort's median and scale are taken over every scored Dice of the label."""
    def scored(label) -> float | None:
        return label.dice if label.status == "ok" else None

    return [(index, flag) for index, flag in _outliers(
        cases, outlier_z, scored, ("dice_outlier", "Dice", ""), lambda v: True, side="low", min_scale=MIN_DICE_SCALE,
        groups=groups)
        if not any(label.value == flag.value and label.dice is not None and label.dice < dice_threshold
                   for label in cases[index].labels())]


def _apart(cases: list[CaseResult]) -> list[str]:
    """Per case, the group its accuracy is judged in: where some cases are the model's training images and some are
    not, each against its own kind (training images score higher: 0.914 against 0.891 mean Dice for the shipped
    hippocampus model, so held-out cases looked like outliers beside them); otherwise all together."""
    trained = [case.in_training_set is True for case in cases]
    if any(trained) and not all(trained):
        return [_TRAINING_GROUP if known else _HELD_OUT_GROUP for known in trained]
    return [_COHORT_GROUP] * len(cases)


def _outliers(cases: list[CaseResult], outlier_z: float, key, flag: tuple[str, str, str], keep,
              side: str, min_scale=0.0, groups: list[str] | None = None) -> list[tuple[int, Flag]]:
    """Cases whose label ``key`` (an attribute name, or a function of the label) lies beyond ``outlier_z`` robust z
    of the cohort's; ``flag`` is (code, what is measured, unit); ``min_scale`` is a number or a function of the
    label's values; ``side`` is ``both``, ``high`` or ``low``: which side of the median counts. With ``groups`` (one
    name per case) each group is judged on its own."""
    code, what, unit = flag
    value_of = key if callable(key) else (lambda label: getattr(label, key))
    groups = groups or [_COHORT_GROUP] * len(cases)
    # (label value, group): (case index, value, label name)
    by_label: dict[tuple[str, str], list[tuple[int, float, str]]] = {}
    for index, case in enumerate(cases):
        for label in case.labels():
            value = value_of(label)
            if value is not None and keep(value):
                by_label.setdefault((label.value, groups[index]), []).append((index, value, label.name))
    out = []
    for (label_value, group), entries in by_label.items():
        if len(entries) < MIN_CASES_FOR_OUTLIERS:
            continue
        values = np.array([value for _, value, _ in entries])
        scores = robust_z(values, min_scale(values) if callable(min_scale) else min_scale)
        if scores is None:
            continue
        median = float(np.median(values))
        for (index, value, name), z in zip(entries, scores):
            if {"both": abs(z), "high": z, "low": -z}[side] > outlier_z:
                score = _signed(z, outlier_z)
                out.append((index, Flag(code, f"{name} {what} {_amount(value, unit)}, {group} median "
                                              f"{_amount(median, unit)} (robust z {score})", name, label_value)))
    return out


def _signed(value: float, beyond: float | None = None) -> str:
    """One decimal, signed; a flagged score (|value| > ``beyond``) gets more decimals until its text does not read
    as sitting on the limit (−3.516 against 3.5 reads −3.52, not −3.5)."""
    for places in range(1, 7):
        text = f"{value:+.{places}f}"
        if beyond is None or abs(float(text)) > beyond:
            break
    return with_minus(text)


def _amount(value: float, unit: str) -> str:
    """A flagged amount with its unit: percentages signed to one decimal (zero unsigned: no "-0.0 %"), a Dice (no
    unit) as the tables show it, others 3 digits; a typographic minus, as in the report's tables."""
    if not unit:
        return dice_text(value)
    if unit != "%":
        return with_minus(f"{value:.3g}") + f" {unit}"
    text = f"{value:+.1f}"
    return ("0.0" if float(text) == 0 else with_minus(text)) + " %"


def worst_first(cases: list[CaseResult], flags: list[list[Flag]]) -> list[int]:
    """Indices of ``cases`` worst first: failed cases, then flagged cases before the others; within each, by
    lowest Dice over labels (cases without a Dice after those with one), then by number of flags (most first),
    then by case id. A flagged case without a reference is never ranked below clean ones (nor left without an
    overlay while they get one)."""

    def key(index: int):
        case = cases[index]
        dice = case.min_dice()
        return (case.status != "failed", not flags[index], math.inf if dice is None else dice, -len(flags[index]),
                case.case_id)

    return sorted(range(len(cases)), key=key)


def _unlike_training(input_check: dict) -> str:
    """The ``unlike_training`` flag's text: the field of view's axes outside the training range, then the DICOM
    Modality and intensity lines (sidecars before those checks hold field-of-view lines alone)."""
    lines = [str(v) for v in input_check.get("outside", [])]
    other = [line for line in lines if line.startswith(("DICOM Modality ", "intensity "))]
    fov = [line for line in lines if line not in other]
    parts = (["field of view unlike the model's training volumes: " + "; ".join(fov)] if fov else []) + (
        ["unlike the model's training images: " + "; ".join(other)] if other else [])
    return "; ".join(parts)
