"""Data in ROS formats without rclpy: ``sensor_msgs`` image encodings to arrays and back
(``image_codec``) and rosbag2 files (``bag_io``, through ``rosbags``). Used by the node,
the tools and TensorRT calibration."""
