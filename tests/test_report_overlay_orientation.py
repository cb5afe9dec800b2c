"""The overlay's orientation: coronal and axial panels are shown in the radiological convention (the patient's right
on the image's left), every panel is lettered at its four edges with the anatomical directions the volume's affine
gives, and the letters and the anatomy follow the affine whatever the file's voxel order (RAS, LPS, a flipped axis,
an oblique affine). The panels showed the patient's right on the image's right, lettered on two edges only."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from medseg.report.figures import LABEL_COLOURS
from medseg.report.overlay import FONT_PX, CaseArrays, render_overlay

SHAPE = (40, 30, 20)
LABELS = [("1", "left_kidney"), ("2", "right_kidney")]


def _anatomy() -> np.ndarray:
    """In RAS+ voxels (i towards the patient's right): label 1 on the patient's left (low i), label 2, smaller, on the
    right, both in the same coronal and axial slices."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[4:12, 10:20, 6:14] = 1
    labels[30:35, 12:18, 8:12] = 2
    return labels


def _stored(labels: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """The same anatomy (world coordinates of every voxel kept) stored in another voxel order: its array and affine."""
    n = np.array(SHAPE) - 1
    if how == "RAS":
        return labels, np.diag([1.0, 1.0, 1.0, 1.0])
    if how == "LPS":  # DICOM's order: i towards the left, j towards the back
        affine = np.diag([-1.0, -1.0, 1.0, 1.0])
        affine[:2, 3] = n[:2]
        return np.ascontiguousarray(labels[::-1, ::-1]), affine
    if how == "flipped_k":  # slices stored from the head down
        affine = np.diag([1.0, 1.0, -1.0, 1.0])
        affine[2, 3] = n[2]
        return np.ascontiguousarray(labels[:, :, ::-1]), affine
    if how == "oblique":  # 20 degrees about the body's long axis: still nearest to RAS
        angle = np.radians(20)
        affine = np.eye(4)
        affine[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        return labels, affine
    raise AssertionError(how)


def _picture(labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    png = render_overlay(CaseArrays(labels, affine, None), LABELS, "1", panel_px=240)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _top(picture: np.ndarray) -> int:
    """The first row of the panels, below their titles (one or two lines): the first panel's first column is white
    beside its title's text."""
    return int(np.flatnonzero((picture[:, 0] != 255).any(axis=1))[0])


def _panels(picture: np.ndarray) -> list[tuple[int, int]]:
    """First and last column of each panel (white canvas between them)."""
    row = picture[_top(picture) + 3]
    drawn = ~(row == 255).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], drawn.astype(int), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _colour(value: int) -> tuple[int, ...]:
    return tuple(int(LABEL_COLOURS[value - 1][i:i + 2], 16) for i in (1, 3, 5))


def _mean_column(picture: np.ndarray, panel: tuple[int, int], value: int) -> float:
    """Where a label's outline lies across a panel: 0 its left edge, 1 its right edge."""
    part = picture[_top(picture):, panel[0]:panel[1] + 1]
    columns = np.flatnonzero((part == _colour(value)).all(axis=2).any(axis=0))
    assert columns.size, f"label {value} not drawn"
    return float(columns.mean()) / (panel[1] - panel[0])


def _letter_at(picture: np.ndarray, panel: tuple[int, int], edge: str) -> str:
    """Which of the direction letters is drawn at a panel's edge: the one whose white strokes, drawn alone at the
    place the overlay writes that edge's letter, match the picture's white pixels there best."""
    font = ImageFont.load_default(size=FONT_PX)
    x, w, top = panel[0], panel[1] - panel[0] + 1, _top(picture)
    h = int(((picture[top:, x] != 255).any(axis=1)).sum())
    at = {"left": (x + 2, top + h // 2 - 7), "right": (x + w - 12, top + h // 2 - 7),
          "top": (x + w // 2 - 4, top + 2), "bottom": (x + w // 2 - 4, top + h - 17)}[edge]
    # the window ends at the panel's edges: the canvas beyond them is white
    window = np.s_[at[1] - 2:min(at[1] + 18, top + h), at[0] - 2:min(at[0] + 14, x + w)]
    white = (picture[window] >= 230).all(axis=2)
    scores = {}
    for letter in "RLAPSI":
        canvas = Image.new("L", (picture.shape[1], picture.shape[0]), 0)
        ImageDraw.Draw(canvas).text(at, letter, fill=255, font=font)
        glyph = np.asarray(canvas)[window] >= 230
        scores[letter] = (glyph & white).sum() / max(1, (glyph | white).sum())
    best = max(scores, key=scores.get)
    assert scores[best] > 0.6, (edge, scores)
    return best


@pytest.mark.parametrize("how", ["RAS", "LPS", "flipped_k", "oblique"])
def test_the_patients_left_is_on_the_images_right_in_coronal_and_axial_panels(how):
    picture = _picture(*_stored(_anatomy(), how))
    sagittal, coronal, axial = _panels(picture)
    for panel in (coronal, axial):
        # the left-sided structure (label 1) on the image's right; the right-sided one (label 2) on its left
        assert _mean_column(picture, panel, 1) > 0.55
        assert _mean_column(picture, panel, 2) < 0.45
    assert [_letter_at(picture, axial, edge) for edge in ("left", "right", "top", "bottom")] == list("RLAP")
    assert [_letter_at(picture, coronal, edge) for edge in ("left", "right", "top", "bottom")] == list("RLSI")
    assert [_letter_at(picture, sagittal, edge) for edge in ("left", "right", "top", "bottom")] == list("APSI")


def _front_and_back() -> np.ndarray:
    """In RAS+ voxels (j towards the front): label 1 at the front (high j), label 2 at the back, in one sagittal
    slice."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[16:24, 22:28, 6:14] = 1
    labels[18:22, 2:6, 8:12] = 2
    return labels


@pytest.mark.parametrize("how", ["RAS", "LPS", "flipped_k", "oblique"])
def test_the_sagittal_panel_shows_anterior_on_the_images_left(how):
    """The sagittal panel showed anterior on the image's right; 3D Slicer, ITK-SNAP and OHIF (as most DICOM viewers)
    show the patient facing the viewer's left: a structure at the front lands on the panel's left half, under A."""
    picture = _picture(*_stored(_front_and_back(), how))
    sagittal = _panels(picture)[0]
    assert _mean_column(picture, sagittal, 1) < 0.45
    assert _mean_column(picture, sagittal, 2) > 0.55
    assert [_letter_at(picture, sagittal, edge) for edge in ("left", "right")] == ["A", "P"]


def test_the_letters_follow_the_affine_not_the_voxel_order():
    """The same array under an affine whose first axis points the other way (towards the patient's left) holds the
    mirrored anatomy: label 1 is then on the patient's right, and drawn on the image's left, under the letter R."""
    labels = _anatomy()
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    picture = _picture(labels, affine)
    _, coronal, axial = _panels(picture)
    for panel in (coronal, axial):
        assert _mean_column(picture, panel, 1) < 0.45
        assert _mean_column(picture, panel, 2) > 0.55
        assert _letter_at(picture, panel, "left") == "R" and _letter_at(picture, panel, "right") == "L"


def test_the_legend_says_the_panels_are_radiological(tmp_path):
    from folder_cases import labels, save

    from medseg.folder_scoring import score_folder

    predicted, reference = labels(1)
    save(predicted, tmp_path / "pred" / "a_seg.nii.gz")
    save(reference, tmp_path / "ref" / "a.nii.gz")
    page = score_folder(tmp_path / "pred", tmp_path / "ref", tmp_path / "scores").report.html.read_text()
    assert ("radiological convention: coronal and axial panels show the patient's right on the image's left" in page)
    assert "not the radiological convention" not in page


@pytest.mark.shared_data
def test_a_real_ct_shows_the_liver_on_the_images_left_and_stays_small(shared_data):
    """A real CT stored L-A-S (its first voxel axis towards the patient's left) with a model's segmentation: on the
    axial panel the liver (label 5) is on the image's left and the spleen (label 1) on its right, as a radiologist
    reads it (they were the other way round); in each window the picture stays under 200 KB (166 KB before the
    letters were added: 167 KB now in the soft-tissue window, 121 KB bone, 174 KB lung)."""
    import nibabel as nib

    from medseg.report.overlay_image import CT_WINDOWS_HU

    folder = shared_data / "dicom" / "ct-jpeg2000"
    image, segmentation = nib.load(folder / "ref" / "example_ct_dicom.nii.gz"), nib.load(
        folder / "model_segmentation.nii.gz")
    assert nib.aff2axcodes(segmentation.affine) == ("L", "A", "S")
    ct = np.asarray(image.dataobj, np.float32)
    labels = np.asarray(segmentation.dataobj).astype(np.uint8)
    names = [("1", "spleen"), ("5", "liver"), ("6", "stomach")]
    for window in CT_WINDOWS_HU:
        png = render_overlay(CaseArrays(labels, segmentation.affine, ct), names, "5", ct_window=window)
        assert len(png) < 200_000, (window, len(png))
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    axial = _panels(picture)[-1]
    assert _mean_column(picture, axial, 5) < 0.45 < 0.55 < _mean_column(picture, axial, 1)
    assert _letter_at(picture, axial, "left") == "R" and _letter_at(picture, axial, "right") == "L"


def _legible_at_bottom(picture: np.ndarray, panel: tuple[int, int], letter: str) -> float:
    """How well ``letter``, drawn alone anywhere along a panel's bottom edge (where the overlay writes it), matches the
    picture's white pixels there: 1 where nothing else white (the scale bar's length) is drawn over or beside it."""
    font = ImageFont.load_default(size=FONT_PX)
    top = _top(picture)
    h = int(((picture[top:, panel[0]] != 255).any(axis=1)).sum())
    best = 0.0
    for x in range(panel[0] + 2, panel[1] - 8):
        at = (x, top + h - 17)
        window = np.s_[at[1] - 2:top + h, at[0] - 2:min(at[0] + 14, panel[1] + 1)]
        white = (picture[window] >= 230).all(axis=2)
        canvas = Image.new("L", (picture.shape[1], picture.shape[0]), 0)
        ImageDraw.Draw(canvas).text(at, letter, fill=255, font=font)
        glyph = np.asarray(canvas)[window] >= 230
        best = max(best, (glyph & white).sum() / max(1, (glyph | white).sum()))
    return best


def test_a_narrow_panels_bottom_letter_is_not_written_over_by_the_scale_bar():
    """A label 20 mm thick from front to back in a 200 mm field: the sagittal panel is about 60 pixels wide, drawn
    to scale with its 20 mm bar; the bar's length, written above it from the panel's left edge, covered the letter I
    at the middle of its bottom edge."""
    labels = np.zeros((200, 70, 200), np.uint8)
    labels[40:160, 27:47, 40:160] = 1
    picture = _picture(labels, np.eye(4))
    sagittal = _panels(picture)[0]
    assert 55 <= sagittal[1] - sagittal[0] <= 90  # narrow, and not stretched: it has a scale bar
    assert _legible_at_bottom(picture, sagittal, "I") > 0.6
    # the wide coronal panel's bottom letter, in the middle as before
    assert _letter_at(picture, _panels(picture)[1], "bottom") == "I"


@pytest.mark.shared_data
@pytest.mark.parametrize("position", ["HFS", "HFDL"])
def test_a_real_mr_converted_by_medseg_is_lettered_by_the_patients_anatomy(shared_data, tmp_path, position):
    """A sagittal T1 (stored P-I-R) converted from its DICOM series, scanned supine and lying on the left side: with a
    label placed by world coordinates on the patient's right and one on the left, the coronal and axial panels show
    the right one on the image's left, under the letter R (the anatomy, not the table, decides), as for RAS above."""
    import nibabel as nib

    from medseg.io.dicom import convert_dicom

    series = next((shared_data / "dicom" / "mr-decubitus" / position).iterdir())
    convert_dicom(series, tmp_path / "mr.nii.gz")
    mr = nib.load(tmp_path / "mr.nii.gz")
    assert nib.aff2axcodes(mr.affine) == ("P", "I", "R")
    ijk = np.indices(mr.shape).reshape(3, -1)
    x, y, z = (mr.affine[:3, :3] @ ijk + mr.affine[:3, 3:]).reshape((3, *mr.shape))  # RAS+ mm: x towards the right
    middle = [float(np.median(c)) for c in (x, y, z)]
    near = (np.abs(y - middle[1]) < 20) & (np.abs(z - middle[2]) < 20)
    labels = np.zeros(mr.shape, np.uint8)
    labels[near & (x > middle[0] + 20) & (x < middle[0] + 45)] = 2  # on the patient's right
    labels[near & (x < middle[0] - 20) & (x > middle[0] - 45)] = 1  # on the patient's left
    png = render_overlay(CaseArrays(labels, mr.affine, None), LABELS, "1", panel_px=240)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    _, coronal, axial = _panels(picture)
    for panel in (coronal, axial):
        assert _mean_column(picture, panel, 2) < 0.45 < 0.55 < _mean_column(picture, panel, 1)
        assert [_letter_at(picture, panel, edge) for edge in ("left", "right")] == ["R", "L"]
    assert [_letter_at(picture, axial, edge) for edge in ("top", "bottom")] == ["A", "P"]


@pytest.mark.shared_data
@pytest.mark.parametrize("position", ["HFS", "HFDL"])
def test_a_real_mr_shows_anterior_on_the_sagittal_panels_left(shared_data, tmp_path, position):
    """The sagittal T1 (stored P-I-R), supine and on its left side: a label placed by world coordinates in front and
    one behind, in one sagittal plane, land on the sagittal panel's left and right halves, under A and P (as 3D Slicer,
    ITK-SNAP and OHIF show a sagittal slice; the panel showed anterior on the right)."""
    import nibabel as nib

    from medseg.io.dicom import convert_dicom

    series = next((shared_data / "dicom" / "mr-decubitus" / position).iterdir())
    convert_dicom(series, tmp_path / "mr.nii.gz")
    mr = nib.load(tmp_path / "mr.nii.gz")
    ijk = np.indices(mr.shape).reshape(3, -1)
    x, y, z = (mr.affine[:3, :3] @ ijk + mr.affine[:3, 3:]).reshape((3, *mr.shape))  # RAS+ mm: y towards the front
    middle = [float(np.median(c)) for c in (x, y, z)]
    near = (np.abs(x - middle[0]) < 15) & (np.abs(z - middle[2]) < 20)
    labels = np.zeros(mr.shape, np.uint8)
    labels[near & (y > middle[1] + 20) & (y < middle[1] + 45)] = 1  # in front
    labels[near & (y < middle[1] - 20) & (y > middle[1] - 45)] = 2  # behind
    png = render_overlay(CaseArrays(labels, mr.affine, None), LABELS, "1", panel_px=240)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    sagittal = _panels(picture)[0]
    assert _mean_column(picture, sagittal, 1) < 0.45 < 0.55 < _mean_column(picture, sagittal, 2)
    assert [_letter_at(picture, sagittal, edge) for edge in ("left", "right", "top", "bottom")] == list("APSI")


def test_a_slice_whose_affine_gives_its_one_voxel_axis_no_direction_is_drawn_or_named(tmp_path):
    """Arrays whose affine has a zero column for the axis of one voxel (a 2D image's slice, as a reader that does not
    place that axis gives it) made the overlay fail on nibabel's ``IndexError: index -9223372036854775808 is out of
    bounds``, naming neither the file nor the problem. The overlay places that axis along the normal to the other
    two (1 mm, as medseg's NIfTI reading does) and says so; an affine that places no voxel otherwise is refused in
    one line naming the segmentation."""
    from medseg.errors import InputError

    labels = np.zeros((30, 34, 1), np.uint8)
    labels[8:20, 10:25] = 1
    flat = np.diag([0.8, 0.7, 0.0, 1.0])
    arrays = CaseArrays(labels, flat, path=tmp_path / "c_seg.nii.gz")
    png = Image.open(io.BytesIO(render_overlay(arrays, [("1", "liver")], "1")))
    assert png.width > 100 and png.height > 100
    assert arrays.notes == ["its affine gives the axis of one voxel (k) no direction: drawn 1 mm thick along the "
                            "normal to the other two"]
    thick = np.zeros((30, 34, 3), np.uint8)
    thick[8:20, 10:25, 1] = 1
    with pytest.raises(InputError) as error:
        render_overlay(CaseArrays(thick, flat, path=tmp_path / "c_seg.nii.gz"), [("1", "liver")], "1")
    assert str(error.value).startswith(f"{tmp_path / 'c_seg.nii.gz'}: no overlay can be drawn: the affine is singular")
