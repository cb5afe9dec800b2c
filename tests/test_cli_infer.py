"""`medseg infer` from the command line: outputs, exit codes, one-line errors, nothing left behind."""

import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import _files, run_cli

from medseg.io import read_image
from medseg.package import load_package
from medseg.synthetic import make_phantom, write_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_writes_segmentation_and_sidecar(tmp_path, case, make_package, capsys, monkeypatch):
    package = make_package()
    monkeypatch.chdir(package.parent)  # the model named relative to the folder the run starts in
    code, out, err = run(["infer", str(case), "--model", package.name, "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    seg = tmp_path / "out" / "case_seg.nii.gz"
    sidecar = json.loads((tmp_path / "out" / "case_seg.json").read_text())
    assert nib.load(str(seg)).shape == (40, 40, 8)
    # a viewer colours every case of a model alike: 0 to the model's top label, whichever labels were found
    assert (nib.load(str(seg)).header["cal_min"], nib.load(str(seg)).header["cal_max"]) == (0, 3)
    assert sidecar["labels"] == {"0": "background", "1": "ellipsoid", "2": "box", "3": "tube"}
    assert sidecar["shape"] == [40, 40, 8] and sidecar["spacing_mm"] == [1.0, 1.0, 2.0]
    assert sidecar["model"]["name"] == "tiny" and len(sidecar["model"]["weights_sha256"]) == 64
    assert sidecar["model"]["path"] == str(package.resolve())  # readable from anywhere, as the input's path
    # the config as read: with the weights' hash, the model exactly (a hand edit of model.json shows)
    assert sidecar["model"]["config_sha256"] == hashlib.sha256((package / "model.json").read_bytes()).hexdigest()
    # what of it decides the segmentation: the same under new label codes, for the QA report to group cases by
    assert sidecar["model"]["settings_sha256"] == load_package(package).settings_sha256
    assert sidecar["device"] == "cpu" and "no CUDA" in sidecar["device_reason"]
    assert len(sidecar["input_sha256"]) == 64
    assert set(sidecar["versions"]) >= {"medseg", "monai", "torch"}
    assert set(sidecar["timings_s"]) >= {"read_s", "preprocess_s", "inference_s", "postprocess_s", "write_s"}
    assert sidecar["inference"]["tiles"] == 8 * 4  # 40x40 slices, 32x32 tiles, 25% overlap: 2x2 tiles per slice
    assert "cpu" in err  # the device is always reported
    # the weights' SHA-256 shortened, and marked so as every shortened hash is (twelve bare digits read as whole)
    assert f"model tiny ({sidecar['model']['weights_sha256'][:12]}…) on cpu (" in err
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz"]
    assert "reference" not in sidecar and sidecar["input_info"] == {}
    # the command as medseg got it (not the test runner's own argv), and where it ran: its relative paths' base
    assert sidecar["invocation"] == {"argv": ["medseg", "infer", str(case), "--model", package.name, "-o",
                                              str(tmp_path / "out")], "cwd": str(package.parent)}


def test_a_dicom_inputs_sidecar_names_pydicom_and_the_decoders_it_had(tmp_path, make_package, capsys):
    """pydicom reads a DICOM series, and a plugin decodes compressed pixel data (a lossy JPEG decodes to other values
    under another decoder): the sidecar names them for a DICOM input, and not for a NIfTI one."""
    import pydicom
    from dicom_factory import slice_positions, stored_values, write_series
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    package = make_package()
    for name, syntax in (("plain", ExplicitVRLittleEndian), ("rle", RLELossless)):
        write_series(tmp_path / name, stored_values((24, 24, 4)), slice_positions(4, 2.0), transfer_syntax=syntax)
    nib.save(nib.Nifti1Image(stored_values((24, 24, 4)).astype(np.float32), np.eye(4)), str(tmp_path / "n.nii.gz"))
    code, _, err = run(["infer", str(tmp_path / "plain"), str(tmp_path / "rle"), str(tmp_path / "n.nii.gz"),
                        "--model", str(package), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    plain, rle, nifti = (json.loads((tmp_path / "out" / f"{stem}_seg.json").read_text())["versions"]
                         for stem in ("plain", "rle", "n"))
    assert plain["pydicom"] == rle["pydicom"] == pydicom.__version__
    assert "dicom_decoders" not in plain  # uncompressed: nothing decoded
    assert f"pydicom (pydicom {pydicom.__version__})" in rle["dicom_decoders"]  # pydicom's own RLE decoder
    assert "pydicom" not in nifti and "dicom_decoders" not in nifti


def test_an_input_replaced_while_it_is_read_is_refused_not_hashed_as_the_new_file(tmp_path, make_package, capsys,
                                                                                   monkeypatch):
    """The input's SHA-256 is taken after its voxels are read: a file replaced in between (a copy landing, a
    pipeline rewriting it) gave a sidecar naming the new file's hash over a segmentation of the old voxels, which a
    cohort then kept as made from the new file. The case fails in one line; the other inputs carry on."""
    import os

    import medseg.io.nifti as nifti

    write_phantom(tmp_path / "a.nii.gz", shape=(40, 40, 8), seed=1, oblique=False)
    write_phantom(tmp_path / "b.nii.gz", shape=(40, 40, 8), seed=2, oblique=False)
    write_phantom(tmp_path / "new.nii.gz", shape=(40, 40, 8), seed=3, oblique=False)
    real = nifti.sha256_of

    def replaced_first(paths):
        if tmp_path / "a.nii.gz" in [Path(p) for p in paths] and (tmp_path / "new.nii.gz").exists():
            os.replace(tmp_path / "new.nii.gz", tmp_path / "a.nii.gz")  # lands between the read and the hash
        return real(paths)

    monkeypatch.setattr(nifti, "sha256_of", replaced_first)
    code, _, err = run(["infer", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--model",
                        str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert f"{tmp_path / 'a.nii.gz'}: changed while it was read" in err
    # nothing of a but its failure record; b segmented
    assert _files(tmp_path / "out") == ["a_failed.json", "b_seg.json", "b_seg.nii.gz"]


def test_a_dicom_series_rewritten_while_it_is_read_is_refused_a_file_added_beside_it_is_not(tmp_path, make_package,
                                                                                             capsys, monkeypatch):
    """A DICOM series' files are hashed after their voxels are read, as a NIfTI is: one of them rewritten in between
    gave a sidecar naming the new files' hash over the old voxels, unchecked (a series has no input_signature). The
    case fails in one line; a file added to a folder meanwhile that the series does not read (a PACS client writing
    another series there) fails nothing."""
    import os

    from dicom_factory import slice_positions, stored_values, write_series

    import medseg.io.dicom as dicom

    rewritten = write_series(tmp_path / "rewritten", stored_values((24, 24, 4)), slice_positions(4, 2.0))
    write_series(tmp_path / "added", stored_values((24, 24, 4)), slice_positions(4, 2.0))
    real = dicom._file_digests

    def meanwhile(files):
        folder = Path(files[0]).parent
        if folder.name == "rewritten":  # a slice re-sent with other bytes, its time moved on
            os.utime(rewritten[1], ns=(os.stat(rewritten[1]).st_atime_ns, os.stat(rewritten[1]).st_mtime_ns + 10**9))
        else:
            (folder / "README.txt").write_text("another series follows")
        return real(files)

    monkeypatch.setattr(dicom, "_file_digests", meanwhile)
    code, _, err = run(["infer", str(tmp_path / "rewritten"), str(tmp_path / "added"), "--model", str(make_package()),
                        "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert f"{tmp_path / 'rewritten'}: changed while it was read ({rewritten[1].name}: size or modification" in err
    # nothing of the rewritten series but its failure record
    assert _files(tmp_path / "out") == ["added_seg.json", "added_seg.nii.gz", "rewritten_failed.json"]


def test_dicom_decoders_are_named_in_the_order_pydicom_tries_them():
    """pydicom decodes a JPEG 2000 frame with the first of gdcm, pylibjpeg, pillow that is installed (its
    `available_plugins` lists them sorted by name): the sidecar names them in that order, the one used first."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless

    from medseg.segment import _dicom_versions

    available = get_decoder(JPEG2000Lossless).available_plugins
    if not {"pylibjpeg", "pillow"} <= set(available):
        pytest.skip("needs pydicom's pylibjpeg and pillow JPEG 2000 decoders both installed")
    named = [part.split(" (")[0] for part in _dicom_versions(JPEG2000Lossless)["dicom_decoders"].split("; ")]
    assert named == [name for name in ("gdcm", "pylibjpeg", "pillow") if name in available]


def test_sidecar_spacing_reads_as_the_metrics_do(tmp_path, make_package, capsys):
    """A CT's 0.48828125 mm pixels (250 mm over 512) are exact in float32: the sidecar and the metrics of the same
    case record the same voxel size, not 0.4882812 in one and 0.48828125 in the other."""
    phantom = make_phantom((40, 40, 8), seed=11)
    affine = np.diag([0.48828125, 0.48828125, 2.5, 1.0])
    nib.save(nib.Nifti1Image(phantom.image, affine), str(tmp_path / "ct.nii.gz"))
    nib.save(nib.Nifti1Image(phantom.labels, affine), str(tmp_path / "ct_label.nii.gz"))
    code, _, err = run(["infer", str(tmp_path / "ct.nii.gz"), "--model", str(make_package()), "-o",
                        str(tmp_path / "out"), "--reference", str(tmp_path / "ct_label.nii.gz")], capsys)
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out" / "ct_seg.json").read_text())
    metrics = json.loads((tmp_path / "out" / "ct_metrics.json").read_text())
    assert sidecar["spacing_mm"] == metrics["spacing_mm"] == [0.48828125, 0.48828125, 2.5]


def test_batch_carries_on_after_a_bad_case(tmp_path, case, make_package, capsys):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(b"garbage" * 100))
    out_dir = tmp_path / "out"
    code, out, err = run(["infer", str(bad), str(case), "--model", str(make_package()), "-o", str(out_dir)], capsys)
    assert code == 1
    assert f"{bad}:" in err and "1 of 2 inputs failed" in err
    assert _files(out_dir) == ["bad_failed.json", "case_seg.json", "case_seg.nii.gz"]  # the report lists bad


def test_inputs_that_cannot_be_read_are_told_before_torch_or_the_network_loads(tmp_path):
    """An input is read before the model's network is built: a batch (or a single input) none of whose inputs can be
    read (a copy cut short, a file that is no image) is told, and its failure records written, without torch, MONAI
    or the weights being loaded (4.3 CPU-s and 4.6 s before the one-line error, on a 2-core machine)."""
    import subprocess
    import sys

    image = nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).image, np.eye(4))
    whole = tmp_path / "whole.nii.gz"
    nib.save(image, str(whole))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(whole.read_bytes()[:2000])  # its header whole, its voxels cut short
    (tmp_path / "notes.nii.gz").write_text("not an image\n")
    out = tmp_path / "out"
    commands = [["infer", str(cut), str(tmp_path / "notes.nii.gz"), "-o", str(out)],
                ["infer", str(cut), "-o", str(tmp_path / "alone")]]
    code = ("import sys\nfrom medseg.cli import main\n"
            f"for args in {commands!r}:\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        print('exit', e.code)\n"
            "print('loaded', [name for name in ('torch', 'monai') if name in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == ["exit 1", "exit 1", "loaded []"], result.stderr
    assert f"{cut}: truncated image data" in result.stderr and f"{tmp_path / 'notes.nii.gz'}: not a NIfTI image" \
        in result.stderr and "2 of 2 inputs failed" in result.stderr
    assert "model " not in result.stderr  # no model was loaded to be named
    record = json.loads((out / "cut_failed.json").read_text())
    assert (record["schema"], record["case_id"], record["stage"], record["error_type"], record["input"]) == (
        "medseg-failure/1", "cut", "read", "ImageReadError", str(cut))
    assert _files(out) == ["cut_failed.json", "notes_failed.json"]
    assert not (tmp_path / "alone").exists() or _files(tmp_path / "alone") == []  # a single input writes nothing


def test_a_batch_reads_its_first_good_input_before_the_model_loads_and_still_segments_it(tmp_path, case, make_package,
                                                                                        capsys, monkeypatch):
    """The model is loaded once an input has been read: a batch of an unreadable input and a good one tells the first
    and its record, then names the model and segments the second. The good input's header is loaded once (the memory
    guard's check of its grid and the read shared one load; each geometry check read the header again: 37 openings
    of the file, 13 now)."""
    import builtins
    import io

    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(case.read_bytes()[:600])
    out_dir = tmp_path / "out"
    package = make_package()
    loads, opens = [], []
    real_load, real_open = nib.load, io.open

    def load(name, *args, **kwargs):
        loads.append(str(name))
        return real_load(name, *args, **kwargs)

    def opening(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and str(file) == str(case):
            opens.append(1)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(nib, "load", load)
    monkeypatch.setattr(builtins, "open", opening)
    monkeypatch.setattr(io, "open", opening)
    code, out, err = run(["infer", str(bad), str(case), "--model", str(package), "-o", str(out_dir)], capsys)
    monkeypatch.undo()
    assert loads.count(str(case)) == 1 and len(opens) <= 13
    assert code == 1
    lines = err.splitlines()
    told = next(i for i, line in enumerate(lines) if line.startswith(f"medseg: error: {bad}:"))
    loaded = next(i for i, line in enumerate(lines) if line.startswith("model tiny ("))
    assert told < loaded and lines[-1].startswith("medseg: 1 of 2 inputs failed")
    assert _files(out_dir) == ["bad_failed.json", "case_seg.json", "case_seg.nii.gz"]
    assert nib.load(str(out_dir / "case_seg.nii.gz")).shape == (40, 40, 8)


def test_shipped_phantom_model_segments_a_new_phantom(tmp_path, capsys):
    """The demo's promise: the default model reaches Dice >= 0.9 on an unseen oblique phantom."""
    write_phantom(tmp_path / "p.nii.gz", tmp_path / "p_label.nii.gz", shape=(96, 96, 40), seed=7)
    code, out, err = run(["infer", str(tmp_path / "p.nii.gz"), "--reference", str(tmp_path / "p_label.nii.gz")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "p_metrics.json").read_text())
    dice = {v["name"]: v["dice"] for v in metrics["labels"].values()}
    assert min(dice.values()) >= 0.9, dice
    sidecar = json.loads((tmp_path / "p_seg.json").read_text())
    assert sidecar["reference"] == str(tmp_path / "p_label.nii.gz") and sidecar["timings_s"]["metrics_s"] > 0
    assert metrics["invocation"] == sidecar["invocation"]  # the command that scored it, as the sidecar records it
    assert metrics["invocation"]["argv"][:3] == ["medseg", "infer", str(tmp_path / "p.nii.gz")]
    # without --model the demo model is used, and said to be one; naming it silences the note
    note = ("note: no --model given: phantom is the shipped demo model (synthetic shapes only); name yours with "
            "--model (`medseg models` lists the shipped ones)")
    assert note in err.splitlines()
    code, _, err = run(["infer", str(tmp_path / "p.nii.gz"), "-o", str(tmp_path / "again"), "-m", "phantom"], capsys)
    assert code == 0 and "note:" not in err


def test_first_mistakes_get_one_line_that_says_what_to_do(tmp_path, case, make_package, capsys, caplog):
    package = str(make_package())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "case_seg.nii.gz").write_text("an earlier output")
    # a malformed --device is a usage error, named before existing outputs are
    for device in ("gpu", "cuda:x"):
        code, _, err = run(["infer", str(case), "-m", package, "-o", str(tmp_path / "out"), "--device", device], capsys)
        assert code == 2 and "Invalid value for '--device': expected auto, cpu, cuda, cuda:N or mps" in err
    # a mistyped model or a device this machine lacks is named before existing outputs are (their "exists
    # already; pass --overwrite" sent the user to overwrite to find the typo)
    code, _, err = run(["infer", str(case), "-m", "hipocampus", "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: hipocampus: no such model folder or shipped model (the folder taken relative to {Path.cwd()}; "
        "shipped: hippocampus, phantom); did you mean hippocampus?")
    code, _, err = run(["infer", str(case), "-m", package, "-o", str(tmp_path / "out"), "--device", "cuda:99"], capsys)
    assert code == 1 and "medseg: error: --device cuda:99: " in err and "exists already" not in err
    assert (tmp_path / "out" / "case_seg.nii.gz").read_text() == "an earlier output"
    # but outputs that clash are usage errors, named before the model is looked for
    code, _, err = run(["infer", str(case), str(case), "-m", "hipocampus", "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and f"{case} is given twice; give each input once" in err
    # a missing reference is named as the reference of its input
    missing = tmp_path / "nothere.nii.gz"
    code, _, err = run(["infer", str(case), "-m", package, "-o", str(tmp_path / "o2"), "--reference", str(missing)],
                       capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {missing}: no such file (the reference given for {case})")
    assert "model tiny" not in err  # found before the model was loaded
    code, _, err = run(["infer", str(case), str(case), "-m", package, "--reference", str(case)], capsys)
    assert code == 2 and "--reference was given once for 2 inputs; give one per input" in err
    # a folder of NIfTI files is not a DICOM study
    folder = tmp_path / "niftis"
    folder.mkdir()
    (folder / "a.nii.gz").write_bytes(case.read_bytes())
    with caplog.at_level("WARNING"):
        code, _, err = run(["infer", str(folder), "-m", package, "-o", str(tmp_path / "o3")], capsys)
    assert code == 1 and err.strip().splitlines()[-1].endswith(
        f"no DICOM images found (1 non-DICOM file); a folder is read as one DICOM study: give NIfTI files one "
        f"by one, e.g. {folder}/*.nii.gz")
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]  # the error counts them: no warning
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, case, make_package, capsys):
    code, _, err = run(["infer", str(case), "-m", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 0 and "\r" not in err and "slice/s" not in err


def test_a_package_of_more_than_256_classes_writes_label_values_above_255(tmp_path, case, capsys):
    """Labels above 255 are kept (slice-wise inference used to collect them in uint8, which wrapped 299 to 43)."""
    import torch

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package
    from tests.conftest import tiny_config

    labels = {"0": "background", **{str(k): f"structure {k}" for k in range(1, 300)}}
    config = tiny_config(name="many", labels=labels,
                         architecture={"type": "unet2d", "in_channels": 1, "n_classes": 300, "base_width": 4,
                                       "depth": 2, "dropout": 0.0, "norm": "batch"})
    torch.manual_seed(0)
    net = UNet2D(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "type"}))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.bias[299] = 10.0  # every voxel is label 299
    save_package(net, config, tmp_path / "many")
    code, _, err = run(["infer", str(case), "-m", str(tmp_path / "many"), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    written = nib.load(tmp_path / "out" / "case_seg.nii.gz")
    assert written.get_data_dtype() == np.uint16
    assert np.unique(np.asarray(written.dataobj)).tolist() == [299]
    sidecar = json.loads((tmp_path / "out" / "case_seg.json").read_text())
    assert sidecar["label_voxels"]["299"] == 40 * 40 * 8 and sidecar["label_voxels"]["43"] == 0


def test_dice_lines_say_why_the_policy_set_a_dice(tmp_path, case, capsys):
    """A Dice of 0 for a label the reference does not hold read like a missed structure ("Dice box: 0.0000"): the
    line says which status of the empty-mask policy gave it, as the report's tables do."""
    from medseg.numbers import dice_status_text

    assert run(["infer", str(case), "-o", str(tmp_path / "first")], capsys)[0] == 0
    segmentation = read_image(tmp_path / "first" / "case_seg.nii.gz")
    names = json.loads((tmp_path / "first" / "case_seg.json").read_text())["labels"]
    dropped = int(max(np.unique(segmentation.array)))
    assert dropped > 0
    reference = np.where(segmentation.array == dropped, 0, segmentation.array).astype(np.uint8)
    nib.save(nib.Nifti1Image(reference, segmentation.affine), str(tmp_path / "reference.nii.gz"))
    code, out, err = run(["infer", str(case), "-o", str(tmp_path / "second"), "--reference",
                          str(tmp_path / "reference.nii.gz")], capsys)
    assert code == 0, err
    assert f"  Dice {names[str(dropped)]}: 0.0000 (false positive: not in the reference)\n" in out
    kept = [value for value in np.unique(reference) if value != 0]
    assert all(f"  Dice {names[str(value)]}: 1.0000\n" in out for value in kept)
    assert dice_status_text(0.0, "empty_prediction") == "0.0000 (empty prediction: not predicted)"
    assert dice_status_text(float("nan"), "both_empty") == dice_status_text(None) == "n/a (both empty)"
    assert dice_status_text(0.69997, "ok") == "0.69997" and dice_status_text(0.0, "ok") == "0.0000"


def test_the_progress_bar_names_the_input_escaped(monkeypatch):
    """On a terminal, the progress bar wrote the file name as it is: an escape sequence in it coloured the terminal,
    a line break split the bar; every other line writes it escaped."""
    import io
    import sys

    from medseg.cli.infer import _ProgressFactory

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with _ProgressFactory(Path("evil\x1b[31mRED\nx.nii.gz"), silent=False) as progress:
        update = progress(4)
        update(2)
    # the count says what it counts (it was a bare "0/4")
    assert "| 0/4 slices [" in terminal.getvalue()
    assert "evil\\x1b[31mRED\\nx.nii.gz" in terminal.getvalue()
    assert "\x1b[31m" not in terminal.getvalue() and "\n" not in terminal.getvalue()


def test_the_progress_bar_clock_runs_while_a_slab_is_labelled(monkeypatch):
    """The bar moves a slab of slices at a time: a 20-slice CT on a busy laptop showed ``0/20 [00:00<?]`` for a minute
    and a half, its clock frozen too (tqdm redraws only on an update), which reads as a hang. The bar is redrawn
    every second between updates, its elapsed time running; after the case, nothing redraws it."""
    import io
    import sys
    import time

    from medseg.cli.infer import _ProgressFactory

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with _ProgressFactory(Path("ct.nii.gz"), silent=False) as progress:
        progress(20)
        deadline = time.monotonic() + 20  # a loaded machine may delay a redraw: wait for one, not for a fixed time
        while not re.search(r"0/20 slices \[00:0[1-9]<", terminal.getvalue()) and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = terminal.getvalue()
    assert "0/20 slices [00:00<" in shown and re.search(r"0/20 slices \[00:0[1-9]<", shown), shown
    after = terminal.getvalue()
    time.sleep(1.5)
    assert terminal.getvalue() == after


def test_no_progress_bar_where_there_is_no_stderr(monkeypatch):
    """A program with no standard error (pythonw; a caller of main() whose stderr the shell closed) failed the case at
    its first slice: asking the missing stream whether it was a terminal raised AttributeError."""
    import sys

    from medseg.cli.infer import _ProgressFactory

    monkeypatch.setattr(sys, "stderr", None)
    with _ProgressFactory(Path("scan.nii.gz"), silent=False) as progress:
        assert progress(4) is None


def test_dice_of_many_labels_is_one_line_naming_the_metrics_file(tmp_path, case, make_package, capsys):
    """A 117-label model printed 117 Dice lines per case, the batch's own lines lost among them: above
    DICE_LINES_MAX labels a case's Dice is one line (mean, the three lowest named), the full figures in the
    metrics JSON the line names. A model of a few labels keeps a line per label (the test above)."""
    from medseg.cli.infer import DICE_LINES_MAX
    from medseg.numbers import dice_round_text

    count = DICE_LINES_MAX + 5
    names = {"0": "background", "1": "肝", "2": "part 1 ü", **{str(k): f"organ_{k:02d}" for k in range(3, count + 1)}}
    architecture = {"type": "unet2d", "in_channels": 1, "n_classes": count + 1, "base_width": 4, "depth": 2,
                    "dropout": 0.0, "norm": "batch"}
    package = make_package("many", labels=names, architecture=architecture)
    image = nib.load(str(case))
    reference = ((np.arange(40 * 40 * 8).reshape(40, 40, 8) // 97) % (count + 1)).astype(np.uint8)
    nib.save(nib.Nifti1Image(reference, image.affine), str(tmp_path / "reference.nii.gz"))
    code, out, err = run(["infer", str(case), "-m", str(package), "-o", str(tmp_path / "out"), "--reference",
                          str(tmp_path / "reference.nii.gz")], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{case} -> ")
    labels = json.loads((tmp_path / "out" / "case_metrics.json").read_text(encoding="utf-8"))["labels"].values()
    assert len(labels) == count
    dice = sorted(((label["dice"], label["name"]) for label in labels if label["dice"] is not None),
                  key=lambda pair: pair[0])  # ties in the labels' order
    assert len(dice) == count  # the reference holds every label
    lowest = ", ".join(f"{name} {dice_round_text(value)}" for value, name in dice[:3])
    mean = dice_round_text(sum(value for value, _ in dice) / count)
    assert lines[1] == (f"  Dice over {count} labels: mean {mean}; lowest {lowest}; each label's Dice in "
                        f"{tmp_path / 'out' / 'case_metrics.json'}")
    from medseg.cli.infer import _dice_lines

    bare = {str(k + 1): {"name": f"organ_{k}", "dice": None, "status": "both_empty"} for k in range(count)}
    assert _dice_lines(bare, None) == [f"  Dice over {count} labels: {count} n/a (both empty)"]
    bare["5"] = {"name": "肝", "dice": 0.69997, "status": "ok"}
    assert _dice_lines(bare, None) == [f"  Dice over {count} labels: mean 0.69997; lowest 肝 0.69997; "
                                       f"{count - 1} n/a (both empty)"]
    # labels the package never learnt (gaps declared to keep the files' values) are counted apart
    assert _dice_lines(bare, None, [2, 3, 5]) == [f"  Dice over {count} labels: mean 0.69997; lowest 肝 0.69997; "
                                                  f"{count - 1} n/a (both empty; 2 of them never learnt)"]


def test_labels_never_learnt_and_empty_in_both_images_share_one_dice_line():
    """Files labelled 1, 3, 7 trained as 0..7: each of the four gaps, never learnt, printed its own "Dice unused_2:
    n/a (both empty)" in every case. Those the sidecar lists in labels_not_trained (and empty in both images) now
    share one line; one of them predicted keeps its own line, as does a learnt label empty in both."""
    from medseg.cli.infer import _dice_lines

    names = {1: "ellipsoid", 2: "unused_2", 3: "box", 4: "unused_4", 5: "unused_5", 6: "unused_6", 7: "tube"}
    both_empty = {"dice": None, "status": "both_empty"}
    labels = {str(value): {"name": name, **both_empty} for value, name in names.items()}
    labels["1"] = {"name": "ellipsoid", "dice": 0.91234, "status": "ok"}
    labels["5"] = {"name": "unused_5", "dice": 0.0, "status": "false_positive"}
    labels["7"] = {"name": "tube", "dice": float("nan"), "status": "both_empty"}
    assert _dice_lines(labels, None, [2, 4, 5, 6]) == [
        "  Dice ellipsoid: 0.9123",
        "  Dice box: n/a (both empty)",
        "  Dice unused_5: 0.0000 (false positive: not in the reference)",
        "  Dice tube: n/a (both empty)",
        "  Dice unused_2, unused_4, unused_6: n/a (both empty; never learnt: no training case held them)"]
    assert _dice_lines(labels, None, [4])[-1] == ("  Dice unused_4: n/a (both empty; never learnt: no training case "
                                                  "held it)")
    # a package that records none (every shipped one): a line each, as before
    assert len(_dice_lines(labels, None)) == 7 and "  Dice unused_2: n/a (both empty)" in _dice_lines(labels, None)


def test_nnunet_channel_files_given_together_are_warned_about(tmp_path, case, make_package, capsys):
    """`medseg infer imagesTs/*.nii.gz` on nnU-Net's multi-channel layout segmented case_0001 as a case of its own,
    without a word; it still does (each file is an input), and says so."""
    for name in ("a_0000", "a_0001", "a_0002", "b_0000", "c_0001"):  # c_0001 has no _0000 beside it: not told
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
    inputs = [str(tmp_path / f"{name}.nii.gz") for name in ("a_0000", "a_0001", "a_0002", "b_0000", "c_0001")]
    code, _, err = run(["infer", *inputs, "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: 2 inputs are named as nnU-Net names a case's further input channels "
                        "(a_0001.nii.gz beside a_0000.nii.gz); each is segmented as an image of its own, as model "
                        "tiny takes one image a case: give only the _0000 files to segment each case once"]
    assert len(list((tmp_path / "out").glob("*_seg.nii.gz"))) == 5


def test_a_case_0000_with_channel_files_beside_it_is_warned_about_for_a_model_of_one_image(tmp_path, case,
                                                                                           make_package, capsys):
    """nnU-Net's `case_0000.nii.gz` of a multi-channel case, given alone (as the warning above advises) to a model of
    one image a case, was segmented from its first channel in silence, where a model of two modalities given three
    channel files refuses the case: an nnU-Net user never heard that `case_0001` was left unread."""
    for name in ("a_0000", "a_0001", "b_0000", "c_0000", "c_0001", "c_0002"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
    inputs = [str(tmp_path / f"{name}.nii.gz") for name in ("a_0000", "b_0000", "c_0000")]
    code, _, err = run(["infer", *inputs, "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: 2 inputs are the _0000 file of a case of several channels as nnU-Net names them "
                        "(a_0000.nii.gz, a_0001.nii.gz beside it), and model tiny takes one image a case: each is "
                        "segmented from its _0000 file alone, its other channels unread"]
    assert _files(tmp_path / "out") == sorted(f"{name}_seg.{ending}" for name in ("a_0000", "b_0000", "c_0000")
                                              for ending in ("json", "nii.gz"))
    # with its channel files given too, the warning about those (above) says it all: no second line
    code, _, err = run(["infer", str(tmp_path / "a_0000.nii.gz"), str(tmp_path / "a_0001.nii.gz"), "--model",
                        str(make_package()), "-o", str(tmp_path / "out2")], capsys)
    assert code == 0, err
    assert [line.split(" (")[0] for line in err.splitlines() if line.startswith("warning:")] == [
        "warning: 1 input is named as nnU-Net names a case's further input channels"]
    # -q hides it, as it hides the other warnings of the batch
    code, _, err = run(["-q", "infer", str(tmp_path / "a_0000.nii.gz"), "--model", str(make_package()), "-o",
                        str(tmp_path / "out3")], capsys)
    assert code == 0 and "warning" not in err, err


_KEYED_BY_DATA = {"labels", "label_voxels", "label_volume_ml", "label_codes", "versions", "flags", "flag_rules",
                  "devices", "precisions", "overlaps", "status_counts", "label_conflicts"}


def _keys(value, parent=None):
    """Every key a reader meets in a JSON record, but those that are data (label values, package names, flag codes)."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if parent not in _KEYED_BY_DATA:
                found.add(key)
            found |= _keys(item, key)
    elif isinstance(value, list):
        for item in value:
            found |= _keys(item, parent)
    return found


def test_readme_names_every_output_key(tmp_path, make_package, capsys):
    """Each key of the sidecar, the metrics, summary.json and cohort.tsv that a case of `infer --reference` and its
    report write is named in the README or a page of docs/ (as `key`), so a reader can look up what it means and in
    which unit."""
    phantom = make_phantom((40, 40, 8), seed=11)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(phantom.image, affine), str(tmp_path / "case.nii.gz"))
    nib.save(nib.Nifti1Image(phantom.labels, affine), str(tmp_path / "case_label.nii.gz"))
    out = tmp_path / "out"
    package = make_package(input_extent_mm={"min": [30.0, 30.0, 10.0], "max": [50.0, 50.0, 20.0]})
    code, _, err = run(["infer", str(tmp_path / "case.nii.gz"), "--model", str(package), "-o", str(out),
                        "--reference", str(tmp_path / "case_label.nii.gz")], capsys)
    assert code == 0, err
    code, _, err = run(["report", str(out), "--max-overlays", "0"], capsys)
    assert code == 0, err
    from documents import all_text

    readme = all_text()
    sidecar = json.loads((out / "case_seg.json").read_text())
    assert "input_check" in sidecar and "invocation" in sidecar  # the keys the README had not named
    records = {name: _keys(json.loads((out / name).read_text()))
               for name in ("case_seg.json", "case_metrics.json", "summary.json")}
    records["cohort.tsv"] = {column for column in (out / "cohort.tsv").read_text().splitlines()[0].split("\t")
                             if not column.startswith(("ellipsoid_", "box_", "tube_"))}
    unnamed = {name: sorted(key for key in keys if f"`{key}`" not in readme and f"\"{key}\":" not in readme
                            and f".{key}`" not in readme) for name, keys in records.items()}
    assert unnamed == {name: [] for name in records}


def test_infer_groups_the_dice_of_labels_its_package_never_learnt(tmp_path, case, make_package, capsys):
    """`medseg infer --reference` takes the labels never learnt from the package's record (train_labels_absent, as
    the sidecar's labels_not_trained): those empty in both images share one Dice line, the others keep theirs."""
    labels = {"0": "background", **{str(k): f"unused_{k}" for k in range(1, 8)}}
    architecture = {"type": "unet2d", "in_channels": 1, "n_classes": 8, "base_width": 4, "depth": 2, "dropout": 0.0,
                    "norm": "batch"}
    package = make_package("gaps", labels=labels, architecture=architecture,
                           training={"train_labels_absent": [1, 2, 3, 4, 5, 6, 7]})
    image = nib.load(str(case))
    reference = np.zeros(image.shape, dtype=np.uint8)
    reference[10:20, 10:20, 2:6] = 1  # one label only: the others are empty in the reference
    nib.save(nib.Nifti1Image(reference, image.affine), str(tmp_path / "reference.nii.gz"))
    code, out, err = run(["infer", str(case), "-m", str(package), "-o", str(tmp_path / "out"), "--reference",
                          str(tmp_path / "reference.nii.gz")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "case_metrics.json").read_text())["labels"]
    empty = [entry["name"] for entry in metrics.values() if entry["status"] == "both_empty"]
    assert empty  # the random weights leave some labels unpredicted
    lines = out.splitlines()[1:]
    assert lines[-1] == f"  Dice {', '.join(empty)}: n/a (both empty; never learnt: no training case held them)"
    assert len(lines) == 7 - len(empty) + 1 and not [line for line in lines[:-1] if "both empty" in line]


def test_a_dataset_json_naming_the_reference_labels_otherwise_than_the_model_is_warned_about(tmp_path, case, capsys,
                                                                                           caplog):
    """`medseg infer --reference Task/labelsTr/case.nii.gz` scores each label by value under the model's name; a
    dataset.json of the reference's dataset that names the values otherwise (another labelling convention) went
    unsaid, as in `medseg evaluate`. It is named in a warning, once for the inputs of one command."""
    from medseg.synthetic import make_phantom

    phantom = make_phantom((40, 40, 8), seed=11)
    dataset = tmp_path / "Task09"
    (dataset / "labelsTr").mkdir(parents=True)
    nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), np.diag([1.0, 1.0, 2.0, 1.0])),
             str(dataset / "labelsTr" / "case.nii.gz"))
    shutil.copy(case, tmp_path / "case2.nii.gz")
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "Tube", "2": "Box",
                                                                 "3": "Ellipsoid"}}))
    reference = str(dataset / "labelsTr" / "case.nii.gz")
    code, _, err = run(["infer", str(case), str(tmp_path / "case2.nii.gz"), "-o", str(tmp_path / "out"),
                        "--reference", reference, "--reference", reference], capsys)
    assert code == 0, err
    warning = (f"{dataset / 'dataset.json'} names labels 1 Tube, 3 Ellipsoid; the model phantom names them "
               "1 ellipsoid, 3 tube: each label is scored by its value under the model's name; check that the "
               "reference uses the model's label values")
    assert [m for m in caplog.messages if "dataset.json" in m] == [warning]


def test_a_path_with_dot_dot_after_a_link_is_recorded_as_the_file_read(tmp_path, case, make_package, capsys,
                                                                        monkeypatch):
    """`medseg infer scans/../case.nii.gz`, ``scans`` a link to a folder elsewhere, reads the case.nii.gz beside the
    link's target, as the shell does, but recorded <cwd>/case.nii.gz (no such file, or another one): the sidecar, the
    metrics and from them cohort.tsv named a file other than the one read. They name it as the sample sheet does."""
    package = make_package()
    site = tmp_path / "site"
    (site / "deep").mkdir(parents=True)
    shutil.copy(case, site / "case.nii.gz")
    work = tmp_path / "work"
    work.mkdir()
    (work / "scans").symlink_to(site / "deep")
    monkeypatch.chdir(work)
    code, _, err = run(["infer", "scans/../case.nii.gz", "--model", str(package), "-o", "out"], capsys)
    assert code == 0, err
    assert json.loads((work / "out" / "case_seg.json").read_text())["input"] == str(site / "case.nii.gz")
    shutil.copy(work / "out" / "case_seg.nii.gz", site / "ref.nii.gz")
    code, _, err = run(["evaluate", "out/../out/case_seg.nii.gz", "scans/../ref.nii.gz", "-o", "m.json"], capsys)
    assert code == 0, err
    metrics = json.loads((work / "m.json").read_text())
    assert (metrics["prediction"], metrics["reference"]) == (str(work / "out" / "case_seg.nii.gz"),
                                                             str(site / "ref.nii.gz"))
    assert not (work / "case.nii.gz").exists() and not (work / "ref.nii.gz").exists()


def test_an_output_folder_under_a_file_is_a_usage_error_before_any_input_is_segmented(tmp_path, case, make_package,
                                                                                     capsys):
    """``-o notes.txt/seg`` (a file where a folder of the path should be): each input of the batch was segmented, then
    refused its outputs in a line of its own ("cannot make this output folder: … is a file"), 30 inputs 30 lines and
    30 segmentations' time. The command line says it before the model loads: one usage error, exit 2."""
    notes = tmp_path / "notes.txt"
    notes.write_text("kept\n")
    other = tmp_path / "other.nii.gz"
    shutil.copy(case, other)
    code, out, err = run(["infer", str(case), str(other), "--model", str(make_package()), "-o", str(notes / "seg")],
                         capsys)
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        f"medseg infer: error: -o {notes / 'seg'}: {notes} is a file, not a folder; give a folder for the outputs. Try "
        "'medseg infer --help'."]
    assert notes.read_text() == "kept\n"


@pytest.mark.parametrize("way", ["loop/seg", "loop", "moved/seg", "moved"])
def test_an_output_folder_through_a_link_leading_nowhere_is_a_usage_error_before_the_model_loads(
        tmp_path, case, make_package, capsys, way):
    """``-o loop/seg`` (a loop of links on the way) or ``-o moved`` (a link whose target moved): each input of the
    batch was segmented, then refused its outputs, a line each ("… is a symbolic link to loop, which does not exist",
    of a loop, whose target is the link itself). One usage error now, exit 2, before the model loads, saying what the
    link is and what to do, as for a folder under a file."""
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "moved").symlink_to("elsewhere")
    other = tmp_path / "other.nii.gz"
    shutil.copy(case, other)
    out = tmp_path / way
    link = out if out.is_symlink() else out.parent
    what = ("a symbolic link to loop, a loop of links that leads nowhere" if link.name == "loop" else
            "a symbolic link to elsewhere, which does not exist")
    code, stdout, err = run(["infer", str(case), str(other), "--model", str(make_package()), "-o", str(out)], capsys)
    assert (code, stdout) == (2, "")
    assert err.strip().splitlines() == [  # one line: no model loaded, no input segmented
        f"medseg infer: error: -o {out}: {link} is {what}; restore its target or remove the link, or give another "
        "folder for the outputs. Try 'medseg infer --help'."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "loop", "moved", "other.nii.gz", "tiny"]


def test_an_output_folder_out_of_reach_or_too_long_a_name_is_one_line_not_a_traceback(tmp_path, case, make_package,
                                                                                      capsys):
    """The check of ``-o``'s way (a file or a link leading nowhere on it) looked with ``Path.exists``, which raises
    for a path it cannot look at: ``-o shared/seg`` under a folder without search permission, or an ``-o`` with a
    name over 255 bytes, was a PermissionError or "File name too long" traceback in infer, evaluate, report and train,
    where infer and report said both in one line. A folder out of reach is a usage error now, as the others on the
    way, before any input is segmented, naming that folder; so is a folder name too long (it was a traceback in folder
    evaluate and train)."""

    from conftest import medseg_as_plain_user

    package = make_package()
    results = tmp_path / "results"
    assert run(["infer", str(case), "--model", str(package), "-o", str(results)], capsys)[0] == 0
    shutil.copy(case, tmp_path / "ref.nii.gz")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o600)  # no search permission: its files out of reach
    try:
        for argv in (["infer", str(case), "--model", str(package), "-o", str(locked / "x" / "seg")],
                     ["evaluate", str(case), str(tmp_path / "ref.nii.gz"), "-o", str(locked / "x" / "m.json")],
                     ["report", str(results), "-o", str(locked / "x" / "report.html")],
                     ["train", "--images", str(tmp_path), "--labels", str(results), "-o", str(locked / "x" / "m")]):
            done = medseg_as_plain_user(argv, capsys)
            assert (done.returncode, done.stdout) == (2, ""), done.stderr
            assert done.stderr.splitlines() == [
                f"medseg {argv[0]}: error: -o {argv[-1]}: {locked} is a folder whose files this user may not "
                f"reach (permission denied); give a folder this user may write to. Try 'medseg {argv[0]} --help'."]
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []
    long = tmp_path / ("a" * 300)
    (tmp_path / "predictions").mkdir()
    shutil.copy(tmp_path / "ref.nii.gz", tmp_path / "predictions" / "ref.nii.gz")
    for argv in (["infer", str(case), "--model", str(package), "-o", str(long / "seg")],
                 ["report", str(results), "--output-dir", str(long / "qa")],
                 ["evaluate", str(tmp_path / "predictions"), str(tmp_path), "-o", str(long / "m")],
                 ["train", "--images", str(tmp_path), "--labels", str(results), "-o", str(long / "m")]):
        code, stdout, err = run(argv, capsys)  # folder evaluate and train: a "File name too long" traceback before
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"medseg {argv[0]}: error: ") and f": the folder name {'a' * 24}… is too long (300 " \
            "bytes, at most 255); shorten the output folder's name" in err, err
    shutil.rmtree(tmp_path / "predictions")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "locked", "ref.nii.gz", "results", "tiny"]


def test_an_output_folder_whose_name_ends_in_a_space_is_a_usage_error(tmp_path, case, make_package, capsys,
                                                                      monkeypatch):
    """``-o "Ergebnisse "`` (a name pasted with a space after it) made a folder whose name ends in a space, which a
    file manager shows as ``Ergebnisse`` and ``cd Ergebnisse`` does not reach: a name that is not there with a
    space or tab at an end is refused, exit 2, nothing made; written with a trailing /, or existing, it is the folder
    asked for."""
    monkeypatch.chdir(tmp_path)
    package = str(make_package())
    for name in ("Ergebnisse ", " Ergebnisse", "Übung 1 /out"):
        code, _, err = run(["infer", str(case), "--model", package, "-o", name], capsys)
        assert code == 2, err
        shown = name.split("/")[0]
        assert err.strip().splitlines()[-1] == (
            f"medseg infer: error: -o {name}: the folder name {shown!r} begins or ends with a space (pasted?); name "
            f"it without, or write -o \"{name}/\" for a folder of that name. Try 'medseg infer --help'."), err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "tiny"]
    # the suggestion unquoted (-o Ergebnisse /) was an -o and a second input, /, read as a DICOM folder for seconds
    code, _, err = run(["infer", str(case), "--model", package, "-o", "Ergebnisse /"], capsys)
    assert code == 0, err
    assert _files(tmp_path / "Ergebnisse ") == ["case_seg.json", "case_seg.nii.gz"]


def test_an_output_folder_named_as_an_image_file_is_a_usage_error(tmp_path, case, make_package, capsys,
                                                                    monkeypatch):
    """``-o myseg.nii.gz`` (a user naming the segmentation) made a folder myseg.nii.gz holding case_seg.nii.gz:
    a name with an image file's or a JSON file's ending that is not there is refused, exit 2, nothing made; written
    with a trailing /, or existing as a folder, it is the folder asked for."""
    monkeypatch.chdir(tmp_path)
    package = str(make_package())
    for name, option in (("myseg.nii.gz", "-o"), ("seg.nrrd", "--output"), ("case.json", "--output-dir")):
        code, _, err = run(["infer", str(case), "--model", package, option, name], capsys)
        assert code == 2, err
        assert err.strip().splitlines()[-1] == (
            f"medseg infer: error: {option} {name}: a folder for the outputs, which are named after each input "
            f"(case.nii.gz writes case_seg.nii.gz); name a folder, or write {name}/ for a folder of that name. Try "
            "'medseg infer --help'.")
        assert not (tmp_path / name).exists()
    code, _, err = run(["infer", str(case), "--model", package, "-o", "myseg.nii.gz/"], capsys)
    assert code == 0, err
    assert _files(tmp_path / "myseg.nii.gz") == ["case_seg.json", "case_seg.nii.gz"]
    code, _, err = run(["infer", str(case), "--model", package, "-o", "myseg.nii.gz", "--overwrite"], capsys)
    assert code == 0, err
