"""The model card (``MODEL_CARD.md``) written beside a trained package: the labels, network, data, training
settings and validation figures in a short markdown text, from the package config the run recorded."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from medseg.checkout import commit_text
from medseg.label_map import classes_note
from medseg.numbers import counted, dice_round_text
from medseg.package_labels import codes_text
from medseg.train_config import validation_without_foreground

__all__ = ["CARD_NAME", "MAX_CARD_BYTES", "card_weights_mismatch", "card_with_codes", "model_card", "read_card"]

CARD_NAME = "MODEL_CARD.md"
# as model.json's cap: a card medseg writes is a few kB, one of a package from elsewhere is read no further than this
MAX_CARD_BYTES = 16 << 20

# the training settings the card's training sentence words itself (the others are listed as they are)
_CARD_SETTINGS = {"epochs", "steps_per_epoch", "batch_size", "patch_size", "learning_rate", "schedule", "warmup_epochs",
                  "batch_dice", "precision", "seed", "augment", "val_fraction", "split_seed", "data"}


def _other_settings(settings: dict) -> str:
    """The training settings the card's sentence does not word (weight decay, a moving average, …), as JSON."""
    rest = {key: value for key, value in settings.items() if key not in _CARD_SETTINGS}
    return f"; other settings {json.dumps(rest)}" if rest else ""


def _data_notes(data: dict) -> str:
    """A config's free-form data notes besides the description and the licence, one line each, for the card."""
    lines = [f"{key}: {value}" for key, value in data.items() if key not in ("description", "licence", "license")]
    return "".join(f"\n\n{line}" for line in lines)


def _precision_text(settings: dict, training: dict) -> str:
    """The forward pass's precision for the model card: ``auto`` with what it was on the training device."""
    asked, used = settings.get("precision", "fp32"), training.get("precision")
    return f"{used} (precision auto)" if asked == "auto" and used else asked


def _extent_line(extent: dict | None, validated: bool) -> str:
    """The fields of view the package has seen: the training cases' and, when there are any, the validation cases'
    (both are recorded, and ``extent['cases']`` counts them together)."""
    if not extent:
        return ""
    sizes = " × ".join(f"{low:g}–{high:g}" for low, high in zip(extent["min"], extent["max"]))
    cases = counted(extent.get("cases", "?"), f"training{' and validation' if validated else ''} case")
    return (f"\n- Inputs: fields of view of {sizes} mm (model-space axes) across its {cases}; `medseg infer` warns "
            "about inputs outside half the smallest to twice the largest, and the QA report flags them "
            "(`unlike_training`)")


def _intensity_line(config: dict) -> str:
    """The images' kind the package declares (``dicom_modality``) and the intensities it recorded
    (``input_intensity``), which `medseg infer` compares an input's with; none where it records neither."""
    modality, intensity = config.get("dicom_modality"), config.get("input_intensity")
    lines = ""
    if modality:
        hounsfield = ", in Hounsfield units" if str(modality).upper() == "CT" else ""
        lines += (f"\n- DICOM Modality: {modality}{hounsfield}; `medseg infer` warns about a DICOM series of another "
                  "modality, and the QA report flags it (`unlike_training`)")
    if intensity:
        p1, p99 = intensity["p1"], intensity["p99"]
        cases = counted(intensity.get("cases", "?"), "training and validation case")
        zscore = (config.get("preprocessing", {}).get("intensity") or {}).get("kind") == "zscore"
        top = "" if zscore else ", or a 99th percentile outside half the smallest to twice the largest"
        scale = ("; the 99th is not compared: the package z-scores its input, whose scale does not change its "
                 "segmentation" if zscore else "")
        lines += (f"\n- Intensities: 1st percentile {p1['min']:g} to {p1['max']:g}, 99th {p99['min']:g} to "
                  f"{p99['max']:g} across its {cases} (as read); `medseg infer` warns about inputs with negative "
                  f"intensities where no training image had any (or the reverse){top}, and the QA report flags them "
                  f"(`unlike_training`){scale}")
    return lines


def _codes_line(config: dict) -> str:
    """The card's line on the codes a DICOM SEG gives each label's segment (none without ``label_codes``)."""
    text = codes_text(config.get("label_codes"))
    return f"\n- DICOM SEG codes: {text}" if text else ""


def _weights_line(config: dict) -> str:
    """The weights' file and SHA-256, as ``model.json`` records them: a card is matched to its weights (none for a
    config without its weights entry)."""
    weights = config.get("weights")
    if not isinstance(weights, dict) or not weights.get("sha256"):
        return ""
    return f"\n- Weights: `{weights.get('file', 'weights.safetensors')}`, SHA-256 `{weights['sha256']}`"


_CARD_WEIGHTS = re.compile(r"^- Weights: `[^`]*`, SHA-256 `([0-9A-Fa-f]{64})`", re.MULTILINE)


def read_card(path: Path | str) -> str:
    """The text of the model card ``path`` (UTF-8, undecodable bytes replaced). A card that is not a regular file (a
    named pipe, which waited for a writer for ever; a link to ``/dev/zero``, which was read until memory ran out) or
    that is larger than :data:`MAX_CARD_BYTES` is a :class:`~medseg.errors.ModelPackageError` naming it, before
    anything of it is read; ``OSError`` as opening it raises it (``FileNotFoundError``)."""
    from medseg.errors import ModelPackageError
    from medseg.io.files import not_regular
    from medseg.jsonfile import read_bounded, size_text

    def not_file(mode: int) -> ModelPackageError:
        kind = "a folder" if stat.S_ISDIR(mode) else not_regular(path)
        return ModelPackageError(f"{path}: {kind}, where a package keeps its model card")

    data = read_bounded(path, MAX_CARD_BYTES, not_file=not_file, too_large=lambda size: ModelPackageError(
        f"{path}: {size}, where a model card holds at most {size_text(MAX_CARD_BYTES)}; not a package's model card, "
        "not read"))
    return data.decode("utf-8", errors="replace")


def card_weights_mismatch(card: str, sha256: str) -> str | None:
    """The weights' SHA-256 a model card names (:func:`_weights_line`) when it is not ``sha256``, the weights beside
    it: a card left from other weights (a package's weights replaced, or a card copied from another package), whose
    data, licence and figures are then not these weights'. None when it names these, or names none (cards written
    before they did)."""
    named = _CARD_WEIGHTS.search(card)
    return named[1].lower() if named and named[1].lower() != sha256.lower() else None


def _modalities_line(config: dict) -> str:
    """The card's line on a multi-modal model's inputs; empty for a model of one image a case."""
    modalities = config.get("modalities")
    if not modalities:
        return ""
    return (f"\n- Modalities: {len(modalities)}, in this order: {', '.join(modalities)} (a case is a 4D NIfTI "
            "of them on its last axis, or nnU-Net's case_0000 … files; each normalised on its own)")


def model_card(config: dict) -> str:
    """A short markdown model card from a trained package config."""
    training = config.get("training", {})
    data = training.get("data", {})
    labels = ", ".join(f"{k} {v}" for k, v in config["labels"].items()) + classes_note(config["labels"])
    dice = training.get("val_dice") or {}
    medians = training.get("val_dice_median") or {}
    minima = training.get("val_dice_min") or {}

    def cell(value) -> str:
        return "n/a" if value is None else dice_round_text(value)  # NaN reads n/a too

    absent = {str(v) for v in training.get("val_labels_absent") or []}
    rows = "\n".join(
        f"| {config['labels'].get(k, k)}{' *' if k in absent else ''} | {cell(v)} | {cell(medians.get(k))} | "
        f"{cell(minima.get(k))} |" for k, v in dice.items()
    )
    note = ("\n\n\\* in no validation reference: its Dice counts only false positives (0 in each case where it was "
            "predicted), as `medseg evaluate` scores it." if absent else "")
    table = f"| label | mean Dice | median | min |\n|---|---|---|---|\n{rows}{note}\n"
    settings = training.get("settings", {})
    split_seed = settings.get("seed") if settings.get("split_seed") is None else settings.get("split_seed")
    val_split = training.get("val_split") or f"a seeded {settings.get('val_fraction')} split, split seed {split_seed}"
    best = training.get("best_epoch")
    cases = (f"{counted(training.get('train_cases'), 'training case')}, "
             f"{counted(len(training.get('val_cases', [])), 'validation case')}")
    batch_dice = " with batch Dice" if settings.get("batch_dice") else ""
    if training.get("val_cases") and training.get("val_mean_dice") is None:
        selection = ("No label could be scored: no validation case holds a foreground label or has one predicted, so "
                     f"no Dice was measured and the package holds the weights of the last epoch ({best}).\n")
    elif validation_without_foreground(config["labels"], len(training.get("val_cases") or []),
                                       training.get("val_labels_absent")):
        selection = f"""No validation case holds a foreground label, so their Dice (false positives only) chose no \
epoch: the package holds the weights of the last epoch ({best}).

## Validation (whole volumes, false positives only)
{table}"""
    elif training.get("val_cases"):
        grid = ("each volume resampled into model space, segmented, mapped back onto its own grid and scored against "
                "its label file, as `medseg infer` does" if training.get("val_scored_on") == "input grid" else
                "same inference code as `medseg infer`")
        selection = f"""Best epoch {best} by mean validation Dice (checkpoint selection used the validation \
cases, so the figures below are slightly optimistic for unseen data). Per case, medseg's empty-mask policy: \
a label in neither the reference nor the prediction has no Dice; n/a: no validation case has one.

## Validation (whole volumes, {grid})
{table}"""
    else:
        selection = f"""No validation cases: the package holds the weights of the last epoch ({best}), and no \
accuracy figures were measured.
"""
    ids = ("the case ids are listed in `model.json` under `training.train_case_ids` and `training.val_cases`"
           if "train_case_ids" in training else
           "the validation case ids are listed in `model.json` under `training.val_cases`")
    if "train_images_sha256" in training:  # `medseg infer` and the report mark these images as training images
        ids += ", the training images' SHA-256 under `training.train_images_sha256`"
    if "data_sha256" in training:  # what a retraining must read again, labels and validation cases included
        ids += ", every case's image and label SHA-256 under `training.data_sha256`"
    planned = training.get("epochs_planned") or []
    if len(planned) == 2 and planned[0] is None:
        extended = (f"\nResumed from a checkpoint that did not record how many epochs it planned (then {planned[1]}): "
                    "had it planned another count, the learning-rate schedule changed midway.\n")
    elif len(planned) > 1:
        counts = ", then ".join("unknown" if n is None else str(n) for n in planned)
        extended = (f"\nResumed with another epoch count (planned {counts}): the learning-rate schedule changed "
                    "midway, so a fresh run of these settings would not give these weights.\n")
    else:
        extended = ""
    sessions = training.get("sessions") or []
    if len(sessions) > 1:
        precisions = {x.get("precision") for x in sessions}
        runs = "; ".join(
            f"epoch{'s' if a != b else ''} {a}{f'–{b}' if a != b else ''} on {d or 'an unrecorded device'} with "
            f"{counted(t, 'torch thread') if t else 'unrecorded torch threads'}"
            f"{'' if len(precisions) == 1 else ', ' + (p or 'unrecorded precision')}" for (a, b), t, d, p in
            ((x["epochs"], x["torch_threads"], x["device"], x.get("precision")) for x in sessions))
        how = "threads or devices" if len(precisions) == 1 else "threads, devices or precisions"
        # sums in another order differ in their last bits, and training grows that (Dice in the third decimal after 4
        # epochs on 2 threads against 1)
        depends = ("beyond their last bits: sums in another order differ there, and training grows it"
                   if len(precisions) == 1 else "(on the precision, beyond their last bits)")
        extended += (f"\nTrained in {len(sessions)} sessions with different {how} ({runs}); the weights "
                     f"depend on them {depends}.\n")
    inputs = _extent_line(config.get("input_extent_mm"), bool(training.get("val_cases")))
    # the version a sidecar and cohort.tsv record beside the name and the weights' SHA-256 the card also gives
    version = (f"- Version: {config['version']} (recorded in each segmentation's sidecar as model.version)\n"
               if config.get("version") else "")
    return f"""# Model card: {config['name']}

{config.get('description', '')}

{version}- Labels: {labels}{_codes_line(config)}{_modalities_line(config)}
- Architecture: 2D U-Net {json.dumps(config['architecture'])}
- Slicing axis {config['inference']['slice_axis']}, tile {config['inference']['roi_size']}, context slices \
{config['inference'].get('context_slices', 0)}, flip TTA {config['inference'].get('flip_tta', [])}
- Preprocessing: {json.dumps(config['preprocessing'])}{inputs}{_intensity_line(config)}{_weights_line(config)}

## Data
{data.get('description', 'not stated')}

Licence / attribution: {data.get('licence') or data.get('license') or 'not stated'}{_data_notes(data)}

Used for this package: {cases} (see Training).{_untrained_line(config, training)}

## Training
{cases} ({val_split}; \
{ids}); \
{counted(training.get('epochs_run'), 'epoch')} of {counted(settings.get('steps_per_epoch'), 'step')}, batch \
{settings.get('batch_size')}, training patch {settings.get('patch_size') or config['inference']['roi_size']}, \
learning rate {settings.get('learning_rate')} ({settings.get('schedule')}, \
{counted(settings.get('warmup_epochs'), 'warm-up epoch')}), DiceCE loss{batch_dice}, \
{_precision_text(settings, training)} forward pass, seed {settings.get('seed')}; \
augmentation {json.dumps(settings.get('augment', {}))}{_other_settings(settings)}; \
{training.get('train_seconds')} s wall, {training.get('train_cpu_seconds')} s process CPU time of training \
(reading the cases not counted) on \
{training.get('device')} ({counted(training.get('torch_threads'), 'torch thread')}, torch {training.get('torch')}\
{_libraries(training)}{_made_by(training)}).
{extended}{selection}{_loss_line(training)}"""


def _loss_line(training: dict) -> str:
    """Each epoch's mean training loss, as ``training.history`` records it (nothing for a package trained before it
    was recorded): what a run again with the same seed compares its own with."""
    history = training.get("history")
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
        return ""
    losses = ", ".join(f"{h.get('epoch')} {h['loss']:.4f}" for h in history if isinstance(h.get("loss"), float))
    return (f"\n## Training loss per epoch\nMean over its steps (`training.history` in `model.json` holds each to "
            f"the last bit, for a run of the same seed, threads and versions to compare its own with): {losses}.\n"
            ) if losses else ""


def _libraries(training: dict) -> str:
    """MONAI and numpy, whose releases the augmentation's random draws rest on, as the training record names them
    (nothing for a package trained before they were recorded)."""
    named = [f"{name} {training[key]}" for key, name in (("monai", "MONAI"), ("numpy", "numpy"))
             if isinstance(training.get(key), str)]
    return "".join(f", {text}" for text in named)


def _made_by(training: dict) -> str:
    """The medseg that trained the package, as its training record names it (nothing for a package trained before it
    was recorded); a commit recorded ``-dirty`` is said to have had uncommitted changes."""
    version, commit = training.get("medseg"), training.get("medseg_commit")
    if not isinstance(version, str):
        return ""
    made = f", medseg {version}" + (f" at commit {commit_text(commit)}" if isinstance(commit, str) and commit else "")
    runs = training.get("medseg_sessions")
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        return made
    # a run resumed under another medseg: which trained which epochs (the figures of its best epoch among them)
    told = []
    for run in runs:
        (first, last), who, at = run.get("epochs") or (None, None), run.get("medseg"), run.get("medseg_commit")
        epochs = f"epoch {first}" if first == last else f"epochs {first}–{last}"
        if isinstance(who, str):
            by = f"medseg {who}" + (f" at commit {commit_text(at)}" if isinstance(at, str) and at else "")
        else:
            by = "an unrecorded medseg (a checkpoint from before it was recorded)"
        told.append(f"{epochs} by {by}")
    return f"{made}; {', '.join(told)}"


def _untrained_line(config: dict, training: dict) -> str:
    """The declared labels no training case held (``train_labels_absent``: a structure the cases lacked, a gap),
    which the network never learnt, as a sentence after the case counts; empty where there are none."""
    absent = [v for v in training.get("train_labels_absent") or [] if type(v) is int and str(v) in config["labels"]]
    if not absent:
        return ""
    names = ", ".join(f"{v} {config['labels'][str(v)]}" for v in absent)
    return f" In no training case, so never learnt: {names}."


def card_with_codes(card: str, config: dict) -> str | None:
    """``card`` with its line on the DICOM SEG codes replaced, or put after its labels line (None for a card without
    one: it is left as it is)."""
    lines = [line for line in card.split("\n") if not line.startswith("- DICOM SEG codes:")]
    at = next((i for i, line in enumerate(lines) if line.startswith("- Labels:")), None)
    if at is None:
        return None
    lines.insert(at + 1, _codes_line(config).lstrip("\n"))
    return "\n".join(lines)
