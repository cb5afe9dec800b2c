"""`medseg train` (medseg.cli.train) when a run fails or is stopped: out of memory, a loss that becomes NaN, a stop
asked for while it trains or places its package, and a folder another process trains into."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from training_factory import _FEW_STEPS, _exit_code, _train_cli, tiny_training_config, write_set

from medseg.errors import TrainingError
from medseg.package import load_package


def test_a_stop_held_while_the_package_is_placed_says_the_package_is_complete(tiny_set, tmp_path, capsys,
                                                                             config_file, monkeypatch):
    """Ctrl-C while the package was put in place acts once it is whole; the line said to resume, and that "the
    package in the folder is the one written before it" when there was none before: it is this run's, complete."""
    from held_stops import ctrl_c_while_placing

    from medseg.package import load_package

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))
    with ctrl_c_while_placing(monkeypatch, "model.json"):  # the package's set
        assert _exit_code(args) == 130
    err = capsys.readouterr().err
    assert f"{out}: stopped just after the model package was written; it is complete (medseg infer --model {out} " \
        "runs it)" in err
    assert "checkpoint after epoch" not in err and "written before it" not in err
    assert err.endswith("runs it)\n")  # the stop's one line: no "Aborted." after it
    assert load_package(out).config["training"]["epochs_run"] == 2  # whole: weights match the config's SHA-256
    # and the checkpoint records it: infer warned of "an unfinished training run", a resume trained nothing
    from medseg.package_training import unfinished_training

    assert unfinished_training(out) is None
    assert _exit_code(args + ["--resume"]) == 0
    assert "the run had finished its 2 epochs and its package is intact" in capsys.readouterr().err


def test_a_stop_held_while_a_new_package_is_placed_warns_of_no_unfinished_run(tiny_set, tmp_path, caplog,
                                                                              config_file, monkeypatch):
    """Ctrl-C while a first run's package is placed: the package is this run's, complete, so no warning says that
    an unfinished run will replace it (the package was read back to record it while the checkpoint still called it
    pending)."""
    from held_stops import ctrl_c_while_placing

    out = tmp_path / "model"
    with ctrl_c_while_placing(monkeypatch, "model.json"), caplog.at_level(logging.WARNING):
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file))) == 130
    assert not [r.getMessage() for r in caplog.records if "unfinished training run" in r.getMessage()]


def test_a_training_step_too_large_for_the_machine_is_refused_before_any_case_is_read(tiny_set, tmp_path, capsys):
    """A batch of 20000 128×128 patches: the kernel ended the process without a word (exit 137) after taking the
    machine's memory; now one line, from the configuration alone. One that fits is left alone."""
    from medseg.numbers import gib_text
    from medseg.step_memory import check_step_fits, training_step_bytes
    from medseg.train_config import check_config

    def fits(config: dict, device: str, memory: int) -> None:
        check_step_fits(config["architecture"], check_config(config), device, memory)

    config = tiny_training_config(batch_size=20000, patch_size=[128, 128])
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(config))
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(path))) == 1
    err = capsys.readouterr().err.strip()
    needed = training_step_bytes(config["architecture"], 20000, (128, 128))
    assert re.fullmatch(rf"medseg: error: {re.escape(str(path))}: a training step of 20000 128×128 patches with a "
                        r"U-Net of width \d+ and depth \d+ needs about \d+ GiB of memory, more than this machine's "
                        r"\d+ GiB; lower training.batch_size, training.patch_size or architecture.base_width", err), err
    assert f"about {gib_text(needed)}" in err and not (tmp_path / "model").exists()
    # under bf16 autocast a step holds about half the activations; small figures keep their digits
    assert training_step_bytes(config["architecture"], 32, (128, 128), "bf16") < 0.6 * training_step_bytes(
        config["architecture"], 32, (128, 128))
    with pytest.raises(TrainingError, match=r"needs about 1\.3 GiB of memory, more than this machine's 0\.1 GiB"):
        fits(tiny_training_config(batch_size=4000), "cpu", int(0.1 * 2**30))
    fits(tiny_training_config(), "cpu", 2 * 2**30)  # the tiny recipe fits in 2 GiB: no error
    fits(config, "cuda", 2 * 2**30)  # a GPU's memory is told when a step runs out of it: no error
    # the estimate against what the shipped recipe's step takes: 32 40×40 patches, width 16, depth 4 (padded to
    # 48×48): about 145 MB of activations and 31 MB of weights, gradients and moments
    hippocampus = load_package("hippocampus").config["architecture"]
    assert 120e6 < training_step_bytes(hippocampus, 32, (40, 40)) < 220e6


def test_a_cpu_step_out_of_memory_is_one_line(tiny_set, tmp_path, capsys, config_file, monkeypatch):
    """torch's CPU allocator raised RuntimeError ("DefaultCPUAllocator: can't allocate memory"), shown as a
    traceback."""
    import medseg.train

    def short(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 6442450944 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(medseg.train, "_train_epoch", short)
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file))) == 1
    err = capsys.readouterr().err.strip()
    line = err.splitlines()[-1]
    assert "Traceback" not in err and line.startswith(f"medseg: error: {out}: out of memory in a training step of 4 ")
    assert line.endswith("; lower training.batch_size, training.patch_size or architecture.base_width, or free memory")


def test_a_loss_that_becomes_nan_stops_training_with_one_line(tiny_set, tmp_path, capsys, config_file, monkeypatch):
    from monai.losses import DiceCELoss

    real = DiceCELoss.forward
    monkeypatch.setattr(DiceCELoss, "forward", lambda self, x, y: real(self, x, y) * float("nan"))
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"medseg: error: {out}: the loss became nan at step 1 of epoch 1; lower "
                       "training.learning_rate or check the images' intensities (no epoch finished, nothing was "
                       "written)")
    assert not (out / "model.json").exists() and not any("requires_grad" in line for line in err)


def test_out_of_gpu_memory_placing_the_network_stops_training_with_one_line(tiny_set, tmp_path, capsys,
                                                                            config_file, monkeypatch):
    """A GPU that other processes fill may have no room for the network itself: that was torch's traceback."""
    import medseg.network

    def full_gpu(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")

    monkeypatch.setattr(medseg.network.UNet2D, "to", full_gpu)
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"medseg: error: {out}: out of GPU memory on cpu placing the network on it; free GPU memory "
                       "(other processes may hold it), or train on the CPU (--device cpu)")
    assert not (out / "model.json").exists()


def test_a_folder_another_process_trains_into_is_refused_until_it_ends(tiny_set, tmp_path, capsys, config_file):
    """Before: two runs given one -o both trained, each saving its checkpoints over the other's, and the second
    package replaced the first without a word (each had checked the folder while it was still empty). Now a run
    claims the folder from its check to its package; the claim lives beside the folder, as the folder may not exist
    yet, and goes with the run."""
    import subprocess
    import sys

    from medseg.io.folder_claim import claim_path

    out = tmp_path / "new" / "deeper" / "model"
    holder = subprocess.Popen(  # another process, holding the claim as a run would
        [sys.executable, "-c", "import sys; from medseg.io.folder_claim import claimed\n"
         f"with claimed({str(out)!r}, 'training run'):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline() == "held\n"
        claim = claim_path(out)
        assert claim == tmp_path / "new" / "deeper" / ".model.lock" and claim.is_file()
        capsys.readouterr()
        args = _train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1", *_FEW_STEPS)
        assert _exit_code(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.fullmatch(
            rf"medseg: error: {re.escape(str(out))}: another training run is writing to this folder \(pid "
            rf"{holder.pid} on [^,]+, user [^,]+, per {re.escape(str(claim))}\); wait for it to end or give "
            "another folder",
            err[0]), err
        assert not out.exists() and claim.is_file()  # nothing of the refused run; the holder's claim untouched
        assert _exit_code([*args, "--overwrite"]) == 1 and _exit_code([*args, "--resume"]) == 1
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    assert not claim.exists() and not (tmp_path / "new").exists()  # the holder's folders, made for the claim, went

    claim.parent.mkdir(parents=True)
    claim.write_text("pid 1 on a machine that has gone\n")  # left by a run killed outright: no lock held on it
    assert _exit_code(args) == 0
    assert load_package(out).config["training"]["epochs_run"] == 1
    assert not claim.exists() and sorted(p.name for p in claim.parent.iterdir()) == ["model"]


def test_a_refused_run_leaves_no_folders_made_for_its_claim(tmp_path, capsys, config_file):
    images, labels = write_set(tmp_path / "data", count=2)
    (labels / sorted(p.name for p in labels.iterdir())[0]).unlink()  # an image without its label
    out = tmp_path / "a" / "b" / "model"
    assert _exit_code(_train_cli(images, labels, out, "-c", str(config_file))) == 1
    assert "medseg: error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("oom", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB"),
                                 RuntimeError("MPS backend out of memory (MPS allocated: 17.53 GiB, other "
                                              "allocations: 1.02 GiB). Tried to allocate 1.50 GiB on private pool.")],
                         ids=["cuda", "mps"])
def test_out_of_gpu_memory_in_a_training_step_is_one_line_and_the_run_resumes(tiny_set, tmp_path, config_file,
                                                                                 capsys, monkeypatch, oom):
    """A training step out of GPU memory (another job's, or a batch too large) ended in torch's traceback. It is one
    line naming the run, the batch and the ways on; the checkpoint of the epochs done stays and --resume goes on.
    (Simulated: the error is raised where a CUDA step raises it.)"""
    import medseg.train as train
    from medseg.checkpoint import checkpoint_epoch
    from tests.conftest import failing_on_call

    real = train._train_epoch
    second_epoch_runs_out, _ = failing_on_call(real, 2, oom)  # Apple MPS's: a plain RuntimeError (a traceback)

    out = tmp_path / "model"
    monkeypatch.setattr(train, "_train_epoch", second_epoch_runs_out)
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "2", *_FEW_STEPS)) == 1
    config = json.loads(config_file.read_text())
    size = "×".join(map(str, config["training"].get("patch_size") or config["inference"]["roi_size"]))
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out}: out of GPU memory on cpu in a training step of {config['training']['batch_size']} "
        f"{size} patches; lower training.batch_size or training.patch_size, free GPU memory (other processes may "
        "hold it), or train on the CPU (--device cpu); --resume goes on after epoch 1")
    assert checkpoint_epoch(out) == 1 and not (out / "model.json").exists()
    monkeypatch.setattr(train, "_train_epoch", real)
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "2", "--resume",
                                 *_FEW_STEPS)) == 0
    assert json.loads((out / "model.json").read_text())["training"]["best_epoch"] in (1, 2)


def test_a_stop_before_the_first_epoch_ended_says_nothing_was_written(tiny_set, tmp_path, capsys, config_file,
                                                                       monkeypatch):
    """A Ctrl-C while the cases were read, or in the first epoch, printed only click's "Aborted."."""
    import medseg.train as training
    import medseg.training_cases as reading

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(reading, "load_cases", interrupted)  # imported by the command when it runs
        assert _exit_code(args) == 130
    # its one line, the last (no "Aborted." after it)
    assert capsys.readouterr().err.endswith(f"{out}: stopped while the cases were read; nothing was written\n")
    assert not out.exists()
    with monkeypatch.context() as patched:
        patched.setattr(training, "_train_epoch", interrupted)
        assert _exit_code(args) == 130
    assert capsys.readouterr().err.endswith(f"{out}: stopped before the first epoch ended; nothing was written\n")
    assert not out.exists()


def test_an_output_folder_under_a_link_leading_nowhere_is_refused_and_its_target_not_made(tmp_path, capsys):
    """``-o results/model`` with ``results`` a link to an unmounted disk: the claim on the folder, made beside its
    real path, made the link's missing target (``unmounted/results``), so the link led somewhere and the run trained
    and wrote its package there, on the wrong disk. The command line refuses the link (exit 2, as infer's -o), and
    the claim makes nothing through it, for the library's callers."""
    from medseg.io.folder_claim import claimed

    images, labels = write_set(tmp_path / "set", count=2)
    link = tmp_path / "results"
    link.symlink_to(tmp_path / "unmounted" / "results")
    out = link / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"medseg train: error: -o {out}: {link} is a symbolic link to {tmp_path / 'unmounted' / 'results'}, which "
        "does not exist; restore its target or remove the link, or give another folder for the outputs. Try 'medseg "
        "train --help'.")
    with claimed(out, "training run"):
        assert not (tmp_path / "unmounted").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "set"]
