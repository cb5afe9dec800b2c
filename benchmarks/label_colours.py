"""How far apart the QA report's label colours stay for colour-blind readers, from each other, from the grey of an
MR or CT image and from the plots' red, and the search that picks a colour to add.

    python benchmarks/label_colours.py [--search N] [--step 8]

Each colour is seen in four visions: normal, and protanopia, deuteranopia and tritanopia as Machado, Oliveira &
Fernandes (2009) simulate them at full severity (a 3×3 matrix on linear RGB, the simulation Chromium's DevTools and
colorspacious use); two colours' difference is their CIEDE2000 (Sharma, Wu & Dalal 2005) in CIELAB (D65), the
least over the four visions. Printed for the palette before and the palette now: the least difference between two
of the first 3, 4, 6, 8 and all 10 colours (with the pair and the vision), each colour's least difference from the
others, from the 256 greys of an 8-bit image (the image behind an overlay holds them all, black to white) and from
the plots' red. ``--search N`` picks the last N colours again, one after another: each the colour of an sRGB grid of
``--step`` at least as light as the darkest of the first eight (L* 40, to show on a dark image) and 15 from the red,
farthest from the colours before it and the greys, in the least of the four visions (:func:`search`).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

__all__ = ["COLOUR_VISIONS", "GREYS", "MIN_FROM_AVOIDED", "MIN_LIGHTNESS", "PREVIOUS_COLOURS", "delta_e_2000",
           "grey_difference", "lab", "least_difference", "main", "search"]

# Machado, Oliveira & Fernandes (2009) at full severity, on linear RGB
COLOUR_VISIONS = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}

# the palette before labels 9 and 10 were chosen for the greys too: a pale yellow and white
PREVIOUS_COLOURS = ("#00c7ff", "#ffcc00", "#ff2d95", "#6673ff", "#d98d57", "#00ff95", "#6633ff", "#00a3d9",
                    "#ffff66", "#ffffff")

GREYS = tuple(f"#{level:02x}{level:02x}{level:02x}" for level in range(256))

# the least CIELAB lightness L* of a colour the search picks: about that of the darkest of labels 1-8 (label 7's
# indigo, 41.9). A darker colour's CIEDE2000 from black overstates how a one-voxel contour shows on a dark image: the
# greys alone would pick a purple of L* 21
MIN_LIGHTNESS = 40.0
# the least CIEDE2000 of a colour the search picks from each colour it avoids (the plots' red, which marks a flagged
# case), in any vision: as the report's test asks of every label colour
MIN_FROM_AVOIDED = 15.0


def _srgb(colours) -> np.ndarray:
    """``colours`` (``#rrggbb`` each) as sRGB values in 0..1, shape (n, 3)."""
    return np.array([[int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)] for colour in colours])


def lab(colours, vision: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of ``colours`` (``#rrggbb`` each, or sRGB values in 0..1 of shape (n, 3)) as seen with
    ``vision``, shape (n, 3)."""
    srgb = _srgb(colours) if isinstance(colours[0], str) else np.asarray(colours, float)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear @ vision.T, 0, 1)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 216 / 24389, np.cbrt(f), (24389 / 27 * f + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of CIELAB colours (the last axis L, a, b; the others broadcast)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, float), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, float), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    achromatic = c1 * c2 == 0
    dh = np.where(achromatic, 0.0, (h2 - h1 + 180) % 360 - 180)
    d_l, d_c, d_h = l2 - l1, c2 - c1, 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    h_mean = np.where(achromatic, h1 + h2, np.where(np.abs(h1 - h2) <= 180, (h1 + h2) / 2,
                                                     np.where(h1 + h2 < 360, (h1 + h2 + 360) / 2,
                                                              (h1 + h2 - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    r_t = (-np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2))))
           * 2 * np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def least_difference(colours) -> tuple[float, str, str, str]:
    """The smallest CIEDE2000 difference between two of ``colours`` in any of the visions: the difference, the
    vision, and the two colours."""
    found = []
    for name, vision in COLOUR_VISIONS.items():
        seen = lab(colours, vision)
        for i, j in itertools.combinations(range(len(colours)), 2):
            found.append((float(delta_e_2000(seen[i], seen[j])), name, colours[i], colours[j]))
    return min(found)


def grey_difference(colour: str) -> tuple[float, str, str]:
    """The smallest CIEDE2000 difference between ``colour`` and a grey of an 8-bit image in any of the visions:
    the difference, the vision and the grey."""
    found = []
    for name, vision in COLOUR_VISIONS.items():
        differences = delta_e_2000(lab([colour], vision)[0], lab(GREYS, vision))
        found.append((float(differences.min()), name, GREYS[int(differences.argmin())]))
    return min(found)


def _grey_differences(colours: np.ndarray, greys: np.ndarray) -> np.ndarray:
    """Each of the CIELAB ``colours``' least CIEDE2000 difference from ``greys`` (CIELAB, a* = b* = 0, L* rising):
    from a grey, CIEDE2000 is ΔL*/S_L and the chroma term, which the grey does not change, and ΔL*/S_L grows with
    |ΔL*| (S_L changes by at most 0.0075 a unit of L*), so the nearest grey is one of the two whose L* bracket the
    colour's. The same as :func:`grey_difference` over every grey, for many colours at once."""
    above = np.clip(np.searchsorted(greys[:, 0], colours[:, 0]), 1, len(greys) - 1)
    return np.minimum(delta_e_2000(colours, greys[above - 1]), delta_e_2000(colours, greys[above]))


def search(fixed, count: int, avoid=(), step: int = 8, min_chroma: float = 0.0) -> list[str]:
    """``count`` colours to follow ``fixed``, one after another: each the colour of an sRGB grid of ``step`` (0 to
    255, 255 included) at least as light as :data:`MIN_LIGHTNESS`, of a CIELAB chroma of ``min_chroma`` or more in
    normal vision, and more than :data:`MIN_FROM_AVOIDED` from each of ``avoid`` (the plots' red) whose least
    CIEDE2000 difference, in any of the visions, from the colours before it and the greys of an 8-bit image is the
    largest. (Without a chroma floor the farthest can be a muted colour, #9878a0 for label 3, that a reader of normal
    vision sees only faintly on a grey image; with 50, #c058a0, a vivid magenta, is 11.3 from any grey against 11.6.)"""
    levels = np.unique(np.r_[np.arange(0, 256, step), 255])
    grid = np.array(list(itertools.product(levels, repeat=3)))
    normal = lab(grid / 255, COLOUR_VISIONS["normal"])
    grid = grid[(normal[:, 0] >= MIN_LIGHTNESS) & (np.hypot(normal[:, 1], normal[:, 2]) >= min_chroma)]
    names = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in grid]
    seen = {name: lab(grid / 255, vision) for name, vision in COLOUR_VISIONS.items()}
    least = np.full(len(grid), np.inf)  # each candidate's difference from its nearest grey
    for name, vision in COLOUR_VISIONS.items():
        least = np.minimum(least, _grey_differences(seen[name], lab(GREYS, vision)))
    for name, vision in COLOUR_VISIONS.items():
        for other in lab(avoid, vision) if avoid else ():
            least[delta_e_2000(seen[name], other) <= MIN_FROM_AVOIDED] = -np.inf
    chosen: list[str] = []
    for _ in range(count):
        score = least.copy()
        for name, vision in COLOUR_VISIONS.items():
            for other in lab([*fixed, *chosen], vision):
                score = np.minimum(score, delta_e_2000(seen[name], other))
        chosen.append(names[int(score.argmax())])
    return chosen


def _palette_lines(title: str, colours, flagged: str) -> list[str]:
    lines = [f"{title}: {' '.join(colours)}"]
    for first in (3, 4, 6, 8, len(colours)):
        value, vision, a, b = least_difference(colours[:first])
        lines.append(f"  first {first:2d}: least difference {value:5.1f} ({a} and {b}, {vision})")
    for position, colour in enumerate(colours, 1):
        other = min(least_difference((colour, another)) + (index,) for index, another in enumerate(colours, 1)
                    if index != position)
        grey, vision, level = grey_difference(colour)
        red = least_difference((colour, flagged))
        lines.append(f"  label {position:2d} {colour}: from the others {other[0]:5.1f} (label {other[4]}, {other[1]}); "
                     f"from the greys {grey:5.1f} ({level}, {vision}); from the plots' red {red[0]:5.1f} ({red[1]})")
    worst = min(grey_difference(colour) + (colour,) for colour in colours)
    lines.append(f"  least difference from a grey: {worst[0]:.1f} ({worst[3]} against {worst[2]}, {worst[1]})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", type=int, default=0, metavar="N",
                        help="pick the last N colours again (default: none)")
    parser.add_argument("--step", type=int, default=8, help="the sRGB grid's step for --search (default 8)")
    args = parser.parse_args(argv)
    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.plots import FLAGGED_COLOUR

    lines = _palette_lines("before", PREVIOUS_COLOURS, FLAGGED_COLOUR)
    lines += _palette_lines("now", LABEL_COLOURS, FLAGGED_COLOUR)
    if args.search:
        kept = LABEL_COLOURS[:len(LABEL_COLOURS) - args.search]
        picked = search(kept, args.search, avoid=(FLAGGED_COLOUR,), step=args.step)
        lines.append(f"search (step {args.step}): after {' '.join(kept)}: {' '.join(picked)}")
        lines += _palette_lines("searched", (*kept, *picked), FLAGGED_COLOUR)[1:]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
