"""The label names under the distribution plots: level where they fit, else upright and shortened in the middle;
six labels with long names (``autochthon_left`` beside ``autochthon_right``) ran into each other, and the last past
the figure's edge."""

from __future__ import annotations

import pytest
from chromium_page import CHROMIUM, probe_page

from medseg.report.figures import new_figure
from medseg.report.plots import distinct_short_names, fit_tick_labels

LONG = ["liver", "spleen", "stomach", "aorta", "autochthonous_back_muscle_left_side_paravertebral",
        "autochthonous_back_muscle_right_side_paravertebral"]


def _laid_out(names: list[str]):
    figure = new_figure(4.6, 3.0)  # the figure a plot of up to 6 labels has
    axes = figure.add_subplot()
    positions = list(range(1, len(names) + 1))
    axes.set_xlim(0.4, len(names) + 0.9)
    fit_tick_labels(figure, axes, positions, names, many=False)
    renderer = figure.canvas.get_renderer()
    labels = axes.get_xticklabels()
    return figure, [label.get_text() for label in labels], [label.get_rotation() for label in labels], \
        [label.get_window_extent(renderer) for label in labels]


@pytest.mark.parametrize("names", [LONG, ["liver", "spleen", "stomach", "aorta", "autochthon_left",
                                          "autochthon_right"]])
def test_long_names_stand_upright_apart_and_inside_the_figure(names):
    figure, texts, rotations, boxes = _laid_out(names)
    assert rotations == [90.0] * len(names)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))  # they ran into each other level
    width, height = figure.get_size_inches() * figure.dpi
    assert all(0 <= box.x0 and box.x1 <= width and box.y0 >= 0 for box in boxes)
    assert figure.get_size_inches()[1] == 4.2
    if names is LONG:  # shortened, where left and right differ: in the middle both read "autochthon…vertebral"
        assert texts == ["liver", "spleen", "stomach", "aorta", "autoch…left_side_par", "autoch…right_side_pa"]


def test_short_names_stay_level_and_whole():
    figure, texts, rotations, _ = _laid_out(["anterior", "posterior"])
    assert texts == ["anterior", "posterior"] and rotations == [0.0, 0.0]
    assert figure.get_size_inches()[1] == 3.0


def test_names_alike_once_shortened_are_told_apart_where_they_differ():
    assert distinct_short_names(["lung_lower_lobe_left", "lung_lower_lobe_right", "kidney"], 20) == [
        "lung_lower_lobe_left", "lung_lower…obe_right", "kidney"]  # apart in the middle already: as before
    # apart at their heads already: shortened in the middle as before
    assert distinct_short_names(["x_left" + "a" * 30, "x_right" + "a" * 30], 12) == ["x_left…aaaaa", "x_righ…aaaaa"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_plot_beside_a_taller_one_keeps_its_proportions_in_the_browser(tmp_path):
    """The box plots of long names are taller than the volume scatter beside them, which the row stretched to
    their height."""
    import json

    import numpy as np
    from folder_cases import save

    from medseg.folder_scoring import score_folder

    ref = np.zeros((20, 20, 8), np.uint8)
    for value in range(1, 7):
        ref[2 + 3 * (value - 1):4 + 3 * (value - 1), 4:14, 2:6] = value
    for case in ("a", "b"):
        save(ref, tmp_path / "pred" / f"{case}.nii.gz")
        save(ref, tmp_path / "labelsTs" / f"{case}.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, **{
        name: value for value, name in enumerate(LONG, start=1)}}}))
    page = score_folder(tmp_path / "pred", tmp_path / "labelsTs", tmp_path / "scores").report.html
    ratios = probe_page(page, tmp_path, 1400, "[...document.querySelectorAll('.plots img')].map(i => "
                        "(i.height / i.width) / (i.naturalHeight / i.naturalWidth)).join(' ')")
    assert [round(float(r), 2) for r in ratios.split()] == [1.0] * 5
