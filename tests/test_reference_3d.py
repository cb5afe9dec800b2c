"""benchmarks/reference_3d.py on the tiny synthetic set: the 2D config's split, a 3D network, a Dice table."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import benchmark_main
from training_factory import tiny_training_config, write_set


def test_trains_on_the_configs_split_and_prints_dice(tmp_path, capsys):
    main = benchmark_main("reference_3d")
    torch.set_num_threads(1)
    images, labels = write_set(tmp_path / "data")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_training_config()))

    args = [str(config), str(images), str(labels), "--epochs", "2", "--steps", "2", "--patch", "16", "16", "8",
            "--width", "4", "--val-every", "1"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    # the same validation cases as `medseg train` with this config (case2, case3: see test_train)
    assert lines[0] == "tiny.json: 4 training / 2 validation cases (a seeded 0.34 split, split seed 0)"
    assert [line.split()[:2] for line in lines[1:3]] == [["epoch", "1"], ["epoch", "2"]]
    assert lines[3].startswith("best epoch ")
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[5:]}
    assert set(rows) == {"ellipsoid", "box", "tube"}
    for n, mean, median, minimum in rows.values():
        assert n <= 2 and 0.0 <= minimum <= mean <= 1.0 and 0.0 <= median <= 1.0
    # the table is the best validation point: its means are those printed for that epoch, the higher mean of the two
    per_epoch = {}
    for line in lines[1:3]:
        words = line.split()
        per_epoch[int(words[1])] = {words[i]: float(words[i + 1]) for i in range(5, 11, 2)}
    best = int(lines[3].split()[2].rstrip(";"))
    assert {name: row[1] for name, row in rows.items()} == pytest.approx(per_epoch[best], abs=5e-5)
    # within the printing's rounding (4 decimals a label): two epochs of equal printed means summed 0.0193 and
    # 0.019299999999999998, the best one the second (failed once so)
    assert sum(per_epoch[best].values()) >= max(sum(v.values()) for v in per_epoch.values()) - 3 * 5e-5


def test_a_missing_folder_is_one_error_line(tmp_path, capsys):
    """The data folders not there (a clone without the shared data): one line naming the folder, exit code 1, no
    traceback."""
    main = benchmark_main("reference_3d")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_training_config()))
    assert main([str(config), str(tmp_path / "images"), str(tmp_path / "labels")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert f"{tmp_path / 'labels'}: no such labels folder" in captured.err


def test_labels_whose_values_skip_are_scored_by_class(tmp_path, capsys):
    """The loaded cases hold class indices (class 3 for value 4 of labels 0, 1, 2, 4): scored by value, the tube
    (4) was never found in prediction or reference, so it had no Dice at all."""
    import nibabel as nib
    import numpy as np

    main = benchmark_main("reference_3d")
    torch.set_num_threads(1)
    images, labels = write_set(tmp_path / "data")
    for path in labels.iterdir():
        stored = nib.load(path)
        values = np.asarray(stored.dataobj).astype(np.uint8)
        values[values == 3] = 4
        nib.save(nib.Nifti1Image(values, stored.affine), str(path))
    settings = tiny_training_config()
    settings["labels"] = {"0": "background", "1": "ellipsoid", "2": "box", "4": "tube"}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(settings))
    assert main([str(config), str(images), str(labels), "--epochs", "1", "--steps", "1", "--patch", "16", "16", "8",
                 "--width", "4", "--val-every", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[4:] if line.split()}
    assert rows["tube"][0] == "2", lines  # both validation cases hold the tube: each has a figure
