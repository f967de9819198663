"""What the tools read, by kind: file suffixes of images, videos and rosbag2 storage files,
and the ROS image message types. Kept once so ``infer`` and ``label`` accept the same inputs."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
BAG_FILE_SUFFIXES = frozenset({".db3", ".mcap"})
# Bag topics of these types hold camera frames.
IMAGE_MSG_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
