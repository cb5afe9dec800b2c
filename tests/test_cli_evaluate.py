"""`medseg evaluate`: output files, messages and exit codes."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.metrics import metrics_json
from medseg.scoring import evaluate_files


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


@pytest.fixture
def pair(tmp_path):
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    affine[:3, 3] = (10.0, -4.0, 7.5)
    ref = np.zeros((24, 24, 12), np.uint8)
    ref[4:14, 5:15, 3:8] = 1
    ref[16:20, 16:21, 4:9] = 2
    pred = np.roll(ref, 1, axis=0)
    pred[pred == 2] = 0  # label 2 missed
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "ref.nii.gz")
    nib.save(nib.Nifti1Image(pred, affine), tmp_path / "case7_seg.nii.gz")
    return tmp_path / "case7_seg.nii.gz", tmp_path / "ref.nii.gz"


def test_writes_metrics_json_and_prints_a_table(pair, tmp_path, capsys):
    pred, ref = pair
    out = tmp_path / "case7_metrics.json"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "case case7 (voxel 0.8 x 0.8 x 2 mm)" in stdout
    assert "2 label_2" in stdout and "empty_prediction" in stdout
    written = json.loads(out.read_text())
    assert written["case_id"] == "case7"
    assert written["prediction_sha256"] == hashlib.sha256(pred.read_bytes()).hexdigest()  # the file scored
    assert written["labels"]["2"]["dice"] == 0.0 and written["labels"]["2"]["hd95_mm"] is None
    expected = evaluate_files(pred, ref, case_id="case7")
    assert written["labels"]["1"]["dice"] == pytest.approx(expected["labels"]["1"]["dice"])
    # one-voxel shift along the 0.8 mm axis: Dice 2·9/20 and HD95 one voxel
    assert written["labels"]["1"]["dice"] == pytest.approx(0.9)
    assert written["labels"]["1"]["hd95_mm"] == pytest.approx(0.8)
    assert written["labels"]["1"]["pred_volume_ml"] == pytest.approx(500 * 0.8 * 0.8 * 2 / 1000)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_metrics_name_the_reference_file_by_its_sha256(pair, tmp_path):
    """A reference re-drawn later at the same path is not the one scored: the record keeps the hash of each file."""
    pred, ref = pair
    out = tmp_path / "case7_metrics.json"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["reference"] == str(ref)
    assert written["reference_sha256"] == hashlib.sha256(ref.read_bytes()).hexdigest()


def test_metrics_name_the_releases_that_computed_them(pair, tmp_path):
    """A record rescored months later with another release could not be told from the first (metric definitions
    have changed between releases)."""
    from importlib.metadata import version

    import medseg

    pred, ref = pair
    out = tmp_path / "case7_metrics.json"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    from medseg.checkout import source_commit

    commit = {"medseg_commit": source_commit()} if source_commit() else {}  # run from a checkout: its commit
    # MONAI computes none of the figures (the edges and distances are scipy's): its version is not among them
    assert json.loads(out.read_text())["versions"] == {
        "medseg": medseg.__version__, **commit, "numpy": version("numpy"), "scipy": version("scipy")}


def test_json_on_stdout_is_strict_json(pair, capsys):
    pred, ref = pair
    assert run(["evaluate", str(pred), str(ref), "--json", "--case-id", "patient 1"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text
    record = json.loads(text)
    assert record["case_id"] == "patient 1" and record["schema"] == "medseg-metrics/1"


def test_refuses_to_overwrite(pair, tmp_path, capsys):
    pred, ref = pair
    out = tmp_path / "m.json"
    out.write_text("keep")
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    assert "m.json: output exists already; pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["labels"]["1"]["status"] == "ok"


def test_other_grid_is_refused_and_nothing_written(pair, tmp_path, capsys):
    pred, ref = pair
    image = nib.load(ref)
    affine = image.affine.copy()
    affine[2, 3] += 1.0  # half a slice
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), affine), tmp_path / "moved.nii.gz")
    out = tmp_path / "m.json"
    assert run(["evaluate", str(pred), str(tmp_path / "moved.nii.gz"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("medseg: error: ") and "up to 1 mm away" in err and "not scored" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_reference_cropped_to_a_box_is_scored_and_one_sticking_out_refused(pair, tmp_path, capsys):
    """3D Slicer's segmentation cropped to its segments is zero-padded onto the prediction's grid, the table's first
    line saying so; a box half a slice off, or reaching beyond the grid with labelled voxels out there, is one line,
    exit 1, nothing written. One reaching beyond it with label 0 out there is cropped to the grid and scored."""
    pred, ref = pair
    image = nib.load(ref)
    labels = np.asanyarray(image.dataobj)
    moved = image.affine.copy()
    moved[:3, 3] += image.affine[:3, :3] @ (3, 4, 2)
    nib.save(nib.Nifti1Image(labels[3:21, 4:22, 2:10], moved), tmp_path / "box.nii.gz")
    out = tmp_path / "box.json"
    assert run(["evaluate", str(pred), str(tmp_path / "box.nii.gz"), "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.splitlines()[0] == ("case case7 (voxel 0.8 x 0.8 x 2 mm; reference a box of 18×18×8 voxels at voxel "
                                      "(3, 4, 2), zero-padded)")
    uncropped = json.loads(metrics_json(evaluate_files(pred, ref, case_id="case7")))
    assert json.loads(out.read_text())["labels"] == uncropped["labels"]
    beyond = moved @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1.0]])  # its last k past the grid
    box = labels[3:21, 4:22, 2:10].copy()
    assert not box[..., -1].any()
    nib.save(nib.Nifti1Image(box, beyond), tmp_path / "beyond.nii.gz")
    assert run(["evaluate", str(pred), str(tmp_path / "beyond.nii.gz"), "-o", str(tmp_path / "beyond.json")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "case case7 (voxel 0.8 x 0.8 x 2 mm; reference a box of 18×18×8 voxels at voxel (3, 4, 5), cropped to the "
        "grid and zero-padded)")
    assert json.loads((tmp_path / "beyond.json").read_text())["reference_sub_box"]["voxels_outside_grid"] == 18 * 18
    box[5:8, 6:9, -1] = 1  # 9 labelled voxels past the grid
    for shift, problem, labelled in (
            ((0, 0, 0.5), "its first voxel at 2.5 along k (not a whole number of voxels)", labels[3:21, 4:22, 2:10]),
            ((0, 0, 3), "extends 1 voxel beyond its last k, and 9 of its labelled voxels lie there, outside the grid",
             box)):
        placed = moved @ np.array([[1, 0, 0, shift[0]], [0, 1, 0, shift[1]], [0, 0, 1, shift[2]], [0, 0, 0, 1.0]])
        nib.save(nib.Nifti1Image(labelled, placed), tmp_path / "off.nii.gz")
        out = tmp_path / "off.json"
        assert run(["evaluate", str(pred), str(tmp_path / "off.nii.gz"), "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and not out.exists()
        assert f"{tmp_path / 'off.nii.gz'}: shape (18, 18, 8) differs from {pred}'s (24, 24, 12): on its" in err
        assert problem in err and err.rstrip().endswith("; not scored")


def test_a_reference_of_another_shape_is_refused_from_its_header_unread(pair, tmp_path, monkeypatch):
    """A reference declaring 1024³ voxels beside a 24×24×12 prediction was read whole (49 s, 2.3 GB) before its
    shape was compared; its header says enough. The same grid in another axis order is still scored."""
    import medseg.io.nifti as nifti
    from medseg.errors import GeometryError

    pred, ref = pair
    # half a slice off its lattice (a box on it reaching past the grid is read: its voxels there must all be 0)
    off = nib.load(ref).affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(np.zeros((24, 24, 13), np.uint8), off), tmp_path / "big.nii.gz")
    read = []
    real_read_nifti = nifti.read_nifti
    monkeypatch.setattr(nifti, "read_nifti", lambda path, *a, **k: read.append(str(path)) or
                        real_read_nifti(path, *a, **k))
    with pytest.raises(GeometryError) as error:
        evaluate_files(pred, tmp_path / "big.nii.gz")
    assert str(error.value) == (f"{tmp_path / 'big.nii.gz'}: shape (24, 24, 13) differs from {pred}'s (24, 24, 12): "
                                "on its voxel lattice, but its first voxel at 0.5 along k (not a whole number of "
                                "voxels); resample one onto the other's grid first; not scored")
    assert read == []
    image = nib.load(ref)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj).transpose(2, 0, 1),
                             image.affine[:, [2, 0, 1, 3]]), tmp_path / "reordered.nii.gz")
    metrics = evaluate_files(pred, tmp_path / "reordered.nii.gz")
    assert metrics["reference_reordered"] is True
    assert metrics["labels"]["1"]["dice"] == evaluate_files(pred, ref)["labels"]["1"]["dice"]


def test_a_reference_of_several_volumes_is_named_so_not_as_another_shape(pair, tmp_path):
    """The header's shape test took a 4D reference of 2 time points for another grid ("shape (24, 24, 12, 2)
    differs"), where reading it says what is wrong and what to do."""
    from medseg.errors import InputError

    pred, ref = pair
    image = nib.load(ref)
    data = np.asanyarray(image.dataobj)
    nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), image.affine), tmp_path / "two.nii.gz")
    with pytest.raises(InputError, match=r"two\.nii\.gz: expected a 3D volume, got shape \(24, 24, 12, 2\): 2 vol"):
        evaluate_files(pred, tmp_path / "two.nii.gz")


def test_a_reference_with_a_wrong_gzip_checksum_is_not_scored(pair, tmp_path, capsys):
    """Before, a reference whose deflate stream decodes but whose CRC-32 does not match was scored, exit 0."""
    pred, ref = pair
    data = bytearray(ref.read_bytes())
    data[-8] ^= 0x01
    ref.write_bytes(bytes(data))
    out = tmp_path / "m.json"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"medseg: error: {ref}: truncated or corrupt image data (gzip: CRC check failed")
    assert not out.exists()


def test_missing_file_is_one_line_and_exit_1(pair, tmp_path, capsys):
    pred, ref = pair
    assert run(["evaluate", str(tmp_path / "nope.nii.gz"), str(ref)]) == 1
    assert "nope.nii.gz: no such file" in capsys.readouterr().err
    # a mistyped DICOM SEG prediction: it was blamed on its sidecar ("… named by the sidecar nope_seg.json of the
    # prediction, which cannot be read")
    # a folder (a DICOM series, say) as a sample sheet's reference: it pointed to "the DICOM reader" (the command
    # line refuses a folder itself)
    from medseg.errors import InputError

    with pytest.raises(InputError) as error:
        evaluate_files(pred, tmp_path)
    assert str(error.value) == (f"{tmp_path}: a folder, not a label image file (NIfTI, or a DICOM SEG), given as the "
                                "reference")
    missing = tmp_path / "nope_seg.dcm"
    assert run(["evaluate", str(missing), str(ref)]) == 1
    assert capsys.readouterr().err == f"medseg: error: {missing}: no such file\n"


def test_label_names_from_a_model_package(pair, tmp_path, capsys, make_package):
    pred, ref = pair
    package = make_package("names")  # labels 0 background, 1 ellipsoid, 2 box, 3 tube
    assert run(["evaluate", str(pred), str(ref), "--model", str(package), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {k: v["name"] for k, v in record["labels"].items()} == {"1": "ellipsoid", "2": "box", "3": "tube"}
    assert record["labels"]["3"]["status"] == "both_empty" and record["labels"]["3"]["dice"] is None
    seven = np.asanyarray(nib.load(ref).dataobj) * 4
    nib.save(nib.Nifti1Image(seven.astype(np.uint8), nib.load(ref).affine), tmp_path / "eight.nii.gz")
    assert run(["evaluate", str(tmp_path / "eight.nii.gz"), str(ref), "--model", str(package)]) == 1
    err = capsys.readouterr().err
    assert "label values [4, 8] are not among the model's labels [0, 1, 2, 3], given as the prediction" in err


def test_an_output_that_is_an_input_or_an_image_is_refused(pair, tmp_path, capsys):
    pred, ref = pair
    before = ref.read_bytes()
    for output in (ref, tmp_path / "metrics.nii.gz", tmp_path / "metrics"):
        assert run(["evaluate", str(pred), str(ref), "-o", str(output), "--overwrite"]) == 2
        assert f"-o {output}: give a file name ending in .json, or a folder" in capsys.readouterr().err
    assert ref.read_bytes() == before and not (tmp_path / "metrics.nii.gz").exists()
    sidecar = pred.with_name(pred.name.replace(".nii.gz", ".json"))
    sidecar.write_text("{}")
    assert run(["evaluate", str(pred), str(ref), "-o", str(sidecar), "--overwrite"]) == 2
    assert (f"-o {sidecar}: that is the prediction's sidecar (written by medseg infer); give the metrics a .json "
            "path of their own") in capsys.readouterr().err
    assert sidecar.read_text() == "{}"


@pytest.mark.parametrize(("typed", "named"), [
    (["-o", "{}"], "-o"), (["-o{}"], "-o"), (["--output", "{}"], "--output"), (["--output={}"], "--output"),
    (["-o", "x.json", "--output", "{}"], "--output"),  # click keeps the last
])
def test_an_output_error_names_the_option_as_typed(pair, tmp_path, capsys, typed, named):
    """The -o checks named -o also where the user had typed --output."""
    pred, ref = pair
    output = tmp_path / "metrics.txt"
    option = [part.format(output) for part in typed]
    assert run(["evaluate", str(pred), str(ref), *option]) == 2
    assert f"error: {named} {output}: give a file name ending in .json" in capsys.readouterr().err
    assert run(["evaluate", str(tmp_path), str(tmp_path), *option[:-1], option[-1].replace(str(output), "x.json")]) == 2
    assert f"error: {named} x.json: two folders are scored into a folder" in capsys.readouterr().err
    assert run(["report", str(tmp_path), *option]) == 2
    assert f"error: {named} {output}: give a file name ending in .html or .htm" in capsys.readouterr().err
    assert not output.exists()


def test_an_output_under_a_file_or_a_link_leading_nowhere_is_a_usage_error_as_in_infer(pair, tmp_path, capsys):
    """``-o notes.txt/x.json`` (evaluate) and ``-o notes.txt/report.html`` (report) were exit 1, "cannot make this
    output folder", after the pair was scored or the results read, where infer's ``-o notes.txt/seg`` is a usage
    error (exit 2) before any work; a loop of links on the way was "a symbolic link to loop, which does not exist".
    All are usage errors now, said alike, and nothing is written."""
    pred, ref = pair
    notes = tmp_path / "notes.txt"
    notes.write_text("kept\n")
    (tmp_path / "loop").symlink_to("loop")
    restore = "restore its target or remove the link, or give another folder for the outputs"
    file_in_way = f"{notes} is a file, not a folder; give a folder for the outputs"
    loop_in_way = f"{tmp_path / 'loop'} is a symbolic link to loop, a loop of links that leads nowhere; {restore}"
    for argv, typed, expected in (
            (["evaluate", str(pred), str(ref)], notes / "x.json", file_in_way),
            (["evaluate", str(pred), str(ref)], tmp_path / "loop" / "x.json", loop_in_way),
            (["report", str(tmp_path)], notes / "report.html", file_in_way),
            (["report", str(tmp_path)], f"{tmp_path / 'loop' / 'sub'}/", loop_in_way)):
        assert run([*argv, "-o", str(typed)]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"medseg {argv[0]}: error: -o {typed}: {expected}. Try 'medseg {argv[0]} --help'.")
    assert notes.read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pred.name, ref.name, "loop", "notes.txt"])


@pytest.mark.parametrize("how", ["existing", "slash"])
def test_an_output_folder_gets_the_cases_metrics_file(pair, tmp_path, capsys, how):
    pred, ref = pair
    folder = tmp_path / "scores"
    if how == "existing":
        folder.mkdir()
    assert run(["evaluate", str(pred), str(ref), "-o", f"{folder}/" if how == "slash" else str(folder)]) == 0
    written = folder / f"{pred.name.removesuffix('.nii.gz').removesuffix('_seg')}_metrics.json"
    assert sorted(p.name for p in folder.iterdir()) == [written.name]
    assert json.loads(written.read_text())["schema"] == "medseg-metrics/1"


def test_label_names_and_model_come_from_the_predictions_sidecar(pair, tmp_path, capsys):
    pred, ref = pair
    sidecar = {"labels": {"0": "background", "1": "anterior", "2": "posterior"}, "model": {"name": "hippocampus"}}
    (tmp_path / "case7_seg.json").write_text(json.dumps(sidecar))
    assert run(["evaluate", str(pred), str(ref), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {v: e["name"] for v, e in metrics["labels"].items()} == {"1": "anterior", "2": "posterior"}
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "case7_seg.json"), "--overwrite"]) == 2
    assert "that is the prediction's sidecar (written by medseg infer)" in capsys.readouterr().err
    assert json.loads((tmp_path / "case7_seg.json").read_text()) == sidecar
    assert run(["evaluate", str(pred), str(ref), "--model", "phantom"]) == 2
    assert ("was made by model 'hippocampus' (its sidecar says so), not 'phantom'; pass --model hippocampus"
            in capsys.readouterr().err)
    # a package of one's own is passed by the folder the sidecar records: its name alone is not found elsewhere
    sidecar["model"] = {"name": "mine", "path": "/data/models/mine"}
    (tmp_path / "case7_seg.json").write_text(json.dumps(sidecar))
    assert run(["evaluate", str(pred), str(ref), "--model", "phantom"]) == 2
    assert ("was made by model 'mine' (its sidecar says so), not 'phantom'; pass --model /data/models/mine or leave "
            "--model out" in capsys.readouterr().err)


def test_a_model_of_the_same_name_with_other_labels_is_refused_and_other_weights_are_told(pair, tmp_path, capsys,
                                                                                         caplog):
    """Only the name was compared: a retrained package of one name with other labels scored the prediction's values
    under the wrong names (exit 0)."""
    from medseg.package import load_package

    pred, ref = pair
    package = load_package("hippocampus", check_hash=False)
    sidecar = tmp_path / "case7_seg.json"
    sidecar.write_text(json.dumps({"labels": {"0": "background", "1": "hippocampus"},
                                   "model": {"name": "hippocampus", "weights_sha256": package.sha256}}))
    assert run(["evaluate", str(pred), str(ref), "--model", "hippocampus"]) == 2
    assert (f"{pred} was made with labels 1 hippocampus (its sidecar says so), but --model hippocampus has 1 "
            "anterior, 2 posterior; pass the package that made it, or leave --model out") in capsys.readouterr().err
    sidecar.write_text(json.dumps({"labels": {"0": "bg", "1": "anterior", "2": "posterior"},  # background aside
                                   "model": {"name": "hippocampus", "weights_sha256": "ab" * 32}}))
    assert run(["evaluate", str(pred), str(ref), "--model", "hippocampus", "--json"]) == 0
    assert {v: e["name"] for v, e in json.loads(capsys.readouterr().out)["labels"].items()} == {
        "1": "anterior", "2": "posterior"}
    assert (f"{pred} was made by other weights of model hippocampus (sha256 abababababab…, --model has "
            f"{package.sha256[:12]}…); its labels are the same, so it is scored under them") in caplog.text


def test_two_empty_images_without_a_model_say_there_is_nothing_to_score(tmp_path, capsys):
    empty = np.zeros((8, 8, 4), np.uint8)
    for name in ("a.nii.gz", "b.nii.gz"):
        nib.save(nib.Nifti1Image(empty, np.eye(4)), tmp_path / name)
    assert run(["evaluate", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]) == 0
    assert "no foreground label in either image" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["b.nii.gz", "--label", "b.nii.gz"], "the label file would replace the image"),
    (["c.txt"], "phantoms are written as NIfTI"),
    (["c.nii.gz", "--shape", "0", "10", "10"], "0 is not in the range 1<=x<=2048"),
    (["c.nii.gz", "--seed", "-1"], "-1 is not in the range x>=0"),
    (["c.nii.gz", "--shape", "2000", "2000", "2000"], "more than 512³ voxels"),
])
def test_synth_refuses_bad_arguments_before_writing(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert run(["synth", *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_table_never_reads_higher_or_zero_where_the_value_is_not(tmp_path, capsys):
    """Dice 14000/20001 = 0.69997 printed as 0.7000 (as if it passed a 0.7 threshold); on 20 µm voxels every volume
    printed as 0.000 ml. Elsewhere Dice rounds to four decimals, as in every other output."""
    from medseg.numbers import dice_round_text, number_text

    assert [dice_round_text(d) for d in (0.8912641499, 0.6999, 0.70004, 0.74996, 0.9999999, 1.0, 0.0, -0.0, 0.57)] \
        == ["0.8913", "0.6999", "0.7000", "0.74996", "0.9999999", "1.0000", "0.0000", "0.0000", "0.5700"]
    assert number_text(-0.0, 3) == "0.000" and number_text(2.4e-05, 3) == "2.4e-05"
    # two decimals gave 0.0059 mm one significant digit, rounded up to 0.01 (and 0.000729 ml read 0.001)
    assert [number_text(v, 2) for v in (0.005882, 0.05, 0.0951, 0.1, 1.234)] == ["0.00588", "0.05", "0.0951", "0.10",
                                                                                  "1.23"]
    assert [number_text(v, 3) for v in (0.000729, 0.00702, 0.0123)] == ["0.000729", "0.00702", "0.012"]
    assert [number_text(v, 2) for v in (0.0999999, 0.0999, -0.0999999)] == ["0.10", "0.0999", "-0.10"]
    # the float's own value is rounded, as f"{x:.4f}" rounds it (667/800 is 0.833749999…, not 0.83375)
    assert dice_round_text(667 / 800) == f"{667 / 800:.4f}" == "0.8337" and dice_round_text(float("nan")) == "n/a"
    # multiples of 0.05 stored a hair below (0.7, 0.85) are those values, as Python compares them
    assert [dice_round_text(d) for d in (0.7, 0.85, 0.15, 14 / 20)] == ["0.7000", "0.8500", "0.1500", "0.7000"]
    # a Dice above 0 is not the 0 of an empty prediction, one below 1 not a perfect 1 (console and report alike)
    from medseg.numbers import dice_text

    assert [dice_round_text(d) for d in (1e-7, 0.00004)] == ["0.0000001", "0.00004"]
    assert [dice_text(d, 0.7) for d in (0.0004, 1e-7, 0.9996, 0.0, 1.0, 0.8913)] == [
        "0.0004", "0.0000001", "0.9996", "0.000", "1.000", "0.891"]
    affine = np.diag([0.02, 0.02, 0.02, 1.0])
    ref = np.zeros((100, 100, 2), np.uint8)
    pred = np.zeros_like(ref)
    ref.reshape(-1)[:10000] = 1  # 10000 voxels
    pred.reshape(-1)[:7000] = 1
    pred.reshape(-1)[10000:13001] = 1  # 10001 voxels, 7000 shared: Dice 14000 / 20001
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "ref.nii.gz")
    nib.save(nib.Nifti1Image(pred, affine), tmp_path / "pred.nii.gz")
    assert run(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("1 label_1")).split()
    assert row[2] == "0.69997"
    assert row[5:9] == ["8e-05", "8e-05", "2.4e-05", "2.4e-05"]  # pred, ref, false positive, false negative ml


@pytest.mark.parametrize("case_id, shown", [("a\nb", "case a\\nb (voxel"), ("a\u2028b", "case a\\u2028b (voxel")])
def test_a_case_id_with_a_line_break_stays_on_the_tables_first_line(pair, capsys, case_id, shown):
    pred, ref = pair
    assert run(["evaluate", str(pred), str(ref), "--case-id", case_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(shown) and lines[1].split() == ["label", "dice", "hd95_mm", "assd_mm", "pred_ml",
                                                                "ref_ml", "fp_ml", "fn_ml", "status"]


@pytest.mark.parametrize("case_id", ["", "  "])
def test_an_empty_case_id_is_a_usage_error(pair, tmp_path, capsys, case_id):
    pred, ref = pair
    assert run(["evaluate", str(pred), str(ref), "--case-id", case_id, "-o", str(tmp_path / "m.json")]) == 2
    assert "Invalid value for '--case-id': an empty case id names nothing" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_the_same_file_as_prediction_and_reference_and_empty_paths_are_usage_errors(pair, tmp_path, capsys):
    """A file scored against itself read as a perfect result (Dice 1, HD95 0); an empty -o (an unset shell
    variable) wrote the metrics into the current folder."""
    pred, _ = pair
    (tmp_path / "sub").mkdir()
    for again in (pred, tmp_path / "sub" / ".." / pred.name):
        assert run(["evaluate", str(pred), str(again), "-o", str(tmp_path / "m.json")]) == 2
        assert f"{pred} is given as both the prediction and the reference" in capsys.readouterr().err
    link = tmp_path / "link.nii.gz"
    link.symlink_to(pred)
    assert run(["evaluate", str(pred), str(link)]) == 2
    assert "is given as both the prediction and the reference" in capsys.readouterr().err
    assert run(["evaluate", str(pred), "", "--json"]) == 2
    assert "Invalid value for 'REFERENCE': an empty path (an unset shell variable?)" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_an_unreadable_sidecar_is_warned_about(pair, tmp_path, capsys, caplog):
    """A corrupt sidecar was passed over without a word: the labels went unnamed and --model unchecked."""
    pred, ref = pair
    for text, why in (("{x", "not valid JSON at line 1, column 2: a key in double quotes was expected"),
                      ("[1]", "holds a JSON list, not an object"),
                      ('{"labels": "ball"}', "its 'labels' is not an object")):
        (tmp_path / "case7_seg.json").write_text(text)
        caplog.clear()
        assert run(["evaluate", str(pred), str(ref), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["labels"]["1"]["name"] == "label_1"
        assert any(f"{tmp_path / 'case7_seg.json'}: not a readable sidecar ({why}" in r.getMessage()
                   for r in caplog.records), text
    # told before a --model that is not found ends the run
    caplog.clear()
    assert run(["evaluate", str(pred), str(ref), "--model", str(tmp_path / "no_model")]) == 1
    assert any("case7_seg.json: not a readable sidecar" in r.getMessage() for r in caplog.records)


def test_an_image_given_as_the_prediction_is_scored_with_a_warning(pair, tmp_path, capsys, caplog):
    """Without --model every value is a label: an MR image given as the prediction was scored as 200 labels without a
    word."""
    _, ref = pair
    image = tmp_path / "image.nii.gz"
    values = np.arange(24 * 24 * 12).reshape(24, 24, 12) % 200
    nib.save(nib.Nifti1Image(values.astype(np.int16), nib.load(ref).affine), image)
    assert run(["evaluate", str(image), str(ref), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["labels"]) == 199
    assert any(f"{image}: holds 200 distinct values, each scored as a label: an image given as the prediction?"
               in r.getMessage() for r in caplog.records)


def test_a_label_image_with_nan_says_which_role_it_had(pair, tmp_path, capsys):
    pred, ref = pair
    bad = tmp_path / "nan.nii.gz"
    array = np.zeros((24, 24, 12), np.float32)
    array[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(array, nib.load(ref).affine), bad)
    assert run(["evaluate", str(pred), str(bad)]) == 1
    assert capsys.readouterr().err.strip() == (f"medseg: error: {bad}: the image contains NaN or infinite voxels "
                                               "(1 NaN; the first at voxel index (1, 2, 3)), given as the reference")
    assert run(["evaluate", str(bad), str(ref)]) == 1
    assert capsys.readouterr().err.strip().endswith("), given as the prediction")


def test_volumes_that_rest_on_an_assumed_slice_thickness_say_so_in_the_record(tmp_path):
    """A single slice whose header gives no thickness is scored with 1 mm assumed; only a warning said so, and the
    metrics record gave its ml as if measured. The record's notes say it now (the QA report shows a record's notes)."""
    paths = []
    for name, rows in (("p", slice(5, 12)), ("r", slice(6, 12))):
        array = np.zeros((20, 20, 1), np.uint8)
        array[rows, 5:12] = 1
        image = nib.Nifti1Image(array, None)
        image.header.set_zooms((0.5, 0.5, 0.0))
        image.header.set_sform(None, code=0)
        image.header.set_qform(None, code=0)
        nib.save(image, str(tmp_path / f"{name}.nii.gz"))
        paths.append(str(tmp_path / f"{name}.nii.gz"))
    assert run(["evaluate", *paths, "-o", str(tmp_path / "m.json")]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    note = ("slice thickness unknown (pixdim[3] 0 along k, an axis of one voxel): 1 mm assumed; the volumes in ml "
            "rest on it")
    assert record["notes"] == [f"prediction: {note}", f"reference: {note}"]
    assert record["spacing_mm"] == [0.5, 0.5, 1.0] and record["labels"]["1"]["pred_volume_ml"] == pytest.approx(0.01225)


def test_a_case_id_with_leading_dots_does_not_make_a_hidden_file(pair, tmp_path):
    """--case-id ../x with a folder as -o wrote .._x_metrics.json, a file `ls` does not show."""
    pred, ref = pair
    assert run(["evaluate", str(pred), str(ref), "--case-id", "../x", "-o", f"{tmp_path / 'out'}/"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_x_metrics.json"]
    assert json.loads((tmp_path / "out" / "_x_metrics.json").read_text())["case_id"] == "../x"


def test_a_case_id_names_a_file_windows_can_hold(pair, tmp_path):
    """--case-id 'sub-01:ses 2?' with a folder as -o wrote 'sub-01:ses 2?_metrics.json': on Windows a name it refuses,
    or, for the colon, a hidden stream of a file 'sub-01' (NTFS); a results folder holding it cannot be copied
    there. The characters Windows refuses and control characters are written as '_'; the record keeps the id."""
    pred, ref = pair
    case_id = 'sub-01:ses 2?*"<a>|b\tc'
    assert run(["evaluate", str(pred), str(ref), "--case-id", case_id, "-o", f"{tmp_path / 'out'}/"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sub-01_ses 2____a__b_c_metrics.json"]
    record = json.loads((tmp_path / "out" / "sub-01_ses 2____a__b_c_metrics.json").read_text())
    assert record["case_id"] == case_id


def test_a_prediction_changed_after_its_sidecar_was_written_is_scored_with_a_warning(pair, tmp_path, capsys, caplog):
    """An edited segmentation kept its sidecar and was scored without a word (the report calls such a case stale)."""
    pred, ref = pair
    sidecar = {"labels": {"0": "background", "1": "anterior", "2": "posterior"}, "model": {"name": "hippocampus"},
               "segmentation": pred.name, "segmentation_sha256": hashlib.sha256(pred.read_bytes()).hexdigest()}
    (tmp_path / "case7_seg.json").write_text(json.dumps(sidecar))
    assert run(["evaluate", str(pred), str(ref), "--json"]) == 0
    capsys.readouterr()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    image = nib.load(pred)
    edited = np.asarray(image.dataobj).copy()
    edited[0, 0, 0] = 1
    nib.save(nib.Nifti1Image(edited, image.affine), pred)
    caplog.clear()
    assert run(["evaluate", str(pred), str(ref), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]["1"]["name"] == "anterior"
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{pred} was changed after medseg infer wrote it (its SHA-256 is not the one its sidecar case7_seg.json "
        "records): it is scored as it is now, under the label names and model the sidecar gives"]


def test_the_dataset_json_names_come_from_is_named_as_the_files_are_given(tmp_path, capsys, monkeypatch):
    """Files given relative to the working folder were named so, and the dataset.json their names came from by its
    absolute path ("label names from /home/…/Task01/dataset.json"); it is now named as they are given."""
    ref = np.zeros((8, 8, 4), np.uint8)
    ref[2:5, 2:5, 1:3] = 1
    (tmp_path / "Task01" / "labelsTr").mkdir(parents=True)
    nib.save(nib.Nifti1Image(ref, np.eye(4)), tmp_path / "Task01" / "labelsTr" / "a.nii.gz")
    nib.save(nib.Nifti1Image(ref, np.eye(4)), tmp_path / "a_pred.nii.gz")
    (tmp_path / "Task01" / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "thing"}}))
    monkeypatch.chdir(tmp_path)
    assert run(["evaluate", "a_pred.nii.gz", "Task01/labelsTr/a.nii.gz", "--json"]) == 0
    assert capsys.readouterr().err == "label names from Task01/dataset.json\n"
    monkeypatch.chdir(tmp_path / "Task01" / "labelsTr")
    assert run(["evaluate", str(tmp_path / "a_pred.nii.gz"), "a.nii.gz", "--json"]) == 0
    assert capsys.readouterr().err == "label names from ../dataset.json\n"
    assert run(["evaluate", str(tmp_path / "a_pred.nii.gz"), str(tmp_path / "Task01" / "labelsTr" / "a.nii.gz"),
                "--json"]) == 0
    assert capsys.readouterr().err == f"label names from {tmp_path / 'Task01' / 'dataset.json'}\n"


def test_nnunet_predictions_against_labelstr_are_named_after_the_dataset_json(tmp_path, capsys, caplog):
    """nnU-Net's predictions (``case.nii.gz``, no sidecar) scored against ``labelsTr`` were named label_1, label_2
    though the dataset folder's dataset.json names them, as `medseg train` reads it."""
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    ref = np.zeros((16, 16, 6), np.uint8)
    ref[2:8, 2:8, 1:4] = 1
    ref[9:14, 9:14, 2:5] = 2
    dataset = tmp_path / "Dataset001_Two"
    (dataset / "labelsTr").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(ref, affine), dataset / "labelsTr" / "case_001.nii.gz")
    pred = ref.copy()
    pred[pred == 2] = 0
    pred[0, 0, 0] = 4  # a value the dataset.json does not declare
    nib.save(nib.Nifti1Image(pred, affine), tmp_path / "pred" / "case_001.nii.gz")
    (dataset / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2, "Tail": 3},
        "numTraining": 1, "file_ending": ".nii.gz"}))
    args = ["evaluate", str(tmp_path / "pred" / "case_001.nii.gz"), str(dataset / "labelsTr" / "case_001.nii.gz")]
    assert run([*args, "--json"]) == 0
    captured = capsys.readouterr()
    written = json.loads(captured.out)
    assert written["case_id"] == "case_001"
    assert {value: entry["name"] for value, entry in written["labels"].items()} == {
        "1": "Anterior", "2": "Posterior", "3": "Tail", "4": "label_4"}
    assert written["labels"]["1"]["dice"] == 1.0 and written["labels"]["2"]["dice"] == 0.0
    assert written["labels"]["3"]["dice"] is None and written["labels"]["3"]["status"] == "both_empty"
    assert captured.err.splitlines() == [f"label names from {dataset / 'dataset.json'}"]
    assert caplog.messages == [
        f"{tmp_path / 'pred' / 'case_001.nii.gz'}, {dataset / 'labelsTr' / 'case_001.nii.gz'}: label values [4] are "
        "not among the labels the dataset.json names (1 Anterior, 2 Posterior, 3 Tail); scored as label_N"]
    # nnU-Net's own dataset.json beside its predictions, in v1's form, where the reference has none
    (dataset / "dataset.json").rename(tmp_path / "pred" / "dataset.json")
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "a", "2": "b",
                                                                           "4": "d"}}))
    assert run([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert [entry["name"] for entry in json.loads(captured.out)["labels"].values()] == ["a", "b", "d"]
    assert captured.err == f"label names from {tmp_path / 'pred' / 'dataset.json'}\n"
    # a prediction that cannot be read is told alone, without the note on names
    assert run(["evaluate", str(tmp_path / "pred" / "case_002.nii.gz"), args[2]]) == 1
    assert capsys.readouterr().err == f"medseg: error: {tmp_path / 'pred' / 'case_002.nii.gz'}: no such file\n"
    # nnU-Net's ignore label: scored as a label, which nnU-Net's evaluation does not do; said so
    caplog.clear()
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "ignore": 2}}))
    assert run([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]["2"]["name"] == "ignore"
    assert (f"{args[2]}: label 2 'ignore' is nnU-Net's ignore label (voxels without annotation); medseg scores it "
            "as a label, and a prediction of another label in its voxels counts as a false positive, where nnU-Net's "
            "evaluation leaves those voxels out") in caplog.messages
    # --model's names, or none: as before
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"training": []}))  # a datalist names no labels
    assert run([*args, "--json"]) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)["labels"].values()] == [
        "label_1", "label_2", "label_4"]


def test_a_dataset_json_nested_too_deeply_for_json_is_passed_over_not_a_traceback(tmp_path, capsys, caplog):
    """Brackets nested thousands deep (no dataset.json holds them) raised json's RecursionError out of evaluate, which
    only looks there for label names, and out of train's reading of a dataset folder."""
    from medseg.io.dataset_json import read_dataset_json

    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    (tmp_path / "Task01" / "labelsTr").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "Task01" / "labelsTr" / "c.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "pred" / "c.nii.gz")
    deep = tmp_path / "Task01" / "dataset.json"
    deep.write_text('{"labels": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert run(["evaluate", str(tmp_path / "pred" / "c.nii.gz"), str(tmp_path / "Task01" / "labelsTr" / "c.nii.gz"),
                "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["labels"]["1"]["name"] == "label_1"
    assert "label names from" not in captured.err
    caplog.clear()
    assert read_dataset_json(deep) is None
    assert caplog.messages == [f"{deep}: not read (nested too deeply to be a dataset.json); its training list and "
                               "label names are not used (the cases are paired by file name; labels are named label_N)"]


def test_a_folder_and_a_file_given_to_evaluate_say_to_give_two_of_a_kind(pair, tmp_path, capsys):
    """nnUNetv2_evaluate_folder takes two folders, and so does evaluate (tests/test_folder_scoring.py); a folder
    beside a file is one usage line, not click's "is a directory"."""
    pred, ref = pair
    assert run(["evaluate", str(tmp_path), str(ref)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"medseg evaluate: error: {tmp_path} is a folder and {ref} is a file: give two files (a prediction and its "
        "reference) or two folders (predictions and references). Try 'medseg evaluate --help'.")
    assert run(["evaluate", str(pred), str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.json")]) == 1  # one file
    assert run(["evaluate", str(tmp_path), str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path} is a folder and {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_metrics.json")) and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("unreadable", ["prediction", "reference"])
def test_a_file_this_user_may_not_read_is_an_error_not_a_usage_error(pair, tmp_path, unreadable, capsys):
    """click's own check turned permission denied into a usage error (exit 2, "Try 'medseg evaluate --help'"), as
    `medseg infer` had done: the reader names it now, exit 1, as infer does, and nothing is written."""

    from conftest import medseg_as_plain_user

    pred, ref = pair
    (pred if unreadable == "prediction" else ref).chmod(0)
    run = medseg_as_plain_user(["evaluate", str(pred), str(ref), "-o",
                                str(tmp_path / "m.json")], capsys)
    assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (
        1, f"medseg: error: {pred if unreadable == 'prediction' else ref}: cannot read (permission denied)")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("folders", [False, True], ids=["a pair", "two folders"])
def test_the_metrics_record_the_command_that_made_them(pair, tmp_path, folders):
    """A sidecar records its command line; a metrics file did not (an audit could not tell how it was scored)."""
    import os

    pred, ref = pair
    if folders:
        (tmp_path / "pred").mkdir()
        (tmp_path / "ref").mkdir()
        pred.rename(tmp_path / "pred" / "case7.nii.gz")
        ref.rename(tmp_path / "ref" / "case7.nii.gz")
        pred, ref = tmp_path / "pred", tmp_path / "ref"
    out = tmp_path / ("scores" if folders else "case7_metrics.json")
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    written = json.loads((out / "case7_metrics.json" if folders else out).read_text())
    assert written["invocation"] == {"argv": ["medseg", "evaluate", str(pred), str(ref), "-o", str(out)],
                                     "cwd": os.getcwd()}


@pytest.mark.parametrize("folders", [False, True], ids=["a pair", "two folders"])
def test_scoring_imports_neither_torch_nor_monai(pair, tmp_path, monkeypatch, folders):
    """The surface distances are scipy's, so scoring needs neither torch nor MONAI: each `medseg evaluate` imported
    both (5.6-11 s and 400 MB for a 24×24×12 pair on a busy 2-core machine; 1.3-2.0 s and 95 MB without)."""
    import builtins

    pred, ref = pair
    if folders:
        (tmp_path / "pred").mkdir()
        (tmp_path / "ref").mkdir()
        pred.rename(tmp_path / "pred" / "case7.nii.gz")
        ref.rename(tmp_path / "ref" / "case7.nii.gz")
        pred, ref = tmp_path / "pred", tmp_path / "ref"
    imported = []
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *args, **kw: imported.append(name) or real(name, *args,
                                                                                                       **kw))
    out = tmp_path / ("scores" if folders else "case7_metrics.json")
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    assert json.loads((out / "case7_metrics.json" if folders else out).read_text())["labels"]["1"]["hd95_mm"] == 0.8
    assert not [name for name in imported if name.split(".")[0] in ("torch", "monai")]


@pytest.mark.parametrize("content, reason", [
    (json.dumps({"labels": {"background": 0, "whole": [1, 2], "inner": 2}, "regions_class_order": [1, 2]}),
     "its labels are nnU-Net regions ('whole' is the values [1, 2]): medseg scores each label value on its own, not "
     "the regions nnU-Net's evaluation scores"),
    ('{"labels": {"background": 0, "whole": 1,, }',
     "not read (not valid JSON at line 1, column 41: a key in double quotes was expected)"),
])
def test_a_dataset_json_whose_names_cannot_be_used_is_named_in_a_warning(tmp_path, capsys, caplog, content, reason):
    """A dataset.json beside the reference whose labels medseg cannot take (nnU-Net's region-based labels, or a file
    that is not JSON) was passed over in silence: the labels were named label_N as if there were none, and a
    region-based dataset's figures, each label value scored on its own, read as the regions nnU-Net scores. It is
    named in one warning, once for a folder of cases."""
    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    labels[5:7, 5:7, 1:3] = 2
    (tmp_path / "Dataset001_X" / "labelsTs").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    for case in ("c1", "c2"):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "Dataset001_X" / "labelsTs" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "pred" / f"{case}.nii.gz")
    found = tmp_path / "Dataset001_X" / "dataset.json"
    found.write_text(content)
    warning = f"{found}: {reason}; its label names are not used (the labels are named label_N)"
    assert run(["evaluate", str(tmp_path / "pred" / "c1.nii.gz"),
                str(tmp_path / "Dataset001_X" / "labelsTs" / "c1.nii.gz"), "--json"]) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)["labels"].values()] == [
        "label_1", "label_2"]
    assert caplog.messages == [warning]
    caplog.clear()
    assert run(["evaluate", str(tmp_path / "pred"), str(tmp_path / "Dataset001_X" / "labelsTs"), "-o",
                str(tmp_path / "scores")]) == 0
    assert [m for m in caplog.messages if "dataset.json" in m] == [warning]  # once, not once per case


def test_a_dataset_json_naming_the_label_values_otherwise_than_the_model_is_warned_about(tmp_path, capsys, caplog):
    """Labels are scored by value under the model's names (from --model or the prediction's sidecar); a dataset.json of
    the reference's dataset that names the values otherwise (its 1 is the model's 2: another labelling convention)
    was passed over in silence, so each of the model's labels was scored against another structure of the
    reference under the model's name. It is named in a warning (once for a folder of cases); names that differ in
    letter case only are no difference."""
    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    labels[5:7, 5:7, 1:3] = 2
    dataset = tmp_path / "Task04"
    (dataset / "labelsTr").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    for case in ("c1", "c2"):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), dataset / "labelsTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "pred" / f"{case}.nii.gz")
    args = ["evaluate", str(tmp_path / "pred" / "c1.nii.gz"), str(dataset / "labelsTr" / "c1.nii.gz"), "--model",
            "hippocampus", "--json"]
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "Anterior",
                                                                 "2": "Posterior"}}))
    assert run(args) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)["labels"].values()] == [
        "anterior", "posterior"]
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "Posterior",
                                                                 "2": "Anterior"}}))
    warning = (f"{dataset / 'dataset.json'} names labels 1 Posterior, 2 Anterior; the model hippocampus names them "
               "1 anterior, 2 posterior: each label is scored by its value under the model's name; check that the "
               "reference uses the model's label values")
    assert run(args) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)["labels"].values()] == [
        "anterior", "posterior"]
    assert caplog.messages == [warning]
    caplog.clear()
    assert run(["evaluate", str(tmp_path / "pred"), str(dataset / "labelsTr"), "-o", str(tmp_path / "scores"),
                "--model", "hippocampus"]) == 0
    assert [m for m in caplog.messages if "dataset.json" in m] == [warning]  # once, not once per case


def test_the_table_groups_the_labels_never_learnt_as_a_folders_lines_do(tmp_path, capsys, make_package):
    """One pair's table gave a label the model never learnt a row of dashes with status both_empty, where a folder's
    case line and `medseg infer` group them: ``unused_2, unused_4: n/a (both empty; never learnt: …)``. Now the table
    says so too, under its rows, where the sidecar's labels_not_trained or the --model package's record names them;
    one of them predicted keeps its row, and a sidecar that does not list them keeps each its row."""
    names = {"0": "background", "1": "anterior", "2": "unused_2", "3": "posterior", "4": "unused_4"}
    reference = np.zeros((16, 16, 8), np.uint8)
    reference[3:9, 3:9, 2:6] = 1
    reference[9:13, 9:13, 2:6] = 3
    predicted = reference.copy()
    predicted[3, 3:9, 2:6] = 0  # anterior: 120 of its 144 voxels, Dice 240/264
    pred, ref, sidecar = tmp_path / "a_seg.nii.gz", tmp_path / "a.nii.gz", tmp_path / "a_seg.json"
    nib.save(nib.Nifti1Image(predicted, np.eye(4)), pred)
    nib.save(nib.Nifti1Image(reference, np.eye(4)), ref)
    made = {"schema": "medseg-segmentation/1", "case_id": "a", "segmentation": pred.name, "labels": names,
            "model": {"name": "gaps"}, "labels_not_trained": [2, 4]}
    sidecar.write_text(json.dumps(made))
    grouped = "2 unused_2, 4 unused_4: n/a (both empty; never learnt: no training case held them)"
    assert run(["evaluate", str(pred), str(ref)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[2:-1]] == [["1", "anterior"], ["3", "posterior"]]
    assert lines[2].split()[2] == "0.9091" and lines[2].split()[-1] == "ok"
    assert lines[-1] == grouped
    assert "both_empty" not in "\n".join(lines)
    # the metrics record is the same: the two labels both_empty, Dice null
    assert run(["evaluate", str(pred), str(ref), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [(record["labels"][v]["status"], record["labels"][v]["dice"]) for v in ("2", "4")] == [
        ("both_empty", None), ("both_empty", None)]
    # one of them predicted: its false positive keeps its row; the other is grouped alone
    predicted[0, 0, 0] = 4
    nib.save(nib.Nifti1Image(predicted, np.eye(4)), pred)
    made.pop("segmentation")  # (the file changed: no warning that it was edited after infer wrote it)
    sidecar.write_text(json.dumps(made))
    assert run(["evaluate", str(pred), str(ref)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split()[:3] == ["4", "unused_4", "0.0000"] and lines[-2].endswith("false_positive")
    assert lines[-1] == "2 unused_2: n/a (both empty; never learnt: no training case held it)"
    # a sidecar that does not list them: a row each, as before
    predicted[0, 0, 0] = 0
    nib.save(nib.Nifti1Image(predicted, np.eye(4)), pred)
    sidecar.write_text(json.dumps({key: value for key, value in made.items() if key != "labels_not_trained"}))
    assert run(["evaluate", str(pred), str(ref)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[2:]] == [["1", "anterior"], ["2", "unused_2"], ["3", "posterior"],
                                                         ["4", "unused_4"]]
    assert lines[3].endswith("both_empty") and "never learnt" not in "\n".join(lines)
    # no sidecar, the package given with --model records them: its word is taken
    sidecar.unlink()
    package = make_package("gaps", labels=names, architecture={
        "type": "unet2d", "in_channels": 1, "n_classes": 5, "base_width": 4, "depth": 2, "dropout": 0.0,
        "norm": "batch"}, training={"train_labels_absent": [2, 4]})
    assert run(["evaluate", str(pred), str(ref), "-m", str(package)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == grouped and len(lines) == 5


def test_the_table_aligns_its_columns_after_wide_and_combining_label_names():
    """A label named in Japanese (two terminal columns a character) or with a combining accent (none) was padded by
    its count of characters: the columns after it stood out of line with the header, row by row (medseg inspect's
    table pads by terminal columns; the metrics table now does too, by the same function)."""
    from medseg.cli.evaluate import format_table
    from medseg.metrics import evaluate_volumes
    from medseg.one_line import terminal_columns
    from medseg.volume import Volume

    ref = np.zeros((12, 12, 4), np.uint8)
    ref[1:5, 1:5, 1:3], ref[6:9, 6:9, 1:3], ref[1:4, 8:11, 2:4] = 1, 2, 3
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    metrics = evaluate_volumes(Volume(ref, affine), Volume(ref, affine),
                               {0: "background", 1: "海馬", 2: "Cafe\u0301", 3: "hippocampus"}, case_id="c")
    lines = format_table(metrics).splitlines()[1:]
    assert [line.split()[1] for line in lines[1:]] == ["海馬", "Cafe\u0301", "hippocampus"]
    assert {terminal_columns(line[:line.index("dice" if n == 0 else "1.0000")]) for n, line in enumerate(lines)} \
        == {len("3 hippocampus  ")}
    assert terminal_columns("海馬 Cafe\u0301\tx") == 4 + 1 + 4 + 1 + 1
