"""DensePose R-CNN in PyTorch (ROS-free): configurations, modules and the assembled model."""

from densepose_ros.modeling.config import CONFIG_NAMES, ModelConfig, get_config
from densepose_ros.modeling.model import DensePoseRCNN, build_model

__all__ = ["CONFIG_NAMES", "DensePoseRCNN", "ModelConfig", "build_model", "get_config"]
