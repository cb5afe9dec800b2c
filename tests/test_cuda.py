"""The CUDA path: inference and training on a GPU agree with the CPU. Skipped on machines without CUDA."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from training_factory import run, tiny_training_config, weights, write_set

from medseg.cli import main
from medseg.inference import Segmenter
from medseg.package import load_package
from medseg.segment import segment_case
from medseg.synthetic import write_phantom

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


@pytest.fixture(autouse=True)
def the_gpu_to_itself(tmp_path_factory):
    """One of these tests at a time on the GPU, across make test's worker processes (pytest-xdist; its
    ``xdist_group`` does not group under pytest 9): two at once would take each other's memory, and a test that
    fills the GPU to a set room would leave the other none, or find less than it measured."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (run the GPU tests in one process there: make gpu-check)
        yield
        return
    # the folder above each worker's own temporary folder is the session's, shared by its workers
    with open(tmp_path_factory.getbasetemp().parent / "medseg-cuda-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            torch.cuda.empty_cache()  # this test's cached blocks back to the driver: the next one measures free memory
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cuda_case")
    write_phantom(folder / "case.nii.gz", folder / "label.nii.gz", shape=(96, 96, 24), seed=5)
    return folder / "case.nii.gz", folder / "label.nii.gz"


def _segment(case: Path, out: Path, device: str, precision: str) -> tuple[np.ndarray, dict]:
    segmenter = Segmenter(load_package("phantom"), device=device, precision=precision, batch_size=16)
    outputs = segment_case(case, segmenter, out_dir=out)
    return np.asarray(nib.load(outputs.segmentation).dataobj), json.loads(Path(outputs.sidecar).read_text())


# fp32 on CUDA lets cuDNN use TF32 for convolutions (PyTorch's default), so even fp32 may flip a boundary voxel
@pytest.mark.parametrize("precision, agreement", [("fp32", 0.999), ("fp16", 0.995), ("bf16", 0.995)])
def test_gpu_segmentation_matches_the_cpu(phantom_case, tmp_path, precision, agreement):
    cpu, _ = _segment(phantom_case[0], tmp_path / "cpu", "cpu", "fp32")
    gpu, sidecar = _segment(phantom_case[0], tmp_path / "gpu", "cuda", precision)
    assert sidecar["device"] == "cuda:0" and sidecar["precision"] == precision
    assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype
    assert (gpu == cpu).mean() >= agreement, f"{(gpu != cpu).sum()} of {cpu.size} voxels differ"
    assert set(np.unique(gpu)) == set(np.unique(cpu))


def test_infer_command_takes_the_gpu_when_asked_and_by_default(phantom_case, tmp_path, capsys):
    case, label = phantom_case

    def dice(out: str) -> dict[str, float]:
        labels = json.loads((tmp_path / out / "case_metrics.json").read_text())["labels"]
        return {name: values["dice"] for name, values in labels.items()}

    for device, out in (("cpu", "cpu"), ("auto", "auto"), ("cuda", "cuda"), ("cuda:0", "cuda0")):
        with pytest.raises(SystemExit) as info:
            main(["infer", str(case), "-o", str(tmp_path / out), "--device", device, "--reference", str(label)])
        assert info.value.code == 0, capsys.readouterr().err
        if device == "cpu":
            continue
        sidecar = json.loads((tmp_path / out / "case_seg.json").read_text())
        assert sidecar["device"] == "cuda:0" and sidecar["precision"] == "fp16"  # auto precision on CUDA: fp16
        # the phantom model's Dice on this case is the CPU's (0.92 / 0.98 / 0.87 for ellipsoid / box / tube)
        assert dice(out).keys() == dice("cpu").keys()
        assert all(None not in (dice(out)[k], dice("cpu")[k]) and abs(dice(out)[k] - dice("cpu")[k]) < 0.005
                   for k in dice("cpu")), (dice(out), dice("cpu"))
        assert min(dice(out).values()) > 0.85  # the model does its job on this case (its tube is the weakest)
    assert "cuda:0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["infer", str(case), "-o", str(tmp_path / "bad"), "--device", f"cuda:{torch.cuda.device_count()}"])
    assert info.value.code == 1 and not (tmp_path / "bad" / "case_seg.nii.gz").exists()


def test_training_on_the_gpu_gives_a_package_the_cpu_runs(tmp_path):
    images, labels = write_set(tmp_path / "set")
    config = tiny_training_config()
    run(config, images, labels, tmp_path / "model", device="cuda")
    package = load_package(tmp_path / "model")
    assert package.config["training"]["epochs_run"] == 2
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in weights(tmp_path / "model").values())
    segmenter = Segmenter(package, device="cpu", precision="fp32", batch_size=8)
    outputs = segment_case(images / "case2.nii.gz", segmenter, out_dir=tmp_path / "seg")
    assert nib.load(outputs.segmentation).shape == (32, 32, 12)


def test_same_seed_on_the_gpu_gives_the_same_weights_to_rounding(tmp_path):
    """Bit-identical weights are promised on the CPU (test_train.py); on CUDA some kernels sum in a varying order, so
    two runs of one seed agree to rounding, not necessarily bit for bit. A different seed differs by far more."""
    images, labels = write_set(tmp_path / "set")
    config = tiny_training_config(epochs=1)
    run(config, images, labels, tmp_path / "a", device="cuda")
    run(config, images, labels, tmp_path / "b", device="cuda")
    run(tiny_training_config(epochs=1, seed=4), images, labels, tmp_path / "c", device="cuda")
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")

    def gap(x, y):
        return max(float((x[k].float() - y[k].float()).abs().max()) for k in x if x[k].is_floating_point())

    assert gap(a, b) < 1e-3 < gap(a, c)


def _phantom_on_an_empty_gpu(tmp_path: Path, shape: tuple[int, int, int], seed: int, batch_size: int):
    """``tmp_path/big.nii.gz`` (a phantom), the phantom package, and its labels from a run on the GPU as it is."""
    write_phantom(tmp_path / "big.nii.gz", tmp_path / "big_label.nii.gz", shape=shape, seed=seed)
    package = load_package("phantom")
    clean = segment_case(tmp_path / "big.nii.gz", Segmenter(package, device="cuda", precision="fp32",
                                                            batch_size=batch_size), out_dir=tmp_path / "clean")
    return package, np.asarray(nib.load(clean.segmentation).dataobj)


@contextlib.contextmanager
def _gpu_left_with(room: int):
    """The GPU filled as other processes would fill it (a block this test holds), ``room`` bytes left free."""
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(free - room, dtype=torch.uint8, device="cuda")
    try:
        yield
    finally:
        del hog
        torch.cuda.empty_cache()


def test_out_of_gpu_memory_backs_off_to_fewer_tiles(tmp_path, caplog):
    """A GPU that other processes fill (here: a block this test holds, leaving 1 GiB): 4096 tiles per forward
    pass do not fit; the slab is tried again with half as many until it fits, and the labels agree with a run that
    asked for few tiles from the start."""
    package, expected = _phantom_on_an_empty_gpu(tmp_path, (512, 512, 32), seed=2, batch_size=16)
    with _gpu_left_with(1 << 30):
        segmenter = Segmenter(package, device="cuda", precision="fp32", batch_size=4096)
        with caplog.at_level("WARNING", logger="medseg.inference"):
            outputs = segment_case(tmp_path / "big.nii.gz", segmenter, out_dir=tmp_path / "many")
    import re

    told = [re.fullmatch(r"cuda:0: out of GPU memory with (\d+) tiles per forward pass; going on with (\d+) "
                         r"\(--batch-size sets it\)", m) for m in caplog.messages if "out of GPU memory" in m]
    assert told and all(told), caplog.messages
    # halved from the pass that failed (a slab's tiles, fewer than 4096), then from each smaller one
    passes = [int(m.group(1)) for m in told] + [int(told[-1].group(2))]
    assert passes[0] < 4096 and all(b == a // 2 for a, b in zip(passes, passes[1:]))
    sidecar = json.loads(Path(outputs.sidecar).read_text())
    assert sidecar["inference"]["batch_size"] == segmenter.batch_size < 4096
    labels = np.asarray(nib.load(outputs.segmentation).dataobj)
    assert (labels == expected).mean() >= 0.999


def test_out_of_gpu_memory_in_the_stitching_holds_slabs_in_cpu_memory(tmp_path, caplog):
    """A slab whose blended logits do not fit beside what other processes hold (here: a 128-slice 512×512 slab of
    four classes, 512 MiB of logits, with 384 MiB left free): fewer tiles would not help, so the slab is held in
    CPU memory and only its tiles go to the GPU; the labels agree with a run on an empty GPU."""
    package, expected = _phantom_on_an_empty_gpu(tmp_path, (512, 512, 128), seed=3, batch_size=4)
    with _gpu_left_with(384 << 20):
        segmenter = Segmenter(package, device="cuda", precision="fp32", batch_size=4, slab_voxels=1 << 28)
        with caplog.at_level("WARNING", logger="medseg.inference"):
            outputs = segment_case(tmp_path / "big.nii.gz", segmenter, out_dir=tmp_path / "held")
    assert any(m.startswith("cuda:0: out of GPU memory outside the network; going on with each slab held in CPU "
                            "memory") for m in caplog.messages), caplog.messages
    sidecar = json.loads(Path(outputs.sidecar).read_text())
    assert sidecar["inference"]["stitch_device"] == "cpu"
    labels = np.asarray(nib.load(outputs.segmentation).dataobj)
    assert (labels == expected).mean() >= 0.999
