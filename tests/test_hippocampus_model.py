"""The shipped hippocampus model on real MR crops (skips when ../shared/data is absent)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.shared_data


def test_shipped_hippocampus_package_is_complete():
    from medseg.package import load_package, shipped_models

    assert "hippocampus" in shipped_models()
    package = load_package("hippocampus")  # schema and weights SHA-256 checked
    assert package.labels == {0: "background", 1: "anterior", 2: "posterior"}
    training = package.config["training"]
    assert len(training["val_cases"]) == 40 and training["train_cases"] == 160
    assert package.inference["slice_axis"] == 1  # coronal slices
    # trained on patches the size of the inference tile, so small planes are padded alike in both
    assert training["settings"]["patch_size"] == package.inference["roi_size"]
    assert package.weights_path.stat().st_size < 10_000_000
    card = (package.path / "MODEL_CARD.md").read_text()
    assert "CC-BY-SA 4.0" in card and "Simpson" in card and "Antonelli" in card


def test_infer_with_hippocampus_model_on_a_validation_case(shared_data, tmp_path):
    from medseg.cli import main
    from medseg.package import load_package

    case = load_package("hippocampus").config["training"]["val_cases"][0]
    image = shared_data / "hippocampus" / "images" / f"{case}.nii.gz"
    label = shared_data / "hippocampus" / "labels" / f"{case}.nii.gz"
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(image), "--model", "hippocampus", "-o", str(tmp_path), "--device", "cpu",
              "--reference", str(label)])
    assert info.value.code == 0
    seg = nib.load(tmp_path / f"{case}_seg.nii.gz")
    source = nib.load(image)
    assert seg.shape == source.shape and seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, source.affine, atol=1e-6)
    metrics = json.loads((tmp_path / f"{case}_metrics.json").read_text())
    assert metrics["labels"]["1"]["dice"] > 0.75 and metrics["labels"]["2"]["dice"] > 0.75


def test_shipped_card_is_what_the_trainer_writes_for_its_config():
    from medseg.model_card import model_card
    from medseg.package import load_package

    package = load_package("hippocampus")
    assert (package.path / "MODEL_CARD.md").read_text() == model_card(package.config)
    assert package.config["input_extent_mm"] == {"min": [31.0, 40.0, 24.0], "max": [43.0, 59.0, 47.0], "cases": 200}


def test_shipped_package_lists_its_training_images_by_content(shared_data):
    """The package lists its 160 training images' SHA-256 (added to the shipped record from these files, as
    `medseg train` now writes it): `medseg infer` and the report tell them from held-out cases."""
    import hashlib

    from medseg.package import load_package

    training = load_package("hippocampus").config["training"]
    images = shared_data / "hippocampus" / "images"
    digest = {case: hashlib.sha256((images / f"{case}.nii.gz").read_bytes()).hexdigest()
              for case in training["train_case_ids"] + training["val_cases"]}
    assert training["train_images_sha256"] == sorted(digest[case] for case in training["train_case_ids"])
    assert not {digest[case] for case in training["val_cases"]} & set(training["train_images_sha256"])
