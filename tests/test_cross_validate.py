"""benchmarks/cross_validate.py on the tiny synthetic set: folds trained, reused, summarised, checked."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import benchmark_main, no_logging_configured
from training_factory import tiny_training_config, write_set


@pytest.fixture(scope="module")
def cross_validate():
    return benchmark_main("cross_validate")


def _two_folds(cross_validate, tmp_path):
    """Folds 0 and 1 of the tiny set trained for one epoch: (config, images, labels, out)."""
    torch.set_num_threads(1)
    images, labels = write_set(tmp_path / "data")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_training_config(epochs=1)))
    out = tmp_path / "cv"
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "0,1"]) == 0
    return config, images, labels, out


def test_folds_are_trained_reused_and_summarised(cross_validate, tmp_path, capsys):
    config, images, labels, out = _two_folds(cross_validate, tmp_path)
    first = capsys.readouterr().out.splitlines()
    recorded = {k: json.loads((out / f"fold{k}" / "model.json").read_text())["training"] for k in (0, 1)}
    assert recorded[0]["val_cases"] == ["case2", "case3"] and recorded[1]["val_cases"] == ["case4", "case5"]
    assert first[0] == "tiny.json: 2 folds of 6 cases, validation mean Dice per fold"
    fold_rows = [line.split() for line in first[2:4]]
    assert [row[:2] for row in fold_rows] == [["0", "2"], ["1", "2"]]
    for row, k in zip(fold_rows, (0, 1)):
        assert [float(v) for v in row[2:5]] == pytest.approx(
            [recorded[k]["val_dice"][label] for label in ("1", "2", "3")], abs=5e-5)
    mean = first[4].split()
    assert mean[:2] == ["mean", "4"]
    assert float(mean[2]) == pytest.approx((recorded[0]["val_dice"]["1"] + recorded[1]["val_dice"]["1"]) / 2, abs=5e-5)

    # summarising again trains nothing and prints the same table
    stamp = (out / "fold0" / "weights.safetensors").stat().st_mtime_ns
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "0,1",
                           "--summary-only"]) == 0
    assert capsys.readouterr().out.splitlines() == first
    assert (out / "fold0" / "weights.safetensors").stat().st_mtime_ns == stamp

    # a fold interrupted after its checkpoint resumes instead of starting again: same weights
    weights = (out / "fold1" / "weights.safetensors").read_bytes()
    (out / "fold1" / "model.json").unlink()
    (out / "fold1" / "weights.safetensors").unlink()
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "1"]) == 0
    assert "resuming fold 1" in capsys.readouterr().err
    assert (out / "fold1" / "weights.safetensors").read_bytes() == weights

    # a package validated on other cases is refused, and a missing fold is not trained in summary mode
    shutil.rmtree(out / "fold1")
    shutil.copytree(out / "fold0", out / "fold1")
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "1"]) == 1
    assert "validated on other cases than fold 1" in capsys.readouterr().err
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "2",
                           "--summary-only"]) == 1
    assert "no package for fold 2" in capsys.readouterr().err and not (out / "fold2").exists()


def test_folds_of_another_config_are_refused_and_more_epochs_go_on(cross_validate, tmp_path, capsys):
    """A second config into the same folder printed the first config's figures under its own name."""
    config, images, labels, out = _two_folds(cross_validate, tmp_path)
    capsys.readouterr()
    other = tmp_path / "other.json"
    other.write_text(json.dumps(tiny_training_config(epochs=1, learning_rate=0.002)))
    for extra in ([], ["--summary-only"]):
        assert cross_validate([str(other), str(images), str(labels), "-o", str(out), "--folds", "0,1", *extra]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and (f"error: {out / 'fold0'}: the checkpoint was started with other settings "
                                       "(training.learning_rate)") in captured.err
    longer = tmp_path / "longer.json"
    longer.write_text(json.dumps(tiny_training_config(epochs=2)))
    assert cross_validate([str(longer), str(images), str(labels), "-o", str(out), "--folds", "0",
                           "--summary-only"]) == 0
    assert f"warning: {out / 'fold0'}: trained for 1 epoch, the config asks for 2" in capsys.readouterr().err
    assert cross_validate([str(longer), str(images), str(labels), "-o", str(out), "--folds", "0"]) == 0
    assert "resuming fold 0" in capsys.readouterr().err
    assert json.loads((out / "fold0" / "model.json").read_text())["training"]["epochs_run"] == 2
    # summarised with the shorter config, or run with it: a fold trained longer is shown, with a warning
    for extra in (["--summary-only"], []):
        assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "0", *extra]) == 0
        assert f"warning: {out / 'fold0'}: trained for 2 epochs, the config asks for 1" in capsys.readouterr().err
    # a file changed under the same name since the fold was trained is refused, as medseg train --resume does
    label = nib.load(labels / "case0.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(label.shape, np.uint8), label.affine), labels / "case0.nii.gz")
    for extra in ([], ["--summary-only"]):
        assert cross_validate([str(longer), str(images), str(labels), "-o", str(out), "--folds", "0", *extra]) == 1
        assert "the checkpoint was trained on other data (changed: case0)" in capsys.readouterr().err
    # a damaged gzip stream is one line, not a zlib traceback
    data = bytearray((labels / "case1.nii.gz").read_bytes())
    data[20:40] = b"\xff" * 20
    (labels / "case1.nii.gz").write_bytes(bytes(data))
    assert cross_validate([str(longer), str(images), str(labels), "-o", str(out), "--folds", "0",
                           "--summary-only"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {labels / 'case1.nii.gz'}: cannot read (")


def test_a_fold_without_a_labels_dice_prints_n_a_and_is_left_out_of_the_mean(cross_validate, tmp_path, capsys):
    config, images, labels, out = _two_folds(cross_validate, tmp_path)
    capsys.readouterr()
    record = json.loads((out / "fold0" / "model.json").read_text())
    record["training"]["val_dice"]["3"] = None  # as when fold 0's validation cases hold no label 3
    (out / "fold0" / "model.json").write_text(json.dumps(record))
    other = json.loads((out / "fold1" / "model.json").read_text())["training"]["val_dice"]["3"]
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out), "--folds", "0,1",
                           "--summary-only"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[4] == "n/a"
    assert float(lines[4].split()[4]) == pytest.approx(other, abs=5e-5) and lines[5].split()[3] == "n/a"


@pytest.mark.parametrize(("training", "message"), [
    ({"epoch": 2}, "training: unknown setting(s) ('epoch' was unexpected)"),
    ({"split_seed": -5}, "training.split_seed: -5 is less than the minimum of 0"),
    ({"val_fraction": "0.3"}, "training.val_fraction: '0.3' is not of type 'number'"),
    ({"val_fraction": 0}, "training.val_fraction is 0: no case is held out, so no fold has validation cases"),
    ({"fold": 9}, "training.fold (the training config) must be in 0..2 (6 cases, 2 validation cases per fold), got 9"),
])
def test_a_config_error_is_one_line_naming_the_config_before_any_fold_is_trained(
        cross_validate, tmp_path, capsys, training, message):
    """A typo or a bad value was 'training config: …', a numpy traceback (negative split seed) or, for
    val_fraction 0, a whole model trained and then an AttributeError in the summary."""
    images, labels = write_set(tmp_path / "data")
    config = tmp_path / "mine.json"
    config.write_text(json.dumps(tiny_training_config(epochs=1, **training)))
    out = tmp_path / "cv"
    assert cross_validate([str(config), str(images), str(labels), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {config}: {message}")
    assert not out.exists()


@pytest.mark.parametrize(("argument", "message"), [
    (["--folds", "0,x"], "argument --folds: 'x' is not a fold number (give e.g. 0,1,2)"),
    (["--folds", "-1"], "argument --folds: -1: folds are numbered from 0"),
    (["--threads", "0"], "argument --threads: 0 is not a positive number"),
])
def test_bad_folds_or_threads_are_usage_errors(cross_validate, tmp_path, capsys, argument, message):
    """`--folds 0,x` was a ValueError traceback after the cases were paired, `--threads 0` was ignored and
    `--threads -1` a torch RuntimeError."""
    with pytest.raises(SystemExit) as exit_info:
        cross_validate([str(tmp_path / "mine.json"), str(tmp_path), str(tmp_path), "-o", str(tmp_path / "cv"),
                        *argument])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(("threads", "quota", "expected"), [(["--threads", "8"], None, 2), ([], 1.5, 2)])
def test_threads_are_set_as_medseg_sets_them(cross_validate, tmp_path, monkeypatch, threads, quota, expected):
    """--threads set torch's threads directly: more than the CPUs this process may use were started, and without it a
    cgroup's CPU quota was not respected (medseg train's own setting caps both)."""
    import medseg.resources as resources
    from medseg.resources import CgroupLimit

    monkeypatch.setattr(resources, "_threads", resources._threads)  # medseg's own threads back after the test
    monkeypatch.setattr(resources, "usable_cpus", lambda: 2)
    monkeypatch.setattr(resources, "cgroup_cpus", lambda: None if quota is None else CgroupLimit(quota, tmp_path))
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:  # a config that is not there: the run ends at once, its threads set
        assert cross_validate([str(tmp_path / "none.json"), str(tmp_path), str(tmp_path), "-o", str(tmp_path / "cv"),
                               *threads]) == 1
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_a_fold_whose_model_json_is_damaged_or_holds_no_record_is_one_line(cross_validate, tmp_path, capsys):
    """A model.json cut short was a JSONDecodeError traceback, one without its training record a KeyError."""
    images, labels = write_set(tmp_path / "data")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_training_config(epochs=1)))
    record = tmp_path / "cv" / "fold0" / "model.json"
    record.parent.mkdir(parents=True)
    for text, message in (('{"format": "medseg-model/1", "name": "ti', "not valid JSON: cut short"),
                          (json.dumps({"format": "medseg-model/1", "name": "tiny"}),
                           "holds no training record of medseg train")):
        record.write_text(text)
        for extra in ([], ["--summary-only"]):
            assert cross_validate([str(config), str(images), str(labels), "-o", str(tmp_path / "cv"), "--folds", "0",
                                   *extra]) == 1
            captured = capsys.readouterr()
            err = captured.err.strip().splitlines()
            assert captured.out == "" and len(err) == 1 and err[0].startswith(f"error: {record}: {message}")
            assert record.read_text() == text


@pytest.mark.parametrize("script", ["cross_validate", "evaluate_model"])
def test_threads_above_the_usable_cpus_are_capped_with_a_warning(script, tmp_path, monkeypatch, capsys):
    """--threads 8 on a process that may use 2 CPUs ran 2 threads without a word: medseg's warning went to its
    loggers, which write nothing in a script that configures no logging (shown since by the handler of
    medseg.shown_warnings)."""
    import medseg.resources as resources

    main = benchmark_main(script)
    monkeypatch.setattr(resources, "_threads", resources._threads)  # medseg's own threads back after the test
    monkeypatch.setattr(resources, "usable_cpus", lambda: 2)
    before = torch.get_num_threads()
    missing = str(tmp_path / "none")
    args = ([missing + ".json", str(tmp_path), str(tmp_path), "-o", str(tmp_path / "cv")] if script == "cross_validate"
            else [missing, str(tmp_path), str(tmp_path)])
    try:  # a config or model that is not there: the run ends at once, its threads set
        with no_logging_configured():  # as a script runs: its warnings are shown by medseg's own handler
            assert main([*args, "--threads", "8"]) == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err.splitlines()
    assert err.count("warning: --threads 8: this process may use 2 CPUs; using 2 threads") == 1
