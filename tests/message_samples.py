"""One filled instance of every custom message, built the same way in two processes to compare them.

Values are exactly representable in float32 so equality survives serialization.
"""
from __future__ import annotations


def make_samples() -> dict:
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import RegionOfInterest
    from std_msgs.msg import Header

    from dfer_ros import msg as m

    header = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="head_camera_optical")
    labels = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other"]
    expression = m.FaceExpression(header=header, face_id="f7", labels=labels,
                                  probabilities=[0.5, 0.0, 0.0, 0.0, 0.25, 0.0, 0.25, 0.0],
                                  expression="neutral", confidence=0.5)
    va = m.FaceValenceArousal(header=header, face_id="f7", valence=0.25, arousal=-0.5, confidence=0.75)
    aus = m.FaceActionUnits(header=header, face_id="f7", names=["AU1", "AU12", "AU25"],
                            probabilities=[0.125, 0.875, 0.5], active=[False, True, True], threshold=0.5)
    compound = m.FaceExpression(header=header, face_id="f7", labels=["happily surprised"], probabilities=[1.0],
                                expression="happily surprised", confidence=1.0)
    quality = m.FaceQuality(head_pose_valid=True, yaw=-62.5, pitch=4.25, roll=-1.5, sharpness=123.5, face_size=96.0,
                            detection_score=0.875, visible_fraction=0.75, cut_by_border=True,
                            looking_at_camera=False, attention=0.25)
    affect = m.FaceAffect(header=header, face_id="f7", quality=quality, abstained=True,
                          abstain_reason="head turned: |yaw| 62 deg > 45",
                          roi=RegionOfInterest(x_offset=10, y_offset=20, width=64, height=80, do_rectify=False),
                          detection_score=0.875, landmarks=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                          detected=True, window_frames=16, window_seconds=0.5, warmed_up=True,
                          expression=expression, valence_arousal=va, action_units=aus, compound_expression=compound)
    tracked = m.TrackedFaces(header=header, face_ids=["f7", "f9"],
                             rois=[RegionOfInterest(x_offset=10, y_offset=20, width=64, height=80),
                                   RegionOfInterest(x_offset=200, y_offset=40, width=50, height=60)])
    onset = m.ExpressionEvent(header=header, face_id="f7", person_id="", kind=m.ExpressionEvent.ONSET, episode=3,
                              expression="happy", onset=Time(sec=1699999999, nanosec=500000000),
                              apex=Time(sec=1700000000, nanosec=0), duration=0.625, peak_probability=0.875,
                              mean_intensity=0.75)
    offset = m.ExpressionEvent(header=header, face_id="f7", person_id="p2", kind=m.ExpressionEvent.OFFSET, episode=3,
                               expression="happy", onset=Time(sec=1699999999, nanosec=500000000),
                               apex=Time(sec=1700000000, nanosec=0), offset=Time(sec=1700000001, nanosec=250000000),
                               duration=1.75, peak_probability=0.875, mean_intensity=0.625, end_reason="relaxed")
    return {
        "FaceQuality": quality,
        "ExpressionEvent": offset,
        "ExpressionEventArray": m.ExpressionEventArray(header=header, events=[onset, offset]),
        "FaceExpression": expression,
        "FaceValenceArousal": va,
        "FaceActionUnits": aus,
        "FaceAffect": affect,
        "FaceExpressionArray": m.FaceExpressionArray(header=header, faces=[expression, expression]),
        "FaceValenceArousalArray": m.FaceValenceArousalArray(header=header, faces=[va]),
        "FaceActionUnitsArray": m.FaceActionUnitsArray(header=header, faces=[aus]),
        "FaceAffectArray": m.FaceAffectArray(header=header, faces=[affect, affect]),
        "TrackedFaces": tracked,
    }
