import pytest
import torch
from conftest import set_tf32_settings, tf32, tf32_settings

from medseg.inference import Segmenter, context_stack
from medseg.package import load_package


def test_context_stack_repeats_edges_and_orders_channels():
    volume = torch.arange(5, dtype=torch.float32).reshape(1, 1, 1, 5).expand(1, 2, 2, 5).contiguous()
    stacked = context_stack(volume, 0, 5, context=1)
    assert stacked.shape == (3, 2, 2, 5)
    # channel k holds slice s + k - 1, clamped at the ends
    assert stacked[:, 0, 0, :].tolist() == [[0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 4]]
    assert torch.equal(context_stack(volume, 1, 3, context=0), volume[..., 1:3])


def test_slab_size_does_not_change_the_result(make_package):
    package = load_package(make_package())
    image = torch.randn(1, 45, 38, 9)
    whole = Segmenter(package, device="cpu", batch_size=7).predict(image)
    per_slice = Segmenter(package, device="cpu", batch_size=3, slab_voxels=1).predict(image)
    assert whole.dtype == torch.uint8 and whole.shape == (45, 38, 9)
    assert torch.equal(whole, per_slice)


def test_slicing_axis_is_respected(make_package):
    """A model slicing along axis 0 sees (Y, Z) planes: tiles are counted per slice of axis 0."""
    config_path = make_package(inference={"slice_axis": 0, "roi_size": [16, 16], "overlap": 0.0,
                                          "blend": "constant", "context_slices": 0})
    segmenter = Segmenter(load_package(config_path), device="cpu")
    labels = segmenter.predict(torch.randn(1, 5, 32, 16))
    assert labels.shape == (5, 32, 16)
    assert segmenter.window_net.tiles == 5 * 2  # 5 slices of 32x16, two 16x16 tiles each


def test_progress_reports_every_slice(make_package):
    seen = []
    Segmenter(load_package(make_package()), device="cpu", slab_voxels=40 * 40 * 4 * 3).predict(
        torch.randn(1, 40, 40, 10), progress=seen.append
    )
    assert sum(seen) == 10 and len(seen) == 4  # slabs of 3 slices


@pytest.mark.parametrize(("roi", "batch", "expected"), [
    (40, 4, [4] * 7 + [2]),  # one tile a slice: a pass of 4 tiles is 4 slices
    (32, 6, None),  # four 32×32 tiles a 40×40 slice: a pass of 6 tiles is 1.5 slices
])
def test_progress_advances_with_each_forward_pass_not_each_slab(make_package, roi, batch, expected):
    """A 30-slice volume of small planes is one slab: its bar stood at 0 until the slab was done, then jumped to
    30. It is told the whole slices of each forward pass now, in order, as many as there are in all."""
    package = load_package(make_package(inference={"slice_axis": 2, "roi_size": [roi, roi], "overlap": 0.25,
                                                   "blend": "gaussian", "context_slices": 0}))
    segmenter = Segmenter(package, device="cpu", batch_size=batch)
    image = torch.randn(1, 40, 40, 30)
    seen = []
    labels = segmenter.predict(image, progress=seen.append)
    assert segmenter.slab_slices((40, 40)) >= 30 and sum(seen) == 30 and min(seen) >= 1
    tiles_a_slice = 1 if roi == 40 else 4
    assert segmenter.window_net.tiles == 30 * tiles_a_slice == 30 * segmenter._tiles_a_plane((40, 40))
    if expected is not None:
        assert seen == expected
    else:  # 120 tiles in 20 passes of 6: slices 1, 3, 4, 6, ... told as each pass ends
        running = [sum(seen[:i + 1]) for i in range(len(seen))]
        assert len(seen) == 20 and running == [6 * (n + 1) // 4 for n in range(20)]
    assert torch.equal(labels, segmenter.predict(image))
    assert segmenter.window_net.on_tiles is None



def test_progress_of_a_view_ensemble_with_flips_ends_at_its_slices(make_package):
    """Three slicing axes, a flip TTA and several tiles a plane of unequal sides, in slabs of a few slices: each
    axis' tiles are counted by its own plane (as MONAI tiles it), and the bar ends at the slices of all three axes,
    never past them."""
    package = load_package(make_package(inference={"slice_axis": [0, 1, 2], "roi_size": [16, 16], "overlap": 0.3,
                                                   "blend": "gaussian", "context_slices": 0, "flip_tta": [0, 1]}))
    segmenter = Segmenter(package, device="cpu", batch_size=5, slab_voxels=33 * 20 * 4 * 2)
    shape = (33, 20, 9)
    seen = []
    segmenter.predict(torch.randn(1, *shape), progress=seen.append)
    planes = {0: (20, 9), 1: (33, 9), 2: (33, 20)}
    assert sum(seen) == segmenter.slices_to_label((1, *shape)) == 33 + 20 + 9 and min(seen) >= 1
    assert segmenter.window_net.tiles == 3 * sum(shape[axis] * segmenter._tiles_a_plane(planes[axis])
                                                 for axis in range(3))
    assert [segmenter._tiles_a_plane(planes[axis]) for axis in range(3)] == [2, 3, 6]
    assert len(seen) > 3 * 3  # told within slabs, not once a slab


def test_slabs_of_a_multi_modal_model_hold_no_more_input_values_than_slab_voxels(make_package):
    """A model of 4 modalities with 1 context slice each side takes 12 input channels for its 4 classes: a slab is
    sized by the larger, so its stacked input stays within ``slab_voxels`` values (sized by the classes alone it
    held 3 times as many); the labels do not depend on it."""
    config = make_package(modalities=["a", "b", "c", "d"],
                          architecture={"type": "unet2d", "in_channels": 12, "n_classes": 4, "base_width": 4,
                                        "depth": 2, "dropout": 0.0, "norm": "batch"},
                          inference={"slice_axis": 2, "roi_size": [32, 32], "overlap": 0.25, "blend": "gaussian",
                                     "context_slices": 1})
    package = load_package(config)
    seen = []
    image = torch.randn(4, 40, 40, 10)
    segmenter = Segmenter(package, device="cpu", slab_voxels=40 * 40 * 12 * 3)
    labels = segmenter.predict(image, progress=seen.append)
    assert segmenter.slab_slices((40, 40)) == 3 and seen == [3, 3, 3, 1]  # 40×40×3 slices × 12 channels
    assert torch.equal(labels, Segmenter(package, device="cpu", slab_voxels=1 << 24).predict(image))

def test_bf16_on_cpu_is_opt_in_and_agrees_with_fp32(phantom_package, caplog):
    """bf16 on a CPU that emulates it (no AVX-512 BF16 or AMX) is several times slower than fp32: a warning says so."""
    from medseg.device import native_bf16
    from medseg.synthetic import make_phantom

    phantom = make_phantom((64, 64, 6), seed=21, oblique=False)
    image = torch.from_numpy(phantom.image)[None]
    image = (image - image.mean()) / image.std()
    with caplog.at_level("WARNING", logger="medseg.inference"):
        fp32 = Segmenter(phantom_package, device="cpu")
        assert not caplog.records
        bf16 = Segmenter(phantom_package, device="cpu", precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    emulated = ("precision='bf16': this CPU has no AVX-512 BF16 or AMX, so bf16 runs emulated, several times slower "
                "than fp32; use fp32 (or auto)")
    assert [r.getMessage() for r in caplog.records] == ([] if native_bf16("cpu") else [emulated])
    a, b = fp32.predict(image), bf16.predict(image)
    assert (a == b).float().mean() > 0.99


def test_argmax_labels_matches_torch_argmax_including_ties():
    from medseg.inference import argmax_labels

    torch.manual_seed(0)
    scores = torch.randn(5, 7, 9, 3)
    scores[2, 0, 0, 0] = scores[4, 0, 0, 0] = 10.0  # a tie: the first class wins, as with torch.argmax
    labels = argmax_labels(scores)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels, torch.argmax(scores, 0).to(torch.uint8))
    assert labels[0, 0, 0] == 2


class _ThresholdNet(torch.nn.Module):
    """Labels a pixel 1 where the image is positive; keeps the tiles it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.tiles = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tiles.append(x.clone())
        background = torch.zeros_like(x[:, :1])
        return torch.cat([background, 10 * x[:, :1], background - 10, background - 10], dim=1)


def test_planes_smaller_than_the_tile_are_padded_like_training_patches(make_package):
    """Training centres a small plane in its patch with repeated edges; inference must show it the same way."""
    import numpy as np

    from medseg.augment import SliceAugment

    net = _ThresholdNet()
    segmenter = Segmenter(load_package(make_package()), device="cpu", net=net)  # roi 32x32
    torch.manual_seed(3)
    image = torch.randn(1, 21, 27, 4)
    labels = segmenter.predict(image)
    tiles = torch.cat(net.tiles)
    assert tiles.shape == (4, 1, 32, 32)  # one whole tile per slice, not a 21x27 one
    assert torch.equal(labels, (image[0] > 0).to(torch.uint8))  # padding removed, pixels in place
    # the tile of slice 0 is exactly the training patch of that slice without random transforms
    patch, _ = SliceAugment((32, 32), {"prob": 0.0}, seed=0)([image[..., 0]], [torch.zeros(21, 27)],
                                                             np.random.default_rng(0))
    torch.testing.assert_close(tiles[0], patch[0], atol=1e-4, rtol=0)  # bilinear warp at whole pixels


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exception, on purpose
def test_a_sigterm_swallowed_by_a_callback_still_stops_at_the_next_slab(phantom_segmenter):
    """A signal handler's exception raised inside a weak-reference callback is printed as "Exception ignored" and
    dropped: a SIGTERM landing there let the run go on to the end (exit 0, not 143). It is recorded, and the slab
    loop raises it again."""
    import gc
    import signal
    import weakref

    from medseg import stopping
    from medseg.cli import _stop_on_sigterm, _Terminated

    before = {number: signal.getsignal(number) for number in stopping.stop_signals()}  # SIGHUP's too
    try:
        _stop_on_sigterm()

        class Thing:
            pass

        def callback(_):
            signal.raise_signal(signal.SIGTERM)
            sum(range(100))  # bytecode for the handler to run in: its exception ends here, dropped

        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing
        gc.collect()
        assert ref() is None
        with pytest.raises(_Terminated):
            phantom_segmenter.predict(torch.zeros(1, 64, 64, 6))
    finally:
        stopping.clear()
        for number, handler in before.items():
            signal.signal(number, handler)


# what Apple MPS raises: a plain RuntimeError, not torch's OutOfMemoryError
MPS_OUT_OF_MEMORY = ("MPS backend out of memory (MPS allocated: 17.53 GiB, other allocations: 1.02 GiB, max allowed: "
                     "18.13 GiB). Tried to allocate 2.00 GiB on private pool. Use PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0 "
                     "to disable upper limit for memory allocations (may cause system failure).")


class _SmallGPU(torch.nn.Module):
    """The 2D network on a GPU that has room for ``room`` tiles per forward pass: more raise torch's out-of-memory
    error, or ``error`` (put inside the segmenter's ``SliceNet``, as the real error arises inside the network)."""

    def __init__(self, net: torch.nn.Module, room: int, error: BaseException | None = None) -> None:
        super().__init__()
        self.net, self.room, self.batches, self.error = net, room, [], error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.room:
            raise self.error or torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def test_out_of_apple_mps_memory_is_backed_off_as_out_of_gpu_memory(make_package, caplog):
    """Apple MPS runs out of memory with a plain RuntimeError ("MPS backend out of memory ..."), not torch's
    OutOfMemoryError: on a Mac, a batch too large for the GPU failed the case as an unexpected error instead of being
    tried again with fewer tiles. It is backed off, and the labels are a clean run's; other RuntimeErrors are not."""
    from medseg.inference import is_out_of_memory, out_of_memory

    package = load_package(make_package())
    image = torch.randn(1, 40, 40, 8, generator=torch.Generator().manual_seed(3))
    expected = Segmenter(package, device="cpu", batch_size=4).predict(image)
    segmenter = Segmenter(package, device="cpu", batch_size=16)
    small = _SmallGPU(segmenter.window_net.net, room=5, error=RuntimeError(MPS_OUT_OF_MEMORY))
    segmenter.window_net.net = small
    with caplog.at_level("WARNING", logger="medseg.inference"):
        labels = segmenter.predict(image)
    assert torch.equal(labels, expected) and max(small.batches[-3:]) <= 5
    assert caplog.messages[0].startswith(f"cpu: out of GPU memory with {small.batches[0]} tiles per forward pass")
    assert is_out_of_memory(RuntimeError(MPS_OUT_OF_MEMORY)) and out_of_memory(RuntimeError(MPS_OUT_OF_MEMORY))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError(MPS_OUT_OF_MEMORY))


@pytest.mark.parametrize("inference", [{}, {"slice_axis": [0, 1, 2]}, {"flip_tta": [0]}],
                         ids=["one axis", "view ensemble", "flip TTA"])
def test_out_of_gpu_memory_halves_the_tiles_per_pass_and_keeps_the_result(make_package, caplog, inference):
    """A GPU shared with other jobs: the slab is tried again with half the tiles of the pass that failed, and the
    smaller batch is kept for what follows; the labels are those of a run that asked for that batch from the start,
    and the tiles counted for the sidecar are those evaluated."""
    from tests.conftest import tiny_config

    package = load_package(make_package(inference={**tiny_config()["inference"], **inference}))
    image = torch.randn(1, 40, 40, 8, generator=torch.Generator().manual_seed(3))
    reference = Segmenter(package, device="cpu", batch_size=4)
    expected = reference.predict(image)
    segmenter = Segmenter(package, device="cpu", batch_size=16)
    small = _SmallGPU(segmenter.window_net.net, room=5)
    segmenter.window_net.net = small
    with caplog.at_level("WARNING", logger="medseg.inference"):
        labels = segmenter.predict(image)
    assert torch.equal(labels, expected)
    assert segmenter.window_net.tiles == reference.window_net.tiles  # failed passes not counted
    first = small.batches[0]
    halved = [first // 2, first // 4] if first // 2 > 5 else [first // 2]
    assert segmenter.batch_size == halved[-1] and max(small.batches[-3:]) <= 5
    told = [first, *halved]
    assert caplog.messages == [f"cpu: out of GPU memory with {a} tiles per forward pass; going on with {b} "
                               "(batch_size=... sets it)" for a, b in zip(told, told[1:])]
    caplog.clear()
    segmenter.predict(image)  # the next volume starts with the smaller batch
    assert not caplog.messages


def test_out_of_gpu_memory_with_one_tile_is_one_line_naming_the_input(make_package, tmp_path, capsys):
    """In a batch, the line names the input (a bare device message said nothing of which case failed)."""
    import nibabel as nib
    import numpy as np

    from medseg.cli import main

    package = make_package()
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(np.random.default_rng(1).normal(size=(40, 40, 8)).astype(np.float32), np.eye(4)),
                 str(tmp_path / f"{name}.nii.gz"))
    real_init = Segmenter.__init__

    def on_a_full_gpu(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.window_net.net = _SmallGPU(self.window_net.net, room=0)

    import medseg.inference

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(medseg.inference.Segmenter, "__init__", on_a_full_gpu)
        with pytest.raises(SystemExit) as exit_info:
            main(["infer", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "-m", str(package), "-o",
                  str(tmp_path / "out"), "--batch-size", "2", "--device", "cpu"])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medseg: error:")]
    assert lines == [f"medseg: error: {tmp_path / name}.nii.gz: cpu: out of GPU memory even with one 32×32 tile per "
                     "forward pass; free GPU memory (other processes may hold it), or run with --device cpu"
                     for name in ("a", "b")]
    # no segmentation: each failed input of the batch has its failure record, and nothing else is there
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_failed.json", "b_failed.json"]


def test_out_of_gpu_memory_placing_the_network_is_one_line(tmp_path, capsys, monkeypatch):
    """A GPU that other processes fill may have no room for the weights themselves: that was torch's traceback from
    the segmenter's construction; it is one line naming the device, its free memory and the ways on."""
    import nibabel as nib
    import numpy as np

    import medseg.package
    from medseg.cli import main

    nib.save(nib.Nifti1Image(np.zeros((40, 40, 8), np.float32), np.eye(4)), str(tmp_path / "a.nii.gz"))

    def full_gpu(self, device=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")

    monkeypatch.setattr(medseg.package.ModelPackage, "build_network", full_gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "a GPU")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 << 29, 80 << 30))
    with pytest.raises(SystemExit) as exit_info:
        main(["infer", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"), "--device", "cuda"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "medseg: error: cuda:0: out of GPU memory placing model phantom's network on it (0.5 of 80 GiB free); free "
        "GPU memory (other processes may hold it), or run with --device cpu")
    assert not (tmp_path / "out").exists()


def test_out_of_gpu_memory_in_monai_blending_weights_is_backed_off(make_package, caplog):
    """MONAI re-raises an error in its blending-weight map as a plain RuntimeError ("Seems to be OOM") whose cause
    is torch's out-of-memory error: that was not recognised, and the case failed with MONAI's two-line message.
    It is now backed off like any other out-of-memory error, and the labels are a clean run's."""
    import monai.inferers.utils

    package = load_package(make_package())
    image = torch.randn(1, 40, 40, 8, generator=torch.Generator().manual_seed(4))
    expected = Segmenter(package, device="cpu", batch_size=8).predict(image)
    from tests.conftest import failing_on_call

    full_once, calls = failing_on_call(monai.inferers.utils.compute_importance_map, 1,
                                       torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))

    segmenter = Segmenter(package, device="cpu", batch_size=16)
    # an earlier volume's last pass had one tile: not the pass that failed here (the map comes before the network),
    # so the back-off starts from the batch, not from that one tile ("even with one tile" at once)
    segmenter.window_net.last_batch = 1
    with pytest.MonkeyPatch.context() as patch, caplog.at_level("WARNING", logger="medseg.inference"):
        patch.setattr(monai.inferers.utils, "compute_importance_map", full_once)
        labels = segmenter.predict(image)
    assert len(calls) >= 2 and torch.equal(labels, expected)
    assert caplog.messages == ["cpu: out of GPU memory with 16 tiles per forward pass; going on with 8 "
                               "(batch_size=... sets it)"]


def test_out_of_memory_is_recognised_through_its_cause_not_through_a_suppressed_context():
    from medseg.inference import out_of_memory

    def raised(make):
        try:
            make()
        except Exception as error:  # the error is what is looked at
            return error

    def oom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    def wrapped():  # as MONAI wraps its blending-weight map's error
        try:
            oom()
        except Exception as error:
            raise RuntimeError("Seems to be OOM") from error

    def another():  # a different error while the out-of-memory error was handled, its context suppressed
        try:
            oom()
        except Exception:
            raise ValueError("a shape mismatch") from None

    assert out_of_memory(raised(oom)) and out_of_memory(raised(wrapped))
    assert not out_of_memory(raised(another)) and not out_of_memory(ValueError("x"))


def test_an_error_that_is_not_out_of_memory_is_not_retried(make_package):
    """Only out-of-memory errors (or errors caused by one) are backed off; others fail at once, unchanged."""
    package = load_package(make_package())
    segmenter = Segmenter(package, device="cpu", batch_size=16)
    calls = []

    class Broken(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    segmenter.window_net.net = Broken()
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        segmenter.predict(torch.randn(1, 40, 40, 8))
    assert len(calls) == 1 and segmenter.batch_size == 16


@pytest.mark.parametrize("inside, last_batch, expected", [
    (True, 8, ("cuda:0", 4, "cpu: out of GPU memory with 8 tiles per forward pass; going on with 4")),
    (False, 8, ("cpu", 16, "cpu: out of GPU memory outside the network; going on with each slab held in CPU "
                           "memory (only its tiles on the GPU)")),
    (True, 1, ("cpu", 1, "cpu: out of GPU memory with one tile per forward pass; going on with each slab held")),
], ids=["network ran out", "stitching ran out", "one tile already"])
def test_back_off_gives_up_what_ran_out(make_package, caplog, inside, last_batch, expected):
    """Which of the two a GPU gives up first: out of memory inside the network, the tiles per forward pass are
    halved; outside it (the slab, its blended logits and weights, held on the GPU), the slab is held in CPU memory
    instead, which halving the tiles would not have helped. (The decision alone: the devices are named, not used;
    ``tests/test_cuda.py`` runs both on a real GPU.)"""
    segmenter = Segmenter(load_package(make_package()), device="cpu", batch_size=16 if last_batch > 1 else 1)
    segmenter.stitch_device = torch.device("cuda:0")
    segmenter.window_net.ran_out, segmenter.window_net.last_batch = inside, last_batch
    with caplog.at_level("WARNING", logger="medseg.inference"):
        segmenter._back_off()
    stitch, batch, message = expected
    assert str(segmenter.stitch_device) == stitch and segmenter.batch_size == batch
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith(message)
    assert segmenter.inferer.device == segmenter.stitch_device  # the rebuilt inferer stitches there
    # held in CPU memory and one tile already: nothing is left to give up
    segmenter.stitch_device, segmenter.batch_size, segmenter.window_net.last_batch = torch.device("cpu"), 1, 1
    from medseg.errors import DeviceError

    with pytest.raises(DeviceError, match="even with one 32×32 tile per forward pass"):
        segmenter._back_off()


@pytest.mark.parametrize("settings, message", [
    ({"overlap": 1.0}, r"tile overlap 1.0 \(given\): give a fraction from 0 to below 1"),
    ({"overlap": float("nan")}, "tile overlap nan"),
    ({"batch_size": 0}, "batch size 0: give a whole number of tiles per forward pass, 1 or more"),
    ({"batch_size": "x"}, "batch size 'x': give a whole number"),  # Python's own ValueError before
    ({"batch_size": 2.5}, "batch size 2.5: give a whole number"),  # taken as 2
    ({"batch_size": True}, "batch size True: give a whole number"),
    ({"overlap": "x"}, r"tile overlap 'x' \(given\): give a number"),
])
def test_settings_a_segmenter_cannot_run_are_refused_by_the_library(phantom_package, settings, message):
    """Only the CLI refused them: the library failed in MONAI or in range() ("arg 3 must not be zero")."""
    from medseg.errors import InputError

    with pytest.raises(InputError, match=message):
        Segmenter(phantom_package, device="cpu", **settings)



def test_a_segmenter_takes_a_torch_device_as_its_name(phantom_package, monkeypatch):
    """``device=torch.device("cpu")`` from a notebook failed with "'torch.device' object has no attribute 'strip'"."""
    from medseg.errors import DeviceError

    assert Segmenter(phantom_package, device=torch.device("cpu")).device_choice.device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as raised:
        Segmenter(phantom_package, device=torch.device("cuda", 1))
    assert str(raised.value).startswith("device='cuda:1': CUDA is not available on this machine")


def test_what_a_segmenter_cannot_load_or_label_is_one_medseg_error(phantom_segmenter):
    """``Segmenter(None)`` failed on "'NoneType' object has no attribute 'inference'", and ``predict`` on an image of
    two channels with torch's convolution error."""
    from medseg.errors import InputError, ModelPackageError

    with pytest.raises(ModelPackageError) as raised:
        Segmenter(None, device="cpu")
    assert str(raised.value) == ("a NoneType given as the model package; give a shipped model's name, a package folder "
                                 "or a loaded medseg.package.ModelPackage")
    for shape in ((2, 40, 36, 6), (40, 36, 6)):
        with pytest.raises(InputError) as raised:
            phantom_segmenter.predict(torch.zeros(shape))
        assert str(raised.value) == f"a model-space image of shape {shape}; model phantom takes (1, X, Y, Z)"


def test_an_overlap_a_package_made_in_memory_gives_is_named_as_the_packages(phantom_package):
    from medseg.errors import InputError
    from medseg.package import ModelPackage

    config = {**phantom_package.config, "inference": {**phantom_package.config["inference"], "overlap": 1.0}}
    with pytest.raises(InputError, match=r"tile overlap 1.0 \(model phantom's inference.overlap\)"):
        Segmenter(ModelPackage(phantom_package.path, config), device="cpu")


def test_a_phantom_needs_three_sizes_and_names_what_a_small_grid_lacks():
    from medseg.errors import InputError
    from medseg.synthetic import make_phantom

    with pytest.raises(InputError, match=r"phantom shape \(32, 32\): give three sizes"):
        make_phantom(shape=(32, 32))
    assert make_phantom(shape=(40, 40, 16)).missing == []
    assert make_phantom(shape=(2, 2, 2)).missing == ["ellipsoid", "box", "tube"]


def test_a_segmenter_takes_a_models_name_or_folder(phantom_package, phantom_segmenter):
    """``Segmenter("phantom")`` failed with "'str' object has no attribute 'inference'" (scoring takes a name)."""
    from pathlib import Path

    from medseg.errors import ModelPackageError

    image = torch.randn(1, 40, 36, 6, generator=torch.Generator().manual_seed(3))
    expected = phantom_segmenter.predict(image)
    for given in ("phantom", Path(phantom_package.path)):
        named = Segmenter(given, device="cpu", batch_size=8)
        assert named.package.sha256 == phantom_package.sha256
        assert torch.equal(named.predict(image), expected)
    with pytest.raises(ModelPackageError, match="no-such-model: no such model folder or shipped model"):
        Segmenter("no-such-model", device="cpu")


# the speed benchmark's volumes (two slices, a few for a model of several) are unlike the shipped models' training
# volumes, which its tests do not test: that warning of its segmenting is left out of Python's warnings
BENCHMARK_VOLUMES = pytest.mark.filterwarnings(
    r"ignore:.*unlike the (volumes|images) model (phantom|hippocampus) was trained on:medseg.errors.MedsegWarning")


@BENCHMARK_VOLUMES
def test_the_speed_benchmark_times_the_tiles_the_pipeline_evaluates(tmp_path, monkeypatch, capsys):
    """benchmarks/infer_speed.py on planes smaller than the model's tile: the sliding window pads them to the tile,
    so the bare forward it compares with is timed (and its FLOPs counted) on tiles of the tile's size too (it had
    timed 64×64 tiles against the pipeline's 96×96 ones)."""
    import importlib.util
    import json

    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as a script run: its folder on sys.path
    spec = importlib.util.spec_from_file_location("infer_speed", REPO / "benchmarks" / "infer_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "run_with_peak_rss", lambda command: 0.0)  # not the whole command's run here
    figures = tmp_path / "figures.json"
    monkeypatch.setattr("sys.argv", ["infer_speed.py", "--size", "64", "--slices", "2", "--repeats", "1",
                                     "--json", str(figures)])
    module.main()
    record = json.loads(figures.read_text())
    assert record["tile_size"] == [96, 96]
    assert record["tiles"] == 2
    assert record["volume"] == [64, 64, 2]


@BENCHMARK_VOLUMES
def test_the_speed_benchmarks_whole_slice_forward_is_on_the_planes_the_network_sees(tmp_path, monkeypatch):
    """A package that resamples and slices along another axis (hippocampus: 1 mm, coronal planes) gives the network
    other planes than the input's slices; the whole-slice forward had been timed on the input's slices (3 of 48×48
    here) all the same. It is timed on the planes of the model-space image the pipeline labels: the 48×48×3
    phantom of 0.8×0.8×2.5 mm is 39×39×6 voxels at 1 mm, so 39 coronal planes of 39×6, padded to the 40×40 tile as
    the sliding window pads them."""
    import importlib.util
    import json

    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as a script run: its folder on sys.path
    spec = importlib.util.spec_from_file_location("infer_speed", REPO / "benchmarks" / "infer_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "run_with_peak_rss", lambda command: 0.0)  # not the whole command's run here
    timed, labelled = [], []
    forward, predict = module.time_forward, Segmenter.predict
    monkeypatch.setattr(module, "time_forward", lambda segmenter, tiles, shape, repeats=2: timed.append(
        (tiles, tuple(shape))) or forward(segmenter, tiles, shape, repeats))
    monkeypatch.setattr(Segmenter, "predict", lambda self, image, progress=None: labelled.append(
        tuple(image.shape[1:])) or predict(self, image, progress))
    figures = tmp_path / "figures.json"
    monkeypatch.setattr("sys.argv", ["infer_speed.py", "--model", "hippocampus", "--size", "48", "--slices", "3",
                                     "--repeats", "1", "--json", str(figures)])
    module.main()
    record = json.loads(figures.read_text())
    assert labelled[-1] == (39, 39, 6)  # the model-space image of the timed pipeline run
    assert timed[-1] == (39, (40, 40)) and timed[0] == (record["tiles"], (40, 40))
    assert record["whole_slice_planes"] == [[39, [40, 40]]]


def test_the_speed_benchmark_names_a_model_it_cannot_load_in_one_line(monkeypatch, capsys):
    """benchmarks/infer_speed.py --model with a name that is no package ended in a traceback."""
    import importlib.util

    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as a script run: its folder on sys.path
    spec = importlib.util.spec_from_file_location("infer_speed", REPO / "benchmarks" / "infer_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr("sys.argv", ["infer_speed.py", "--model", "no-such-model", "--slices", "1", "--size", "64"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1
    assert len(err) == 1 and err[0].startswith("error: no-such-model: no such model folder or shipped model")


@BENCHMARK_VOLUMES
def test_the_speed_benchmark_runs_the_command_on_its_own_threads(tmp_path, monkeypatch):
    """benchmarks/infer_speed.py --threads N: the in-process figures and the `medseg infer` command it compares them
    with run on the same number of torch threads."""
    import importlib.util
    import json

    import torch
    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as a script run: its folder on sys.path
    spec = importlib.util.spec_from_file_location("infer_speed", REPO / "benchmarks" / "infer_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands = []
    monkeypatch.setattr(module, "run_with_peak_rss", lambda command: commands.append(command) or 0.0)
    figures = tmp_path / "figures.json"
    monkeypatch.setattr("sys.argv", ["infer_speed.py", "--size", "64", "--slices", "2", "--repeats", "1",
                                     "--threads", "1", "--json", str(figures)])
    threads = torch.get_num_threads()
    try:
        module.main()
    finally:
        torch.set_num_threads(threads)
    assert json.loads(figures.read_text())["threads"] == 1
    assert commands[0][-2:] == ["--threads", "1"]


def test_a_segmenter_shown_in_a_notebook_names_its_model_and_device(phantom_package):
    """A Segmenter as a notebook cell's value was `<medseg.inference.Segmenter object at 0x7f…>`: now the model it
    runs, the device and precision it runs them in, and the tile batch."""
    segmenter = Segmenter(phantom_package, device="cpu", precision="fp32", batch_size=8)
    assert repr(segmenter) == (f"Segmenter(model='phantom', sha256='{phantom_package.sha256[:12]}…', device='cpu', "
                               "precision='fp32', batch_size=8)")


@pytest.mark.parametrize("precision, tf32_inside", [("fp32", False), ("bf16", True)])
def test_fp32_inference_runs_without_tf32_and_puts_the_flags_back(make_package, precision, tf32_inside):
    """``--precision fp32`` is recorded as fp32: cuDNN's TF32 convolutions (on by default in torch, and what an
    Ampere or later GPU runs a float32 convolution as: a 10-bit mantissa) are off while the network runs, and the
    caller's flags are as they were afterwards; the other precisions leave them alone."""
    segmenter = Segmenter(load_package(make_package()), device="cpu", precision=precision)
    seen = []
    segmenter.net.register_forward_hook(
        lambda *_: seen.append(tf32_settings()))
    before = tf32_settings()
    set_tf32_settings(tf32(True))
    try:
        segmenter.predict(torch.randn(1, 20, 20, 3))
        assert seen and set(seen) == {tf32(tf32_inside)}
        assert tf32_settings() == tf32(True)
    finally:
        set_tf32_settings(before)


def test_fp32_inference_in_two_threads_runs_without_tf32_and_puts_the_flags_back(make_package):
    """Two fp32 Segmenters in two threads (a notebook's or a service's pool): the one that ends first does not turn
    TF32 back on under the other's network, nor does the other, ending last, leave the caller's TF32 off."""
    import threading

    package = load_package(make_package())
    first, second = (Segmenter(package, device="cpu", precision="fp32", batch_size=1) for _ in range(2))
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()
    seen = {"first": [], "second": []}

    def hook(name, entered, wait_for):
        def record(*_):
            seen[name].append(tf32_settings())
            if len(seen[name]) == 1:
                entered.set()
                wait_for.wait(timeout=30)
        return record

    first.net.register_forward_hook(hook("first", first_in, second_in))
    second.net.register_forward_hook(hook("second", second_in, first_done))
    before = tf32_settings()
    set_tf32_settings(tf32(True))
    try:
        def run_first():
            first.predict(torch.randn(1, 20, 20, 3))
            first_done.set()

        threads = [threading.Thread(target=run_first)]
        threads[0].start()
        assert first_in.wait(timeout=30)
        threads.append(threading.Thread(target=second.predict, args=(torch.randn(1, 20, 20, 3),)))
        threads[1].start()
        for thread in threads:
            thread.join(timeout=60)
        assert first_done.is_set() and len(seen["second"]) > 1  # the second ran on after the first had ended
        assert set(seen["first"]) | set(seen["second"]) == {tf32(False)}
        assert tf32_settings() == tf32(True)
    finally:
        set_tf32_settings(before)


@pytest.mark.skipif(not hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"),
                    reason="this torch has no fp32_precision settings (before torch 2.9)")
def test_fp32_inference_after_the_caller_set_torchs_fp32_precision_runs_and_puts_it_back(make_package):
    """A caller who turned TF32 off as torch's documentation now says (``torch.backends.cudnn.conv.fp32_precision =
    "ieee"``) had every fp32 pass fail with torch's RuntimeError on mixing the two APIs: the old flag
    ``cudnn.allow_tf32`` was read to be put back. The settings are read and set as torch now has them."""
    conv, matmul, rnn = torch.backends.cudnn.conv, torch.backends.cuda.matmul, torch.backends.cudnn.rnn
    before = conv.fp32_precision, matmul.fp32_precision, rnn.fp32_precision
    conv.fp32_precision, matmul.fp32_precision = "tf32", "tf32"
    segmenter = Segmenter(load_package(make_package()), device="cpu", precision="fp32")
    seen = []
    segmenter.net.register_forward_hook(lambda *_: seen.append((conv.fp32_precision, matmul.fp32_precision)))
    try:
        rnn.fp32_precision = "ieee"  # as the new API lets one part differ from the other
        labels = segmenter.predict(torch.randn(1, 20, 20, 3))
        assert tuple(labels.shape) == (20, 20, 3)
        assert seen and set(seen) == {("ieee", "ieee")}
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    finally:
        conv.fp32_precision, matmul.fp32_precision, rnn.fp32_precision = before


@pytest.mark.parametrize(("workflow", "named"), [
    ([], "--batch-size sets it"),
    (["--in-workflow"], "batch_size: ... in the workflow config sets it"),
], ids=["by hand", "in the workflow"])
def test_a_cohort_step_out_of_gpu_memory_names_the_batch_as_its_user_sets_it(make_package, tmp_path, capsys, caplog,
                                                                              workflow, named):
    """A cohort step that runs as a job of the workflow named its own option (--batch-size) to a user who sets the
    batch in the workflow config (batch_size:, --config batch_size=): it names the config's key there, and the option
    where the step is run by hand."""
    import nibabel as nib
    import numpy as np

    from medseg.cli import main

    package = make_package()
    nib.save(nib.Nifti1Image(np.random.default_rng(1).normal(size=(40, 40, 8)).astype(np.float32), np.eye(4)),
             str(tmp_path / "a.nii.gz"))
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\na\ta.nii.gz\n")
    real_init = Segmenter.__init__

    def on_a_small_gpu(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.window_net.net = _SmallGPU(self.window_net.net, room=5)

    import medseg.inference

    with pytest.MonkeyPatch.context() as patch, caplog.at_level("WARNING", logger="medseg.inference"):
        patch.setattr(medseg.inference.Segmenter, "__init__", on_a_small_gpu)
        with pytest.raises(SystemExit) as exit_info:
            main(["-v", "cohort", "infer", str(sheet), "-o", str(tmp_path / "results"), "-m", str(package), "--device",
                  "cpu", *workflow])
    err = capsys.readouterr().err
    assert exit_info.value.code == 0, err
    told = [line for line in caplog.messages if "out of GPU memory" in line]
    assert told and all(line.endswith(f"({named})") for line in told), told
    assert (tmp_path / "results" / "cases" / "a" / "a_seg.nii.gz").is_file()


def test_the_segmenters_default_batch_is_medsegs_default():
    """The commands take medseg.defaults' batch size (tests/test_defaults.py); the segmenter takes the same."""
    import inspect

    from medseg.defaults import DEFAULT_BATCH_SIZE

    assert inspect.signature(Segmenter).parameters["batch_size"].default == DEFAULT_BATCH_SIZE == 16
