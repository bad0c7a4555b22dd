"""ROS-free perception core: frames in, per-face results out. No rclpy imports below this folder."""
