"""The model card written beside a trained package (medseg.model_card)."""

from __future__ import annotations

import hashlib

from training_factory import run, tiny_training_config

from medseg.model_card import model_card


def test_the_card_shows_every_setting_and_a_licence_spelt_license(tiny_set, tmp_path):
    """The card left out the settings its sentence does not word (weight decay, a moving average of the weights),
    and data notes other than the description and `licence`: a `license` (nnU-Net's spelling) read 'not stated'."""
    config = tiny_training_config(epochs=1, ema_decay=0.99, weight_decay=0.001,
                                  data={"description": "phantoms", "license": "CC0", "source": "medseg.synthetic"})
    run(config, *tiny_set, tmp_path / "model")
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "Licence / attribution: CC0\n\nsource: medseg.synthetic\n" in card
    assert '"weight_decay": 0.001' in card and '"ema_decay": 0.99' in card


def test_the_card_names_the_sha256_of_its_weights(tiny_set, tmp_path):
    """A card could not be matched to its weights: it did not record their SHA-256."""
    package = run(tiny_training_config(epochs=1, steps_per_epoch=2), *tiny_set, tmp_path / "model")
    digest = hashlib.sha256((tmp_path / "model" / "weights.safetensors").read_bytes()).hexdigest()
    assert package.config["weights"]["sha256"] == digest
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert f"\n- Weights: `weights.safetensors`, SHA-256 `{digest}`\n" in card
    assert card == model_card(package.config)


def test_a_package_of_one_training_case_counts_it_in_the_singular():
    """A package trained on one case, without validation, read "fields of view … across its 1 training cases"."""
    import json
    from pathlib import Path

    import medseg

    config = json.loads((Path(medseg.__file__).parent / "models" / "phantom" / "model.json").read_text())
    config["training"].update(train_cases=1, val_cases=[])
    config["input_extent_mm"]["cases"] = 1
    card = model_card(config)
    assert " mm (model-space axes) across its 1 training case; `medseg infer` warns" in card
    assert "Used for this package: 1 training case, 0 validation cases (see Training)." in card
    config["training"].update(train_cases=34, val_cases=[f"case{k}" for k in range(6)])
    config["input_extent_mm"]["cases"] = 40
    assert " across its 40 training and validation cases; " in model_card(config)


def test_the_package_records_the_medseg_that_trained_it_and_the_card_says_so(tiny_set, tmp_path):
    """The training record named the torch that trained the weights but not the medseg, whose preprocessing,
    slicing and inference made its validation figures: a colleague given the package could not tell which medseg
    (version, and the commit of a checkout, since the version is one for every commit between releases) to run to
    reproduce them. Packages trained before it was recorded say nothing of it."""
    import json
    from pathlib import Path

    import medseg
    from medseg.checkout import commit_text, source_commit

    package = run(tiny_training_config(epochs=1, steps_per_epoch=2), *tiny_set, tmp_path / "model")
    training = package.config["training"]
    commit = source_commit()
    assert training["medseg"] == medseg.__version__ and training.get("medseg_commit") == commit
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    made_by = f"medseg {medseg.__version__}" + (f" at commit {commit_text(commit)}" if commit else "")
    libraries = f"torch {training['torch']}, MONAI {training['monai']}, numpy {training['numpy']}"
    assert f"{libraries}, {made_by})." in card and card == model_card(package.config)
    shipped = json.loads((Path(medseg.__file__).parent / "models" / "phantom" / "model.json").read_text())
    assert "medseg" not in shipped["training"]
    assert f"torch {shipped['training']['torch']})." in model_card(shipped)


def test_a_package_trained_from_a_checkout_with_uncommitted_changes_is_said_so():
    """The card named the first 12 characters of the recorded commit: a `-dirty` one read as the commit's own."""
    import json
    from pathlib import Path

    import medseg

    config = json.loads((Path(medseg.__file__).parent / "models" / "phantom" / "model.json").read_text())
    config["training"] |= {"medseg": "0.1.0", "medseg_commit": "553690dea59987675eba22456a7682eaaff2f70c-dirty"}
    card = " ".join(model_card(config).split())
    assert "medseg 0.1.0 at commit 553690dea599 with uncommitted changes)." in card
    config["training"]["medseg_commit"] = "553690dea59987675eba22456a7682eaaff2f70c"
    assert "medseg 0.1.0 at commit 553690dea599)." in " ".join(model_card(config).split())


def test_the_card_of_a_zscore_package_does_not_promise_the_99th_percentile_rule():
    """`medseg infer` leaves the 99th percentile out for a package that z-scores its input (the scale does not change
    its segmentation); the shipped cards said it warned about one outside half the smallest to twice the largest."""
    from medseg.package import load_package

    config = load_package("hippocampus").config
    card = model_card(config)
    assert "or a 99th percentile outside" not in card
    assert "the 99th is not compared: the package z-scores its input" in card
    window = {**config, "preprocessing": {**config["preprocessing"], "intensity": {"kind": "window", "min": -100,
                                                                                   "max": 300}}}
    assert "or a 99th percentile outside half the smallest to twice the largest" in model_card(window)
