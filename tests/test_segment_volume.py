"""`medseg.segment.segment_volume`: an image held in memory (a numpy array, a nibabel image) labelled as
`segment_case` labels its file, nothing written and the caller's array left as it was; the warning `medseg infer`
gives for a training image given as its input."""

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli

from medseg.errors import InputError
from medseg.segment import segment_case, segment_volume
from medseg.synthetic import write_phantom
from medseg.volume import Volume

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)

# the module's phantom (48 x 44 x 12 voxels) is smaller than the volumes the phantom model was trained on: each
# segmenting of it warns so, which these tests do not look at (test_caller_warnings checks such warnings); only that
# warning is filtered, in this module alone
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*field of view unlike the volumes model phantom was trained on:medseg.errors.MedsegWarning")


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("phantom") / "case.nii.gz"
    phantom = write_phantom(path, shape=(48, 44, 12), seed=7)
    return path, phantom


def test_an_array_in_memory_gets_the_labels_of_its_file(phantom_file, phantom_segmenter, tmp_path):
    path, phantom = phantom_file
    outputs = segment_case(path, phantom_segmenter, out_dir=tmp_path)
    from_file = np.asarray(nib.load(outputs.segmentation).dataobj)
    image = nib.load(path)
    array = np.ascontiguousarray(image.get_fdata(dtype=np.float32))  # C order: what the in-place z-score could touch
    before = array.copy()
    labels = segment_volume(Volume(array, image.affine), phantom_segmenter)
    assert labels.dtype == np.uint8 and labels.shape == phantom.image.shape
    assert np.array_equal(labels, from_file)
    assert np.array_equal(array, before)  # the caller's voxels, not normalised
    for value in (1, 2, 3):  # and it is a segmentation of the phantom, not only equal to the file's
        p, r = labels == value, phantom.labels == value
        assert 2 * (p & r).sum() / (p.sum() + r.sum()) > 0.8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case_seg.json", "case_seg.nii.gz"]
    assert outputs.record["invocation"] is None  # from Python: no command line to record (not the test runner's)


def test_source_date_epoch_dates_the_sidecar(phantom_file, phantom_segmenter, tmp_path, monkeypatch):
    """The sidecar's `created` was the time now whatever $SOURCE_DATE_EPOCH said, and the report's first and last
    segmentation times with it: a cohort run again with it set reported other times. Timings stay measured."""
    path, _ = phantom_file
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    outputs = segment_case(path, phantom_segmenter, out_dir=tmp_path)
    sidecar = json.loads(outputs.sidecar.read_text())
    assert sidecar["created"] == outputs.record["created"] == "2026-01-01T00:00:00+00:00"
    assert sidecar["timings_s"]["inference_s"] > 0


def test_a_model_name_will_do(phantom_file, phantom_segmenter):
    path, _ = phantom_file
    image = nib.load(path)
    volume = Volume(image.get_fdata(dtype=np.float32), image.affine)
    assert np.array_equal(segment_volume(volume, "phantom"), segment_volume(volume, phantom_segmenter))


def test_segment_case_takes_a_model_name_as_segment_volume_does(phantom_file, phantom_segmenter, tmp_path):
    """``segment_case(path, "phantom")`` failed with "'str' object has no attribute 'slice_axes'"."""
    path, _ = phantom_file
    named = segment_case(path, "phantom", out_dir=tmp_path / "named")
    loaded = segment_case(path, phantom_segmenter, out_dir=tmp_path / "loaded")
    assert np.array_equal(np.asarray(nib.load(named.segmentation).dataobj),
                          np.asarray(nib.load(loaded.segmentation).dataobj))
    assert named.record["model"]["weights_sha256"] == loaded.record["model"]["weights_sha256"]


def test_what_is_no_volume_or_no_segmenter_is_one_medseg_error(phantom_file, phantom_segmenter, tmp_path):
    """An array or a nibabel image given in place of a Volume, or None in place of the segmenter, failed on a missing
    attribute ("'numpy.ndarray' object has no attribute 'source'")."""
    path, _ = phantom_file
    image = nib.load(path)
    for given, kind in ((image, "a Nifti1Image"), (image.get_fdata(dtype=np.float32), "an ndarray")):  # "a ndarray"
        with pytest.raises(InputError) as raised:
            segment_volume(given, phantom_segmenter)
        assert str(raised.value) == (f"{kind} given as the volume; give a Volume(array, affine) (for a nibabel "
                                     "image, Volume(image.get_fdata(dtype=np.float32), image.affine))")
    message = ("a NoneType given as the segmenter; give a medseg.inference.Segmenter, or a shipped model's name or a "
               "package folder")
    with pytest.raises(InputError) as raised:
        segment_volume(Volume(image.get_fdata(dtype=np.float32), image.affine), None)
    assert str(raised.value) == message
    with pytest.raises(InputError) as raised:
        segment_case(path, None, out_dir=tmp_path)
    assert str(raised.value) == message
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("case_id", ["../escaped", "sub/case", "sub\\case", ".", "..", "ab\x00c", 7, "sub-01\n",
                                     "sub-01\r", "a\tb", "x\x7f", "sub-01\x85", "a\x9b2Jb", "sub-01\u2028",
                                     "sub-01\u2029"])
def test_a_case_id_names_the_outputs_in_the_output_folder_and_is_no_path(phantom_file, phantom_segmenter, tmp_path,
                                                                           case_id):
    """A case id from a notebook's spreadsheet was joined to the output folder as a path: ``"../escaped"`` wrote
    ``escaped_seg.nii.gz`` beside the folder, an absolute one anywhere, ``"sub/case"`` into a folder it made, and
    ``"."`` the hidden ``._seg.nii.gz``. A control character (a line's end, a C1 control as ``\\x85`` that
    ``str.splitlines`` ends a line at, a Unicode line separator) is no part of a name either: the ones the one-line
    messages escape (``"sub-01\\x85"`` was written as a file name, where ``"sub-01\\n"`` was refused)."""
    path, _ = phantom_file
    with pytest.raises(InputError) as raised:
        segment_case(path, phantom_segmenter, out_dir=tmp_path / "out", case_id=case_id)
    assert str(raised.value).startswith(f"case_id {case_id!r}: ")
    assert "a name for the outputs" in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder made, outside the output folder or in it


@pytest.mark.parametrize("case_id, problem", [
    ("   ", "is only spaces, which name nothing; give a name, or None to name the outputs after the input"),
    ("\u00a0", "is only spaces, which name nothing; give a name, or None to name the outputs after the input"),
    (" sub-01", "begins or ends with a space (a cell read by hand?); give 'sub-01'"),
    ("sub-01 ", "begins or ends with a space (a cell read by hand?); give 'sub-01'"),
    ("sub-01\u00a0", "begins or ends with a space (a cell read by hand?); give 'sub-01'"),
])
def test_a_case_id_of_spaces_or_with_spaces_around_it_is_refused(phantom_file, tmp_path, case_id, problem):
    """``case_id="   "`` wrote ``   _seg.nii.gz`` and ``"sub-01 "`` ``sub-01 _seg.nii.gz``, files a shell and the
    report show as if the space were not there. They are refused as ids holding a path are, before the model loads."""
    from medseg.segment import case_targets

    path, _ = phantom_file
    with pytest.raises(InputError) as raised:
        segment_case(path, "no-such-model", out_dir=tmp_path / "out", case_id=case_id)
    assert str(raised.value) == f"case_id {case_id!r}: a name for the outputs {problem}"
    assert list(tmp_path.iterdir()) == []
    # the name an input file gives its outputs stands as the file has it (nnU-Net's "sub-01 _0000.nii.gz" of a
    # multi-modal model names its outputs "sub-01 _seg.nii.gz", as "sub-01 .nii.gz" names them of a one-image model)
    assert case_targets(path, tmp_path, case_id=case_id)[0] == tmp_path / f"{case_id}_seg.nii.gz"


def test_an_absolute_case_id_is_refused_before_the_model_is_loaded(phantom_file, tmp_path):
    from medseg.segment import case_targets

    path, _ = phantom_file
    for call in (lambda: segment_case(path, "no-such-model", out_dir=tmp_path, case_id=str(tmp_path / "x")),
                 lambda: case_targets(path, tmp_path, case_id=str(tmp_path / "x"))):
        with pytest.raises(InputError, match="a name for the outputs, not a path"):
            call()
    assert list(tmp_path.iterdir()) == []
    # a name with dots and dashes is a name
    assert case_targets(path, tmp_path, case_id="sub-01_ses-1.v2")[0] == tmp_path / "sub-01_ses-1.v2_seg.nii.gz"
    # and so are names of other scripts, with spaces, leading dots or dots inside, up to what the file system holds
    for name in ("sub-01.ses-1", "Müller Ärztin", "名前", "with space", ".hidden", "...", "..x", "x" * 241):
        assert case_targets(path, tmp_path, case_id=name)[1] == tmp_path / f"{name}_seg.json"


@pytest.mark.parametrize("array, affine, message", [
    (np.ones((8, 8)), np.eye(4), r"the volume: an array of shape \(8, 8\); give one 3D volume"),
    (np.ones((8, 8, 4, 2)), np.eye(4), r"an array of shape \(8, 8, 4, 2\)"),
    # MONAI's channel-first image (LoadImage + EnsureChannelFirst), and a 4D file of one volume: which axis to drop
    (np.ones((1, 8, 8, 4)), np.eye(4), r"\(1, 8, 8, 4\); give one 3D volume .*: a channel-first array, as MONAI's "
                                       r"EnsureChannelFirst makes it: give array\[0\]$"),
    (np.ones((8, 8, 4, 1)), np.eye(4), r"\(8, 8, 4, 1\); give one 3D volume .*: give array\[..., 0\]$"),
    # told array[0] (still no volume), or nothing: a 2D image batched (B, C, H, W), a 3D one (B, C, X, Y, Z), NIfTI's
    # (X, Y, Z, 1, 1), a 2D array
    (np.ones((1, 1, 8, 8)), np.eye(4), r"a batch of channel-first arrays, as MONAI's DataLoader makes it: give "
                                       r"array\[0, 0, ..., None\]$"),
    (np.ones((1, 1, 8, 8, 4)), np.eye(4), r"DataLoader makes it: give array\[0, 0\]$"),
    (np.ones((8, 8, 4, 1, 1)), np.eye(4), r"X×Y×1: give array\[..., 0, 0\]$"),
    (np.ones((8, 8)), np.eye(4), r"X×Y×1: give array\[..., None\]$"),
    (np.array([["a"]]), np.eye(4), "voxels of type <U1; give numbers"),
    (np.full((8, 8, 4), np.nan), np.eye(4), r"NaN or infinite voxels \(the first at voxel index \(0, 0, 0\)\)"),
    (np.ones((8, 8, 4)), np.eye(3), r"an affine of shape \(3, 3\); give the 4×4"),
    (np.ones((8, 8, 4)), [["x"] * 4] * 4, "the affine is not a 4×4 matrix of numbers"),
    (np.ones((8, 8, 4)), np.diag([1.0, 1.0, 0.0, 1.0]), "the affine is singular or not finite"),
    # its bottom row was ignored: the voxels placed by the top three rows alone, as a file's SPM .mat is refused
    (np.ones((8, 8, 4)), np.diag([1.0, 1.0, 1.0, 2.0]), "the volume: the affine's bottom row is 0 0 0 2, not 0 0 0 1: "
                                                        "a projective matrix, not a voxel-to-world affine"),
    (np.ones((8, 8, 4)), [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 1]], "bottom row is 0 0 0.5 1,"),
    (np.zeros((8, 8, 4)), np.eye(4), "every voxel holds 0: there is nothing to segment"),
])
def test_what_cannot_be_segmented_is_one_medseg_error(phantom_segmenter, array, affine, message):
    """Raw numpy, torch or MONAI errors (or a message naming "None") for an array that is not one 3D volume."""
    with pytest.raises(InputError, match=message):
        segment_volume(Volume(array, affine), phantom_segmenter)


def test_a_channel_first_2d_image_is_told_its_channel_axis(phantom_file, phantom_segmenter):
    """MONAI's LoadImage + EnsureChannelFirst of a 2D image gives (1, X, Y): a 3D array, refused as one voxel thick
    across the model's slices with no word of the channel axis. The message says what to give, and that is segmented
    as the slice it is."""
    path, _ = phantom_file
    image = nib.load(path)
    axial = image.get_fdata(dtype=np.float32)[:, :, 6]
    with pytest.raises(InputError, match=r"one voxel thick along model-space axis 0 .*; a channel-first 2D image, as "
                                         r"MONAI's EnsureChannelFirst makes it, is array\[0\]\[..., None\]$"):
        segment_volume(Volume(axial[None], np.eye(4)), phantom_segmenter)
    labels = segment_volume(Volume(axial[None][0][..., None], np.eye(4)), phantom_segmenter)
    assert labels.shape == (48, 44, 1) and set(np.unique(labels)) >= {0, 1}


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_a_float32_copy_made_of_the_array_is_not_held_through_inference(phantom_file, phantom_segmenter, monkeypatch,
                                                                          dtype):
    """An int16 or float64 array is copied to float32 here; that copy was kept (and copied again for the in-place
    z-score, as if it were the caller's) until the labels were inverted: 4 bytes a voxel held for nothing."""
    import tracemalloc

    import medseg.preprocess

    path, _ = phantom_file
    image = nib.load(path)
    array = np.round(image.get_fdata()).astype(dtype)
    before = array.copy()
    held = []
    real = medseg.preprocess.invert_labels

    def measured(*args, **kwargs):
        held.append(tracemalloc.get_traced_memory()[0])
        return real(*args, **kwargs)

    expected = segment_volume(Volume(array, image.affine), phantom_segmenter)  # imports outside the trace
    monkeypatch.setattr(medseg.preprocess, "invert_labels", measured)
    tracemalloc.start()
    try:
        labels = segment_volume(Volume(array, image.affine), phantom_segmenter)
    finally:
        tracemalloc.stop()
    assert held[0] / array.size < 1, f"{held[0] / array.size:.1f} bytes per voxel held while inverting"
    assert np.array_equal(labels, expected) and np.array_equal(array, before)


def test_a_scored_set_placed_meanwhile_by_another_run_goes_with_the_segmentation_it_scored(tmp_path,
                                                                                          phantom_segmenter,
                                                                                          monkeypatch):
    """Two runs into one folder with --overwrite, one scored against a reference, one not, of inputs named alike:
    the scored one placed its set while the other was segmenting, and the other then placed its segmentation and
    sidecar beside metrics of a segmentation no longer there (both exited 0; the QA report failed the case). What a
    set removes is looked for again as it is placed."""
    import json

    import medseg.segment
    from medseg.io.atomic import sha256_of

    scored, unscored = tmp_path / "a" / "case.nii.gz", tmp_path / "b" / "case.nii.gz"
    reference = tmp_path / "a" / "case_label.nii.gz"
    write_phantom(scored, reference, shape=(48, 44, 12), seed=7)
    write_phantom(unscored, shape=(48, 44, 12), seed=8)
    out = tmp_path / "out"
    write_labels = medseg.segment.write_labels

    def run_beside(*args, **kwargs):  # the other run places its whole set while this one writes its own
        monkeypatch.setattr(medseg.segment, "write_labels", write_labels)
        segment_case(scored, phantom_segmenter, out_dir=out, reference=reference, overwrite=True)
        assert sorted(p.name for p in out.iterdir()) == ["case_metrics.json", "case_seg.json", "case_seg.nii.gz"]
        return write_labels(*args, **kwargs)

    monkeypatch.setattr(medseg.segment, "write_labels", run_beside)
    segment_case(unscored, phantom_segmenter, out_dir=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["case_seg.json", "case_seg.nii.gz"]  # one run's set, whole
    sidecar = json.loads((out / "case_seg.json").read_text())
    assert sidecar["input"] == str(unscored) and "reference" not in sidecar
    assert sidecar["segmentation_sha256"] == sha256_of(out / "case_seg.nii.gz")


def test_a_training_image_is_named_so(tmp_path, make_package, capsys):
    """Where the package lists its training images' SHA-256, `medseg infer` says which inputs are among them (their
    Dice overstates accuracy on new data) and records it in the sidecar; a package without the list claims nothing."""
    import hashlib

    inputs = []
    for seed in range(2):
        path = tmp_path / f"in{seed}.nii.gz"
        nib.save(nib.Nifti1Image(np.random.default_rng(seed).random((24, 24, 4), dtype=np.float32), np.eye(4)),
                 str(path))
        inputs.append(path)
    trained = hashlib.sha256(inputs[0].read_bytes()).hexdigest()
    listed = make_package("listed", training={"train_images_sha256": [trained]})
    code, out, _ = run(["infer", *map(str, inputs), "--model", str(listed), "-o", str(tmp_path / "a")], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].endswith(" s; one of the model's training images)") and inputs[0].name in lines[0]
    assert inputs[1].name in lines[1] and "training images" not in lines[1]
    sidecars = [json.loads((tmp_path / "a" / f"in{seed}_seg.json").read_text()) for seed in range(2)]
    assert [s["in_training_set"] for s in sidecars] == [True, False]
    code, out, _ = run(["infer", str(inputs[0]), "--model", str(make_package("unlisted")), "-o", str(tmp_path / "b")],
                       capsys)
    assert code == 0 and "training images" not in out
    assert "in_training_set" not in json.loads((tmp_path / "b" / "in0_seg.json").read_text())
    # a DICOM series is never a training image (training reads NIfTI files; its hash covers the series): unknown
    from dicom_factory import slice_positions, stored_values, write_series

    write_series(tmp_path / "series", stored_values((24, 24, 4)), slice_positions(4, 2.0))
    code, _, _ = run(["infer", str(tmp_path / "series"), "--model", str(listed), "-o", str(tmp_path / "c")], capsys)
    series_hash = json.loads((tmp_path / "c" / "series_seg.json").read_text())["input_sha256"]
    with_series = make_package("with_series", training={"train_images_sha256": [series_hash]})
    code, out, _ = run(["infer", str(tmp_path / "series"), "--model", str(with_series), "-o", str(tmp_path / "d")],
                       capsys)
    assert code == 0 and "training images" not in out
    assert "in_training_set" not in json.loads((tmp_path / "d" / "series_seg.json").read_text())


def test_a_copy_of_a_training_image_saved_another_way_is_warned_about_by_its_name(tmp_path, make_package, capsys,
                                                                                   caplog):
    """A training image decompressed (.nii.gz → .nii) has other bytes: it was taken for new data without a word."""
    import gzip
    import hashlib

    from medseg.report.collect import collect_results

    original = tmp_path / "case_007.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(3).random((24, 24, 4), dtype=np.float32), np.eye(4)),
             str(original))
    copy = tmp_path / "copies" / "Case_007.nii"
    copy.parent.mkdir()
    copy.write_bytes(gzip.decompress(original.read_bytes()))
    listed = make_package("listed", training={"train_images_sha256": [hashlib.sha256(original.read_bytes())
                                                                      .hexdigest()],
                                              "train_case_ids": ["case_007", "case_008"]})
    with caplog.at_level("WARNING", logger="medseg"):
        code, out, _ = run(["infer", str(copy), "--model", str(listed), "-o", str(tmp_path / "out")], capsys)
    assert code == 0 and "training images" not in out
    sidecar = json.loads((tmp_path / "out" / "Case_007_seg.json").read_text())
    assert sidecar["in_training_set"] is False and sidecar["named_like_training_case"] == "case_007"
    assert [r.getMessage() for r in caplog.records if "named like" in r.getMessage()] == [
        f"{copy}: named like training case case_007 of model listed, but not byte for byte its file (decompressed, "
        "converted or re-saved?): if it is that image, its Dice overstates the model's accuracy on new data"]
    case = next(iter(collect_results(tmp_path / "out")))
    assert ("named like the model's training case case_007, but not byte for byte its file: if it is that image, its "
            "Dice overstates the model's accuracy on new data") in case.notes
    caplog.clear()
    with caplog.at_level("WARNING", logger="medseg"):  # the original itself: a training image, no name warning
        code, out, _ = run(["infer", str(original), "--model", str(listed), "-o", str(tmp_path / "out2")], capsys)
    assert code == 0 and "one of the model's training images" in out
    assert "named_like_training_case" not in json.loads((tmp_path / "out2" / "case_007_seg.json").read_text())
    assert not [r for r in caplog.records if "named like" in r.getMessage()]
    nnunet = tmp_path / "copies" / "case_008_0000.nii"  # nnU-Net's channel suffix, which training strips
    nnunet.write_bytes(copy.read_bytes())
    code, _, _ = run(["infer", str(nnunet), "--model", str(listed), "-o", str(tmp_path / "out3")], capsys)
    assert json.loads((tmp_path / "out3" / "case_008_0000_seg.json").read_text())["named_like_training_case"] == \
        "case_008"


def test_torchs_default_dtype_float64_segments_as_float32_does(phantom_file, phantom_segmenter):
    """`torch.set_default_dtype(torch.float64)` in the notebook made a Segmenter loaded afterwards fail on its first
    volume with torch's RuntimeError ("Input type (torch.FloatTensor) and weight type (torch.DoubleTensor) should be
    the same"), not a medseg error; the labels are those of a process left at float32, and the default is left as
    the notebook set it."""
    import torch

    from medseg.inference import Segmenter

    path, _ = phantom_file
    image = nib.load(path)
    volume = Volume(image.get_fdata(dtype=np.float32), image.affine)
    expected = segment_volume(volume, phantom_segmenter)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        labels = segment_volume(volume, Segmenter("phantom", device="cpu"))
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)


def test_progress_is_told_the_slices_then_each_slab_done_as_tqdms_update_takes_them(phantom_file):
    """``progress(total)`` returns a callback that is given the slices of each forward pass done (here one pass a
    slab of 5 slices; increments, not a running count), so that a notebook's
    ``progress=lambda total: tqdm(total=total).update`` ends its bar at total."""
    import io

    from tqdm import tqdm

    from medseg.inference import Segmenter

    path, phantom = phantom_file
    image = nib.load(path)
    bars = []

    def bar(total):
        bars.append(tqdm(total=total, file=io.StringIO()))  # a bar drawn, not on the test's stderr
        return bars[-1].update

    slabs = []
    segmenter = Segmenter("phantom", device="cpu", slab_voxels=48 * 44 * 4 * 5)  # phantom: 4 classes; 5 slices a slab
    labels = segment_volume(Volume(image.get_fdata(dtype=np.float32), image.affine), segmenter,
                            progress=lambda total: (bar(total), slabs.append)[1])
    assert labels.shape == phantom.image.shape and len(bars) == 1
    segment_volume(Volume(image.get_fdata(dtype=np.float32), image.affine), segmenter, progress=bar)
    assert bars[0].total == 12 and bars[1].total == 12 and bars[1].n == 12  # the phantom's 12 slices along axis 2
    assert slabs == [5, 5, 2]


def test_a_case_outputs_shows_its_files_and_dice_in_one_short_line(phantom_file, phantom_segmenter, tmp_path):
    """A notebook looping over cases showed each CaseOutputs with its whole sidecar record: 4.5 KB of hashes,
    versions and timings a line, the Dice deep inside."""
    path, phantom = phantom_file
    reference = tmp_path / "case_label.nii.gz"
    nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), nib.load(path).affine), str(reference))
    outputs = segment_case(path, phantom_segmenter, out_dir=tmp_path / "out", reference=reference)
    dice = {entry["name"]: round(entry["dice"], 3) for entry in outputs.record["metrics"]["labels"].values()}
    assert repr(outputs) == (f"CaseOutputs(segmentation='{tmp_path / 'out' / 'case_seg.nii.gz'}', "
                             f"sidecar='{tmp_path / 'out' / 'case_seg.json'}', "
                             f"metrics='{tmp_path / 'out' / 'case_metrics.json'}', dice={dice})")
    unscored = segment_case(path, phantom_segmenter, out_dir=tmp_path / "out2")
    assert repr(unscored).endswith("case_seg.json', metrics=None)")
    assert unscored.record["schema"] == "medseg-segmentation/1"  # the record is kept, only not shown


def test_the_progress_callback_is_described_as_it_is_called_each_forward_pass(phantom_file):
    """Progress was told as each slab ended, then as each forward pass of tiles ends (a volume of one slab moved its
    bar once, at its end); docs/python-api.md and segment_case's docstring still said the callback is given each
    slab's slices. One slab of 12 slices in passes of 4 tiles is told 4 slices at a time, as they now say."""
    from pathlib import Path

    from medseg.inference import Segmenter

    path, _ = phantom_file
    image = nib.load(path)
    told = []
    segmenter = Segmenter("phantom", device="cpu", batch_size=4)  # the phantom's 12 slices: one slab, one tile each
    segment_volume(Volume(image.get_fdata(dtype=np.float32), image.affine), segmenter,
                   progress=lambda total: told.append(total) or told.append)
    assert told == [12, 4, 4, 4]
    page = " ".join((Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text().split())
    docstring = " ".join(segment_case.__doc__.split())
    for text in (page, docstring):
        assert "slab" not in text.split("progress", 1)[1][:300]
        assert "each forward pass of tiles ends" in text
