"""The thin ROS 2 layer: node, message conversion, parameters, diagnostics, video and bag tools."""
