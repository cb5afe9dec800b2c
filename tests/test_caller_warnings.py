"""Warnings a Python caller can filter: what medseg warns about while segmenting is also a ``warnings.warn`` of
:class:`medseg.errors.MedsegWarning` (a ``UserWarning``), placed at the caller's line, beside the log line the
commands show; nnU-Net's ``case_0000`` given alone, its ``case_0001`` beside it, is told from Python too."""

import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import run_program

from medseg.errors import MedsegWarning
from medseg.segment import segment_case, segment_volume
from medseg.synthetic import make_phantom
from medseg.volume import Volume


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_medseg_warning_is_a_user_warning_and_a_name_of_the_package():
    import medseg

    assert issubclass(MedsegWarning, UserWarning) and not issubclass(MedsegWarning, medseg.MedsegError)
    assert medseg.MedsegWarning is MedsegWarning and "MedsegWarning" in medseg.__all__


def test_a_case_0000_with_its_case_0001_beside_it_is_warned_about_from_python(tmp_path, case, make_package):
    """`medseg infer a_0000.nii.gz` warns that a_0001 is left unread; segment_case said nothing."""
    for name in ("a_0000", "a_0001", "b_0000"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
    package = make_package()
    with pytest.warns(MedsegWarning) as caught:
        outputs = segment_case(tmp_path / "a_0000.nii.gz", package, out_dir=tmp_path / "out")
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'a_0000.nii.gz'}: the _0000 file of a case of several channels as nnU-Net names them "
        "(a_0001.nii.gz beside it), and model tiny takes one image a case: segmented from its _0000 file alone, its "
        "other channels unread"]
    assert caught[0].filename == __file__  # the caller's line, not medseg's
    assert outputs.segmentation == tmp_path / "out" / "a_0000_seg.nii.gz"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no channel file beside b_0000: nothing to tell
        segment_case(tmp_path / "b_0000.nii.gz", package, out_dir=tmp_path / "out")


def test_a_warning_turned_into_an_error_leaves_no_outputs(tmp_path, case, make_package):
    for name in ("a_0000", "a_0001"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match="a_0001.nii.gz beside it"):
            segment_case(tmp_path / "a_0000.nii.gz", make_package(), out_dir=tmp_path / "out")
    assert _files(tmp_path / "out") == []


def test_the_input_checks_of_an_array_in_memory_are_warnings_too(make_package):
    """A label image given as the image, and a field of view unlike the training volumes: logged only, which a
    notebook without logging configured never showed."""
    labels = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    with pytest.warns(MedsegWarning, match="a label image given as the input") as caught:
        segment_volume(Volume(labels, np.diag([1.0, 1.0, 2.0, 1.0])), make_package())
    assert caught[0].filename == __file__
    wide = np.random.default_rng(0).uniform(0, 400, size=(100, 50, 36)).astype(np.float32)
    with pytest.warns(MedsegWarning, match="the volume: field of view unlike the volumes model hippocampus was "
                                           "trained on: x 100 mm against 31–43 mm trained"):
        segment_volume(Volume(wide, np.eye(4)), "hippocampus")


def test_the_command_tells_each_warning_once(tmp_path, case, make_package, capsys):
    """The command logs what the library warns about: the Python warning is not told a second time."""
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(labels))
    shutil.copy(case, tmp_path / "a_0000.nii.gz")
    shutil.copy(case, tmp_path / "a_0001.nii.gz")
    ran = run_program(["infer", str(labels), str(tmp_path / "a_0000.nii.gz"), "-m", str(make_package()), "-o",
                       str(tmp_path / "out")], capsys)
    code, err = ran.returncode, ran.stderr
    assert code == 0, err
    told = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(told) == 2 and "MedsegWarning" not in err and "warnings.warn" not in err, err
    assert "label image given as the input" in told[1] and "1 input is the _0000 file" in told[0], told


def test_a_case_0000_read_into_memory_is_warned_about_as_it_is_segmented(tmp_path, case, make_package):
    """read_image then segment_volume: the Volume keeps the file it was read from, and the same warning is given."""
    from medseg.io.images import read_image

    for name in ("a_0000", "a_0001"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
    volume = read_image(tmp_path / "a_0000.nii.gz")
    with pytest.warns(MedsegWarning, match=r"a_0000.nii.gz: the _0000 file .* \(a_0001.nii.gz beside it\)") as caught:
        segment_volume(volume, make_package())
    assert len(caught) == 1 and caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an array of no file: nothing to tell
        segment_volume(Volume(volume.array, volume.affine), make_package())


def test_the_command_is_not_failed_by_an_error_filter_on_its_own_warnings(tmp_path, case, make_package, capsys):
    """``python -W error -m medseg infer`` (or ``PYTHONWARNINGS=error``): each of the command's own warnings, logged
    as a ``warning:`` line, was raised as well by the MedsegWarning filtered into an error, and every case of the batch
    failed as "unexpected failure (MedsegWarning: ...); run it alone for the traceback". The command tells them as
    log lines: the process's filters are the caller's again once ``main`` returns."""
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filters = list(warnings.filters)
        ran = run_program(["infer", str(labels), str(case), "-m", str(make_package()), "-o", str(tmp_path / "out")],
                          capsys)
        assert warnings.filters == filters
    assert ran.returncode == 0, ran.stderr
    told = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert len(told) == 1 and "label image given as the input" in told[0], ran.stderr
    assert "error" not in ran.stderr and "MedsegWarning" not in ran.stderr, ran.stderr
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", "labels_seg.json", "labels_seg.nii.gz"]


def test_a_loop_over_arrays_of_no_file_hears_each_once_they_are_named(make_package):
    """As the Python API page says: Python shows a warning once per caller line and text, and one about an array of
    no file reads "the volume: ..." every time; named by its source, each volume's is shown."""
    labels = make_phantom((40, 40, 8), seed=11).labels.astype(np.float32)
    package, affine = make_package(), np.diag([1.0, 1.0, 2.0, 1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own action for a UserWarning
        for _ in range(2):
            segment_volume(Volume(labels, affine), package)
        for index in range(2):
            segment_volume(Volume(labels, affine, source=f"case{index}"), package)
    assert [str(w.message).split(":")[0] for w in caught] == ["the volume", "case0", "case1"]


def test_a_warning_raised_as_an_error_says_nothing_was_segmented(tmp_path, make_package, caplog):
    """``warnings.simplefilter("error", MedsegWarning)``: the label image given as the input was raised as an error
    whose text ended "segmented all the same", where nothing was segmented or written."""
    labels = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning) as raised:
            segment_case(path, make_package(), out_dir=tmp_path / "out")
    text = str(raised.value)
    assert text.startswith(f"{path}: its voxels hold only the values 0, 1, 2, 3") and "all the same" not in text
    assert text.endswith("label image given as the input?; nothing segmented (MedsegWarning filtered into an error)")
    assert _files(tmp_path / "out") == []
    assert "all the same" not in caplog.text  # nor logged: a log file read the same untruth
    with pytest.warns(MedsegWarning, match=r"input\?; segmented all the same$"):  # where it goes on, it says so
        segment_volume(Volume(labels, np.diag([1.0, 1.0, 2.0, 1.0])), make_package())


def test_a_held_warning_is_raised_after_the_block_and_an_error_of_the_block_wins():
    """``held_until_done``: under an "error" filter the block runs to its end and the first warning is raised then;
    where the block fails, its own error is raised."""
    import warnings

    from medseg.caller_warnings import held_until_done, warn
    from medseg.errors import MedsegWarning

    done = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"^a.nii.gz: first$"):
            with held_until_done():
                warn("a.nii.gz: first")
                warn("b.nii.gz: second")
                done.append("end")
        assert done == ["end"]
        with pytest.raises(KeyError):
            with held_until_done():
                warn("a.nii.gz: first")
                raise KeyError("x")


def test_a_held_block_within_another_leaves_its_warnings_to_the_outer_one():
    """A report made within ``score_folder``'s held block holds its warnings too: the inner block raised its own at
    its end, before the outer block had done its work (and the outer's first warning was dropped)."""
    import warnings

    from medseg.caller_warnings import held_until_done, warn
    from medseg.errors import MedsegWarning

    done = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"^a.nii.gz: outer$"):
            with held_until_done():
                warn("a.nii.gz: outer")
                with held_until_done():
                    warn("b.nii.gz: inner")
                    done.append("inner")
                done.append("outer")
    assert done == ["inner", "outer"]


def test_a_reference_named_for_another_case_raised_as_an_error_says_it_was_not_scored(tmp_path):
    """The warning of a reference named for another case says it "is scored all the same"; raised by an "error"
    filter, the case is not scored, and its text says so."""
    import warnings

    import nibabel as nib

    from medseg.errors import MedsegWarning
    from medseg.scoring import score_prediction

    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    for name in ("pred/sub-01.nii.gz", "ref/sub-02.nii.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(tmp_path / name))
    with pytest.warns(MedsegWarning, match=r"a reference given out of order is scored all the same\)$"):
        score_prediction(tmp_path / "pred/sub-01.nii.gz", tmp_path / "ref/sub-02.nii.gz", "sub-01")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning) as raised:
            score_prediction(tmp_path / "pred/sub-01.nii.gz", tmp_path / "ref/sub-02.nii.gz", "sub-01")
    assert str(raised.value).startswith(f"{tmp_path / 'ref/sub-02.nii.gz'}, the reference given for ")
    assert str(raised.value).endswith("in the prediction's); not scored (MedsegWarning filtered into an error)")
    assert "all the same" not in str(raised.value)


def test_warnings_of_scoring_raised_while_segmenting_say_nothing_was_written(tmp_path, make_package):
    """Segmenting with a reference (``segment_case(..., reference=...)``) scores the case before anything is written:
    a warning of scoring raised by an "error" filter (a dataset.json naming the labels otherwise, a reference whose
    header gives its one slice another thickness, a reference named for another case) ended "not scored", which read
    as if the segmentation were written. Nothing is: its text says so."""
    import json

    package = make_package()
    phantom = make_phantom((32, 32, 2), seed=11)  # one tile a slice: the least inference before the scoring
    filtered = "(MedsegWarning filtered into an error)"

    def raised(image, reference) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("error", MedsegWarning)
            with pytest.raises(MedsegWarning) as error:
                segment_case(image, package, out_dir=tmp_path / "out", reference=reference)
        assert _files(tmp_path / "out") == []
        return str(error.value)

    (tmp_path / "Task01" / "labelsTs").mkdir(parents=True)
    reference = tmp_path / "Task01" / "labelsTs" / "case.nii.gz"
    image = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, np.diag([1.0, 1.0, 2.0, 1.0])), str(image))
    nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), np.diag([1.0, 1.0, 2.0, 1.0])), str(reference))
    names = tmp_path / "Task01" / "dataset.json"
    names.write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "spleen", "3": "tube"}}))
    assert raised(image, reference) == (
        f"{names} names labels 1 liver, 2 spleen; the model tiny names them 1 ellipsoid, 2 box: check that the "
        f"reference uses the model's label values; nothing written {filtered}")
    names.unlink()
    # one slice, 1 mm thick in the image's header, 5 mm in the reference's
    one = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image[:, :, 1:2], np.diag([1.0, 1.0, 1.0, 1.0])), str(one))
    thick = tmp_path / "slice_label.nii.gz"
    nib.save(nib.Nifti1Image(phantom.labels[:, :, 1:2].astype(np.uint8), np.diag([1.0, 1.0, 5.0, 1.0])), str(thick))
    assert raised(one, thick) == (f"{thick}: its header gives the single slice a thickness of 5 mm where the "
                                  f"prediction's gives 1 mm; nothing written {filtered}")
    # a reference named for another case
    other = tmp_path / "sub-02.nii.gz"
    shutil.copy(reference, other)
    shutil.copy(image, tmp_path / "sub-01.nii.gz")
    text = raised(tmp_path / "sub-01.nii.gz", other)
    assert text.startswith(f"{other}, the reference given for ") and "all the same" not in text
    assert text.endswith(f"; nothing segmented or written {filtered}")


def test_a_dataset_json_naming_the_labels_otherwise_is_warned_at_each_segment_case_and_logged_once(tmp_path,
                                                                                                   make_package,
                                                                                                   caplog):
    """A second segment_case against the same dataset.json heard nothing in the whole process, even under
    ``simplefilter("always")`` (a notebook cell run again, or a second folder's loop): the once was medseg's, kept in
    a set of its own. It is told at each call, Python's filters deciding whether it is shown, as a package's
    warnings are; its log line is written once a process (a command's batch of inputs says it once)."""
    import json

    package = make_package()
    phantom = make_phantom((32, 32, 2), seed=11)
    (tmp_path / "Task02" / "labelsTs").mkdir(parents=True)
    reference = tmp_path / "Task02" / "labelsTs" / "case.nii.gz"
    image = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, np.diag([1.0, 1.0, 2.0, 1.0])), str(image))
    nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), np.diag([1.0, 1.0, 2.0, 1.0])), str(reference))
    names = tmp_path / "Task02" / "dataset.json"
    names.write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "spleen", "3": "tube"}}))
    said = (f"{names} names labels 1 liver, 2 spleen; the model tiny names them 1 ellipsoid, 2 box: each label is "
            "scored by its value under the model's name; check that the reference uses the model's label values")
    with caplog.at_level("WARNING"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        for out in ("a", "b"):
            segment_case(image, package, out_dir=tmp_path / out, reference=reference)
    assert [str(w.message) for w in caught if "dataset.json" in str(w.message)] == [said, said]
    assert [r.getMessage() for r in caplog.records if "dataset.json" in r.getMessage()] == [said]
