"""The per-case overlay as drawn (medseg.report.overlay): in mm, whatever the voxel order, through the flagged
label and its border contact, its focus and crop, and its panels' titles."""

from __future__ import annotations

import html as html_module
import io

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    CROSS,
    perturb,
    phantom,
    write_case,
    write_case_arrays,
)
from scipy import ndimage as ndi

from medseg.report.build import build_report


def measured_bars(monkeypatch) -> list[float]:
    """The pixels a mm each scale bar the overlay draws is measured at, in drawing order."""
    from medseg.report import overlay

    bars: list[float] = []
    scale_bar = overlay._scale_bar

    def measured(draw, x, y, panel_width, px_per_mm, font):
        bars.append(px_per_mm)
        return scale_bar(draw, x, y, panel_width, px_per_mm, font)

    monkeypatch.setattr(overlay, "_scale_bar", measured)
    return bars

def test_the_reordered_reference_is_drawn_voxel_for_voxel(tmp_path):
    from medseg.report.collect import collect_results
    from medseg.report.overlay import load_case_arrays

    write_case(tmp_path, "r", 0, "exact")
    _, labels, affine = phantom(0)
    flipped = affine.copy()
    flipped[:3, 1] *= -1
    flipped[:3, 3] -= flipped[:3, 1] * (labels.shape[1] - 1)
    nib.save(nib.Nifti1Image(labels[:, ::-1, :], flipped), tmp_path / "inputs" / "0_label.nii.gz")
    arrays = load_case_arrays(collect_results(tmp_path)[0])
    np.testing.assert_array_equal(arrays.reference, labels)
    assert arrays.image is not None and arrays.notes == []


def test_the_border_contact_mask_made_a_block_at_a_time_is_the_whole_one():
    """The voxels of the focus label on the faces a flag names, made a block of slices at a time on the reoriented
    grid, are those of the whole mask made in the file's voxel order and reoriented, for any voxel order."""
    from medseg.report import overlay

    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, (7, 6, 5)).astype(np.uint8)
    for columns, signs in (((0, 1, 2), (1, 1, 1)), ((0, 1, 2), (-1, -1, 1)), ((2, 0, 1), (-1, 1, -1))):
        affine = np.eye(4)
        affine[:3, :3] = np.eye(3)[:, columns] * signs
        ornt = nib.orientations.io_orientation(affine)
        reoriented = nib.orientations.apply_orientation(labels, ornt)
        for faces in (("i-",), ("k+",), ("i+", "j-", "k-")):
            whole = nib.orientations.apply_orientation(_on_faces(labels == 2, faces), ornt)
            for order in (np.ascontiguousarray, np.asfortranarray):
                prediction = order(reoriented)
                axis = overlay._block_axis(prediction)
                mask = overlay._BlockMask(prediction.shape, overlay._faces_block(prediction, ornt, 2, faces), axis)
                np.testing.assert_array_equal(np.concatenate([block for _, block in mask.blocks()], axis=axis), whole)


def test_a_reference_whose_gzip_checksum_is_wrong_is_not_drawn(tmp_path):
    """The report drew the reference of a .nii.gz whose CRC-32 was wrong, in silence; it is left out of the overlay
    with a note naming the file and why."""
    write_case(tmp_path / "results", "c1", 0, "erode")
    reference = tmp_path / "results" / "inputs" / "0_label.nii.gz"
    data = bytearray(reference.read_bytes())
    data[-8] ^= 0x01
    reference.write_bytes(bytes(data))
    build_report(tmp_path / "results", tmp_path / "r.html", max_overlays=5)
    page = html_module.unescape((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert (f"reference not shown: 0_label.nii.gz: {reference}: truncated or corrupt image data (gzip: CRC check "
            "failed") in page


def _focus_voxel(masks: list[np.ndarray]) -> tuple[int, int, int]:
    """The overlay's focus (``_focus``) of whole masks, as the report finds it of masks made a block at a time."""
    from medseg.report import overlay

    return overlay._focus([overlay._BlockMask.of(mask) for mask in masks])


def _crop_box(union: np.ndarray, spacing: np.ndarray, centre: tuple[int, int, int]) -> list[slice]:
    """The overlay's crop (``_box_of``) of a whole mask."""
    from medseg.report import overlay

    return overlay._box_of(overlay._BlockMask.of(union), spacing, centre)


def _on_faces(mask: np.ndarray, faces: tuple[str, ...]) -> np.ndarray:
    """The reference for the overlay's border-contact mask made a block at a time: ``mask``'s voxels on the named
    faces of the grid (``i-`` the first slice along i, ``k+`` the last along k), of the whole mask at once."""
    out = np.zeros_like(mask)
    for face in faces:
        index: list = [slice(None)] * 3
        index["ijk".index(face[0])] = 0 if face[1] == "-" else -1
        out[tuple(index)] = mask[tuple(index)]
    return out


def test_overlay_is_drawn_in_mm_and_independent_of_voxel_order():
    from PIL import Image

    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.overlay import CaseArrays, render_overlay

    image, labels, affine = phantom(1, shape=(20, 30, 10), spacing=(1.0, 1.0, 3.0))
    labels[:] = 0
    labels[5:12, 8:20, 3:7] = 1
    reference = np.roll(labels, 1, axis=1)
    ras = render_overlay(CaseArrays(labels, affine, image, reference), [("1", "ball")], "1", panel_px=300)
    picture = np.asarray(Image.open(io.BytesIO(ras)).convert("RGB"))
    # fields of view 20 x 30 x 30 mm at 10 px/mm: panels 300 (sagittal), 200 and 200 wide, 300 high + title
    assert picture.shape == (300 + 16, 300 + 200 + 200 + 2 * 8, 3)
    colour = tuple(int(LABEL_COLOURS[0][i:i + 2], 16) for i in (1, 3, 5))
    assert (picture == colour).all(axis=2).sum() > 500
    # the orientation letters (R on the right of the sagittal panel... A there) are white outlined in black, in no
    # label's colour (they were the second label's yellow)
    letter = picture[16 + 150 - 8:16 + 150 + 10, 300 - 14:300].reshape(-1, 3).astype(int)
    grey = np.ptp(letter, axis=1) <= 10
    assert (grey & (letter.min(axis=1) >= 200)).sum() >= 5 and (grey & (letter.max(axis=1) <= 30)).sum() >= 5
    assert not (picture == (255, 255, 0)).all(axis=2).any()
    # the same data stored with permuted, flipped voxel axes gives the same picture
    permuted = np.zeros((4, 4))
    permuted[:3, :3] = affine[:3, [2, 0, 1]] * [-1, 1, 1]
    permuted[:3, 3] = affine[:3, 3] + affine[:3, 2] * 9
    permuted[3, 3] = 1

    def store(array):
        return np.ascontiguousarray(np.transpose(array, (2, 0, 1))[::-1])

    other = render_overlay(CaseArrays(store(labels), permuted, store(image), store(reference)), [("1", "ball")], "1",
                           panel_px=300)
    other_picture = np.asarray(Image.open(io.BytesIO(other)).convert("RGB"))
    # the panels are the same; only the titles differ, which number the slices as each file does
    np.testing.assert_array_equal(other_picture[16:], picture[16:])
    assert not np.array_equal(other_picture[:16], picture[:16])
    assert _focus_voxel([labels == 1]) == (8, 13, 4)


def test_a_field_wider_than_the_panel_in_voxels_is_still_drawn_to_scale_with_a_true_scale_bar(monkeypatch):
    """A 200 x 200 x 20 label volume of 1 x 1 x 10 mm voxels (a 200 mm cube) drawn with panels of 100 pixels: the
    in-plane voxels, half a pixel each at that size, were drawn a pixel each while the slices got their 5 pixels, so
    the coronal panel was twice as wide as high, and the scale bars were measured at half the pixels a mm the panels
    were drawn at (a 512 x 512 CT in the default 230-pixel panel: a bar labelled 200 mm over 91 mm of the patient)."""
    from PIL import Image

    from medseg.report import overlay

    bars = measured_bars(monkeypatch)
    labels = np.zeros((200, 200, 20), np.uint8)
    labels[10:190, 10:190, 1:19] = 1
    affine = np.diag([1.0, 1.0, 10.0, 1.0])
    png = overlay.render_overlay(overlay.CaseArrays(labels, affine, None, None), [("1", "cube")], "1", panel_px=100)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    drawn = ~(picture[16 + 20] == 255).all(axis=1)  # a row of the panels, below the title: white canvas between
    edges = np.flatnonzero(np.diff(np.concatenate([[0], drawn.astype(int), [0]])))
    panels = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
    heights = [int((~(picture[16:, (a + b) // 2] == 255).all(axis=1)).sum()) for a, b in panels]
    widths = [b - a for a, b in panels]
    # every panel is a 200 mm square, drawn as a square, at the pixels a mm its scale bar is drawn at
    assert len(panels) == len(bars) == 3
    for width, height, px_per_mm in zip(widths, heights, bars):
        assert abs(width - height) <= 2, (widths, heights)
        assert abs(width / 200.0 - px_per_mm) < 0.01, (widths, bars)


def test_the_overlays_focus_and_crop_hold_a_block_of_slices_not_every_labelled_voxel(monkeypatch):
    """The coordinates of every labelled voxel were held at once to find the focus and the crop (24 bytes each,
    three times over): a body-sized label of a 512×512×300 CT (28 million voxels) took the report to 1.9 GB. The
    focus is found a block of slices at a time, the crop from the mask's projections, and both are as before."""
    import tracemalloc

    from medseg.report import overlay

    def whole(mask):  # the voxel nearest the centroid, from every voxel's coordinates at once
        points = np.argwhere(mask)
        return tuple(int(v) for v in points[np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1))])

    rng = np.random.default_rng(3)
    masks = [rng.random((23, 17, 11)) < fraction for fraction in (0.002, 0.05, 0.6)]
    masks.append(np.zeros((20, 20, 20), bool))
    masks[-1][:10, :10, :10] = True  # eight voxels equally near the centroid: the first is the focus
    masks += [np.asfortranarray(mask) for mask in masks]  # worked across the last axis: the first of equals kept
    for block in (1, 187, 400, 1 << 22):
        monkeypatch.setattr(overlay, "_FOCUS_BLOCK_VOXELS", block, raising=False)
        assert [_focus_voxel([mask]) for mask in masks] == [whole(mask) for mask in masks]
    assert _focus_voxel([masks[3]]) == _focus_voxel([masks[-1]]) == (4, 4, 4)
    box = _crop_box(masks[0], np.array([1.0, 1.0, 2.0]), (0, 0, 0))
    points = np.argwhere(masks[0])
    assert [(b.start, b.stop) for b in box] == [
        (max(0, int(lo) - 15), min(n, int(hi) + 16)) if axis < 2 else (max(0, int(lo) - 8), min(n, int(hi) + 9))
        for axis, (lo, hi, n) in enumerate(zip(points.min(axis=0), points.max(axis=0), masks[0].shape))]
    full = np.ones((64, 64, 64), bool)  # 262 144 voxels: 6 MB of coordinates, as many again of distances
    monkeypatch.setattr(overlay, "_FOCUS_BLOCK_VOXELS", 64 * 64, raising=False)
    tracemalloc.start()
    try:
        assert _focus_voxel([full]) == (31, 31, 31)
        _crop_box(full, np.ones(3), (32, 32, 32))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_overlay_shades_disagreement_and_titles_slices_as_the_file_numbers_them():
    """A one-voxel rim of over-segmentation was two lines a pixel apart (it looked perfect); the disagreeing
    voxels are now shaded, 45 % of the label colour over the background."""
    from PIL import Image

    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.overlay import CaseArrays, render_overlay

    _, labels, affine = phantom(1, shape=(20, 30, 10), spacing=(1.0, 1.0, 3.0))
    reference = np.zeros_like(labels)
    reference[5:12, 8:20, 3:7] = 1
    dilated = ndi.binary_dilation(reference == 1, CROSS).astype(np.uint8)
    colour = np.array([int(LABEL_COLOURS[0][i:i + 2], 16) for i in (1, 3, 5)])
    shade = (0.55 * 40 + 0.45 * colour).astype(int)  # over the plain background drawn without an image

    def shaded(prediction) -> int:
        png = render_overlay(CaseArrays(prediction, affine, None, reference), [("1", "ball")], "1", panel_px=300)
        picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[16:].astype(int)
        return int((np.abs(picture - shade).max(axis=2) <= 1).sum())

    assert shaded(reference.copy()) == 0
    assert shaded(dilated) > 1000


def test_the_overlay_of_a_border_contact_slices_through_the_contact(tmp_path, monkeypatch):
    """The slices went through the flagged label's middle: a contact away from it was on none of the three panels
    (hippocampus_228: the border voxels at i 20–22, k 6–9 on the last j face, the panels at i 16, j 34, k 12)."""
    from medseg.report import overlay

    image, labels, affine = phantom(0)
    leak = labels.copy()
    leak[0, 10:14, 15:18] = 2  # box voxels on the first i and the last k face, far from the box (i 18–24, k 5–11)
    write_case_arrays(tmp_path, "leaks", image, labels, leak, affine)
    calls, real = [], overlay.render_overlay

    def recorded(arrays, labels_, focus_label=None, **options):
        calls.append((focus_label, options.get("focus_faces", ()), arrays.prediction))
        return real(arrays, labels_, focus_label, **options)

    monkeypatch.setattr(overlay, "render_overlay", recorded)
    page = build_report(tmp_path, tmp_path / "report.html").html.read_text(encoding="utf-8")
    (focus, faces, prediction), = calls
    assert (focus, faces) == ("2", ("i-", "k+"))
    # the alt text says so (it named no label: a reader who cannot see the colours did not know which was shown)
    assert ("with the predicted labels and the reference, through label 2 box where it touches the border; flagged: "
            in page)
    centre = _focus_voxel([_on_faces(prediction == 2, faces), prediction == 2])
    assert centre[0] == 0 and 10 <= centre[1] <= 13 and 15 <= centre[2] <= 17  # a contact voxel: on all three panels


def test_a_thin_stack_is_drawn_stretched_to_a_readable_height_and_says_so():
    """Three CT slices across a 330 mm field: the sagittal and coronal panels were a few pixels high."""
    from PIL import Image

    from medseg.report.overlay import MIN_PANEL_PX, CaseArrays, render_overlay

    labels = np.zeros((300, 300, 3), np.uint8)
    labels[100:200, 120:180, :] = 1
    affine = np.diag([1.1, 1.1, 3.0, 1.0])
    png = render_overlay(CaseArrays(labels, affine, labels.astype(np.float32), labels), [("1", "ball")], "1")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[0] >= 32 + MIN_PANEL_PX  # two lines of title: "(stretched x5)" is the second
    # the sagittal panel (left) is drawn, not white canvas, down to the readable height
    assert (image[32:32 + MIN_PANEL_PX, 5].sum(axis=1) < 255 * 3).sum() >= MIN_PANEL_PX - 4  # (the scale bar is white)


def _runs(dark: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """First and last index of each run of True, runs closer than ``min_gap`` joined."""
    runs: list[list[int]] = []
    for i in np.flatnonzero(dark):
        if runs and i - runs[-1][1] <= min_gap:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [tuple(run) for run in runs]


@pytest.mark.parametrize(("shape", "box", "spacing"), [
    ((300, 300, 3), np.s_[100:200, 120:180, :], (1.1, 1.1, 3.0)),  # thin: two panels stretched
    ((128, 128, 64), np.s_[30:100, 60:64, 20:40], (1.0, 1.0, 1.0)),  # a narrow sagittal panel
])
def test_each_panel_title_stays_above_its_own_panel(shape, box, spacing):
    """A title wider than its panel ran into the next panel's title ("coronal, file j 86 (st…" over "axial, …") and
    the last was cut off at the picture's edge: a panel now takes its title's width, and a stretch note is a second
    line."""
    from PIL import Image

    from medseg.report.overlay import CaseArrays, render_overlay

    labels = np.zeros(shape, np.uint8)
    labels[box] = 1
    affine = np.diag([*spacing, 1.0])
    noise = np.random.default_rng(0).random(shape).astype(np.float32)  # every panel column has dark pixels
    png = render_overlay(CaseArrays(labels, affine, noise, labels), [("1", "ball")], "1")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(int)
    title_rows = int(np.flatnonzero((image < 128).mean(axis=1) > 0.3)[0])  # where the grey noise of the panels begins
    panels = _runs((image[title_rows:] < 128).any(axis=0), min_gap=4)
    titles = _runs((image[:title_rows] < 160).any(axis=0), min_gap=8)  # words of a title joined
    assert len(panels) == len(titles) == 3, (panels, titles)
    for (start, end), (panel_start, _), following in zip(titles, panels, [*panels[1:], (image.shape[1], None)]):
        assert panel_start < start and end < following[0] - 2
    assert title_rows == 16 * (2 if shape[2] == 3 else 1)


def test_label_3_keeps_its_colour_in_a_cohort_without_label_2(tmp_path):
    """Colours went by a label's place in the report's label list: in a cohort of labels 1 and 3, label 3 took label
    2's yellow in the legend, the overlays and the plots, and another report of the same model drew it otherwise. Each
    label keeps its value's colour everywhere."""
    import base64
    import re

    from PIL import Image

    from medseg.report.figures import LABEL_COLOURS

    image, truth, affine = phantom(1)
    truth = np.where(truth == 2, 3, truth).astype(np.uint8)  # labels 1 and 3
    for index in range(2):
        write_case_arrays(tmp_path, f"c{index}", image, truth, perturb(truth, "erode"), affine,
                          labels_named={0: "background", 1: "ball", 3: "box"})
    built = build_report(tmp_path, tmp_path / "report.html", max_overlays=2)
    page = built.html.read_text(encoding="utf-8")
    legend = re.search(r'<p class="legend small">(.*?)&nbsp;', page).group(1)
    assert re.findall(r'border-color:(#[0-9a-f]{6})"></span>(\w+)', legend) == [(LABEL_COLOURS[0], "ball"),
                                                                                 (LABEL_COLOURS[2], "box")]
    overlay = re.search(r'class="overlay"[^>]*src="data:image/png;base64,([^"]+)"|'
                        r'src="data:image/png;base64,([^"]+)"[^>]*class="overlay"', page)
    png = base64.b64decode(overlay.group(1) or overlay.group(2))
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    drawn = {colour: (picture == tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))).all(axis=2).sum()
             for colour in LABEL_COLOURS[:3]}
    assert drawn[LABEL_COLOURS[2]] > 20 and drawn[LABEL_COLOURS[1]] == 0, drawn


def test_an_overlay_is_bounded_in_pixels_kept_to_scale_its_thin_labels_shown_and_says_so(monkeypatch):
    """Each voxel a pixel or more made the picture as large as the smallest voxel asked: a header with 0.05 mm slices
    under 1 mm pixels drew a 64-voxel field 1280 pixels wide (one with 0.01 mm slices, 25,600: 9 GB, and no overlay),
    a 1024 x 1024 MR 3000 pixels across, shrunk to a third on the page. Past :data:`MAX_PANEL_PX` a whole number of the
    smallest voxels goes to a pixel, still to scale; a one-voxel label is still drawn, and the title says so."""
    from PIL import Image, ImageDraw

    from medseg.report import overlay
    from medseg.report.figures import label_colours

    bars = measured_bars(monkeypatch)
    titles = []
    draw_text = ImageDraw.ImageDraw.text

    def text(self, xy, words, *args, **kwargs):
        titles.append(words)
        return draw_text(self, xy, words, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    labels = np.zeros((64, 64, 4), np.uint8)
    labels[20:44, 20:44, 1] = 1  # one slice: a line a voxel thick on the sagittal and coronal panels
    affine = np.diag([1.0, 1.0, 0.05, 1.0])
    png = overlay.render_overlay(overlay.CaseArrays(labels, affine, None, None), [("1", "line")], "1")
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert picture.shape[0] <= 512 + 32 and picture.shape[1] <= 3 * 512 + 16, picture.shape
    # 54 mm (the label and 15 mm each side) at 1 pixel / 0.15 mm (3 slices of 0.05 mm a pixel): 360 pixels, the
    # scale bars at the same scale
    assert len(bars) == 3 and all(abs(bar - 1 / 0.15) < 1e-6 for bar in bars), bars
    assert picture.shape[1] == 3 * 360 + 2 * 8, picture.shape
    # the slice of the label, its pixel shared with two unlabelled slices, is drawn on the sagittal and coronal panels
    drawn = (picture == overlay._rgb(label_colours(["1"])[0])).all(axis=2)
    assert drawn[:, :360].sum() > 300 and drawn[:, 368:728].sum() > 300, (drawn[:, :360].sum(), drawn[:, 368:728].sum())
    assert titles.count("(3 voxels a pixel)") == 2, titles


def test_a_case_failed_as_a_duplicate_draws_no_reference_it_was_not_scored_against(tmp_path):
    """Two files of one folder claiming to be a case's metrics fail it (DuplicateResult): cohort.tsv and the page name
    no reference for it, but its overlay still drew the first metrics file's reference (and its border check read it).
    Neither file's scores are the case's: its overlay draws the prediction alone, without a note of a file not found;
    a scored case beside it draws its own reference."""
    import shutil

    from medseg.report.collect import collect_results
    from medseg.report.overlay import load_case_arrays

    folder = write_case(tmp_path / "results", "c1", 0, "exact")
    other = write_case(tmp_path / "elsewhere", "c1", 1, "erode")
    shutil.copy(other / "c1_metrics.json", folder / "copy_metrics.json")
    write_case(tmp_path / "results", "c2", 2, "exact")
    duplicate, scored = collect_results(tmp_path / "results")
    assert (duplicate.failure["error_type"], duplicate.named_reference()) == ("DuplicateResult", None)
    assert duplicate.reference_path() is None
    arrays = load_case_arrays(duplicate)
    assert arrays.reference is None and arrays.notes == []
    assert arrays.shown() == "slices of the input with the predicted labels"
    assert load_case_arrays(scored).reference is not None


def test_a_panel_the_shared_scale_cut_to_the_cap_gets_its_own_scale_and_scale_bar(monkeypatch):
    """Panels shared one scale, so on thick slices the tall through-slice field set the :data:`MAX_PANEL_PX` cap for
    all three: a 0.2 x 0.2 x 5 mm volume (51.2 x 51.2 x 150 mm) drew its axial panel, 256 voxels across, 128 pixels
    wide (two voxels a pixel) beside panels 375 pixels high. Where the cap cut the shared scale, each panel is drawn at
    the scale it alone would get (never larger than the shared one uncapped, nor smaller than it capped), its scale
    bar measured at that scale; panels the cap did not touch keep sharing one scale."""
    from PIL import Image

    from medseg.report import overlay

    bars = measured_bars(monkeypatch)
    drawn: list[tuple[int, int]] = []
    fromarray = Image.fromarray

    def spy(array, *args, **kwargs):
        drawn.append(array.shape[:2])
        return fromarray(array, *args, **kwargs)

    monkeypatch.setattr(Image, "fromarray", spy)
    labels = np.zeros((256, 256, 30), np.uint8)
    labels[60:200, 60:200, 4:26] = 1
    png = overlay.render_overlay(overlay.CaseArrays(labels, np.diag([0.2, 0.2, 5.0, 1.0]), None, None),
                                 [("1", "slab")], "1")
    # sagittal and coronal: 51.2 x 150 mm at 2.5 pixels a mm (capped, two in-plane voxels a pixel); axial: 51.2 mm
    # at 5 pixels a mm, each voxel a pixel
    assert drawn[:3] == [(375, 128), (375, 128), (256, 256)], drawn
    assert bars == [2.5, 2.5, 5.0], bars
    assert Image.open(io.BytesIO(png)).size[1] <= overlay.MAX_PANEL_PX + 2 * overlay.TITLE_LINE_PX
