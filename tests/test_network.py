import pytest
import torch

from medseg.network import UNet2D, UNetConfig


def _conv(ci: int, co: int) -> int:
    return 9 * ci * co + co


def _double(ci: int, co: int) -> int:
    return _conv(ci, co) + _conv(co, co)


def test_classic_configuration_parameter_count_and_widths():
    net = UNet2D(UNetConfig(in_channels=1, n_classes=2, base_width=64, depth=4, norm="none"))
    expected = (
        _double(1, 64) + _double(64, 128) + _double(128, 256) + _double(256, 512) + _double(512, 1024)
        + sum(4 * 2 * w * w + w + _double(2 * w, w) for w in (512, 256, 128, 64))
        + 64 * 2 + 2
    )
    assert expected == 31_030_658
    assert sum(p.numel() for p in net.parameters()) == expected
    assert net.bottom[0].out_channels == 1024
    assert [block[0].out_channels for block in net.down] == [64, 128, 256, 512]
    assert all(isinstance(u, torch.nn.ConvTranspose2d) for u in net.up)
    assert net.head.kernel_size == (1, 1)


def test_classic_output_shape():
    net = UNet2D(in_channels=1, n_classes=2, base_width=64, depth=4, norm="none").eval()
    with torch.inference_mode():
        out = net(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 2, 64, 64)


@pytest.mark.parametrize("size", [(37, 53), (16, 16), (5, 9), (100, 17)])
def test_sizes_not_divisible_are_padded_and_cropped_back(size):
    net = UNet2D(in_channels=3, n_classes=4, base_width=4, depth=4).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 4, *size)
    assert torch.isfinite(out).all()


def test_width_depth_dropout_norm_are_configurable():
    net = UNet2D(in_channels=1, n_classes=3, base_width=8, depth=2, dropout=0.2, norm="instance")
    assert [block[0].out_channels for block in net.down] == [8, 16]
    assert net.bottom[0].out_channels == 32
    assert isinstance(net.drop, torch.nn.Dropout2d)
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())
    assert net.multiple == 4


@pytest.mark.parametrize("kwargs", [{"n_classes": 1}, {"depth": 0}, {"dropout": 1.0}, {"norm": "group"}])
def test_invalid_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        UNetConfig(**kwargs)


@pytest.mark.parametrize("norm", ["none", "batch", "instance"])
@pytest.mark.parametrize("in_channels, n_classes, base_width, depth",
                         [(1, 2, 64, 4), (5, 3, 16, 4), (3, 4, 4, 1), (1, 2, 8, 3), (2, 7, 1, 6)])
def test_state_shapes_without_torch_equal_the_modules_own(norm, in_channels, n_classes, base_width, depth):
    """A model package's weights are checked against these while a workflow plans, where torch is not imported."""
    from medseg.network_shapes import state_shapes

    architecture = dict(in_channels=in_channels, n_classes=n_classes, base_width=base_width, depth=depth, norm=norm)
    with torch.device("meta"):
        net = UNet2D(UNetConfig(**architecture, dropout=0.3))
    expected = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    assert state_shapes({"type": "unet2d", "dropout": 0.3, **architecture}) == expected
    assert list(state_shapes(architecture)) == list(expected)  # the same order too


def test_parameters_are_float32_whatever_torchs_default_dtype():
    """A notebook that ran `torch.set_default_dtype(torch.float64)` got a float64 network, which the float32 slices
    inference and training feed it made fail in torch's own error ("Input type (torch.FloatTensor) and weight type
    (torch.DoubleTensor) should be the same"); the initial weights are also those of a process left at float32,
    draw for draw."""
    config = UNetConfig(in_channels=1, n_classes=3, base_width=4, depth=2)
    torch.manual_seed(0)
    single = UNet2D(config)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        net = UNet2D(config)
    finally:
        torch.set_default_dtype(previous)
    state = net.state_dict()
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float32}
    assert all(torch.equal(state[k], v) for k, v in single.state_dict().items())
    assert net(torch.zeros(1, 1, 16, 16)).dtype == torch.float32
