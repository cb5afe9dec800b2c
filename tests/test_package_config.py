"""medseg.package_config: model.json's checks, as loading a package meets them."""

import json
import shutil

import pytest

from medseg.errors import ModelPackageError
from medseg.package import load_package


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["architecture"].update(n_classes=3),
         r"4 labels \(\[0, 1, 2, 3\]\) for n_classes=3: the network has one output class per label"),
        # labels may skip values, but hold the background 0, are never negative, and fit a uint16 segmentation
        (lambda c: c.update(labels={"1": "a", "2": "b", "3": "c", "4": "d"}),
         r"labels \[1, 2, 3, 4\] do not hold 0: declare the background as label 0"),
        (lambda c: c.update(labels={"0": "background", "-1": "a", "2": "b", "3": "c"}),
         "labels -1: label values are whole numbers from 0 \\(background\\) up, not negative"),
        (lambda c: c.update(labels={"0": "background", "1": "a", "2": "b", "70000": "c"}),
         "label value 70000 is above 65535, the largest a segmentation \\(uint16\\) holds"),
        (lambda c: c.update(labels={"0": "background", "2": "a", "41": "b"}), r"3 labels \(\[0, 2, 41\]\) for "
                                                                              "n_classes=4"),
        (lambda c: c.update(labels={"0": "background"}), r"1 label \(\[0\]\) for n_classes=4"),  # was "1 labels"
        (lambda c: c["inference"].update(context_slices=1), "in_channels=1 does not match context_slices=1"),
        (lambda c: c["inference"].update(slice_axis=5), "inference/slice_axis"),
        (lambda c: c.pop("labels"), "'labels' is a required property"),
        (lambda c: c.update(format="other"), "format"),
        (lambda c: c.update(label_codes={"0": {"category": {"scheme": "SCT", "value": "1", "meaning": "x"},
                                               "type": {"scheme": "SCT", "value": "1", "meaning": "x"}}}),
         r"label_codes \[0\] is not a segmented label \(labels 1..3; background gets no segment\)"),
        (lambda c: c.update(label_codes={str(v): {"category": {"scheme": "SCT", "value": "1", "meaning": "x"},
                                                  "type": {"scheme": "SCT", "value": "1", "meaning": "x"}}
                                         for v in (1, 7, 9)}),
         r"label_codes \[7, 9\] are not segmented labels"),
        (lambda c: c.update(label_codes={"1": {"category": {"scheme": "SCT", "value": "1", "meaning": "x"},
                                               "type": {"scheme": "SCT", "value": "5366008"}}}),
         "invalid model config at label_codes/1/type: 'meaning' is a required property"),
        (lambda c: c["architecture"].update(norm="instance", depth=5),
         r"inference.roi_size \[32, 32\] leaves one cell at the bottom of a depth-5 U-Net, where instance norm"),
        (lambda c: c["preprocessing"].update(orientation="RRR"),
         r"preprocessing/orientation 'RRR' must name each axis once: one of R/L, one of A/P and one of S/I"),
        (lambda c: c["preprocessing"].update(orientation="LPA"), "'LPA' must name each axis once"),
        (lambda c: c["preprocessing"].update(intensity={"kind": "window", "min": 100, "max": 100}),
         "preprocessing/intensity window min 100 must be below its max 100"),
        (lambda c: c["weights"].update(file="../elsewhere/weights.safetensors"),
         r"weights/file '../elsewhere/weights.safetensors' must name a file inside the package folder"),
        (lambda c: c["weights"].update(file="/abs/weights.safetensors"), "must name a file inside the package"),
        (lambda c: c["inference"].update(roi_size=[4096, 64]), "inference/roi_size/0: 4096 is greater than the "
                                                               "maximum of 2048"),
        (lambda c: c["labels"].update({"3": "box"}), "labels 2 and 3 are both named 'box'; give each label a name"),
        (lambda c: c["labels"].update({"3": "Box"}), r"labels 2 and 3 are named alike \(case and spaces aside\): "
                                                     "'box' and 'Box'"),
        (lambda c: c["labels"].update({"3": "tu\nbe"}), r"labels 3: name 'tu\\nbe' must be one line of text"),
        # "Läsion" with "ä" as one character and as "a" and its accent: two labels that read the same everywhere
        (lambda c: c["labels"].update({"2": "L\u00e4sion", "3": "La\u0308sion"}),
         r"labels 2 and 3 are named alike \(case, spaces and how an accent is composed aside\): "
         r"'L\\xe4sion' and 'La\\u0308sion'; give each label a name"),
        (lambda c: c["labels"].update({"2": "L\u00e4sion", "3": " LA\u0308SION"}),
         r"labels 2 and 3 are named alike \(case, spaces and how an accent is composed aside\): "
         r"'L\\xe4sion' and ' LA\\u0308SION'"),
        (lambda c: c["labels"].update({"3": " "}), "labels 3: name ' ' must be one line of text without control "
                                                   "characters, not blank"),
        (lambda c: c["labels"].update({"3": " BOX"}), r"labels 2 and 3 are named alike \(case and spaces aside\): "
                                                      r"'box' and ' BOX'"),
        (lambda c: c.update(labels={"0": "background", "01": "ellipsoid", "2": "box", "3": "tube"}),
         "labels key '01' must be written '1'"),
        (lambda c: c.update(input_extent_mm={"min": [10, 10, 30], "max": [50, 50, 20]}),
         r"input_extent_mm min \[10, 10, 30\] exceeds its max \[50, 50, 20\]"),
    ],
)
def test_inconsistent_configs_are_refused(make_package, change, message):
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    change(config)
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError, match=message):
        load_package(path)


def test_two_spellings_of_one_label_in_label_codes_are_refused(make_package):
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    code = {"scheme": "SCT", "value": "5366008", "meaning": "Hippocampus"}
    config["label_codes"] = {"1": {"category": code, "type": code}, "01": {"category": code, "type": code}}
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError, match="invalid model config at label_codes: '01' does not match"):
        load_package(path)


def test_a_name_that_matches_its_pattern_only_before_a_final_line_break_is_refused(make_package):
    """JSON Schema's patterns end where ECMA-262's do; Python's $ also matched before a final line break, and a
    package named 'phantom\n' loaded (its name broke the lines that show it, and went into sidecars and SEGs)."""
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["name"] = "phantom\n"
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{path / 'model.json'}: invalid model config at name: 'phantom\\n' does not match "
                               "'^[A-Za-z0-9_.-]+$'")


def test_whole_number_floats_in_a_hand_written_config_are_counts(make_package):
    """A model.json with "depth": 2.0 passed the schema (JSON Schema's integer takes 2.0) and ended in a TypeError
    traceback when the network was built."""
    from medseg.inference import Segmenter

    folder = make_package()
    config = json.loads((folder / "model.json").read_text())
    depth = config["architecture"]["depth"]
    config["architecture"]["depth"] = float(depth)
    config["inference"]["roi_size"] = [float(v) for v in config["inference"]["roi_size"]]
    (folder / "model.json").write_text(json.dumps(config))
    package = load_package(folder)
    assert package.config["architecture"]["depth"] == depth and type(package.config["architecture"]["depth"]) is int
    assert all(type(v) is int for v in package.config["inference"]["roi_size"])
    Segmenter(package, device="cpu")  # builds the network


def test_label_names_may_hold_any_text_on_one_line(make_package):
    """A non-breaking space or a zero-width non-joiner (Persian) is text, not a control character."""
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["labels"].update({"1": "left\xa0kidney", "2": "\u06a9\u200c\u0644\u06cc\u0647"})
    (path / "model.json").write_text(json.dumps(config))
    assert load_package(path).labels[1] == "left\xa0kidney"


def test_a_model_json_larger_than_any_config_is_refused_before_it_is_read(tmp_path):
    """A 2 GB model.json was read whole into memory (4 GB resident, 20 s) to be refused as "not valid JSON (Extra
    data …)"; a resumed run read it whole too."""
    from medseg.package_config import MAX_CONFIG_BYTES
    from medseg.train_resume import folder_config

    package = tmp_path / "pkg"
    shutil.copytree(load_package("phantom", check_hash=False).path, package)
    config = package / "model.json"
    with open(config, "r+b") as handle:  # sparse: nothing written but the size
        handle.truncate(2 << 30)
    with pytest.raises(ModelPackageError) as caught:
        load_package(package)
    assert str(caught.value) == (f"{config}: 2,048 MiB, where a model config holds at most 16 MiB (its training record "
                                 "some 70 bytes a training case); not a model package's config")
    assert folder_config(package) is None
    with open(config, "r+b") as handle:  # at the cap: read, and refused only as the JSON it is not
        handle.truncate(MAX_CONFIG_BYTES)
    with pytest.raises(ModelPackageError, match="not valid JSON"):
        load_package(package)


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("inference", "slice_axis", 3, "inference/slice_axis: 3 is not one of [0, 1, 2]"),
    ("inference", "slice_axis", [0, 5], "inference/slice_axis/1: 5 is not one of [0, 1, 2]"),
    ("inference", "slice_axis", [0, 0], "inference/slice_axis: [0, 0] has non-unique elements"),
    ("preprocessing", "intensity", {"kind": "window", "min": 100}, "preprocessing/intensity: 'max' is a required "
                                                                   "property"),
    ("preprocessing", "intensity", {"kind": "wndow", "min": 1, "max": 2}, "preprocessing/intensity/kind: 'wndow' is "
                                                                         "not one of 'zscore', 'window', 'none'"),
    ("preprocessing", "intensity", "zscore", "preprocessing/intensity: 'zscore' is not of type 'object'"),
])
def test_a_value_that_fits_none_of_a_settings_forms_is_told_what_is_wrong(section, key, value, expected):
    """A value fitting none of a setting's forms read "… is not valid under any of the given schemas"; the error of
    the form it was meant as says what to change."""
    from conftest import tiny_config

    from medseg.package_config import validate_config

    config = {**tiny_config(), "weights": {"file": "weights.safetensors", "sha256": "0" * 64}}
    config[section][key] = value
    with pytest.raises(ModelPackageError) as info:
        validate_config(config, "cfg.json")
    assert str(info.value) == f"cfg.json: invalid model config at {expected}"


def test_a_package_of_a_newer_medseg_says_to_upgrade(make_package):
    """A package written by a newer medseg (a later format, a key this one does not know) read only as a schema
    error ("'medseg-model/1' was expected", "Additional properties are not allowed"), with nothing said of versions;
    a later format is told first, whatever else in it differs."""
    from medseg import __version__

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    for edit, said in (
        ({"format": "medseg-model/2", "calibration": {"t": 1.5}},
         f"format 'medseg-model/2' is that of a newer medseg than this one (medseg {__version__}, which reads "
         "medseg-model/1): upgrade medseg to use this package"),
        ({"calibration": {"t": 1.5}},
         "invalid model config at (top level): Additional properties are not allowed ('calibration' was unexpected); "
         f"medseg {__version__} knows no such key: misspelt, or written by a newer medseg (upgrade medseg to use it)"),
        ({"format": "medseg-model/0"}, "invalid model config at format: 'medseg-model/1' was expected"),
    ):
        (path / "model.json").write_text(json.dumps({**config, **edit}))
        with pytest.raises(ModelPackageError) as info:
            load_package(path)
        assert str(info.value) == f"{path / 'model.json'}: {said}"


def test_another_tools_model_json_is_named_so_not_as_one_of_a_newer_medseg(tmp_path):
    """TensorFlow.js writes a model.json too (format "layers-model"): given as the package, its folder was told to
    hold keys "written by a newer medseg (upgrade medseg to use it)", which no upgrade mends. A format that is no
    medseg package's, or keys none of which a package has, say it is another tool's."""
    for name, config, said in (
        ("tfjs", {"format": "layers-model", "generatedBy": "keras v2.4", "modelTopology": {},
                  "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": []}]},
         "format 'layers-model', not medseg-model/1"),
        ("other", {"model_type": "unet", "num_labels": 3, "torch_dtype": "float32"},
         "none of a medseg package's keys (it holds model_type, num_labels, torch_dtype)"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.json").write_text(json.dumps(config))
        with pytest.raises(ModelPackageError) as info:
            load_package(folder)
        assert str(info.value) == (f"{folder / 'model.json'}: {said}: another tool's model.json (TensorFlow.js writes "
                                   "one too), not a medseg model package")


@pytest.mark.parametrize("written", ["medseg-model/1.1", "medseg-model/1.10", "medseg-model/2.0"])
def test_a_newer_minor_format_says_the_package_is_of_a_newer_medseg(make_package, written):
    """``format: "medseg-model/1.1"`` (a later revision of the format) read "'medseg-model/1' was expected", a schema
    error that said nothing of versions, where ``medseg-model/2`` said to upgrade. It says so too."""
    from medseg import __version__

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**config, "format": written}))
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{path / 'model.json'}: format {written!r} is that of a newer medseg than this one "
                               f"(medseg {__version__}, which reads medseg-model/1): upgrade medseg to use this "
                               "package")


@pytest.mark.parametrize("written", ["medseg-model/1.0", "medseg-model/0.9", "medseg-model/1.x"])
def test_a_format_that_is_not_newer_is_a_schema_error_as_before(make_package, written):
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**config, "format": written}))
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == f"{path / 'model.json'}: invalid model config at format: 'medseg-model/1' was expected"
