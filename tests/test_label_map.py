"""medseg.label_map, and label values that do not run 0..N-1 end to end: a package declares any set of values with 0
among them, one output class each (class k the k-th smallest value); training, inference, sidecars, metrics and the
DICOM SEG go through the map; packages labelled 0..N-1 map each class to itself."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import run_cli, tiny_config

from medseg.errors import MedsegWarning, ModelPackageError
from medseg.label_map import LabelMap, classes_note, label_map, values_dtype
from medseg.package import load_package, save_package
from medseg.synthetic import write_phantom


def test_an_identity_map_changes_only_the_type():
    mapped = label_map({"0": "background", "1": "a", "2": "b"})
    assert mapped.identity and mapped.n_classes == 3 and mapped.dtype == np.uint8
    classes = np.array([[0, 1], [2, 1]], np.uint8)
    assert mapped.to_values(classes) is classes  # no copy: the path every existing package takes
    assert np.array_equal(mapped.to_classes(np.array([0, 2, 1])), [0, 2, 1])
    assert classes_note({"0": "b", "1": "a"}) == ""


def test_class_k_is_the_k_th_smallest_value():
    brats = label_map([4, 0, 2, 1])
    assert brats.values == (0, 1, 2, 4) and not brats.identity
    written = brats.to_values(torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8))
    assert written.dtype == np.uint8 and written.tolist() == [[0, 1], [2, 4]]
    assert brats.to_classes(np.array([4.0, 0.0, 2.0])).tolist() == [3, 0, 2]
    assert brats.class_of(4) == 3 and brats.value_of(3) == 4 and brats.classes_of([1, 4]) == [1, 3]
    with pytest.raises(ValueError, match=r"label values outside \[0, 1, 2, 4\]"):
        brats.to_classes(np.array([0, 3]))
    sparse = LabelMap((0, 2, 300))  # a value above 255: the segmentation is uint16
    assert sparse.dtype == np.uint16 and sparse.to_values(np.array([2, 1, 0])).tolist() == [300, 2, 0]
    assert values_dtype(255) == np.uint8 and values_dtype(256) == np.uint16
    assert classes_note({"0": "b", "2": "a", "41": "c"}) == " (output class → label: 0→0, 1→2, 2→41)"


def test_the_classes_note_gives_every_class_of_a_short_map_and_the_first_and_last_of_a_long_one():
    """The model card and ``medseg models`` named only the last class (``class 3 is label 4``): a map that skips
    early (FreeSurfer's 0, 2, 4, 5 …) left the reader to work out which class each value is."""
    brats = {"0": "background", "4": "ET", "1": "NCR", "2": "ED"}
    assert classes_note(brats) == " (output class → label: 0→0, 1→1, 2→2, 3→4)"
    twelve = {str(value): f"l{value}" for value in [0, *range(2, 24, 2)]}  # 12 labels: every class
    assert classes_note(twelve) == (" (output class → label: 0→0, 1→2, 2→4, 3→6, 4→8, 5→10, 6→12, 7→14, 8→16, 9→18, "
                                    "10→20, 11→22)")
    thirteen = {**twelve, "2035": "last"}  # more: the first eight and the last, on one line
    assert classes_note(thirteen) == " (output class → label: 0→0, 1→2, 2→4, 3→6, 4→8, 5→10, 6→12, 7→14, …, 12→2035)"



def test_label_files_become_class_indices_without_whole_volume_copies():
    """Training turns each label file into class indices: the whole volume was copied as int64 and looked up as
    int64, 17 bytes a voxel at its peak (1.3 GB for a 512×512×300 label file, past what the memory guard charges a
    case) where the classes take one. A block at a time, in any memory order and type, the values unchanged."""
    import tracemalloc

    mapped = LabelMap((0, 5, 300))
    rng = np.random.default_rng(0)
    values = np.asarray(mapped.values, np.uint16)[rng.integers(0, 3, 4_000_000, dtype=np.uint8)].reshape(200, 200, 100)
    for given in (values, np.asfortranarray(values), values[:, ::2], values.astype(np.float32)):
        tracemalloc.start()
        classes = mapped.to_classes(given)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert classes.dtype == np.uint8 and classes.shape == given.shape
        assert np.array_equal(classes, np.searchsorted(mapped.values, given.astype(np.int64)))
        # the classes (1 byte a voxel), a copy of values in neither order (2), a block's temporaries (about 6 MB)
        assert peak < 3 * given.size + 8 * 2**20, peak / given.size
    with pytest.raises(ValueError, match=r"label values outside \[0, 5, 300\]"):
        mapped.to_classes(np.array([[0, 5], [7, 300]], np.uint16))

def _package(folder: Path, labels: dict[str, str], winner: int | None = None, **arch) -> Path:
    """A tiny package of ``labels``; ``winner``: the class its network predicts everywhere (head weights 0)."""
    from medseg.network import UNet2D, UNetConfig

    config = tiny_config(name=folder.name, labels=labels)
    config["architecture"].update(n_classes=len(labels), **arch)
    torch.manual_seed(0)
    net = UNet2D(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "type"}))
    if winner is not None:
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.zero_()
            net.head.bias[winner] = 10.0
    save_package(net, config, folder)
    return folder


def _scan(path: Path, shape=(32, 32, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).normal(100, 20, size=shape).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    return path


@pytest.mark.parametrize("labels, winner, value, dtype", [
    ({"0": "background", "1": "NCR", "2": "ED", "4": "ET"}, 3, 4, np.uint8),
    ({"0": "background", "2": "cortex", "300": "lesion"}, 2, 300, np.uint16),
    ({"0": "background", "1": "a", "2": "b", "3": "c"}, 3, 3, np.uint8),  # 0..N-1: each class is its value
])
def test_infer_writes_the_value_of_the_class_it_predicts(tmp_path, capsys, labels, winner, value, dtype):
    """A voxel predicted as class k is written as the k-th smallest declared value, in a type that holds it; the
    sidecar counts labels by value, and the metrics score them by value against a reference that holds values."""
    package = _package(tmp_path / "model", labels, winner)
    scan = _scan(tmp_path / "in" / "scan.nii.gz")
    reference = np.zeros((32, 32, 6), np.uint16 if value > 255 else np.uint8)
    reference[:16] = value  # half the volume holds the predicted label, the other half background
    nib.save(nib.Nifti1Image(reference, np.diag([0.8, 0.8, 2.0, 1.0])), str(tmp_path / "ref.nii.gz"))
    code, _, err = run_cli(["-q", "infer", str(scan), "-m", str(package), "-o", str(tmp_path / "out"), "--device",
                            "cpu", "--reference", str(tmp_path / "ref.nii.gz")], capsys)
    assert code == 0, err
    written = nib.load(tmp_path / "out" / "scan_seg.nii.gz")
    array = np.asarray(written.dataobj)
    assert array.dtype == dtype and np.unique(array).tolist() == [value]
    assert float(written.header["cal_max"]) == max(int(k) for k in labels)
    sidecar = json.loads((tmp_path / "out" / "scan_seg.json").read_text())
    assert list(sidecar["labels"]) == list(labels)
    assert sidecar["label_voxels"] == {k: (array.size if int(k) == value else 0) for k in labels}
    metrics = json.loads((tmp_path / "out" / "scan_metrics.json").read_text())
    assert sorted(metrics["labels"], key=int) == [k for k in labels if k != "0"]
    assert metrics["labels"][str(value)]["dice"] == pytest.approx(2 * 0.5 / 1.5)  # half of it: 2·½ / (½ + 1)
    assert all(metrics["labels"][k]["status"] == "both_empty" for k in labels if k not in ("0", str(value)))
    # evaluate --model scores the written file by value too
    code, out, err = run_cli(["evaluate", str(tmp_path / "out" / "scan_seg.nii.gz"), str(tmp_path / "ref.nii.gz"),
                              "--model", str(package), "-o", str(tmp_path / "scored.json")], capsys)
    assert code == 0, err
    scored = json.loads((tmp_path / "scored.json").read_text())
    assert scored["labels"][str(value)]["dice"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("labels, n_classes, said", [
    ({"1": "a", "2": "b", "4": "c"}, 3, "labels [1, 2, 4] do not hold 0: declare the background as label 0 (class 0 "
                                        "of the network)"),
    ({"0": "background", "-2": "a", "4": "c"}, 3, "labels -2: label values are whole numbers from 0 (background) "
                                                  "up, not negative"),
    ({"0": "background", "2": "a", "41": "c"}, 4, "3 labels ([0, 2, 41]) for n_classes=4: the network has one "
                                                  "output class per label (class k stands for the k-th smallest "
                                                  "value)"),
])
def test_a_package_whose_labels_cannot_map_its_classes_is_refused_in_one_line(tmp_path, capsys, labels, n_classes,
                                                                              said):
    package = _package(tmp_path / "model", {"0": "background", "1": "a", "2": "b"})
    config = json.loads((package / "model.json").read_text())
    config["labels"] = labels
    config["architecture"]["n_classes"] = n_classes
    (package / "model.json").write_text(json.dumps(config))
    scan = _scan(tmp_path / "scan.nii.gz")
    code, _, err = run_cli(["infer", str(scan), "-m", str(package), "--device", "cpu"], capsys)
    assert code == 1 and err.splitlines() == [f"medseg: error: {package / 'model.json'}: {said}"]
    assert not (tmp_path / "scan_seg.nii.gz").exists() and not (tmp_path / "scan_seg.json").exists()


def test_a_package_whose_values_skip_loads_with_its_map(tmp_path, capsys):
    package = load_package(_package(tmp_path / "model", {"0": "background", "41": "b", "2": "a"}))
    assert package.labels == {0: "background", 2: "a", 41: "b"}
    assert package.label_map.values == (0, 2, 41)
    code, out, _ = run_cli(["models", str(package.path)], capsys)
    assert code == 0
    assert "  labels: 0=background, 2=a, 41=b (output class → label: 0→0, 1→2, 2→41)" in out
    with pytest.raises(ModelPackageError, match="label_codes \\[3\\] is not a segmented label \\(labels \\[2, 41\\]; "):
        config = dict(package.config)
        code = {"scheme": "SCT", "value": "1", "meaning": "x"}
        config["label_codes"] = {"3": {"category": code, "type": code}}
        from medseg.package_config import validate_config
        validate_config(config, "m")


def _labels_as(root: Path, mapping: dict[int, int], count: int = 4) -> tuple[Path, Path]:
    """Phantom cases (labels 0..3) written with their label values moved by ``mapping``."""
    images, labels = root / "images", root / "labels"
    for seed in range(count):
        label_path = labels / f"case{seed}.nii.gz"
        write_phantom(images / f"case{seed}.nii.gz", label_path, shape=(32, 32, 8), seed=seed, oblique=False)
        stored = nib.load(label_path)
        values = np.asarray(stored.dataobj)
        moved = np.zeros(values.shape, np.uint8)
        for old, new in mapping.items():
            moved[values == old] = new
        nib.save(nib.Nifti1Image(moved, stored.affine), str(label_path))
    return images, labels


@pytest.mark.parametrize("mapping, declared", [
    ({1: 1, 2: 2, 3: 4}, [0, 1, 2, 4]),  # BraTS
    ({1: 2, 2: 41, 3: 41}, [0, 2, 41]),  # FreeSurfer-like values
])
def test_training_without_a_config_on_values_that_skip(tmp_path, capsys, mapping, declared):
    """Label files holding 0, 1, 2, 4 (or 0, 2, 41) were refused with advice to recode them; they now train as they
    are: one class per value, validation scored and recorded by value, and the package writes only those values."""
    images, labels = _labels_as(tmp_path, mapping)
    out = tmp_path / "model"
    torch.set_num_threads(1)
    code, _, err = run_cli(["-q", "train", "--images", str(images), "--labels", str(labels), "-o", str(out),
                            "--threads", "1", "--epochs", "1", "--steps-per-epoch", "2"], capsys)
    assert code == 0, err
    package = load_package(out)
    assert sorted(package.labels) == declared and package.config["architecture"]["n_classes"] == len(declared)
    training = package.config["training"]
    assert sorted(training["val_dice"], key=int) == [str(v) for v in declared[1:]]
    assert training["train_labels_absent"] == []
    classes = ", ".join(f"{index}→{value}" for index, value in enumerate(declared))
    assert f" (output class → label: {classes})" in (out / "MODEL_CARD.md").read_text()
    code, _, err = run_cli(["-q", "infer", str(images / "case0.nii.gz"), "-m", str(out), "-o", str(tmp_path / "seg"),
                            "--device", "cpu", "--reference", str(labels / "case0.nii.gz")], capsys)
    assert code == 0, err
    written = np.asarray(nib.load(tmp_path / "seg" / "case0_seg.nii.gz").dataobj)
    assert written.dtype == np.uint8 and set(np.unique(written).tolist()) <= set(declared)
    metrics = json.loads((tmp_path / "seg" / "case0_metrics.json").read_text())
    assert sorted(metrics["labels"], key=int) == [str(v) for v in declared[1:]]
    # the QA report's summary and table name the labels by value
    code, _, err = run_cli(["-q", "report", str(tmp_path / "seg"), "--max-overlays", "0"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    assert sorted(summary["labels"], key=int) == [str(v) for v in declared[1:]]
    header = (tmp_path / "seg" / "cohort.tsv").read_text().splitlines()[0].split("\t")
    assert f"label_{declared[-1]}_dice" in header



def test_a_dataset_json_naming_many_values_that_skip_is_no_image_among_the_labels():
    """The default config's guard against an image put among the labels counted the values a dataset.json names
    with those the files hold: a dataset.json naming 70 values that skip (FreeSurfer's aparc+aseg names over a
    hundred) was refused as an image, its message saying the label files held them all. Only the files' values
    count; files holding so many scattered values are still refused, listing what they hold."""
    from medseg.errors import TrainingError
    from medseg.train_config import default_config

    names = {0: "background", **{v: f"region_{v}" for v in range(2, 142, 2)}}
    files = {0: Path("a.nii.gz"), 2: Path("a.nii.gz"), 100: Path("b.nii.gz")}
    config = default_config(files, where="lab", names=names)
    assert [int(k) for k in config["labels"]] == sorted(names) and config["architecture"]["n_classes"] == 71
    assert config["labels"]["100"] == "region_100"
    with pytest.raises(TrainingError) as info:  # the files themselves hold 100 scattered values
        default_config({v: Path("c.nii.gz") for v in range(0, 200, 2)}, where="lab", names={0: "background"})
    assert str(info.value).startswith("c.nii.gz: label value 2; the label files in lab hold [0, 2, 4, 6, 8, 10, 12, "
                                      "14, … (100 values)]; so many values suggest an image")

def test_training_cases_hold_class_indices_and_presence_is_told_by_value(tmp_path, caplog):
    """The cases' labels hold the network's class indices (the loss's targets); which labels the cases hold is told
    by value."""
    from medseg.training_cases import check_label_presence, load_cases, pair_cases

    images, labels = _labels_as(tmp_path, {1: 2, 2: 41, 3: 41}, count=2)
    config = tiny_config(labels={"0": "background", "2": "a", "17": "never", "41": "b"})
    config["architecture"]["n_classes"] = 4
    cases = load_cases(pair_cases(images, labels), config)
    assert set(torch.unique(cases[0].label).tolist()) == {0, 1, 3}
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning, match="^label 17 'never' appears in no training"):
        assert check_label_presence(config, cases[:1], cases[1:]) == ([17], [17])
    assert caplog.records[0].getMessage().startswith("label 17 'never' appears in no training case")


@pytest.fixture
def dicom_series(tmp_path):
    from dicom_factory import slice_positions, stored_values, write_series

    write_series(tmp_path / "case", stored_values((40, 36, 6), seed=14) + 900, slice_positions(6, 3.0),
                 pixel_spacing=(1.1, 1.2))
    return tmp_path / "case"


def test_a_dicom_seg_of_values_that_skip_numbers_its_segments_1_to_n_and_reads_back_the_values(
        tmp_path, capsys, dicom_series):
    """DICOM SEG segments are numbered 1..n: segment k is the k-th non-background value (2 and 41 as segments 1 and
    2), named by the label; read back as a reference, the segments give the values again."""
    import pydicom

    package = _package(tmp_path / "model", {"0": "background", "2": "cortex", "41": "white matter"})
    with torch.no_grad():  # make each class win somewhere: spread logits of the random network
        from medseg.package import load_package as load

        loaded = load(package)
        net = loaded.build_network("cpu")
        net.head.weight.mul_(500.0)
        net.head.bias.zero_()
        net.head.bias.sub_(net(torch.randn(4, 1, 32, 32)).mean(dim=(0, 2, 3)))
        save_package(net, loaded.config, package)
    args = ["-q", "infer", str(dicom_series), "-m", str(package), "--device", "cpu"]
    code, _, err = run_cli([*args, "-o", str(tmp_path / "nifti")], capsys)
    assert code == 0, err
    values = np.asarray(nib.load(tmp_path / "nifti" / "case_seg.nii.gz").dataobj)
    assert set(np.unique(values).tolist()) == {0, 2, 41}
    code, _, err = run_cli([*args, "-o", str(tmp_path / "seg"), "--format", "dicom-seg"], capsys)
    assert code == 0, err
    seg = pydicom.dcmread(tmp_path / "seg" / "case_seg.dcm")
    assert [(int(s.SegmentNumber), s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "cortex"),
                                                                                       (2, "white matter")]
    # the SEG given as the reference of the same series: read back as values 2 and 41, it matches the NIfTI output
    code, _, err = run_cli([*args, "-o", str(tmp_path / "scored"), "--reference", str(tmp_path / "seg" /
                                                                                      "case_seg.dcm")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "scored" / "case_metrics.json").read_text())
    assert {k: v["dice"] for k, v in metrics["labels"].items()} == {"2": 1.0, "41": 1.0}
    from medseg.io.dicom import read_dicom_series
    from medseg.io.seg_reading import read_dicom_seg

    back = read_dicom_seg(tmp_path / "seg" / "case_seg.dcm", read_dicom_series(dicom_series),
                          load_package(package).labels)
    assert np.array_equal(back, values)
