"""The overlay's contrast window: a CT in Hounsfield units is shown in a soft-tissue window (W400 L40, -160 to
240 HU), as a radiologist reads an abdomen; it was stretched from the crop's 0.5th to 99.5th percentile, air to bone,
which left liver, spleen, muscle and fat one flat grey. Other images keep the percentile window."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from medseg.errors import MedsegWarning
from medseg.report.overlay import CaseArrays, render_overlay
from medseg.report.overlay_image import CT_WINDOW_HU, CT_WINDOWS_HU, display_window


@pytest.mark.parametrize(("percentiles", "expected"), [
    ((-1024.0, 1200.0), CT_WINDOW_HU),  # air to bone: a CT in HU
    ((-3024.0, 900.0), CT_WINDOW_HU),  # the padding outside a scanner's field of view
    ((-850.0, 300.0), CT_WINDOW_HU),  # lung or bowel gas in the crop
    ((0.0, 512.0), (0.0, 512.0)),  # an MR
    ((-2.5, 3.1), (-2.5, 3.1)),  # a z-scored image
    ((-120.0, 180.0), (-120.0, 180.0)),  # a crop of soft tissue alone: no sign of the HU scale
    ((-4096.0, 4095.0), (-4096.0, 4095.0)),  # an MR phase image, symmetric about 0
])
def test_a_window_from_air_in_hounsfield_units_is_the_soft_tissue_one(percentiles, expected):
    assert CT_WINDOW_HU == (-160.0, 240.0)
    assert display_window(percentiles) == expected


def _greys(png: bytes) -> dict[int, int]:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    grey = pixels[(pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])][:, 0]
    values, counts = np.unique(grey, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def test_soft_tissue_of_a_ct_is_drawn_mid_grey_not_white_beside_air():
    labels = np.zeros((40, 40, 12), np.uint8)
    labels[10:30, 10:30, 3:9] = 1
    ct = np.full(labels.shape, 40.0, np.float32)  # soft tissue at the window's level
    ct[10:13] = -1000.0  # air inside the crop
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    greys = _greys(render_overlay(CaseArrays(labels, affine, ct), [("1", "liver")], "1"))
    # 40 HU in -160..240 is half way: grey 127; stretched from air (-1000) to the tissue itself it was white (255),
    # as the page's background around the panels is
    assert greys[127] > 100_000
    mr = ct + 1040.0  # the same picture from 40 to 1080: no HU, the percentile window as before
    mr_greys = _greys(render_overlay(CaseArrays(labels, affine, mr), [("1", "liver")], "1"))
    assert mr_greys.get(127, 0) < 100 and mr_greys[255] > greys[255] + 100_000


def test_the_legend_says_which_grey_scale_the_overlays_use(tmp_path):
    from folder_cases import labels, save

    from medseg.folder_scoring import score_folder

    predicted, reference = labels(1)
    save(predicted, tmp_path / "pred" / "a_seg.nii.gz")
    save(reference, tmp_path / "ref" / "a.nii.gz")
    page = score_folder(tmp_path / "pred", tmp_path / "ref", tmp_path / "scores").report.html.read_text()
    assert ("Grey scale: a CT in Hounsfield units (a CT by its record, the DICOM Modality or dcm2niix's JSON; else "
            "air or gas in the crop) in a soft-tissue window, W400 L40 (−160 to 240 HU); any other image from the "
            "0.5th to the 99.5th percentile of its crop.") in page


@pytest.mark.parametrize(("name", "width", "level"), [
    ("soft-tissue", 400, 40), ("bone", 1800, 400), ("lung", 1500, -600), ("brain", 80, 40)])
def test_a_ct_is_drawn_in_the_window_chosen_by_name(name, width, level):
    """The tissue at the chosen window's level is mid grey (127); at the soft-tissue window's level it is not, but
    for the brain window, whose level is the same."""
    assert CT_WINDOWS_HU[name] == (level - width / 2, level + width / 2)
    labels = np.zeros((40, 40, 12), np.uint8)
    labels[10:30, 10:30, 3:9] = 1
    ct = np.full(labels.shape, float(level), np.float32)
    ct[10:13] = -1000.0  # air inside the crop: a CT in HU
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    greys = _greys(render_overlay(CaseArrays(labels, affine, ct), [("1", "liver")], "1", ct_window=name))
    assert greys[127] > 100_000
    if level != 40:
        default = _greys(render_overlay(CaseArrays(labels, affine, ct), [("1", "liver")], "1"))
        assert default.get(127, 0) < 100


def test_an_unknown_ct_window_is_refused_naming_the_choices():
    from medseg.errors import InputError

    labels = np.zeros((10, 10, 4), np.uint8)
    with pytest.raises(InputError, match=r"^CT window 'liver': give one of soft-tissue, bone, lung, brain$"):
        render_overlay(CaseArrays(labels, np.eye(4), None), [("1", "a")], "1", ct_window="liver")


BONE_LEGEND = ("a CT in Hounsfield units (a CT by its record, the DICOM Modality or dcm2niix's JSON; else air or gas "
               "in the crop) in a bone window, W1800 L400 (−500 to 1300 HU)")


def test_the_report_draws_and_names_the_chosen_ct_window(tmp_path):
    """`medseg report --ct-window bone`: the legend names the window, summary.json's settings record it, and an
    unknown name is a usage error (exit 2) naming the choices."""
    import json

    from folder_cases import labels, save

    from medseg.cli import main
    from medseg.folder_scoring import score_folder

    predicted, reference = labels(1)
    save(predicted, tmp_path / "pred" / "a_seg.nii.gz")
    save(reference, tmp_path / "ref" / "a.nii.gz")
    results = tmp_path / "scores"
    score_folder(tmp_path / "pred", tmp_path / "ref", results)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(results), "-o", f"{tmp_path / 'bad'}/", "--ct-window", "liver"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(results), "-o", f"{tmp_path / 'page'}/", "--ct-window", "bone"])
    assert exit_info.value.code == 0
    page = (tmp_path / "page" / "report.html").read_text()
    assert BONE_LEGEND in page
    assert json.loads((tmp_path / "page" / "summary.json").read_text())["settings"]["ct_window"] == "bone"


def _two_folders(tmp_path, image: np.ndarray | None = None):
    """Folders pred/, ref/ (and images/ holding ``image``) of one case, a."""
    from folder_cases import labels, save

    predicted, reference = labels(1)
    save(predicted, tmp_path / "pred" / "a_seg.nii.gz")
    save(reference, tmp_path / "ref" / "a.nii.gz")
    if image is not None:
        save(image, tmp_path / "images" / "a.nii.gz")
    return tmp_path / "pred", tmp_path / "ref"


def test_evaluate_of_two_folders_draws_its_report_in_the_chosen_ct_window(tmp_path, capsys):
    """`medseg report` and the cohorts had --ct-window, `medseg evaluate -o DIR` (which writes the same report) had
    not: it takes the same choices, drawn and recorded as there; an unknown name is a usage error (exit 2) before
    anything is scored, and one pair (scored without a report) refuses it."""
    import json

    from medseg.cli import main

    pred, ref = _two_folders(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(pred), str(ref), "-o", f"{tmp_path / 'bad'}/", "--ct-window", "liver"])
    assert exit_info.value.code == 2 and not (tmp_path / "bad").exists()
    assert "'liver' is not one of 'soft-tissue', 'bone', 'lung', 'brain'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(pred / "a_seg.nii.gz"), str(ref / "a.nii.gz"), "--ct-window", "bone"])
    assert exit_info.value.code == 2 and "--ct-window is for two folders" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(pred), str(ref), "-o", f"{tmp_path / 'scores'}/", "--ct-window", "bone"])
    assert exit_info.value.code == 0
    page = (tmp_path / "scores" / "report.html").read_text()
    assert BONE_LEGEND in page
    settings = json.loads((tmp_path / "scores" / "summary.json").read_text())["settings"]
    assert (settings["ct_window"], settings["ct_window_chosen"]) == ("bone", True)


def _mr_like(shape=(20, 20, 8)) -> np.ndarray:
    """An image with no air in it (0 to 1000): not taken for a CT in Hounsfield units."""
    return np.linspace(0.0, 1000.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)


def test_a_chosen_ct_window_not_used_for_an_image_that_is_no_ct_is_said(tmp_path, caplog):
    """--ct-window lung over an image without air (an MR, a CT crop of soft tissue alone) drew it from its percentiles
    and said nothing: the choice looked applied. A warning names the case, and its card says why the window was not
    used; without a choice (the default window) nothing is said."""
    import logging

    from medseg.folder_scoring import score_folder

    pred, ref = _two_folders(tmp_path, _mr_like())
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        chosen = score_folder(pred, ref, tmp_path / "chosen", images_dir=tmp_path / "images", ct_window="lung")
    warned = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert len(warned) == 1 and warned[0].startswith(  # the results folder named, as the file a single case names
        f"{tmp_path / 'chosen'}: CT window not used for 1 case (a): the lung window chosen for the report"), warned
    import re

    assert re.search(r"its crop's 0\.5th percentile \d+\.\d is not from -3100 to -500, as air or gas makes it: an "
                     r"MR, or a CT crop without air\); drawn from its crop's percentiles$", warned[0]), warned[0]
    page = chosen.report.html.read_text()
    assert "CT window not used: the lung window chosen for the report is for a CT in Hounsfield units" in page
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        default = score_folder(pred, ref, tmp_path / "default", images_dir=tmp_path / "images")
    assert not [r for r in caplog.records if "CT window" in r.getMessage()]
    assert "CT window not used" not in default.report.html.read_text()
    ct = _mr_like() - 1000.0  # air to soft tissue: a CT, drawn in the lung window, nothing said
    pred, ref = _two_folders(tmp_path / "ct", ct)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        used = score_folder(pred, ref, tmp_path / "ct" / "scores", images_dir=tmp_path / "ct" / "images",
                            ct_window="lung")
    assert not [r for r in caplog.records if "CT window" in r.getMessage()]
    assert "CT window not used" not in used.report.html.read_text()


def _overlay_pngs(page: str) -> list[str]:
    import re

    return re.findall(r'<img[^>]* alt="overlay of [^"]*" src="data:image/png;base64,([^"]+)"', page)


def test_a_model_package_declares_the_ct_window_its_cases_are_drawn_in(make_package, tmp_path):
    """A lung model's cases were drawn in the soft-tissue window unless each report was asked for another. Its
    model.json may declare one (``report.ct_window``, validated): infer records it in the sidecar, and the report draws
    the model's cases in it where none is chosen, saying so in the legend and summary.json; a window chosen for the
    report still wins."""
    import json

    import nibabel as nib

    from medseg.errors import ModelPackageError
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.package_config import load_schema
    from medseg.report.build import build_report
    from medseg.segment import segment_case

    # the package format's choices are the report's windows
    assert load_schema()["properties"]["report"]["properties"]["ct_window"]["enum"] == list(CT_WINDOWS_HU)
    with pytest.raises(ModelPackageError, match=r"report/ct_window: 'liver' is not one of"):
        make_package("odd", report={"ct_window": "liver"})
    package = load_package(make_package("lungs", report={"ct_window": "lung"}))
    ct = np.full((40, 40, 12), 40.0, np.float32)
    ct[:, :12] = -1000.0  # air in the crop: a CT in HU
    nib.save(nib.Nifti1Image(ct, np.eye(4)), tmp_path / "chest.nii.gz")
    segment_case(tmp_path / "chest.nii.gz", Segmenter(package, device="cpu"), out_dir=tmp_path / "out")
    sidecar = json.loads((tmp_path / "out" / "chest_seg.json").read_text())
    assert sidecar["model"]["ct_window"] == "lung"
    pages = {}
    for chosen in (None, "lung", "soft-tissue"):
        built = build_report(tmp_path / "out", tmp_path / f"report-{chosen}" / "report.html", ct_window=chosen)
        pages[chosen] = (built.html.read_text(), json.loads(built.summary.read_text())["settings"])
    page, settings = pages[None]
    assert settings["model_ct_windows"] == {"lungs": "lung"} and settings["ct_window_chosen"] is False
    assert "the cases of model lungs in its lung window, W1500 L−600 (−1350 to 150 HU)" in page
    assert _overlay_pngs(page) and _overlay_pngs(page) == _overlay_pngs(pages["lung"][0])
    assert _overlay_pngs(page) != _overlay_pngs(pages["soft-tissue"][0])
    assert pages["soft-tissue"][1]["model_ct_windows"] == {}
    # the settings table shows the model's window as words, not a Python mapping
    assert "<tr><td>model_ct_windows</td><td>lungs: lung</td></tr>" in page
    assert "<tr><td>model_ct_windows</td><td>none</td></tr>" in pages["soft-tissue"][0]


def test_the_note_on_a_window_not_used_names_only_the_percentile_that_kept_it_off(tmp_path, caplog):
    """The note said both tests failed whatever did: an MR (0.5th percentile 23.8, 99.5th 804.5) read "… or its
    99.5th 804.5 is above 4000", and a CT with air and metal in its crop (0.5th -1000, 99.5th 6000) "its crop's 0.5th
    percentile -1000.0 is not from -3100 to -500": false on its face. The note names the test that failed."""
    import logging

    from medseg.folder_scoring import score_folder

    pred, ref = _two_folders(tmp_path / "mr", _mr_like())
    metal = np.full((20, 20, 8), 40.0, np.float32)
    metal[:, :, :2] = -1000.0  # air in the crop: the low percentile is a CT's
    metal[:, :, 6:] = 6000.0  # metal (or values not in HU) above 4000
    pred_ct, ref_ct = _two_folders(tmp_path / "ct", metal)
    warned = {}
    for name, (p, r) in {"mr": (pred, ref), "ct": (pred_ct, ref_ct)}.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
            score_folder(p, r, tmp_path / name / "scores", images_dir=tmp_path / name / "images", ct_window="lung")
        (warned[name],) = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
        assert [str(w.message) for w in told] == [warned[name]]
    assert re.search(r"its crop's 0\.5th percentile \d+\.\d is not from -3100 to -500, as air or gas makes it: an "
                     r"MR, or a CT crop without air\); drawn from its crop's percentiles$", warned["mr"]), warned["mr"]
    assert "above 4000" not in warned["mr"]
    assert re.search(r"its crop's 99\.5th percentile 6000\.0 is above 4000: not Hounsfield units, or metal in the "
                     r"crop\); drawn from its crop's percentiles$", warned["ct"]), warned["ct"]
    assert "-3100" not in warned["ct"]


def test_two_packages_of_one_name_declaring_two_windows_are_both_named(make_package, tmp_path):
    """The cases of a package named lungs declaring the lung window and of one of that name declaring bone (its
    model.json edited, or another version): each was drawn in its own window, but summary.json and the legend named
    the first one found alone (``lungs: lung``), false for the other's cases. Each is named, told apart by the SHA-256
    of its model.json."""
    import json

    import nibabel as nib

    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.report.build import build_report
    from medseg.segment import segment_case

    ct = np.full((40, 40, 12), 40.0, np.float32)
    ct[:, :12] = -1000.0
    nib.save(nib.Nifti1Image(ct, np.eye(4)), tmp_path / "chest.nii.gz")
    nib.save(nib.Nifti1Image(ct, np.eye(4)), tmp_path / "spine.nii.gz")
    hashes = {}
    for case, window in (("chest", "lung"), ("spine", "bone")):
        package = load_package(make_package("lungs", report={"ct_window": window}))
        hashes[window] = package.config_sha256[:8]
        segment_case(tmp_path / f"{case}.nii.gz", Segmenter(package, device="cpu"), out_dir=tmp_path / "out")
    assert hashes["lung"] != hashes["bone"]
    built = build_report(tmp_path / "out", tmp_path / "report" / "report.html")
    windows = json.loads(built.summary.read_text())["settings"]["model_ct_windows"]
    assert windows == {f"lungs (model.json {hashes['lung']})": "lung", f"lungs (model.json {hashes['bone']})": "bone"}
    page = built.html.read_text()
    assert f"the cases of model lungs (model.json {hashes['bone']}) in its bone window, W1800 L400" in page


def test_a_models_window_not_used_for_an_image_that_is_no_ct_is_said_as_the_models(make_package, tmp_path, caplog):
    """A lung model run on an image without air (an MR given to a CT model): its declared window cannot be used, and
    the warning and the card say it was the model's (the legend names the model's window for its cases); a report
    given a window of its own says nothing of the model's."""
    import logging

    import nibabel as nib

    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.report.build import build_report
    from medseg.segment import segment_case

    package = load_package(make_package("lungs", report={"ct_window": "lung"}))
    nib.save(nib.Nifti1Image(_mr_like((40, 40, 12)), np.eye(4)), tmp_path / "head.nii.gz")
    segment_case(tmp_path / "head.nii.gz", Segmenter(package, device="cpu"), out_dir=tmp_path / "out")
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        built = build_report(tmp_path / "out", tmp_path / "report" / "report.html")
    warned = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert len(_overlay_pngs(built.html.read_text())) == 1  # the seeded model's labels, drawn over the image
    assert len(warned) == 1 and warned[0].startswith(
        f"{tmp_path / 'out'}: CT window not used for 1 case (head): the lung window its model declares (model.json "
        "report.ct_window) is "
        "for a CT in Hounsfield units, and its image is not taken for one (its crop's 0.5th percentile"), warned
    assert "the lung window its model declares (model.json report.ct_window)" in built.html.read_text()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        chosen = build_report(tmp_path / "out", tmp_path / "chosen" / "report.html", ct_window="bone")
    warned = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert len(warned) == 1 and "the bone window chosen for the report" in warned[0]
    assert "its model declares" not in chosen.html.read_text()


def test_a_sidecars_unknown_ct_window_is_warned_of_not_silently_dropped(make_package, tmp_path, caplog):
    """A sidecar naming a window this version does not know (written by a later medseg, or edited: ``liver``) had
    its case drawn in the default window without a word, the legend naming no model's window. A warning names the
    sidecar, the window and what was drawn instead."""
    import json
    import logging

    import nibabel as nib

    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.report.build import build_report
    from medseg.segment import segment_case

    package = load_package(make_package("lungs", report={"ct_window": "lung"}))
    ct = np.full((40, 40, 12), 40.0, np.float32)
    ct[:, :12] = -1000.0
    nib.save(nib.Nifti1Image(ct, np.eye(4)), tmp_path / "chest.nii.gz")
    segment_case(tmp_path / "chest.nii.gz", Segmenter(package, device="cpu"), out_dir=tmp_path / "out")
    sidecar_path = tmp_path / "out" / "chest_seg.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["model"]["ct_window"] = "liver"
    sidecar_path.write_text(json.dumps(sidecar))
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        built = build_report(tmp_path / "out", tmp_path / "report" / "report.html")
    warned = [r.getMessage() for r in caplog.records if "liver" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert warned == [f"{sidecar_path}: model.ct_window 'liver' is not a CT window this medseg knows (soft-tissue, "
                      "bone, lung, brain): its case is drawn in the soft-tissue window"], warned
    assert json.loads(built.summary.read_text())["settings"]["model_ct_windows"] == {}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        build_report(tmp_path / "out", tmp_path / "chosen" / "report.html", ct_window="bone")
    assert not [r for r in caplog.records if "liver" in r.getMessage()]  # a window given: the model's is not used


def test_the_settings_table_says_in_words_whether_a_ct_window_was_chosen(tmp_path):
    """The page's settings table showed ``ct_window_chosen`` as Python's ``False`` beside ``ct_window soft-tissue``,
    which read as if soft-tissue had been chosen. It says in words which window was chosen, or none (each model's
    declared window, else the default); summary.json keeps its values."""
    import json

    from medseg.report.build import build_report

    pred, ref = _two_folders(tmp_path)
    from medseg.folder_scoring import score_folder

    score_folder(pred, ref, tmp_path / "scores")
    pages = {}
    for chosen in (None, "bone"):
        built = build_report(tmp_path / "scores", tmp_path / f"page-{chosen}" / "report.html", ct_window=chosen)
        pages[chosen] = (built.html.read_text(), json.loads(built.summary.read_text())["settings"])
    page, settings = pages[None]
    assert (settings["ct_window"], settings["ct_window_chosen"]) == ("soft-tissue", False)
    assert "<tr><td>ct_window</td><td>soft-tissue (the default: none chosen, and no model declares one)</td></tr>" \
        in page
    assert "<tr><td>ct_window_chosen</td><td>no (none chosen)</td></tr>" in page
    assert ">False<" not in page and ">True<" not in page
    page, settings = pages["bone"]
    assert (settings["ct_window"], settings["ct_window_chosen"]) == ("bone", True)
    assert "<tr><td>ct_window</td><td>bone</td></tr>" in page
    assert "<tr><td>ct_window_chosen</td><td>yes</td></tr>" in page


def test_a_window_not_used_for_many_cases_is_one_warning_naming_how_many_and_the_first(tmp_path, caplog):
    """--ct-window lung over a folder of MR cases warned once per case drawn, a screenful for a cohort, each line the
    same words. One line per run says how many cases and names the first few (and why, for the first); each card keeps
    its own note."""
    import logging

    from folder_cases import labels, save

    from medseg.folder_scoring import score_folder

    predicted, reference = labels(1)
    cases = [f"mr{n}" for n in range(7)]
    for case in cases:
        save(predicted, tmp_path / "pred" / f"{case}_seg.nii.gz")
        save(reference, tmp_path / "ref" / f"{case}.nii.gz")
        save(_mr_like(), tmp_path / "images" / f"{case}.nii.gz")
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        built = score_folder(tmp_path / "pred", tmp_path / "ref", tmp_path / "scores",
                             images_dir=tmp_path / "images", ct_window="lung")
    warned = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"{tmp_path / 'scores'}: CT window not used for 7 cases (mr0, mr1, mr2, mr3, mr4, "
                                "… 7 in all): the lung "
                                "window chosen for the report is for a CT in Hounsfield units, and their images are "
                                "not taken for one (mr0: its crop's 0.5th percentile "), warned[0]
    assert warned[0].endswith("; each case's card says why); drawn from their crops' percentiles"), warned[0]
    page = built.report.html.read_text()
    assert page.count("CT window not used: the lung window chosen for the report is for a CT") == 7


def test_evaluate_with_a_model_draws_predictions_without_sidecars_in_the_models_window(make_package, tmp_path,
                                                                                       capsys):
    """`medseg evaluate PRED REF --model M --images IMG -o OUT`: predictions of another tool (no sidecar) scored under
    M's labels were drawn in the default soft-tissue window, though M declares its own (``report.ct_window``). Each
    metrics record names the package it was scored under with its window (``scored_with_model``), which the report
    draws the case in, as it would a sidecar's model, also when it is made again with `medseg report`; a window given
    still wins."""
    import json

    from medseg.cli import main
    from medseg.package import load_package

    package = load_package(make_package("lungs", report={"ct_window": "lung"}))
    ct = np.full((20, 20, 8), 40.0, np.float32)
    ct[:, :, :3] = -1000.0  # air in the crop: a CT in HU
    pred, ref = _two_folders(tmp_path, ct)
    pages = {}
    for chosen in (None, "lung"):
        out = tmp_path / f"scores-{chosen}"
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(pred), str(ref), "--model", str(package.path), "--images", str(tmp_path / "images"),
                  "-o", f"{out}/", *(["--ct-window", chosen] if chosen else [])])
        assert exit_info.value.code == 0, capsys.readouterr().err
        pages[chosen] = ((out / "report.html").read_text(), json.loads((out / "summary.json").read_text())["settings"])
    metrics = json.loads((tmp_path / "scores-None" / "a_metrics.json").read_text())
    assert metrics["scored_with_model"] == {"name": "lungs", "version": package.config.get("version"),
                                            "config_sha256": package.config_sha256, "ct_window": "lung"}
    page, settings = pages[None]
    assert settings["model_ct_windows"] == {"lungs": "lung"} and settings["ct_window_chosen"] is False
    assert "the cases of model lungs in its lung window, W1500 L−600 (−1350 to 150 HU)" in page
    assert _overlay_pngs(page) and _overlay_pngs(page) == _overlay_pngs(pages["lung"][0])
    with pytest.raises(SystemExit) as exit_info:  # made again from the folder: the metrics keep the model's window
        main(["report", str(tmp_path / "scores-None"), "-o", f"{tmp_path / 'again'}/"])
    assert exit_info.value.code == 0
    assert _overlay_pngs((tmp_path / "again" / "report.html").read_text()) == _overlay_pngs(page)


def _window_cases(tmp_path, image: np.ndarray, record: dict | None, affine=None):
    """pred/, ref/ and images/ of one case ``a``: its labels a box in the middle of ``image``, and ``record``
    (dcm2niix's JSON) beside the image where given."""
    import json

    from folder_cases import save

    label = np.zeros(image.shape, np.uint8)
    middle = tuple(slice(n // 3, 2 * n // 3) for n in image.shape)
    label[middle] = 1
    kwargs = {} if affine is None else {"affine": affine}
    save(label, tmp_path / "pred" / "a_seg.nii.gz", **kwargs)
    save(label, tmp_path / "ref" / "a.nii.gz", **kwargs)
    save(image, tmp_path / "images" / "a.nii.gz", **kwargs)
    if record is not None:
        (tmp_path / "images" / "a.json").write_text(json.dumps(record))
    return tmp_path / "pred", tmp_path / "ref"


def _head_ct(shape=(24, 24, 8)) -> np.ndarray:
    """A head CT's crop inside the skull: brain (20-45 HU) and bone (1000-1500 HU), no air."""
    image = np.linspace(20.0, 45.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    image[:3], image[-3:] = 1000.0, 1500.0
    return image


@pytest.mark.parametrize(("record", "drawn", "why"), [
    ({"Modality": "CT"}, True, None),
    ({"Modality": "MR"}, False, "its modality is MR, as its record says"),
    (None, False, "is not from -3100 to -500, as air or gas makes it"),
    # medseg convert --sidecar's record of the series (its DICOM Modality as "modality", as an infer sidecar's
    # input_info has it) beside the NIfTI it wrote
    ({"source": "/data/dcm", "source_sha256": "0" * 64, "series_uid": "1.2.3", "modality": "CT"}, True, None),
    ({"source": "/data/dcm", "source_sha256": "0" * 64, "series_uid": "1.2.3", "modality": "MR"}, False,
     "its modality is MR, as its record says"),
])
def test_a_ct_crop_without_air_is_drawn_in_the_ct_window_where_its_record_says_ct(tmp_path, caplog, record, drawn,
                                                                                   why):
    """The brain window never applied to a head CT's crop inside the skull (brain and bone, no air): an image was
    taken for a CT only if its crop held air. Where dcm2niix's JSON beside the image (or the sidecar, for a DICOM
    series) gives its Modality, a CT is drawn in the CT window whatever its crop holds, and an MR never; where
    nothing says, the crop's air still decides."""
    import logging

    from medseg.folder_scoring import score_folder

    pred, ref = _window_cases(tmp_path, _head_ct(), record)
    with caplog.at_level(logging.WARNING, logger="medseg"), warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always", MedsegWarning)
        built = score_folder(pred, ref, tmp_path / "scores", images_dir=tmp_path / "images", ct_window="brain")
    warned = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
    assert [str(w.message) for w in told if issubclass(w.category, MedsegWarning)] == warned
    page = built.report.html.read_text()
    assert len(_overlay_pngs(page)) == 1
    if drawn:
        assert warned == [] and "CT window not used" not in page
    else:
        assert len(warned) == 1 and why in warned[0], warned
        assert "CT window not used: the brain window chosen for the report" in page


@pytest.mark.parametrize("text", ["[" * 200_000 + "]" * 200_000, '{"Modality": "' + "C" * 100_000 + '"}',
                                  '{"Modality": "CT<b>"}'])
def test_a_crafted_json_beside_the_image_says_no_modality_and_the_case_keeps_its_overlay(tmp_path, caplog, text):
    """A JSON beside the image nested deeper than Python's reader goes raised RecursionError, not a ValueError: the
    case lost its overlay, told as "no overlay (RecursionError: maximum recursion depth exceeded …)" without the file.
    A Modality that is no DICOM code string (16 characters at most: upper-case letters, digits, space, underscore) is
    none either, not a 100 000-character warning."""
    import logging

    from medseg.folder_scoring import score_folder

    pred, ref = _window_cases(tmp_path, _head_ct(), {})
    (tmp_path / "images" / "a.json").write_text(text)
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        built = score_folder(pred, ref, tmp_path / "scores", images_dir=tmp_path / "images", ct_window="brain")
    page = built.report.html.read_text()
    assert len(_overlay_pngs(page)) == 1 and "no overlay" not in page
    warned = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert len(warned) == 1 and "is not from -3100 to -500, as air or gas makes it" in warned[0], warned
    assert len(warned[0]) < 1000


def test_a_soft_tissue_crop_of_the_shared_ct_is_a_ct_by_its_dcm2niix_record(shared_data, tmp_path, caplog):
    """On the shared Siemens CT (dcm2niix's conversion and its JSON, Modality CT), the crop around a label of the
    multi-label segmentation that holds no air (label 63: its crop from -60 to 242 HU) was not taken for a CT: the
    window chosen was not used. With the record beside the image it is; without it, as before, it is not."""
    import logging
    import shutil

    import nibabel as nib

    from medseg.folder_scoring import score_folder

    folder = shared_data / "dicom" / "ct-jpeg2000"
    segmentation = nib.load(folder / "model_segmentation.nii.gz")
    label = (np.asarray(segmentation.dataobj) == 63).astype(np.uint8)
    warned = {}
    for kind in ("with", "without"):
        images = tmp_path / kind / "images"
        images.mkdir(parents=True)
        shutil.copy(folder / "ref" / "example_ct_dicom.nii.gz", images / "a.nii.gz")
        if kind == "with":
            shutil.copy(folder / "ref" / "example_ct_dicom.json", images / "a.json")
        for role, name in (("pred", "a_seg.nii.gz"), ("ref", "a.nii.gz")):
            (tmp_path / kind / role).mkdir()
            nib.save(nib.Nifti1Image(label, segmentation.affine), tmp_path / kind / role / name)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="medseg"), warnings.catch_warnings(record=True) as told:
            warnings.simplefilter("always", MedsegWarning)
            score_folder(tmp_path / kind / "pred", tmp_path / kind / "ref", tmp_path / kind / "scores",
                         images_dir=images, ct_window="brain")
        warned[kind] = [r.getMessage() for r in caplog.records if "CT window not used" in r.getMessage()]
        assert [str(w.message) for w in told if issubclass(w.category, MedsegWarning)] == warned[kind]
    assert warned["with"] == []
    assert len(warned["without"]) == 1 and "is not from -3100 to -500" in warned["without"][0], warned


@pytest.mark.parametrize(("recorded", "expected"), [("CT", "CT"), ("mr", "MR"), ("", None), (None, None)])
def test_a_dicom_inputs_modality_is_the_one_its_sidecar_records(tmp_path, recorded, expected):
    """A DICOM series' Modality, which the sidecar records of the input (``input_info.modality``), is the modality of
    the image drawn; not of another image (an --images one, where the input is not found)."""
    from medseg.report.case_result import CaseResult
    from medseg.report.overlay_arrays import image_modality

    series = tmp_path / "series"
    series.mkdir()
    info = {} if recorded is None else {"modality": recorded}
    case = CaseResult("a", tmp_path, tmp_path, sidecar={"input": str(series), "input_info": info})
    assert case.image_path() == series
    assert image_modality(case, case.image_path()) == expected
    assert image_modality(case, tmp_path / "other.nii.gz") is None


def test_unknown_ct_windows_of_many_sidecars_are_one_warning(make_package, tmp_path, caplog):
    """Sidecars naming a window this version does not know were warned of one line each: a cohort written by a later
    medseg, a screenful. Several are one line, naming how many cases, the windows and the first few."""
    import json
    import logging

    import nibabel as nib

    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.report.build import build_report
    from medseg.segment import segment_case

    segmenter = Segmenter(load_package(make_package("lungs", report={"ct_window": "lung"})), device="cpu")
    ct = np.full((40, 40, 12), 40.0, np.float32)
    ct[:, :12] = -1000.0
    for case in ("c1", "c2", "c3"):
        nib.save(nib.Nifti1Image(ct, np.eye(4)), tmp_path / f"{case}.nii.gz")
        segment_case(tmp_path / f"{case}.nii.gz", segmenter, out_dir=tmp_path / "out")
        sidecar_path = tmp_path / "out" / f"{case}_seg.json"
        sidecar = json.loads(sidecar_path.read_text())
        sidecar["model"]["ct_window"] = "liver" if case != "c3" else "kidney"
        sidecar_path.write_text(json.dumps(sidecar))
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        build_report(tmp_path / "out", tmp_path / "report" / "report.html")
    warned = [r.getMessage() for r in caplog.records if "not a CT window" in r.getMessage()
              or "does not know" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert warned == [f"{tmp_path / 'out'}: 3 cases name a CT window this medseg does not know ('liver', 'kidney'; "
                      "it knows soft-tissue, "
                      "bone, lung, brain) in their sidecar's model.ct_window: drawn in the soft-tissue window: c1, c2, "
                      "c3"], warned
