"""densepose_ros: dense human pose estimation (DensePose R-CNN) for ROS 2.

Subpackages, from the bottom up (imports point one way; ``test_architecture`` checks it):

* ``modeling`` and ``inference``: the network, typed results, pre/post-processing, weight
  files; ``io``: ROS image encodings and rosbag2 without rclpy; ``synth``, ``data``,
  ``evaluation``, ``training``: synthetic data, datasets, metrics, the trainer;
* ``export``: ONNX graphs, the op check, TensorRT engines, the export cache;
* ``runtime``: the backends (torch, onnxruntime, tensorrt) behind one interface;
* ``ros``: the node (the only module with ``rclpy``, with ``ros.messages``) and its
  ROS-free helpers; ``tools`` (the demo) and ``cli`` (the ``densepose`` tool) on top.

The generated message modules (``densepose_ros.msg``) are installed next to this
file by colcon; they exist only in a built ROS 2 workspace.
"""

__version__ = "0.1.0"

# In a source checkout this directory shadows the colcon-installed copy of the package, which
# is the one holding the generated ``msg`` module. Extending the package path to every
# ``densepose_ros`` directory on sys.path makes ``densepose_ros.msg`` resolvable either way.
from pkgutil import extend_path  # noqa: E402

__path__ = extend_path(__path__, __name__)
