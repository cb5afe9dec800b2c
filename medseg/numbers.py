"""How numbers read in text: Dice that never reads on the wrong side of a threshold, small values that never read
as zero."""

from __future__ import annotations

__all__ = ["MINUS", "image_among_labels", "IMAGE_LIKE_VALUES", "counted", "dice_round_text", "dice_status_text",
           "dice_text", "gib_text", "never_learnt_text", "number_text", "odd_values", "same_reason_groups",
           "values_text", "with_minus"]

MINUS = "\u2212"  # the HTML report's minus sign (as wide as a plus; no line break after it)
IMAGE_LIKE_VALUES = 64  # a "label image" with more distinct values than this is most likely an image
def image_among_labels() -> str:
    """Said after a label file's values when there are more than IMAGE_LIKE_VALUES of them."""
    from medseg.settings_named import ANY, setting

    return (f"; so many values suggest an image rather than labels (are {setting('images_dir', ANY)} and "
            f"{setting('labels_dir', ANY)} swapped?)")


def gib_text(size: float) -> str:
    """Bytes as GiB for a message: whole above 10 GiB, else two significant digits (0.15 GiB, 8.4 GiB)."""
    return f"{size / 2**30:.0f} GiB" if size >= 10 * 2**30 else f"{size / 2**30:.2g} GiB"


def counted(count, noun: str, plural: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``: a count with its noun in the number it takes (plural by an added s, or ``plural``:
    ``counted(2, "modality", "modalities")``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def values_text(values, shown: int = 8) -> str:
    """Whole values for an error message, cut short: ``[1, 2, 3]``, or ``[26, 43, … (4000 values)]`` after ``shown``
    of them (an image given as labels holds thousands)."""
    values = [int(v) for v in values]
    if len(values) <= shown:
        return str(values)
    return "[" + ", ".join(str(v) for v in values[:shown]) + f", … ({len(values)} values)]"


def with_minus(text: str) -> str:
    """A number's text with its leading hyphen-minus as a typographic minus (an exponent's sign is kept)."""
    return MINUS + text[1:] if text.startswith("-") else text


def dice_text(dice: float, threshold: float | None = None, digits: int = 3) -> str:
    """Dice to ``digits`` decimals, or to as many more as it takes to stay on its side of ``threshold``
    (0.69996 against 0.7 is shown as 0.69996, never as 0.700), and not to read as 0 or 1 when it is neither (0.0004
    is not the 0.000 of an empty prediction, 0.9996 not a perfect 1.000)."""
    for places in range(digits, 10):
        text = f"{dice:.{places}f}"
        shown = float(text)
        if (threshold is None or (shown < threshold) == (dice < threshold)) and (shown != 0 or dice == 0) \
                and (shown != 1 or dice == 1):
            return text
    return repr(float(dice))


def dice_round_text(dice: float, digits: int = 4) -> str:
    """Dice rounded to ``digits`` decimals, with as many more as it takes not to read as reaching a round value it
    does not reach (a multiple of 0.05, where thresholds sit): 0.69997 reads 0.69997, never 0.7000; 0.89126 reads
    0.8913, as everywhere else. For text with no threshold at hand (consoles, model cards)."""
    import math
    from decimal import Decimal

    dice = float(dice) + 0.0  # + 0.0: no "-0.0000"
    if not math.isfinite(dice):
        return "n/a" if math.isnan(dice) else repr(dice)
    # the text rounds the float's binary value, as f"{x:.4f}" does; the comparison takes the value as Python shows
    # and compares it (0.7 is 0.7, though stored a hair below)
    shown, step = Decimal(repr(dice)), Decimal("0.05")
    for places in range(digits, 17):
        text = f"{dice:.{places}f}"
        # rounding down never overstates, but a Dice above 0 does not read as the 0 of an empty prediction
        if (Decimal(text) // step == shown // step or Decimal(text) < shown) and (Decimal(text) != 0 or dice == 0):
            return text
    return repr(dice)


def dice_status_text(dice: float | None, status: str | None = None) -> str:
    """A label's Dice for a console line (:func:`dice_round_text`), with why where the empty-mask policy set it: a
    Dice of 0 for a label the reference does not hold (``false_positive``) or the prediction does not
    (``empty_prediction``) says something else than a missed overlap; both empty has no Dice."""
    import math

    if dice is None or (isinstance(dice, float) and math.isnan(dice)):
        return "n/a (both empty)"
    why = {"false_positive": " (false positive: not in the reference)",
           "empty_prediction": " (empty prediction: not predicted)"}.get(status or "", "")
    return dice_round_text(dice) + why


def same_reason_groups(entries) -> tuple[list[tuple[str, str]], list[tuple[list[str], str]]]:
    """Labels' Dice texts (:func:`dice_status_text`) for a case's line, from ``(name, dice, status)`` in label order:
    those that stand alone as ``(name, text)``, and the labels whose Dice the empty-mask policy set for the same
    reason (an empty prediction, a false positive), two or more, as ``([names], text)``, said once: a case predicted
    empty read "(empty prediction: not predicted)" once per label."""
    texts = [(name, dice_status_text(dice, status), status) for name, dice, status in entries]
    grouped: dict[str, list[str]] = {}
    for name, text, status in texts:
        if status in ("empty_prediction", "false_positive"):
            grouped.setdefault(text, []).append(name)
    together = {text: names for text, names in grouped.items() if len(names) > 1}
    alone = [(name, text) for name, text, _ in texts if text not in together]
    return alone, [(names, text) for text, names in together.items()]


def never_learnt_text(count: int) -> str:
    """What ``count`` labels the model never learnt (no training case held them), empty in both images, have for a
    Dice, as `medseg infer` and `medseg evaluate` write it after the labels' names."""
    return f"n/a (both empty; never learnt: no training case held {'it' if count == 1 else 'them'})"


def number_text(value: float, digits: int) -> str:
    """``digits`` decimals; a value that those would give less than two significant digits gets 3 (labels of a few
    nanolitres on 20 µm voxels are not 0.000 ml, and an ASSD of 0.0059 mm on 0.3 mm voxels is not 0.01)."""
    value = value + 0.0  # no "-0.000"
    text = f"{value:.{digits}f}"
    # (a value that three significant digits round up to the limit, 0.0999999 with 2 decimals, reads as 0.10)
    if value != 0 and abs(float(f"{value:.3g}")) < 10.0 ** (1 - digits):
        text = f"{value:.3g}"
    return text


def odd_values(values, negative: bool = False) -> str:
    """The first few of ``values`` (a numpy array) that are no label values (not whole, not finite, or with
    ``negative`` below zero), for an error message."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        odd = values[(values != np.round(values)) | ~np.isfinite(values) | ((values < 0) if negative else False)]
    shown = ", ".join(_not_whole_text(float(v)) for v in odd[:3])
    return shown + (f" … ({len(odd)} values)" if len(odd) > 3 else "")


def _not_whole_text(value: float) -> str:
    """A value that is no whole number, in 9 significant digits, or in full where those would show a whole one
    (2 + 1e-12 is not "2")."""
    import math

    text = f"{value:.9g}"
    return repr(value) if math.isfinite(value) and float(text) == round(value) and value != round(value) else text
