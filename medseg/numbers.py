"""How numbers read in text: Dice that never reads on the wrong side of a threshold, small values that never read
as zero."""

from __future__ import annotations

__all__ = ["dice_floor_text", "dice_text", "number_text"]


def dice_text(dice: float, threshold: float | None = None, digits: int = 3) -> str:
    """Dice to ``digits`` decimals, or to as many more as it takes to stay on its side of ``threshold``
    (0.69996 against 0.7 is shown as 0.69996, never as 0.700)."""
    for places in range(digits, 10):
        text = f"{dice:.{places}f}"
        if threshold is None or (float(text) < threshold) == (dice < threshold):
            return text
    return repr(float(dice))


def dice_floor_text(dice: float, digits: int = 4) -> str:
    """Dice cut (not rounded) to ``digits`` decimals, for text with no threshold at hand: it never reads higher
    than it is (0.69997 is 0.6999, not 0.7000, which would read as passing a 0.7 threshold)."""
    from decimal import ROUND_DOWN, Decimal

    return str(Decimal(repr(float(dice))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN))


def number_text(value: float, digits: int) -> str:
    """``digits`` decimals; a value that would read as zero but is not gets 3 significant digits (labels of a
    few nanolitres on 20 µm voxels are not 0.000 ml)."""
    text = f"{value:.{digits}f}"
    if value != 0 and float(text) == 0:
        text = f"{value:.3g}"
    return text
