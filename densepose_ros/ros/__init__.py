"""The ROS 2 side. ``node`` (and only it, with ``messages``) imports rclpy and the
generated messages: it converts messages to arrays, calls the ROS-free pieces here
(``frame_processor``, ``frame_slot``, ``input_watchdog``, ``node_config``, ``launch_plan``)
and the backends, and converts results back. Importing this package does not import
rclpy."""
