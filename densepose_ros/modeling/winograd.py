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
        n, in_channels, h, w = x.shape
        layers = [(getattr(self, f"filters{k}"), getattr(self, f"bias{k}"))
                  for k in range(self.num_convs)]
        channels = layers[-1][0].shape[2]
        per_pass = max(1, TILE_ROWS_PER_PASS // (((h + 1) // 2) * ((w + 1) // 2)))
        ws = _Workspace(x, min(per_pass, n), h, w, in_channels, channels)
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
