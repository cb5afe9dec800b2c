"""Image and label files paired by name (medseg.training_cases.pair_cases): label and nnU-Net channel suffixes,
names whose accents are composed differently, and unpaired files, folders and entries named for what they are."""

from __future__ import annotations

import logging
import shutil

import nibabel as nib
import numpy as np
import pytest
from training_factory import _bad_set, _write, write_set

from medseg.errors import MedsegWarning, TrainingError
from medseg.training_cases import pair_cases


def test_pairing_strips_label_suffixes(tmp_path):
    images, labels = write_set(tmp_path, count=2, label_suffix="_seg")
    cases = pair_cases(images, labels)
    assert [c.case_id for c in cases] == ["case0", "case1"]
    assert cases[1].label_path.name == "case1_seg.nii.gz"


@pytest.mark.parametrize("gone", ["images", "labels"])
def test_pairing_names_which_folder_is_not_there(tmp_path, gone):
    """Either folder missing read "<folder>: no such folder"; a sheet, a results folder or a model that is not there
    is named as what it is ("no such sample sheet"), and so now is each of the two."""
    for kind in ("images", "labels"):
        if kind != gone:
            (tmp_path / kind).mkdir()
    with pytest.raises(TrainingError) as caught:
        pair_cases(tmp_path / "images", tmp_path / "labels")
    assert str(caught.value) == f"{tmp_path / gone}: no such {gone} folder"


def test_pairing_matches_names_whose_accents_are_composed_differently(tmp_path):
    """An image named on a Mac (é as e and its combining accent, as macOS names files) and its label named elsewhere
    (é as one character): "no image has a label of the same name ... e.g. image 'patiént0', label 'patiént0'",
    names that look the same. They pair, under the composed name."""
    import unicodedata

    images, labels = write_set(tmp_path, count=2)
    for folder, form in ((images, "NFD"), (labels, "NFC")):
        for path in sorted(folder.iterdir()):
            path.rename(path.with_name(unicodedata.normalize(form, path.name.replace("case", "pati\u00e9nt"))))
    cases = pair_cases(images, labels)
    assert [c.case_id for c in cases] == ["pati\u00e9nt0", "pati\u00e9nt1"]
    assert [c.image_path.name for c in cases] == [f"patie\u0301nt{i}.nii.gz" for i in range(2)]
    assert [c.label_path.name for c in cases] == [f"pati\u00e9nt{i}.nii.gz" for i in range(2)]


def test_two_files_of_one_case_whose_names_differ_in_accent_composition_are_told_apart(tmp_path):
    """A Linux disk holds patiént0.nii.gz with é as one character and as e and its accent as two files, which look
    alike on a screen: the error says how the names differ, or the user cannot tell which to keep."""
    images, labels = write_set(tmp_path, count=2)
    for path in sorted(images.iterdir()):
        path.rename(path.with_name(path.name.replace("case", "pati\u00e9nt")))
    composed = images / "pati\u00e9nt0.nii.gz"
    (images / "patie\u0301nt0.nii.gz").write_bytes(composed.read_bytes())
    with pytest.raises(TrainingError, match=r"^.*: case 'pati\u00e9nt0' has two files \(patie\u0301nt0.nii.gz and "
                                            r"pati\u00e9nt0.nii.gz, names that differ only in how an accent is "
                                            r"composed, as one character or as a letter and its accent\); keep one "
                                            r"of them$"):
        pair_cases(images, labels)


def test_pairing_accepts_nnunet_channel_suffix_with_label_suffixes(tmp_path):
    images, labels = write_set(tmp_path, count=2, label_suffix="_seg")
    for path in sorted(images.iterdir()):
        path.rename(path.with_name(path.name.replace(".nii.gz", "_0000.nii.gz")))
    cases = pair_cases(images, labels)
    assert [(c.case_id, c.image_path.name, c.label_path.name) for c in cases] == [
        ("case0", "case0_0000.nii.gz", "case0_seg.nii.gz"), ("case1", "case1_0000.nii.gz", "case1_seg.nii.gz")]


@pytest.mark.parametrize(("images", "labels", "pairs"), [
    (["a", "a_seg"], ["a_seg", "a_seg_seg"], [("a", "a", "a_seg"), ("a_seg", "a_seg", "a_seg_seg")]),
    (["a", "a_seg"], ["a", "a_seg"], [("a", "a", "a"), ("a_seg", "a_seg", "a_seg")]),
    (["a_0000", "b_0000"], ["a_seg", "b"], [("a", "a_0000", "a_seg"), ("b", "b_0000", "b")]),
    (["p1_frame01", "p1_frame12"], ["p1_frame01_gt", "p1_frame12_gt"],  # ACDC's names
     [("p1_frame01", "p1_frame01", "p1_frame01_gt"), ("p1_frame12", "p1_frame12", "p1_frame12_gt")]),
])
def test_pairing_when_image_names_end_like_label_suffixes(tmp_path, images, labels, pairs):
    for folder, names in (("images", images), ("labels", labels)):
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / f"{name}.nii.gz").write_bytes(b"")  # pairing reads names only
    cases = pair_cases(tmp_path / "images", tmp_path / "labels")
    assert [(c.case_id, c.image_path.name[:-7], c.label_path.name[:-7]) for c in cases] == pairs


def test_pairing_accepts_nnunet_channel_suffix(tmp_path):
    """nnU-Net's raw-data layout: ``imagesTr/case_0000.nii.gz`` pairs with ``labelsTr/case.nii.gz``."""
    images, labels = write_set(tmp_path, count=2)
    for path in sorted(images.iterdir()):
        path.rename(path.with_name(path.name.replace(".nii.gz", "_0000.nii.gz")))
    cases = pair_cases(images, labels)
    assert [c.case_id for c in cases] == ["case0", "case1"]
    assert cases[0].image_path.name == "case0_0000.nii.gz" and cases[0].label_path.name == "case0.nii.gz"
    # a second channel file is that case's second modality; the other case then lacks its own, named
    (images / "case1_0001.nii.gz").write_bytes((images / "case1_0000.nii.gz").read_bytes())
    with pytest.raises(TrainingError) as info:
        pair_cases(images, labels)
    assert str(info.value) == (f"{images / 'case0_0001.nii.gz'}: not there, where case 'case1' has 2 channel files "
                               "(_0000 … _0001); every case needs one file per input channel (modality), numbered "
                               "alike")
    (images / "case0_0001.nii.gz").write_bytes((images / "case0_0000.nii.gz").read_bytes())
    cases = pair_cases(images, labels)
    assert [[path.name for path in case.channel_paths] for case in cases] == [
        ["case0_0000.nii.gz", "case0_0001.nii.gz"], ["case1_0000.nii.gz", "case1_0001.nii.gz"]]


def test_unpaired_files_and_a_label_of_another_shape_are_named_in_one_run(tmp_path):
    """A missing label stopped the check before a paired case's label of another shape (or, later, placed off its
    image's grid) was looked at: the second problem came only after the first was fixed. The error about unpaired
    files names all; a label stored in another voxel order (the same grid) is not taken for one of another shape."""
    images, labels, _ = _bad_set(tmp_path, "unpaired")
    image = np.zeros((16, 16, 6), np.float32)
    _write(images / "short.nii.gz", image)
    # one slice more, of other voxels: no box of the image's lattice
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 7), np.uint8), np.diag([1.0, 1.0, 1.5, 1.0])), labels / "short.nii.gz")
    _write(images / "cropped.nii.gz", image)  # a box of its image's grid (3D Slicer's crop): zero-padded, not named
    _write(labels / "cropped.nii.gz", np.zeros((16, 16, 5), np.uint8))
    _write(images / "turned.nii.gz", image)  # the same grid, its label's axes in another order
    nib.save(nib.Nifti1Image(np.zeros((6, 16, 16), np.uint8), np.eye(4)[:, [2, 0, 1, 3]]), labels / "turned.nii.gz")
    _write(images / "shifted.nii.gz", image)  # read from the headers too: a label 2 mm off its image's grid
    moved = np.eye(4)
    moved[0, 3] = 2.0
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 6), np.uint8), moved), labels / "shifted.nii.gz")
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels)
    assert str(error.value).endswith("; besides, 1 paired case has a label of another shape than the image: "
                                     "short (16×16×7 against 16×16×6); besides, 1 paired case has a label off "
                                     "the image's grid: shifted (up to 2 mm off)")
    assert "1 file has no counterpart of the same name" in str(error.value) and "lonely.nii.gz" in str(error.value)


def test_unpaired_files_whose_names_differ_only_in_letter_case_are_told_so(tmp_path):
    """Image Case1 and label case1 were both listed as unpaired, without a word on why."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    image, label = np.zeros((16, 16, 6), np.float32), np.zeros((16, 16, 6), np.uint8)
    for name in ("a", "Case1", "CASE2"):
        _write(images / f"{name}.nii.gz", image)
    for name in ("a", "case1", "case2", "other"):
        _write(labels / f"{name}.nii.gz", label)
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels)
    assert str(error.value) == (
        f"{images / 'CASE2.nii.gz'}: 5 files have no counterpart of the same name (images in {images}, labels in "
        f"{labels}): {images / 'CASE2.nii.gz'}, {images / 'Case1.nii.gz'}, {labels / 'case1.nii.gz'}, "
        f"{labels / 'case2.nii.gz'}, {labels / 'other.nii.gz'} (CASE2 and case2, Case1 and case1 differ only in letter "
        "case)")


# the folder's left-out entries are checked as their log lines; the same words are a MedsegWarning too each time
@pytest.mark.filterwarnings("ignore:.* left out :medseg.errors.MedsegWarning")
def test_folder_oddities_are_named_for_what_they_are(tmp_path, capsys, caplog):
    """A broken link was 'not a .nii/.nii.gz file'; a second nnU-Net channel was only 'no counterpart'; more labels
    than training holds without a config named the default config, not the file that holds them."""
    from medseg.cli import main

    images, labels, _ = _bad_set(tmp_path, "shape mismatch")
    _write(labels / "a.nii.gz", np.zeros((16, 16, 6), np.uint8) + np.eye(16, dtype=np.uint8)[:, :, None])
    (labels / "gone.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning, match="left out 1 link that leads nowhere"):
        assert len(pair_cases(images, labels)) == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{labels}: left out 1 link that leads nowhere (moved or deleted targets, or a loop): gone.nii.gz"]
    (images / "a.nii.gz").rename(images / "a_0000.nii.gz")
    _write(images / "a_0001.nii.gz", np.zeros((16, 16, 6), np.float32))  # the case's second modality
    assert [path.name for path in pair_cases(images, labels)[0].channel_paths] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    _write(images / "b.nii.gz", np.zeros((16, 16, 6), np.float32))  # an image without a label: told alone
    with pytest.raises(TrainingError, match=r"b\.nii\.gz: 1 file has no counterpart of the same name .*"
                                            r"b\.nii\.gz$"):
        pair_cases(images, labels)
    (images / "b.nii.gz").unlink()
    (images / "a_0001.nii.gz").unlink()
    (images / "a_0000.nii.gz").rename(images / "a.nii.gz")
    _write(images / "a_2020.nii.gz", np.zeros((16, 16, 6), np.float32))  # a date, beside no case_0000: no hint
    with pytest.raises(TrainingError) as info:
        pair_cases(images, labels)
    assert "no counterpart" in str(info.value) and "channels" not in str(info.value)
    (images / "a_2020.nii.gz").unlink()
    big = np.arange(16 * 16 * 6, dtype=np.uint16).reshape(16, 16, 6) % 300  # values 0..299, no gaps
    _write(labels / "a.nii.gz", big)
    with pytest.raises(SystemExit):
        main(["train", "--images", str(images), "--labels", str(labels), "-o", str(tmp_path / "m")])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {labels / 'a.nii.gz'}: label value 256 makes 300 labels, more than the 256 medseg train "
        "supports (its class indices are kept as 8-bit values)")
    # one huge value: the check for gaps below it listed every value up to it (a MemoryError, or 4 GB for 10^8)
    huge = np.zeros((16, 16, 6), np.int64)
    huge[0, 0, 0] = 2**40
    nib.save(nib.Nifti1Image(huge, np.eye(4), dtype=np.int64), str(labels / "a.nii.gz"))
    with pytest.raises(SystemExit):
        main(["train", "--images", str(images), "--labels", str(labels), "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"medseg: error: {labels / 'a.nii.gz'}: label value {2**40} is above 65535, the largest a "
                       "segmentation (uint16) holds") and not any("Traceback" in line for line in err)


def test_two_files_for_one_case_are_an_error(tmp_path):
    images, labels = write_set(tmp_path, count=2)
    (labels / "case1_seg.nii.gz").write_bytes((labels / "case1.nii.gz").read_bytes())
    with pytest.raises(TrainingError, match=r"case1_seg.nii.gz: case 'case1' has two files \(case1.nii.gz and "
                                            r"case1_seg.nii.gz\); keep one of them"):
        pair_cases(images, labels)
    (labels / "case1_seg.nii.gz").unlink()
    nib.save(nib.load(images / "case0.nii.gz"), images / "case0.nii")
    with pytest.raises(TrainingError, match=r"case0.nii.gz: case 'case0' has two files \(case0.nii and "):
        pair_cases(images, labels)


def test_images_and_labels_of_mixed_endings_pair_by_case_without_a_dataset_json(tmp_path):
    """Without a dataset.json no file_ending says what the files end in: a case whose image is ``.nii`` and whose
    label is ``.nii.gz`` (or the other way round) is paired by its name without the ending, and a file whose case
    has no counterpart in the other folder, whatever its ending, is named in the error, never left out unsaid."""
    images, labels = write_set(tmp_path, count=3)
    nib.save(nib.load(images / "case0.nii.gz"), images / "case0.nii")
    (images / "case0.nii.gz").unlink()
    nib.save(nib.load(labels / "case1.nii.gz"), labels / "case1.nii")
    (labels / "case1.nii.gz").unlink()
    assert not (tmp_path / "dataset.json").exists() and not (images / "dataset.json").exists()
    paired = [(case.image_path.name, case.label_path.name) for case in pair_cases(images, labels)]
    assert paired == [("case0.nii", "case0.nii.gz"), ("case1.nii.gz", "case1.nii"), ("case2.nii.gz", "case2.nii.gz")]
    (labels / "case2.nii.gz").rename(labels / "case3.nii")
    with pytest.raises(TrainingError) as raised:
        pair_cases(images, labels)
    assert str(raised.value) == (
        f"{images / 'case2.nii.gz'}: 2 files have no counterpart of the same name (images in {images}, labels in "
        f"{labels}): {images / 'case2.nii.gz'}, {labels / 'case3.nii'}")


# the folder's left-out entries are checked as their log lines; the same words are a MedsegWarning too each time
@pytest.mark.filterwarnings("ignore:.* left out :medseg.errors.MedsegWarning")
def test_entries_pairing_cannot_use_are_named(tmp_path, caplog):
    images, labels = write_set(tmp_path, count=3)
    (images / "site2").mkdir()
    (images / "site2" / "case9.nii.gz").write_bytes((images / "case0.nii.gz").read_bytes())
    (images / "case8.img").write_bytes(b"analyze")
    with caplog.at_level("WARNING"):
        assert [c.case_id for c in pair_cases(images, labels)] == ["case0", "case1", "case2"]
    assert (f"{images}: left out 2 entries that are not .nii/.nii.gz/.nii.bz2/.nii.zst/"
            f".nrrd/.nhdr/.mha/.mhd files (subfolders are not "
            "searched): case8.img, site2/") in [r.getMessage() for r in caplog.records]
    shutil.rmtree(images / "site2")
    caplog.clear()
    with caplog.at_level("WARNING"):
        pair_cases(images, labels)
    assert (f"{images}: left out 1 entry that is not a .nii/.nii.gz/.nii.bz2/.nii.zst/"
            f".nrrd/.nhdr/.mha/.mhd file (subfolders are not "
            "searched): case8.img"
            in [r.getMessage() for r in caplog.records])
    # a hidden case is said too (it was left out silently); macOS's ._ companions and .DS_Store are not
    (images / ".case9.nii.gz").write_bytes((images / "case0.nii.gz").read_bytes())
    (images / "._case0.nii.gz").write_bytes(b"\0\5\26\7")
    (images / ".DS_Store").write_bytes(b"\0")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [c.case_id for c in pair_cases(images, labels)] == ["case0", "case1", "case2"]
    assert [m for m in caplog.messages if "hidden" in m] == [
        f"{images}: left out 1 hidden image file (names starting with a dot are hidden): .case9.nii.gz"]


# the folder's left-out entries are not what this test looks at; the same words are a MedsegWarning too each time
@pytest.mark.filterwarnings("ignore:.* left out :medseg.errors.MedsegWarning")
def test_a_folder_without_nifti_files_says_what_it_holds(tmp_path):
    """A set saved as TIFF stacks or a folder of DICOM series gave "no image has a label of the same name … (0
    images, 0 labels)", which did not say that medseg found no image file of a kind it reads at all."""
    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    images.mkdir()
    labels.mkdir()
    for name in ("a_0000.tif", "b_0000.tif", "notes.txt"):
        (images / name).write_bytes(b"x")
    _write(labels / "a.nii.gz", np.zeros((16, 16, 6), np.uint8))
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels)
    assert str(error.value) == (f"{images}: no .nii/.nii.gz/.nii.bz2/.nii.zst/"
                                f".nrrd/.nhdr/.mha/.mhd file, only 3 files of other kinds "
                                "(.tif, .txt); medseg trains on NIfTI, NRRD and MetaImage files: convert them first")
    for name in ("a_0000.tif", "b_0000.tif", "notes.txt"):
        (images / name).unlink()
    (images / "series1").mkdir()
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels)
    assert str(error.value) == (f"{images}: no .nii/.nii.gz/.nii.bz2/.nii.zst/"
                                f".nrrd/.nhdr/.mha/.mhd file directly in it, only 1 "
                                "subfolder (subfolders are not searched; a DICOM series: convert it first, e.g. with "
                                "medseg convert)")
    (images / "series1").rmdir()
    _write(images / "a.nii.gz", np.zeros((16, 16, 6), np.float32))
    for path in labels.iterdir():
        path.unlink()
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels)
    assert str(error.value) == f"{labels}: no .nii/.nii.gz/.nii.bz2/.nii.zst/.nrrd/.nhdr/.mha/.mhd file in it"


def test_files_left_unpaired_on_request_are_named_and_channels_told(tmp_path, caplog):
    """pair_cases(..., allow_unpaired=True) dropped an nnU-Net case's further channels (case_0001) and any other
    unpaired file without a word; the channels are the case's modalities now, the other file left out and named."""
    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    image, label = np.zeros((16, 16, 6), np.float32), np.zeros((16, 16, 6), np.uint8)
    for name in ("a_0000", "a_0001", "lonely"):
        _write(images / f"{name}.nii.gz", image)
    _write(labels / "a.nii.gz", label)
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning) as told:
        cases = pair_cases(images, labels, allow_unpaired=True)
    assert [str(w.message) for w in told] == caplog.messages
    assert [case.case_id for case in cases] == ["a"]
    assert [path.name for path in cases[0].channel_paths] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert caplog.messages == [
        f"{images}: left out 1 file without a counterpart of the same name: {images / 'lonely.nii.gz'}"]


# the folder's left-out entries are checked as their log lines; the same words are a MedsegWarning too each time
@pytest.mark.filterwarnings("ignore:.* left out :medseg.errors.MedsegWarning")
def test_a_dicom_seg_among_the_labels_says_how_to_train_on_it(tmp_path, caplog):
    """A case's labels as a DICOM SEG (`liver.dcm` beside its CT): the labels folder was "only 1 file of other kinds
    (.dcm) ...: convert them first", and `medseg convert` refuses a SEG as no series of images; nothing said how to
    train on it. Such a file, with or without `.dcm` (archives name files by UID), is now named as a DICOM SEG, with
    how to write its labels as a label image."""
    from dicom_factory import slice_positions, stored_values, write_series
    from seg_placement_cases import NAMES, SHAPE, label_rule

    from medseg.io.dicom import read_dicom_series
    from medseg.io.seg_writing import write_dicom_seg

    values = stored_values(SHAPE, seed=23)
    write_series(tmp_path / "series", values, slice_positions(SHAPE[2], 2.0), seed=2)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    _write(images / "a.nii.gz", values.astype(np.int16))
    write_dicom_seg(label_rule(values), read_dicom_series(tmp_path / "series"), labels / "a.dcm", NAMES, "reader")
    how = ("medseg scores against a DICOM SEG (evaluate, infer --reference) but trains on label images: write its "
           "labels as a NIfTI on its image's grid first (docs/training.md, 'A DICOM SEG as training labels')")
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels)
    assert str(error.value) == (f"{labels}: no .nii/.nii.gz/.nii.bz2/.nii.zst/.nrrd/.nhdr/.mha/.mhd file, only 1 "
                                f"DICOM SEG (a.dcm); {how}")
    # beside label images: the warning about what is left out says it, whatever the file's name
    shutil.move(labels / "a.dcm", labels / "1.2.826.0.1.3680043.8.498.1")
    _write(labels / "b.nii.gz", np.zeros(SHAPE, np.uint8))
    _write(images / "b.nii.gz", values.astype(np.int16))
    (labels / "notes.txt").write_text("x")
    caplog.clear()
    with caplog.at_level("WARNING"), pytest.raises(TrainingError):
        pair_cases(images, labels)  # case a has no label
    assert [m for m in caplog.messages if "left out" in m] == [
        f"{labels}: left out 1 entry that is not a .nii/.nii.gz/.nii.bz2/.nii.zst/.nrrd/.nhdr/.mha/.mhd file "
        "(subfolders are not searched): notes.txt",
        f"{labels}: left out 1 DICOM SEG: 1.2.826.0.1.3680043.8.498.1; {how}"]


@pytest.mark.parametrize("tilt_mm", [0.0, 0.7])
def test_the_readmes_recipe_writes_a_dicom_seg_as_training_labels(tmp_path, monkeypatch, tilt_mm):
    """docs/training.md, 'A DICOM SEG as training labels', run as written: the labels land on the grid of the series'
    conversion, as the SEG holds them, with its header's sform and qform (and their codes), and pair with it. Of a
    gantry-tilted series (slices shifted ``tilt_mm`` in-plane each) the recipe wrote the sheared affine alone (sform
    code 2, qform code 0), which ITK's NIfTI reader (SimpleITK) refuses to open ("ITK only supports orthonormal
    direction cosines") where it opens the image `medseg convert` wrote beside it (its qform the grid ITK reads the
    series on)."""
    import re

    from dicom_factory import slice_positions, stored_values, write_series
    from documents import read, section
    from seg_placement_cases import SHAPE, label_rule

    from medseg.cli import main
    from medseg.io.dicom import read_dicom_series
    from medseg.io.seg_writing import write_dicom_seg

    recipe_section = section(read("docs/training.md"), "A DICOM SEG as training labels")
    recipe = re.findall(r"```python\n(.*?)```", recipe_section, flags=re.S)[0]
    values = stored_values(SHAPE, seed=23)
    write_series(tmp_path / "study" / "series", values,
                 slice_positions(SHAPE[2], 2.0, inplane_shift=(0.0, tilt_mm, 0.0)), seed=2)
    liver = (label_rule(values) == 1).astype(np.uint8)
    write_dicom_seg(liver, read_dicom_series(tmp_path / "study" / "series"), tmp_path / "study" / "liver.dcm",
                    {0: "background", 1: "Liver"}, "reader")
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    monkeypatch.chdir(tmp_path)
    exec(recipe, {})  # noqa: S102 - the README's code, as a reader runs it
    with pytest.raises(SystemExit) as info:
        main(["convert", "study/series", "images/liver01.nii.gz"])
    assert info.value.code == 0
    image, label = nib.load("images/liver01.nii.gz"), nib.load("labels/liver01.nii.gz")
    assert np.allclose(image.affine, label.affine) and image.shape == label.shape
    for form in ("get_sform", "get_qform"):  # what another tool places the voxels by
        (theirs, their_code), (ours, our_code) = (getattr(i, form)(coded=True) for i in (image, label))
        assert our_code == their_code == 1 and np.allclose(ours, theirs), form
    assert np.array_equal(np.asarray(label.dataobj), liver) and int(liver.sum()) > 0
    assert [case.case_id for case in pair_cases("images", "labels")] == ["liver01"]
    try:
        import SimpleITK as sitk
    except ImportError:  # the itk extra: the headers above are what it reads
        return
    itk_image, itk_label = sitk.ReadImage("images/liver01.nii.gz"), sitk.ReadImage("labels/liver01.nii.gz")
    assert np.allclose(itk_label.GetOrigin(), itk_image.GetOrigin())
    assert np.allclose(itk_label.GetDirection(), itk_image.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(itk_label).transpose(2, 1, 0), liver)


def test_unpaired_files_and_labels_with_undeclared_values_are_named_in_one_run(tmp_path):
    """A label value the config does not declare showed only on the run after the missing label was fixed. Given the
    declared values, the error about unpaired files names each such label file with its values."""
    images, labels, _ = _bad_set(tmp_path, "unpaired")
    image = np.zeros((16, 16, 6), np.float32)
    for name, value in (("seven", 7), ("twelve", 12)):
        _write(images / f"{name}.nii.gz", image)
        label = np.zeros((16, 16, 6), np.uint8)
        label[2:4, 2:4, 2] = value
        label[5, 5, 3] = 1
        _write(labels / f"{name}.nii.gz", label)
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels, declared=[0, 1, 2])
    assert "1 file has no counterpart of the same name" in str(error.value)
    assert str(error.value).endswith("; besides, 2 label files of paired cases hold label values the config does not "
                                     "declare (its labels [0, 1, 2]): seven.nii.gz ([7]), twelve.nii.gz ([12])")
    with pytest.raises(TrainingError) as error:  # no config, or every value declared: nothing more is said
        pair_cases(images, labels, declared=[0, 1, 7, 12])
    assert str(error.value).endswith(str(images / "lonely.nii.gz"))


def test_a_case_shows_as_one_line_in_a_notebook(tmp_path):
    """A loaded case's repr was the dataclass's, with both tensors printed: 40 lines a case, six cases a screenful
    of numbers where a notebook user looked for which files went in and what shape they took."""
    from conftest import tiny_config

    from medseg.training_cases import load_cases

    images, labels = write_set(tmp_path, count=1)
    paired = pair_cases(images, labels)
    assert repr(paired[0]) == (f"TrainCase(case_id='case0', image_path='{images / 'case0.nii.gz'}', "
                               f"label_path='{labels / 'case0.nii.gz'}')")
    loaded = load_cases(paired, tiny_config())[0]
    shown = repr(loaded)
    assert "\n" not in shown and "tensor" not in shown, shown
    assert shown.endswith(f", image=(1, {', '.join(map(str, loaded.label.shape))}) float32, "
                          f"label={tuple(loaded.label.shape)} uint8)"), shown
