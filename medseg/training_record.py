"""The figures of a model package's ``training`` record, checked before they are shown: model.json may be edited by
hand, and a figure that is no number (or no text), or a Dice for a label the package does not have, is not shown as
one."""

from __future__ import annotations

import math

__all__ = ["recorded_figures"]

_COUNTS = ("train_cases", "best_epoch", "epochs_run")  # whole numbers
_TEXTS = ("val_split", "val_scored_on", "device")
_DICE = ("val_dice", "val_dice_median", "val_dice_min")  # per label value


def _number(value) -> float | int | None:
    """``value`` where it is a finite number (not a bool), else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def recorded_figures(training: dict, labels: dict) -> dict:
    """The summary figures of a ``training`` record: the case, epoch counts as whole numbers, the split, scoring grid
    and device as texts, ``train_seconds`` as a number, ``val_cases`` counted from its list of case ids, and the Dice
    per label (``val_dice``, its median and min) for the package's ``labels`` only, each a number or None (not
    recorded: no validation case has the label, or the record holds no number there), and ``train_labels_absent`` /
    ``val_labels_absent``, the package's labels that no training case / no validation reference holds. A figure
    the record holds with another type is None; one it does not hold is left out."""
    figures = {}
    for key in _COUNTS:
        if key in training:
            value = training[key]
            whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()  # 2.0, as JSON may give
            figures[key] = int(value) if whole else value if isinstance(value, int) and not isinstance(value, bool) \
                else None
    for key in _TEXTS:
        if key in training:
            figures[key] = training[key] if isinstance(training[key], str) else None
    if "train_seconds" in training:
        figures["train_seconds"] = _number(training["train_seconds"])
    known = {str(value) for value in labels}
    for key in _DICE:
        if key in training:
            values = training[key]
            figures[key] = ({str(k): _number(v) for k, v in values.items() if str(k) in known}
                            if isinstance(values, dict) else None)
    for key in ("train_labels_absent", "val_labels_absent"):  # the labels no training case / validation
        absent = training.get(key)  # reference holds, of the package's
        if isinstance(absent, list):
            figures[key] = sorted({v for v in absent if type(v) is int and str(v) in known})
    cases = training.get("val_cases")
    figures["val_cases"] = len(cases) if isinstance(cases, list) else None
    return figures
