"""densepose_ros: dense human pose estimation (DensePose R-CNN) for ROS 2.

The package is split in two layers:

* a ROS-free core (model, pre/post-processing, structures, data, training,
  export) that imports neither ``rclpy`` nor any generated message module;
* thin ROS 2 glue (``densepose_ros.ros.node`` and ``densepose_ros.ros_conversions``)
  that converts messages to arrays, calls the core and converts results back.

The generated message modules (``densepose_ros.msg``) are installed next to this
file by colcon; they exist only in a built ROS 2 workspace.
"""

__version__ = "0.1.0"

# In a source checkout this directory shadows the colcon-installed copy of the package, which
# is the one holding the generated ``msg`` module. Extending the package path to every
# ``densepose_ros`` directory on sys.path makes ``densepose_ros.msg`` resolvable either way.
from pkgutil import extend_path  # noqa: E402

__path__ = extend_path(__path__, __name__)
