"""ONNX export of DensePose R-CNN, split into three graphs with a thin glue between them.

Where the graph is split, and why
---------------------------------
DensePose R-CNN is two-stage: the second stage works on a data-dependent set of boxes
(top-k per FPN level, NMS, score threshold, each box pooled from the FPN level its size
selects). One end-to-end graph would need TopK, NonMaxSuppression, NonZero/ScatterND and
RoiAlign with per-box level routing inside it. TensorRT 10 parses TopK, NonMaxSuppression and
RoiAlign, but its NonMaxSuppression has no per-level ("batched") variant, its RoiAlign has no
multi-level routing, and data-dependent shapes (NonZero) force slow paths and make
optimisation profiles meaningless. They are also the cheap part: on the R-50 model at
800x1067 the backbone+FPN+RPN head is ~320 GFLOPs, the box head 28 GFLOPs for 1000
proposals, the DensePose head 7-36 GFLOPs per person; selection and RoIAlign cost well under a
millisecond on a GPU. So every convolution and fully connected layer is in a graph, and the
box bookkeeping stays outside: for TensorRT in PyTorch (``densepose_ros.runtime.split_pipeline``),
the same code the eager model runs (``RPN.select_proposals``, ``BoxStage.select_detections``,
``MultiLevelRoIAlign``, torchvision's ``roi_align``/``batched_nms``) on CUDA tensors; for the
CPU runtimes its numpy port (``runtime.numpy_glue``), which keeps torch out of the process:

    image -> preprocess (resize, normalise, pad to /32)                       [numpy/torch]
    graph "backbone"        images -> p2..p5 [+ decoder map], RPN maps per level  [ONNX]
    glue                    anchors, top-k, decode, clip, per-level NMS -> proposals
                            RoIAlign 7x7 of each proposal on its FPN level
    graph "box_head"        pooled RoIs -> class logits, box deltas              [ONNX]
    glue                    softmax, decode, clip, threshold, NMS -> detections
                            RoIAlign PxP of each detection (decoder map or FPN levels)
    graph "densepose_head"  pooled RoIs -> coarse_segm, fine_segm, u, v          [ONNX]
    glue                    boxes back to source pixels -> DensePoseResult

Names, shapes and dtypes (all float32; B = 1, H and W multiples of 32, C the FPN width,
A = 3 anchors per position, R proposals, N persons, P/M the DensePose pooled/output sides):

- ``backbone``: input ``images`` [B, 3, H, W] (normalised, zero-padded); outputs ``p2``..``p5``
  [B, C, H/s, W/s] (s = 4, 8, 16, 32), ``decoder_features`` [B, 256, H/4, W/4] (s1x
  configurations with the decoder only), and per level L in p2..p6 ``rpn_logits_L``
  [B, A, H/s, W/s] and ``rpn_deltas_L`` [B, 4A, H/s, W/s] (s = 64 for p6).
- ``box_head``: input ``box_features`` [R, C, 7, 7]; outputs ``class_logits`` [R, 2] (person,
  background) and ``box_deltas`` [R, 4].
- ``densepose_head``: input ``densepose_features`` [N, C', P, P]; outputs ``coarse_segm``
  [N, S, M, M], ``fine_segm``, ``u``, ``v`` [N, 25, M, M] (see ``DensePoseChartOutput``).

The batch of images, R, N, H and W are dynamic axes. An export is a folder ("bundle") with the
three ``.onnx`` files and ``manifest.json`` (configuration, hashes, the names above); see
``docs/export_and_tensorrt.md``.
"""

from densepose_ros.export.bundle import OnnxBundle, load_bundle
from densepose_ros.export.names import BACKBONE, BOX_HEAD, DENSEPOSE_HEAD, GRAPH_NAMES

__all__ = [
    "BACKBONE", "BOX_HEAD", "DENSEPOSE_HEAD", "GRAPH_NAMES", "OnnxBundle", "load_bundle",
]
