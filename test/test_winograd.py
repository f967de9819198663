"""Winograd F(2x2, 3x3) convolution stacks (modeling.winograd) against the direct
convolution, and where the model uses them. detectron2 parity of the deployed heads that run
them: test_parity_detectron2.test_deployed_densepose_head_keeps_parity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.modeling import build_model, get_config
from densepose_ros.modeling.winograd import WinogradConvReLUStack, winograd_stack_for


def conv_stack(in_channels: int, channels: int, count: int, seed: int = 0) -> list[nn.Conv2d]:
    torch.manual_seed(seed)
    convs = [nn.Conv2d(in_channels if k == 0 else channels, channels, 3, padding=1)
             for k in range(count)]
    for conv in convs:  # detectron2's head init (std 0.001) would make every output ~0
        nn.init.normal_(conv.weight, std=(2.0 / (9 * conv.in_channels)) ** 0.5)
        nn.init.uniform_(conv.bias, -0.1, 0.1)
    return convs


def direct(convs: list[nn.Conv2d], x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(dtype)
    for conv in convs:
        x = F.relu(F.conv2d(x, conv.weight.to(dtype), conv.bias.to(dtype), padding=1))
    return x


@pytest.mark.parametrize("shape", [(23, 256, 14, 14), (2, 256, 28, 28), (3, 256, 13, 9)])
def test_winograd_stack_matches_direct_convolution(shape):
    """The R-50 DensePose head's shape (256 -> 8 x 512 channels) at both RoI sizes, more boxes
    than one pass takes, and odd sides (tiles cut off at the border)."""
    convs = conv_stack(shape[1], 512, 8)
    x = torch.randn(*shape)
    with torch.no_grad():
        exact = direct(convs, x, torch.float64)
        plain = direct(convs, x, torch.float32)
        winograd = WinogradConvReLUStack(convs)(x)
    assert winograd.shape == exact.shape
    scale = exact.abs().max().item()
    assert scale > 1.0  # a real signal through the 8 layers
    error = (winograd.double() - exact).abs().max().item()
    plain_error = (plain.double() - exact).abs().max().item()
    # float32 rounding of the same order as the direct convolution's (measured about 2x)
    assert error <= max(4 * plain_error, 1e-6 * scale), (error, plain_error, scale)
    assert torch.equal(winograd > 0, plain > 0) or \
        ((winograd > 0) != (plain > 0)).float().mean() < 1e-5


def test_winograd_only_for_wide_3x3_stacks():
    assert winograd_stack_for(conv_stack(256, 512, 2)) is not None
    assert winograd_stack_for(conv_stack(96, 96, 4)) is None  # slower than direct there
    assert winograd_stack_for([nn.Conv2d(512, 512, 3, padding=2, dilation=2)]) is None
    with pytest.raises(ValueError, match="3x3 stride-1"):
        WinogradConvReLUStack([nn.Conv2d(512, 512, 5, padding=2)])


def test_folded_models_use_winograd_where_it_is_faster():
    wide = build_model(get_config("R_50_FPN_s1x_legacy_kp")).fold_norms()
    assert wide.roi_heads.densepose_head.winograd is not None
    assert wide.roi_heads.keypoint_head.winograd is not None
    assert not any(name.startswith("roi_heads.densepose_head.winograd")
                   for name in wide.state_dict())  # the checkpoint layout is unchanged
    narrow = build_model(get_config("R_18_FPN_tiny_kp")).fold_norms()
    assert narrow.roi_heads.densepose_head.winograd is None
    assert narrow.roi_heads.keypoint_head.winograd is None
    # whole FPN maps: only with the compiled transforms, and only 256-channel FPNs
    compiled_kernels()
    assert wide.backbone.output_winograd is not None
    assert wide.proposal_generator.rpn_head.winograd is not None
    assert not any("winograd" in name for name in wide.state_dict())
    assert narrow.backbone.output_winograd is None
    assert narrow.proposal_generator.rpn_head.winograd is None
    # a model off the CPU (a GPU's; "meta" stands in here) does not get them
    from densepose_ros.modeling.winograd import map_winograd_for

    conv = nn.Conv2d(256, 256, 3, padding=1)
    assert map_winograd_for(conv) is not None
    assert map_winograd_for(conv.to("meta")) is None


def test_head_falls_back_to_direct_convolution_off_float32_cpu():
    """bfloat16 autocast and ONNX tracing run the plain convolutions: the same numbers as an
    unprepared head, bit for bit."""
    model = build_model(get_config("R_50_FPN_s1x_legacy"))
    head = model.roi_heads.densepose_head
    torch.manual_seed(1)
    x = torch.randn(3, 256, 14, 14)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain_bf16 = head(x)
        plain_trace = torch.jit.trace(head, x)(x)
        assert head.prepare_winograd()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(head(x), plain_bf16)
        assert torch.equal(torch.jit.trace(head, x)(x), plain_trace)
        assert not torch.equal(head(x), plain_trace)  # float32 CPU: Winograd's rounding
        torch.testing.assert_close(head(x), plain_trace, rtol=1e-4, atol=1e-5)


def test_parallel_roi_align_gives_the_same_numbers():
    """The inference-time split of RoIAlign over threads (modeling.box_ops): bit-identical to
    one call, over FPN levels and boxes of every size, with and without gradients."""
    from densepose_ros.modeling.box_ops import MultiLevelRoIAlign

    torch.manual_seed(2)
    pooler = MultiLevelRoIAlign(7, (4, 8, 16, 32), sampling_ratio=2, aligned=False)
    features = [torch.randn(2, 32, 200 // s, 272 // s) for s in (4, 8, 16, 32)]
    corners = torch.rand(300, 2) * torch.tensor([1000.0, 700.0])
    sides = torch.rand(300, 2) * 400 + 2
    rois = torch.cat([torch.randint(0, 2, (300, 1)).float(), corners, corners + sides], dim=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            single = pooler(features, rois)
        torch.set_num_threads(max(threads, 2))
        with torch.inference_mode():
            parallel = pooler(features, rois)
        with_grad = pooler(features, rois)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(parallel, single)
    assert torch.equal(with_grad, single)
    assert single.abs().sum() > 0


def _pool_in_child(queue) -> None:
    from densepose_ros.modeling.box_ops import roi_align_boxes

    torch.manual_seed(3)
    feature = torch.randn(1, 8, 40, 40)
    rois = torch.cat([torch.zeros(64, 1), torch.rand(64, 2) * 20,
                      torch.rand(64, 2) * 20 + 20], dim=1)
    with torch.inference_mode():
        queue.put(roi_align_boxes(feature, rois, (7, 7), 1.0, 2, False).sum().item())


def test_parallel_roi_align_works_in_a_forked_child():
    """A child forked after the parent used the RoIAlign threads (as data-loader workers are)
    inherits the pool but not its threads: it must make its own, not wait forever."""
    import multiprocessing

    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, 2))
    try:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        _pool_in_child(queue)  # the parent's pool now exists
        expected = queue.get(timeout=30)
        child = context.Process(target=_pool_in_child, args=(queue,))
        child.start()
        try:
            got = queue.get(timeout=60)
            child.join(timeout=30)
        finally:
            if child.is_alive():
                child.kill()
    finally:
        torch.set_num_threads(threads)
    assert child.exitcode == 0
    assert got == expected


# -- the compiled transforms (modeling.native) ---------------------------------------------

def compiled_kernels():
    """The kernels, built as the model builds them; skips only where no C compiler exists
    (the torch-op transforms then run: tested below)."""
    import shutil

    from densepose_ros.modeling.native import load_kernels

    if not any(shutil.which(name) for name in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler on this machine")
    kernels = load_kernels()
    assert kernels is not None, "a C compiler is present but the kernels did not build"
    return kernels


@pytest.mark.parametrize("shape", [(23, 256, 14, 14), (3, 256, 13, 9), (2, 256, 28, 28),
                                   (4, 256, 1, 1), (2, 256, 2, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_transforms_equal_the_torch_ops_bit_for_bit(shape, channels_last):
    """The same arithmetic in the same order: the compiled stack gives the torch-op stack's
    numbers exactly, for more boxes than one pass, odd and tiny sides, either input layout."""
    kernels = compiled_kernels()
    stack = WinogradConvReLUStack(conv_stack(shape[1], 512, 3, seed=4))
    torch.manual_seed(5)
    x = torch.randn(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        compiled = stack._forward_compiled(kernels, x)
        torch_ops = stack._forward_torch_ops(x)
        direct_result = direct(conv_stack(shape[1], 512, 3, seed=4), x, torch.float32)
    assert compiled.shape == torch_ops.shape == direct_result.shape
    assert torch.equal(compiled, torch_ops)
    assert (compiled > 0).float().mean() > 0.1  # a real signal, not all zeros
    torch.testing.assert_close(compiled, direct_result, rtol=1e-4, atol=1e-4)


def test_compiled_single_convolution_on_feature_maps():
    """One convolution on a whole FPN-sized map in chunks of tiles (chunk boundaries inside
    tile rows), with and without ReLU, against the direct convolution."""
    from densepose_ros.modeling.winograd import transform_filters, winograd_conv3x3

    kernels = compiled_kernels()
    conv = conv_stack(256, 256, 1, seed=6)[0]
    torch.manual_seed(7)
    x = torch.randn(1, 256, 37, 51).contiguous(memory_format=torch.channels_last)
    filters = transform_filters(conv.weight.detach())
    with torch.inference_mode():
        for relu in (False, True):
            expected = F.conv2d(x, conv.weight, conv.bias, padding=1)
            expected = F.relu(expected) if relu else expected
            result = winograd_conv3x3(kernels, x, filters, conv.bias.detach(), relu,
                                      tiles_per_chunk=100)
            assert result.shape == expected.shape
            assert result.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-4)
            assert (result < 0).any() != relu


def test_compiled_kernels_refuse_wrong_layouts():
    kernels = compiled_kernels()
    tiles = torch.empty(16, 4, 32)
    with pytest.raises(ValueError, match="float32"):
        kernels.input_tiles(torch.zeros(1, 4, 4, 32, dtype=torch.float64), tiles, 0, 4)
    with pytest.raises(ValueError, match="multiple of 16"):
        kernels.input_tiles(torch.zeros(1, 4, 4, 24), torch.empty(16, 4, 24), 0, 4)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.input_tiles(torch.zeros(1, 32, 4, 4).permute(0, 2, 3, 1), tiles, 0, 4)
    with pytest.raises(ValueError, match="do not fit"):  # a 4x4 map has 4 tiles
        kernels.input_tiles(torch.zeros(1, 4, 4, 32), tiles, 0, 5)
    with pytest.raises(ValueError, match="do not fit"):  # the buffer holds 4
        kernels.input_tiles(torch.zeros(1, 6, 6, 32), tiles, 0, 9)
    with pytest.raises(ValueError, match="bias"):
        kernels.output_tiles(tiles, torch.zeros(16), True, torch.zeros(1, 4, 4, 32), 0, 4)


FALLBACK_SCRIPT = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
from densepose_ros.modeling import native
from densepose_ros.modeling.winograd import WinogradConvReLUStack
torch.manual_seed(0)
convs = [torch.nn.Conv2d(256, 256, 3, padding=1) for _ in range(2)]
x = torch.randn(3, 256, 14, 14)
with torch.inference_mode():
    result = WinogradConvReLUStack(convs)(x)
    expected = x
    for conv in convs:
        expected = torch.relu(conv(expected))
print("kernels", native.load_kernels())
print("close", torch.allclose(result, expected, rtol=1e-4, atol=1e-5))
"""


@pytest.mark.parametrize("variables, message", [
    ({"CC": "/nonexistent/cc"}, "no C compiler found"),
    ({"DENSEPOSE_NATIVE": "0"}, "native Winograd kernels off"),
    ({"CC": "false"}, "could not build the native Winograd kernels"),
])
def test_without_compiled_kernels_the_torch_ops_run(tmp_path, variables, message):
    """No compiler, a compiler that fails, or the kernels switched off: a log line says why
    and the stack still gives the convolution's results (the torch-op transforms)."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "CC"}
    env.update(DENSEPOSE_CACHE=str(tmp_path / "cache"), **variables)
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert message in done.stdout, done.stdout
    assert "kernels None" in done.stdout
    assert "close True" in done.stdout
    assert not list((tmp_path / "cache").glob("native/*.so"))


def test_kernels_are_built_once_per_machine(tmp_path):
    """A second process finds the library the first one built in the cache folder."""
    import os
    import subprocess
    import sys

    compiled_kernels()
    env = dict(os.environ, DENSEPOSE_CACHE=str(tmp_path))
    script = ("from densepose_ros.modeling.native import load_kernels; "
              "print(load_kernels().path)")
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=300, check=True).stdout.strip()
    built = os.stat(first).st_mtime_ns
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300, check=True).stdout.strip()
    assert first == second and first.startswith(str(tmp_path))
    assert os.stat(second).st_mtime_ns == built
    assert [p.name for p in (tmp_path / "native").iterdir()] == [os.path.basename(first)]
