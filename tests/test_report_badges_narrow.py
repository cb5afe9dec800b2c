"""A case card's flag badges in a narrow window: a badge naming a long label breaks after its underscores instead of
running past the page (``volume_difference_outlier(autochthonous_back_muscle_right_side_paravertebral)`` made a
600 px window scroll sideways)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from chromium_page import CHROMIUM, page_width, probe_page
from folder_cases import save

from medseg.folder_scoring import score_folder

LONG = "autochthonous_back_muscle_right_side_paravertebral_of_the_lower_thoracic_spine"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_long_labels_badge_on_a_card_stays_inside_a_narrow_window(tmp_path):
    ref = np.zeros((20, 20, 8), np.uint8)
    ref[4:12, 4:12, 2:6] = 1
    save(np.zeros_like(ref), tmp_path / "pred" / "a.nii.gz")  # predicted empty: empty_prediction(<long name>)
    save(ref, tmp_path / "labelsTs" / "a.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, LONG: 1}}))
    page = score_folder(tmp_path / "pred", tmp_path / "labelsTs", tmp_path / "scores").report.html
    assert 'class="badge"' in page.read_text()
    for window in (500, 600):
        assert page_width(page, tmp_path, window) <= window
    # on a wide page the badge is one line, as before
    height = probe_page(page, tmp_path, 1400, "document.querySelector('.case h3 .badge').getBoundingClientRect()"
                                              ".height")
    assert float(height) < 20
