"""People over time, ROS-free: ``bytetrack`` gives each detected person an identity that
stays with them from frame to frame (ByteTrack-style association, Zhang et al. 2022)."""
