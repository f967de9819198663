"""DensePose R-CNN in PyTorch (ROS-free): configurations, modules and the assembled model.

``config`` is plain Python; the modules load PyTorch, so they are imported on first use
(``from densepose_ros.modeling import build_model``): the configuration alone, which the
numpy graph glue and the node's parameters need, keeps torch out of the process."""

from densepose_ros.modeling.config import CONFIG_NAMES, ModelConfig, get_config

__all__ = ["CONFIG_NAMES", "DensePoseRCNN", "ModelConfig", "build_model", "get_config"]


def __getattr__(name: str):
    if name in ("DensePoseRCNN", "build_model"):
        from densepose_ros.modeling import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
