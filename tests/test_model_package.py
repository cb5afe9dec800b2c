"""medseg.model_package: a loaded package's weights checks (hash, fit, values), settings hash and network."""

import json

import pytest
import torch

from medseg.errors import ModelPackageError
from medseg.package import load_package


def test_corrupt_weights_fail_the_hash_check(make_package):
    path = make_package()
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="SHA-256 .* does not match"):
        load_package(path)


def test_truncated_weights_with_matching_hash_are_reported(make_package):
    from medseg.io.atomic import sha256_of

    path = make_package()
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    config = json.loads((path / "model.json").read_text())
    config["weights"]["sha256"] = sha256_of(weights)
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError, match="unreadable safetensors"):
        load_package(path).build_network()


def test_weights_that_do_not_match_the_architecture(make_package):
    from medseg.io.atomic import sha256_of

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["architecture"]["base_width"] = 8
    config["weights"]["sha256"] = sha256_of(path / "weights.safetensors")
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError, match=r"weights\.safetensors: weights do not match the architecture in "
                                                r"model\.json \(\d+ tensors of another shape, e\.g\. "):
        load_package(path)  # from the file's header, before any tensor is loaded
    assert load_package(path, check_hash=False).labels  # a reader of labels alone is not refused
    with pytest.raises(ModelPackageError, match="do not match the architecture"):
        load_package(path, check_hash=False).build_network()


def _rewrite_weights(path, change):
    from safetensors.torch import load_file, save_file

    from medseg.io.atomic import sha256_of

    state = load_file(str(path / "weights.safetensors"))
    change(state)
    save_file(state, str(path / "weights.safetensors"))
    config = json.loads((path / "model.json").read_text())
    config["weights"]["sha256"] = sha256_of(path / "weights.safetensors")
    (path / "model.json").write_text(json.dumps(config))


@pytest.mark.parametrize("value, count", [(float("nan"), "1 NaN or infinite value:"), (float("inf"), "1 NaN")])
def test_weights_with_nan_or_inf_are_refused(make_package, value, count):
    """They used to load, and every voxel came out background with exit 0."""
    path = make_package()
    key = "head.weight"

    def poison(state):
        assert key in state, sorted(state)
        state[key].view(-1)[0] = value

    _rewrite_weights(path, poison)
    # refused where the package is loaded (`medseg models` said "checked", a workflow planned every job), and when
    # the network is built from a package loaded without its checks
    with pytest.raises(ModelPackageError, match=rf"weights.safetensors: tensor {key} holds {count}.* damaged"):
        load_package(path)
    with pytest.raises(ModelPackageError, match=rf"weights.safetensors: tensor {key} holds {count}.* damaged"):
        load_package(path, check_hash=False).build_network()


@pytest.mark.parametrize("dtype, refused", [(torch.int8, "int8"), (torch.bool, "bool"), (torch.float16, None),
                                            (torch.bfloat16, None), (torch.float64, None)])
def test_weights_must_be_floating_point(make_package, dtype, refused):
    """Integer or boolean tensors were silently cast to float; half, bfloat16 and double precision load as float32
    and give the same segmentation as the float32 file to within their rounding."""
    path = make_package()
    reference = load_package(path).build_network()
    _rewrite_weights(path, lambda state: state.update({k: v.to(dtype) for k, v in state.items()
                                                       if v.is_floating_point()}))
    if refused:
        with pytest.raises(ModelPackageError, match=rf"holds {refused}, not floating-point numbers"):
            load_package(path)
        with pytest.raises(ModelPackageError, match=rf"holds {refused}, not floating-point numbers"):
            load_package(path, check_hash=False).build_network()
        return
    net = load_package(path).build_network()
    assert all(p.dtype == torch.float32 for p in net.parameters())
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(net(x).argmax(1), reference(x).argmax(1))


def test_a_huge_architecture_is_compared_before_it_is_built(make_package):
    """A width of 200000 used to be allocated (a MemoryError or a long wait) before the weights were compared."""
    from medseg.io.atomic import sha256_of

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["architecture"].update(base_width=200000, depth=8)
    config["weights"]["sha256"] = sha256_of(path / "weights.safetensors")
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError, match=r"weights do not match the architecture in model.json \(\d+ tensors "
                                                r"of another shape, e.g. \S+: \d+x1x3x3 in the file, 200000x1x3x3 in "
                                                r"the architecture; \d+ missing from the file"):
        load_package(path).build_network()


@pytest.mark.parametrize("change", ["drop", "reshape"])
def test_batch_norm_step_counters_are_not_weights(make_package, change):
    """Weights exported without num_batches_tracked, or with it as a one-element array, loaded before the shape
    check and load again, giving the same network."""
    path = make_package()
    reference = load_package(path).build_network()

    def edit(state):
        counters = [k for k in state if k.endswith("num_batches_tracked")]
        assert counters
        for k in counters:
            if change == "drop":
                del state[k]
            else:
                state[k] = state[k].reshape(1)

    _rewrite_weights(path, edit)
    net = load_package(path).build_network()
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(net(x), reference(x))


def test_float8_weights_are_checked_not_a_traceback(make_package):
    path = make_package()
    _rewrite_weights(path, lambda state: state.update({k: v.to(torch.float8_e4m3fn) for k, v in state.items()
                                                       if v.is_floating_point()}))
    net = load_package(path).build_network()
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())


def test_the_settings_hash_leaves_out_what_does_not_make_the_segmentations(make_package):
    """New label codes (train --resume writes them into a finished package), notes and the training record leave the
    settings' hash as it was, with defaults written out; preprocessing, inference settings and labels change it."""
    from medseg.train_resume import with_label_codes

    path = make_package()
    (path / "MODEL_CARD.md").write_text("# tiny\n\n- Labels: ellipsoid, box, tube\n")  # as medseg train writes one
    package = load_package(path)
    before = package.settings_sha256
    code = {"category": {"value": "123037004", "scheme": "SCT", "meaning": "Anatomical Structure"},
            "type": {"value": "12738006", "scheme": "SCT", "meaning": "Brain"}}
    coded, rewritten = with_label_codes(package, {"1": code})
    assert rewritten and coded.config_sha256 != package.config_sha256
    config = json.loads((path / "model.json").read_text())
    config["description"], config["training"] = "edited", {"note": "edited"}
    config["preprocessing"]["intensity"]["nonzero"] = False  # the default, written out
    config["inference"]["slice_axis"], config["inference"]["flip_tta"] = [2], []
    (path / "model.json").write_text(json.dumps(config))
    edited = load_package(path)
    assert edited.config_sha256 != coded.config_sha256 and edited.settings_sha256 == before == coded.settings_sha256
    for section, key, value in (("preprocessing", "orientation", "LPS"), ("inference", "overlap", 0.5),
                                ("labels", "3", "pipe")):
        changed = json.loads(json.dumps(config))
        changed[section][key] = value
        (path / "model.json").write_text(json.dumps(changed))
        assert load_package(path).settings_sha256 != before, section


def test_flip_tta_axes_in_another_order_are_the_same_settings(make_package, monkeypatch):
    """flip_tta [1, 0] and [0, 1] are one set of flips: the settings' hash counted them as two models' (a report warned
    that its figures pooled two), and inference summed the flipped softmaxes in the order written. The shipped models,
    whose flip_tta is empty, keep the hashes their sidecars record."""
    from medseg.inference import Segmenter

    for name, recorded in (("phantom", "bccec3c16f135c53db02fe35b6eaf0bcc0ac7bc23aaf2ea15e04f2a9bf6dbbc7"),
                           ("hippocampus", "a87e25e9158114c4f4320d584cd729026115ac5fc7c1dda589f4f46b695b46c6")):
        assert load_package(name, check_hash=False).settings_sha256 == recorded
    path = make_package()
    hashes, flips = [], []
    for order in ([0, 1], [1, 0], [0]):
        config = json.loads((path / "model.json").read_text())
        config["inference"]["flip_tta"] = order
        (path / "model.json").write_text(json.dumps(config))
        package = load_package(path)
        hashes.append(package.settings_sha256)
        flips.append(Segmenter(package, device="cpu").flips)
    assert hashes[0] == hashes[1] != hashes[2]
    assert flips == [[0, 1], [0, 1], [0]]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2])
def test_nan_in_weights_numpy_cannot_hold_is_refused_where_the_package_loads(make_package, dtype):
    """bf16 and float8 weights were checked for NaN only when the network was built: `medseg models` said
    "checked" of them, and a workflow planned jobs that all failed. A package of finite values still loads."""
    path = make_package()
    _rewrite_weights(path, lambda state: state.update({k: v.to(dtype) for k, v in state.items()
                                                       if v.is_floating_point()}))
    load_package(path)
    key = "head.weight"

    def poison(state):
        state[key].view(-1)[1] = float("nan")

    _rewrite_weights(path, poison)
    with pytest.raises(ModelPackageError, match=rf"tensor {key} holds 1 NaN or infinite value: the weights are "
                                                "damaged"):
        load_package(path)


def test_weights_replaced_after_loading_are_checked_again_when_the_network_is_built(make_package, tmp_path):
    """load_package checked the hash; build_network read the file again later (a cohort builds the network for its
    first case that needs it) and used whatever it then held, while sidecars recorded the checked hash."""
    import os
    import shutil

    import medseg.model_package

    folder = make_package()
    package = load_package(folder)
    hashed = []
    real = medseg.model_package.sha256_of
    medseg.model_package.sha256_of = lambda path: hashed.append(path) or real(path)
    try:
        package.build_network()  # unchanged: not hashed again
        assert hashed == []
        other = tmp_path / "other.safetensors"
        shutil.copyfile(package.weights_path, other)
        data = bytearray(other.read_bytes())
        data[-4:] = b"\x00\x00\x00\x3f"  # the last float32 becomes 0.5: valid weights, other bytes
        other.write_bytes(bytes(data))
        os.replace(other, package.weights_path)  # as a training run finishing into the folder places its weights
        with pytest.raises(ModelPackageError, match=r"weights.safetensors: SHA-256 .* does not match .* recorded in "
                                                    r"model.json; the file is corrupt or was replaced"):
            package.build_network()
        assert hashed == [package.weights_path]
    finally:
        medseg.model_package.sha256_of = real


def test_a_package_shown_in_a_notebook_is_one_line_of_what_names_it(phantom_package):
    """A package as a notebook cell's value was its whole config (18 KB for the hippocampus model, its training record
    included); it is now its name, version, labels, weights' hash and folder, as `medseg models` names one."""
    text = repr(phantom_package)
    assert text == (f"ModelPackage(name='phantom', version={phantom_package.config['version']!r}, labels={{0: "
                    "'background', 1: 'ellipsoid', 2: 'box', 3: 'tube'}, "
                    f"sha256='{phantom_package.sha256[:12]}…', path={str(phantom_package.path)!r})")
    assert "\n" not in text and "training" not in text
