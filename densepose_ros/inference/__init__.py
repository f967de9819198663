"""The inference core, ROS-free: typed results (``structures``), image pre-processing,
the eager ``DensePosePredictor``, per-person charts and overlays (``postprocess``),
surface correspondences and 3D back-projection, and the project's weight files
(``checkpoint``). Backends (``densepose_ros.runtime``) and the node build on it."""
