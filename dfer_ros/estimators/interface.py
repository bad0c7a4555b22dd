"""Compatibility re-export: the model interface is owned by the core, ``dfer_ros.perception.model_interface``."""
from dfer_ros.perception.model_interface import AffectModel, CropSpec, EncoderStage, FrameEncoder, TemporalHead

__all__ = ["AffectModel", "CropSpec", "EncoderStage", "FrameEncoder", "TemporalHead"]
