"""Winograd F(2x2, 3x3) convolution for stacks of 3x3 stride-1 convolutions + ReLU on CPU.

Why: the DensePose head of the R-50 models is 8 such convolutions with 512 channels on every
detected box, more than half of an exact R-50 frame at 100 detections on a CPU, and oneDNN's
direct convolution already runs near the machine's peak there. Winograd's minimal filtering
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) computes each
2x2 output tile from a 4x4 input tile with 16 instead of 36 multiplications per channel pair:
2.25x fewer multiply-adds, done as 16 batched matrix products. The input and output transforms
only add and subtract, and the filters are transformed once, in float64, so float32 results
stay within float32 rounding of the direct convolution (measured: about 2x the direct
convolution's own difference from float64; the detectron2 parity tests cover it).

Everything here is NHWC (channels last and contiguous), so each transform step is an
elementwise operation over whole channel vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.modeling.native import CHANNEL_MULTIPLE, WinogradKernels, load_kernels

# Filter transform G (4x3) of F(2x2, 3x3), interpolation points 0, 1, -1 and infinity.
_FILTER_TRANSFORM = torch.tensor(
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)

# Tile rows per pass through the whole stack (10 boxes at 14x14): the batched products need a
# few hundred rows to run near full speed, and the transforms' buffers grow with them.
# Measured on a 2-core AVX-512 Xeon with 512 channels: 196 to 980 rows alike.
TILE_ROWS_PER_PASS = 490
# Narrower stacks stay on the direct convolution: there the batched products are too small to
# beat it (measured: 512 channels 1.4x faster, 256 1.15x, 96 0.7-0.85x).
WINOGRAD_MIN_CHANNELS = 256
# Tiles per chunk when one convolution runs over a whole FPN map: the transformed tiles of a
# chunk stay in the caches. Measured (256 channels, 200x272): 256-1024 alike, 2048 slower.
MAP_TILES_PER_CHUNK = 512


def transform_filters(weight: torch.Tensor) -> torch.Tensor:
    """[K, C, 3, 3] filters -> [16, C, K] Winograd-domain filters (U = G g G^T per channel
    pair; row 4 i + j holds element (i, j) of the 4x4 transformed filter)."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"Winograd F(2x2, 3x3) needs 3x3 filters, got {tuple(weight.shape)}")
    g = _FILTER_TRANSFORM.to(weight.device)
    u = torch.einsum("ia,kcab,jb->ijck", g, weight.double(), g)
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


class _Workspace:
    """Buffers of one pass (`boxes` boxes of H x W through the stack), reused by every layer:
    zero-bordered NHWC inputs, the transformed tiles, the products and the half-transformed
    outputs. Reusing them avoids fresh pages (and their zeroing) for every layer."""

    def __init__(self, like: torch.Tensor, boxes: int, height: int, width: int,
                 in_channels: int, channels: int):
        self.th, self.tw = (height + 1) // 2, (width + 1) // 2
        padded_h, padded_w = 2 * self.th + 2, 2 * self.tw + 2
        widest = max(in_channels, channels)
        tiles = boxes * self.th * self.tw
        self.first = like.new_zeros(boxes, padded_h, padded_w, in_channels)
        self.between = [like.new_zeros(boxes, padded_h, padded_w, channels) for _ in range(2)]
        self.by_row = like.new_empty(4 * boxes * self.th * padded_w * widest)
        self.tiles = like.new_empty(16 * tiles * widest)
        self.products = like.new_empty(16, tiles, channels)
        self.half = like.new_empty(2, 4, boxes, self.th, self.tw, channels)


def _input_tiles(padded: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """V = B^T d B of every overlapping 4x4 tile of zero-bordered NHWC `padded`
    [N, 2 th + 2, 2 tw + 2, C]: [16, N * th * tw, C]. B^T rows: (1, 0, -1, 0), (0, 1, 1, 0),
    (0, -1, 1, 0), (0, 1, 0, -1)."""
    n, _, width, c = padded.shape
    th, tw = ws.th, ws.tw
    rows = [padded[:, a:a + 2 * th - 1:2] for a in range(4)]  # [N, th, W, C] each
    by_row = ws.by_row[:4 * n * th * width * c].view(4, n, th, width, c)
    torch.sub(rows[0], rows[2], out=by_row[0])
    torch.add(rows[1], rows[2], out=by_row[1])
    torch.sub(rows[2], rows[1], out=by_row[2])
    torch.sub(rows[1], rows[3], out=by_row[3])
    cols = [by_row[:, :, :, b:b + 2 * tw - 1:2] for b in range(4)]  # [4, N, th, tw, C]
    tiles = ws.tiles[:16 * n * th * tw * c].view(4, 4, n, th, tw, c)
    torch.sub(cols[0], cols[2], out=tiles[:, 0])
    torch.add(cols[1], cols[2], out=tiles[:, 1])
    torch.sub(cols[2], cols[1], out=tiles[:, 2])
    torch.sub(cols[1], cols[3], out=tiles[:, 3])
    return tiles.view(16, n * th * tw, c)


def _output_tiles(products: torch.Tensor, half: torch.Tensor, out: torch.Tensor) -> None:
    """out[n, ty, oy, tx, ox, k] = (A^T M A)[oy, ox] with A^T rows (1, 1, 1, 0), (0, 1, -1, -1);
    `products` is M as [4, 4, N, th, tw, K], `half` a buffer of [2, 4, N, th, tw, K]."""
    m = products
    torch.add(m[1], m[2], out=half[0])  # A^T along the rows
    torch.sub(m[1], m[2], out=half[1])
    half[0].add_(m[0])
    half[1].sub_(m[3])
    by_tile = out.permute(2, 4, 0, 1, 3, 5)  # [oy, ox, N, th, tw, K] view of `out`
    torch.add(half[:, 1], half[:, 2], out=by_tile[:, 0])
    torch.sub(half[:, 1], half[:, 2], out=by_tile[:, 1])
    by_tile[:, 0].add_(half[:, 0])
    by_tile[:, 1].sub_(half[:, 3])


def _conv3x3_relu(padded: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor,
                  ws: _Workspace, out: torch.Tensor) -> None:
    """out = ReLU(conv2d(x, w, b, padding=1)) for `padded` = x with a zero border (NHWC, see
    ``_input_tiles``), `filters` = ``transform_filters(w)`` [16, C, K]; `out` is an NHWC view
    [N, 2 th, 2 tw, K] (rows and columns past H, W are computed too: callers crop or zero)."""
    n = padded.shape[0]
    k = filters.shape[2]
    tiles = n * ws.th * ws.tw
    products = ws.products[:, :tiles]
    torch.bmm(_input_tiles(padded, ws), filters, out=products)
    # A^T M A puts M[1, 1] into every output of the tile with weight 1: add the bias there
    products[5].add_(bias)
    _output_tiles(products.view(4, 4, n, ws.th, ws.tw, k), ws.half[:, :, :n],
                  out.view(n, ws.th, 2, ws.tw, 2, k))
    out.relu_()


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> an [N, H, W, C] view with contiguous channels (a copy only when the
    input is not channels-last)."""
    nhwc = x.permute(0, 2, 3, 1)
    return nhwc if nhwc.stride(3) == 1 else nhwc.contiguous()


def _boxes_per_pass(n: int, h: int, w: int) -> int:
    """Boxes of H x W through a stack at a time: about ``TILE_ROWS_PER_PASS`` tiles."""
    return max(1, min(n, TILE_ROWS_PER_PASS // (((h + 1) // 2) * ((w + 1) // 2))))


def _compiled_conv_tiles(kernels: WinogradKernels, source: torch.Tensor, tiles: torch.Tensor,
                         products: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor,
                         relu: bool, target: torch.Tensor, first: int, end: int) -> None:
    """Tiles [first, end) of one convolution with the compiled transforms: NHWC `source` ->
    NHWC `target`, through the buffers `tiles` [16, >= end - first, C] and `products`
    [16, >= end - first, K]."""
    count = end - first
    kernels.input_tiles(source, tiles, first, end)
    torch.bmm(tiles[:, :count], filters, out=products[:, :count])
    kernels.output_tiles(products, bias, relu, target, first, end)


def winograd_conv3x3(kernels: WinogradKernels, x: torch.Tensor, filters: torch.Tensor,
                     bias: torch.Tensor, relu: bool,
                     tiles_per_chunk: int = MAP_TILES_PER_CHUNK) -> torch.Tensor:
    """conv2d(x, w, b, padding=1) (then ReLU if `relu`) of a float32 CPU feature map
    [N, C, H, W] with the compiled transforms, `tiles_per_chunk` tiles at a time so that the
    transformed tiles stay small; `filters` = ``transform_filters(w)``. The result is
    [N, K, H, W] stored channels-last."""
    n, channels, h, w = x.shape
    out_channels = filters.shape[2]
    nhwc = _nhwc(x)
    out = x.new_empty(n, h, w, out_channels)
    count = n * ((h + 1) // 2) * ((w + 1) // 2)
    chunk = min(count, tiles_per_chunk)
    tiles = x.new_empty(16, chunk, channels)
    products = x.new_empty(16, chunk, out_channels)
    for first in range(0, count, chunk):
        _compiled_conv_tiles(kernels, nhwc, tiles, products, filters, bias, relu, out, first,
                             min(count, first + chunk))
    return out.permute(0, 3, 1, 2)


def winograd_applies(x: torch.Tensor) -> bool:
    """Whether a Winograd stack should run on `x`: float32 on the CPU, not while exporting or
    tracing (the exported graphs keep plain convolutions for their runtimes to optimise), not
    under autocast (bfloat16 runs the plain convolutions) and not on an empty batch."""
    return (not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()
            and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and x.shape[0] > 0)


def _is_plain_3x3(conv: nn.Conv2d) -> bool:
    """3x3 kernel, stride 1, padding 1, no dilation or groups, with a bias."""
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is not None)


def winograd_stack_for(convs: list[nn.Conv2d]) -> WinogradConvReLUStack | None:
    """A Winograd stack for these convolutions (each followed by ReLU) where it is faster than
    the direct convolution: plain 3x3 convolutions with at least ``WINOGRAD_MIN_CHANNELS``
    output channels; otherwise None."""
    if convs and all(_is_plain_3x3(c) and c.out_channels >= WINOGRAD_MIN_CHANNELS
                     for c in convs):
        return WinogradConvReLUStack(convs)
    return None


def conv_relu_stack(convs: list[nn.Conv2d], winograd: WinogradConvReLUStack | None,
                    x: torch.Tensor, training: bool) -> torch.Tensor:
    """ReLU(conv(x)) through `convs` in turn: with `winograd` (``winograd_stack_for`` of the
    same convolutions) at inference where ``winograd_applies``, else directly."""
    if winograd is not None and not training and winograd_applies(x):
        return winograd(x)
    for conv in convs:
        x = F.relu_(conv(x))
    return x


class WinogradConvReLUStack(nn.Module):
    """A stack of 3x3, stride 1, padding 1 convolutions each followed by ReLU, run with
    Winograd F(2x2, 3x3) on float32 CPU tensors, a few boxes at a time through the whole stack.

    Built from the convolutions at inference (their weights are not tracked afterwards); the
    transformed filters are non-persistent buffers, so they follow ``.to()`` and stay out of
    the state dict. ``stack(x)`` takes and returns NCHW tensors ([N, C, H, W] -> [N, K, H, W];
    the result is stored channels-last)."""

    def __init__(self, convs: list[nn.Conv2d]):
        super().__init__()
        for conv in convs:
            if not _is_plain_3x3(conv):
                raise ValueError(f"not a 3x3 stride-1 convolution with bias: {conv}")
        self.num_convs = len(convs)
        for k, conv in enumerate(convs):
            self.register_buffer(f"filters{k}", transform_filters(conv.weight.detach()),
                                 persistent=False)
            self.register_buffer(f"bias{k}", conv.bias.detach().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels = load_kernels()
        if kernels is not None and x.shape[1] % CHANNEL_MULTIPLE == 0 \
                and self.filters0.shape[2] % CHANNEL_MULTIPLE == 0:
            return self._forward_compiled(kernels, x)
        return self._forward_torch_ops(x)

    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(getattr(self, f"filters{k}"), getattr(self, f"bias{k}"))
                for k in range(self.num_convs)]

    def _forward_compiled(self, kernels: WinogradKernels, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with the compiled transforms: each layer is one input pass, the
        batched products and one output pass (bias and ReLU included) into the next layer's
        input; borders are handled by the kernels, so no zero-padded copies."""
        n, in_channels, h, w = x.shape
        layers = self._layers()
        channels = layers[-1][0].shape[2]
        tiles_per_box = ((h + 1) // 2) * ((w + 1) // 2)
        per_pass = _boxes_per_pass(n, h, w)
        rows = per_pass * tiles_per_box
        tiles = x.new_empty(16 * rows * max(in_channels, channels))
        products = x.new_empty(16, rows, channels)
        between = [x.new_empty(per_pass, h, w, channels) for _ in range(2)]
        nhwc = _nhwc(x)
        out = x.new_empty(n, h, w, channels)
        for start in range(0, n, per_pass):
            boxes = min(per_pass, n - start)
            count = boxes * tiles_per_box
            source = nhwc[start:start + boxes]
            for k, (filters, bias) in enumerate(layers):
                c = source.shape[3]
                target = out[start:start + boxes] if k == len(layers) - 1 \
                    else between[k % 2][:boxes]
                _compiled_conv_tiles(kernels, source, tiles[:16 * count * c].view(16, count, c),
                                     products, filters, bias, True, target, 0, count)
                source = target
        return out.permute(0, 3, 1, 2)

    def _forward_torch_ops(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with the transforms as torch operations (no C compiler)."""
        n, in_channels, h, w = x.shape
        layers = self._layers()
        channels = layers[-1][0].shape[2]
        per_pass = _boxes_per_pass(n, h, w)
        ws = _Workspace(x, per_pass, h, w, in_channels, channels)
        out = x.new_empty(n, h, w, channels)
        for start in range(0, n, per_pass):
            boxes = min(per_pass, n - start)
            padded = ws.first[:boxes]
            padded[:, 1:h + 1, 1:w + 1] = x[start:start + boxes].permute(0, 2, 3, 1)
            for k, (filters, bias) in enumerate(layers):
                if k == len(layers) - 1:
                    target = out[start:start + boxes]
                    if (2 * ws.th, 2 * ws.tw) != (h, w):  # odd sides: crop the extra outputs
                        full = x.new_empty(boxes, 2 * ws.th, 2 * ws.tw, channels)
                        _conv3x3_relu(padded, filters, bias, ws, full)
                        target.copy_(full[:, :h, :w])
                    else:
                        _conv3x3_relu(padded, filters, bias, ws, target)
                    continue
                following = ws.between[k % 2][:boxes]
                _conv3x3_relu(padded, filters, bias, ws, following[:, 1:-1, 1:-1])
                following[:, h + 1:].zero_()  # odd sides: the border must stay zero
                following[:, :, w + 1:].zero_()
                padded = following
        return out.permute(0, 3, 1, 2)


class WinogradConv3x3(nn.Module):
    """One plain 3x3 convolution over whole feature maps (the FPN outputs, the RPN's shared
    convolution) with Winograd F(2x2, 3x3) and the compiled transforms
    (``winograd_conv3x3``). Built from the convolution at inference; non-persistent buffers,
    as ``WinogradConvReLUStack``."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not _is_plain_3x3(conv):
            raise ValueError(f"not a 3x3 stride-1 convolution with bias: {conv}")
        self.register_buffer("filters", transform_filters(conv.weight.detach()),
                             persistent=False)
        self.register_buffer("bias", conv.bias.detach().clone(), persistent=False)

    def forward(self, kernels: WinogradKernels, x: torch.Tensor, relu: bool) -> torch.Tensor:
        return winograd_conv3x3(kernels, x, self.filters, self.bias, relu)


def map_winograd_for(conv: nn.Conv2d) -> WinogradConv3x3 | None:
    """Winograd for one convolution over feature maps where it is faster than the direct
    one: a plain 3x3 with at least ``WINOGRAD_MIN_CHANNELS`` channels in and out (measured
    with 256 channels on FPN maps of a 1067x800 image: 1.2-1.3x), when the compiled kernels
    exist (the torch-op transforms are slower than the direct convolution on whole maps).
    Only for a model on the CPU: on a GPU the kernels would not run, so they are not built."""
    if (conv.weight.device.type == "cpu" and _is_plain_3x3(conv)
            and min(conv.in_channels, conv.out_channels)
            >= WINOGRAD_MIN_CHANNELS and conv.in_channels % CHANNEL_MULTIPLE == 0
            and conv.out_channels % CHANNEL_MULTIPLE == 0 and load_kernels() is not None):
        return WinogradConv3x3(conv)
    return None


def conv3x3_on_map(conv: nn.Conv2d, winograd: WinogradConv3x3 | None, x: torch.Tensor,
                   relu: bool, training: bool) -> torch.Tensor:
    """conv(x) (then ReLU if `relu`): with `winograd` (``map_winograd_for(conv)``) at
    inference where ``winograd_applies``, else directly."""
    if winograd is not None and not training and winograd_applies(x):
        kernels = load_kernels()
        if kernels is not None:
            return winograd(kernels, x, relu)
    y = conv(x)
    return F.relu_(y) if relu else y
