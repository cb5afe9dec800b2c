"""The memory of one forward pass of a batch of tiles, and the check that refuses a model package whose declared
shapes no machine's memory holds (medseg.tile_memory)."""

import pytest
from conftest import run_cli, tiny_config

from medseg.errors import ModelPackageError
from medseg.tile_memory import tile_pass_bytes


def _many_classes(make_package, classes: int = 1024, roi: int = 512):
    """A package of a few kB (a 1-wide U-Net) whose ``classes`` classes and ``roi``² tile make each tile's logits
    ``classes``·``roi``²·4 bytes: 1 GiB for 1024 classes on 512² tiles."""
    config = tiny_config()
    config["architecture"] |= {"n_classes": classes, "base_width": 1, "depth": 1, "norm": "none"}
    config["labels"] = {str(value): f"label {value}" for value in range(classes)}
    config["inference"] |= {"roi_size": [roi, roi]}
    return make_package("many", **{key: config[key] for key in ("architecture", "labels", "inference")})


def test_the_charge_grows_with_classes_tile_width_and_batch():
    arch = {"in_channels": 1, "n_classes": 4, "base_width": 16, "depth": 3}
    one = tile_pass_bytes(arch, 1, (96, 96))
    assert tile_pass_bytes(arch, 16, (96, 96)) == 16 * one
    assert tile_pass_bytes({**arch, "n_classes": 4096}, 1, (96, 96)) > 60 * one
    assert tile_pass_bytes(arch, 1, (192, 192)) == 4 * one
    assert tile_pass_bytes({**arch, "base_width": 32}, 1, (96, 96)) > 1.9 * one
    # a tile is padded to a multiple of 2^depth, as the U-Net pads it
    assert tile_pass_bytes(arch, 1, (90, 90)) == one
    # 1024 classes on a 512² tile: 1 GiB of logits a tile, charged 12 bytes a class and pixel (7.6 measured)
    big = {"in_channels": 1, "n_classes": 1024, "base_width": 1, "depth": 1}
    assert 3 << 30 <= tile_pass_bytes(big, 1, (512, 512)) < 4 << 30


def test_a_package_whose_one_tile_exceeds_the_memory_is_refused_naming_its_config(make_package, monkeypatch):
    """A package of 40 kB declaring 4096 classes on 512² tiles made `medseg infer` allocate 4 GiB and more for each
    tile (16 GiB for a batch of them) before anything said why: on a smaller machine the kernel ends the process, or
    the machine swaps, without a word. It is refused before its network is built, naming model.json."""
    import medseg.resources
    from medseg.inference import Segmenter

    package = _many_classes(make_package)
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 2 << 30)
    with pytest.raises(ModelPackageError) as caught:
        Segmenter(package, device="cpu", batch_size=16)
    assert str(caught.value) == (
        f"{package / 'model.json'}: one forward pass of a 512×512 tile with 1024 classes and a U-Net of width 1 and "
        "depth 1 needs about 3 GiB of memory, more than this machine's 2 GiB; run it on a machine with more memory, "
        "or check the package's inference.roi_size and architecture.n_classes")


def test_a_package_whose_tile_fits_is_taken_at_any_batch_size(make_package, monkeypatch):
    """Only a tile that fits no batch is refused: a slab of such a model holds one slice, so fewer tiles than a batch,
    and a batch size that worked before is not turned away by an upper bound."""
    import medseg.resources
    from medseg.inference import Segmenter

    package = _many_classes(make_package)
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 16 << 30)
    assert Segmenter(package, device="cpu", batch_size=16).batch_size == 16


def test_infer_refuses_such_a_package_in_one_line(make_package, monkeypatch, capsys, case):
    import medseg.resources

    package = _many_classes(make_package)
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 2 << 30)
    code, _, err = run_cli(["infer", str(case), "-m", str(package), "--device", "cpu", "-o",
                            str(case.parent / "out")], capsys)
    assert code == 1
    assert err.splitlines()[-1].startswith(f"medseg: error: {package / 'model.json'}: one forward pass of a 512×512 "
                                           "tile with 1024 classes")
    assert not (case.parent / "out").exists() or not any((case.parent / "out").iterdir())


@pytest.mark.parametrize("name", ["phantom", "hippocampus"])
def test_the_shipped_models_are_charged_little(name):
    from medseg.package import load_package

    package = load_package(name)
    arch, roi = package.config["architecture"], package.inference["roi_size"]
    assert tile_pass_bytes(arch, 16, roi) < 1 << 30


@pytest.mark.parametrize(("classes", "width", "depth", "tile"), [(14, 64, 5, 512), (118, 32, 5, 512),
                                                                   (105, 64, 4, 256), (3, 64, 5, 1024)])
def test_realistic_packages_are_taken_on_a_laptop_of_8_gb(monkeypatch, tmp_path, classes, width, depth, tile):
    """Whole-body CT packages (14 organs, TotalSegmentator's 117 structures and background) on 512² tiles with a U-Net
    up to width 64 and depth 5, and a 1024² tile, on a laptop of 8 GB (7.6 GiB as the system counts it): one tile
    is charged under 3.5 GiB (0.61-0.70 of it measured, benchmarks/tile_memory.py), and each is taken."""
    from types import SimpleNamespace

    import medseg.resources
    from medseg.tile_memory import check_tile_pass_fits

    arch = {"in_channels": 1, "n_classes": classes, "base_width": width, "depth": depth}
    assert tile_pass_bytes(arch, 1, (tile, tile)) < 3.5 * (1 << 30)
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: int(7.6 * (1 << 30)))
    package = SimpleNamespace(config={"architecture": arch}, inference={"roi_size": [tile, tile]}, path=tmp_path)
    assert check_tile_pass_fits(package, "cpu") is None


def test_a_tile_over_the_jobs_cgroup_limit_is_warned_about_naming_the_limit(make_package, monkeypatch, caplog,
                                                                               tmp_path):
    """A cluster job (SLURM's --mem, a container's limit) has less memory than its machine: a tile that fits the
    machine but not the job was taken without a word, and the kernel ended the job, as the refusal meant to prevent.
    It is warned about, as an image over the limit is (not refused: the charge is an upper bound)."""
    import logging

    import medseg.memory_guard
    import medseg.preprocess
    import medseg.resources
    from medseg.inference import Segmenter
    from medseg.resources import CgroupLimit

    package = _many_classes(make_package)
    limit_file = tmp_path / "memory.max"
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 64 << 30)
    monkeypatch.setattr(medseg.memory_guard, "cgroup_limit", lambda: CgroupLimit(2 << 30, limit_file))
    with caplog.at_level(logging.WARNING):
        assert Segmenter(package, device="cpu", batch_size=16).batch_size == 16
    told = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(told) == 1 and told[0].startswith(f"{package / 'model.json'}: one forward pass of a 512×512 tile "
                                                 "with 1024 classes needs up to about 3 GiB of memory beside the ")
    assert told[0].endswith(f"more than the 2 GiB its cgroup allows ({limit_file}): it may be killed for memory; "
                            "give it more (a SLURM job's --mem, the workflow's mem_mb)")


def test_models_warns_of_a_package_whose_tile_this_machine_cannot_hold(make_package, monkeypatch, capsys):
    """`medseg models PKG` checks what loading a package checks, and infer refuses on the CPU a package whose tile
    needs more than the machine's memory: models said nothing of it (exit 0, no word), and a package maker checking
    with it learnt of it only from infer. It is a warning, not an error: another machine, or a GPU, may run it."""
    import json

    import medseg.resources

    package = _many_classes(make_package)
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 2 << 30)
    code, out, err = run_cli(["models", str(package)], capsys)
    assert code == 0
    assert f"warning: {package / 'model.json'}: one forward pass of a 512×512 tile with 1024 classes and a U-Net of " \
           "width 1 and depth 1 needs about 3 GiB of memory, more than this machine's 2 GiB; medseg infer refuses it " \
           "on this machine's CPU" in err.splitlines()
    assert "many" in out
    code, out, err = run_cli(["models", "--json", str(package)], capsys)
    assert code == 0 and json.loads(out)[0]["tile_pass_bytes"] == tile_pass_bytes(
        {"in_channels": 1, "n_classes": 1024, "base_width": 1, "depth": 1}, 1, (512, 512))
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 16 << 30)
    code, _, err = run_cli(["models", str(package)], capsys)
    assert code == 0 and "forward pass" not in err
