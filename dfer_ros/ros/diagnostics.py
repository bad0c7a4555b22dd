"""Runtime statistics of the node and their ``diagnostic_msgs/DiagnosticArray`` form.

``NodeStats`` is shared by the subscription callbacks (counting arrivals, drops and bad images) and the
worker thread (counting processed frames and latencies), so every update takes a lock. Once per
``diagnostics_period`` the node turns a snapshot into one DiagnosticStatus: rates over the last period,
totals, latency percentiles, active tracks, backend, model and the last error. Level: ERROR when configure
failed (model, parameters, pipeline_config) or a privacy promise is not kept yet (``privacy_error``: a forgotten
person still in the gallery file); WARN when the node is not active, runs without an optional
model part (e.g. no action units: the reason is in ``missing_parts``) or runs with a ``notice`` (e.g. a refused
gallery file), bad images arrived or the stamps
jumped back (tracks reset) in the last period; else OK. Stale-frame drops, repeated stamps and late frames
dropped are normal on real cameras: they are counted (``duplicate_stamp``, ``late_frame_dropped``,
``clock_jump_reset``) without raising the level. The latency and processing-time percentiles and
``estimate_age_max_s`` (the oldest expression estimate published in the period: whether the compute
scheduler keeps ``compute.expression_max_age`` on this machine) are absent from a period without processed
frames, as are the ``*_per_image`` counts of the pipeline's work (``detector_calls``, ``regions``,
``<stage>_faces``: how many detector calls, detector regions and faces per model stage an image cost on average);
``abstained_faces`` and ``expression_events`` are totals.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class StatsSnapshot:
    """Plain numbers of one diagnostics period (also what the tests and benchmark read)."""

    state: str
    input_rate: float
    processed_rate: float
    received: int
    processed: int
    dropped_stale: int
    ignored_inactive: int
    bad_images: int
    bad_images_period: int
    latency_ms_p50: float
    latency_ms_max: float
    processing_ms_p50: float
    active_tracks: int
    backend: str
    model: str
    last_error: str
    bad_reasons: dict[str, int] = field(default_factory=dict)
    configure_error: str = ""  # why the last configure failed ('' = it did not)
    missing_parts: tuple[str, ...] = ()  # optional model parts not loaded, with the reason
    notices: tuple[str, ...] = ()  # running with everything, but something to fix (e.g. a refused gallery file)
    privacy_error: str = ""  # a promise about stored people is not kept yet (a forget not on disk)
    stamp_events: dict[str, int] = field(default_factory=dict)  # totals per STAMP_EVENTS kind
    clock_jumps_period: int = 0
    future_stamps: int = 0  # frames stamped after the node clock: no latency recorded for them
    estimate_age_max: float = float("nan")  # oldest expression estimate published in the period (s; nan: none)
    abstained_faces: int = 0  # faces published as unknown for their quality (total)
    expression_events: int = 0  # expression onsets/offsets published (total)
    core_warnings: int = 0  # warnings and errors the core logged through Python logging (total)
    image_reader_renewals: int = 0  # image subscriptions re-created to free DDS buffers grown by oversized images
    images_lost: int = 0  # images DDS reported lost before the callback (best-effort QoS; total)
    heap_trims: int = 0  # free heap pages given back (ros/memory.trim_free_heap, every TRIM_HEAP_EVERY_S; total)
    heap_in_use_mb: float = float("nan")  # malloc'd and not freed, at the last trim (ros/memory.heap_in_use_bytes)
    python_blocks: int = -1  # live pymalloc blocks at the last trim (sys.getallocatedblocks; -1: not read yet)
    anon_after_trim_mb: float = float("nan")  # anonymous RSS right after the last trim: RSS without its saw
    # the pipeline's work per processed image in the period (FrameResult.work: detector calls, regions, faces per
    # model stage): where the CPU goes, and whether faces share detector runs (empty: no image processed)
    work_per_image: dict[str, float] = field(default_factory=dict)


STAMP_EVENTS = ("duplicate_stamp", "late_frame_dropped", "clock_jump_reset")


class NodeStats:
    """Thread-safe counters; ``snapshot()`` returns the rates since the previous snapshot."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped_stale = 0
        self.ignored_inactive = 0  # images that arrived while configured but not active
        self.bad_images = 0
        self.bad_reasons: dict[str, int] = {}
        self.active_tracks = 0
        self.last_error = ""
        self.backend = ""
        self.model = ""
        self.state = "unconfigured"
        self.configure_error = ""
        self.missing_parts: tuple[str, ...] = ()
        self.notices: tuple[str, ...] = ()
        self.privacy_error = ""
        self.stamp_events = {kind: 0 for kind in STAMP_EVENTS}
        self.future_stamps = 0
        self.abstained_faces = 0
        self.expression_events = 0
        self.core_warnings = 0
        self.image_reader_renewals = 0
        self.images_lost = 0
        self.heap_trims = 0
        self.heap_in_use_mb = float("nan")
        self.python_blocks = -1
        self.anon_after_trim_mb = float("nan")
        self._estimate_age_max = float("nan")
        self._work: dict[str, int] = {}  # FrameResult.work summed over the period's processed images
        self._clock_jumps_at_snapshot = 0
        self._latency_ms: deque[float] = deque(maxlen=window)  # source stamp -> outputs published (node clock)
        self._processing_ms: deque[float] = deque(maxlen=window)  # pipeline wall time
        self._last = (time.monotonic(), 0, 0, 0)

    def on_image_reader_renewed(self) -> None:
        with self._lock:
            self.image_reader_renewals += 1

    def on_heap_trimmed(self, heap_in_use_bytes: int = -1, python_blocks: int = -1, anon_rss_bytes: int = 0) -> None:
        """A trim ran; what the heap held right after it (negative: unknown) and the anonymous RSS then (0:
        unknown) go out with the next status, so a leak shows as a slope in them without RSS's saw."""
        with self._lock:
            self.heap_trims += 1
            if anon_rss_bytes > 0:
                self.anon_after_trim_mb = anon_rss_bytes / 2**20
            if heap_in_use_bytes >= 0:
                self.heap_in_use_mb = heap_in_use_bytes / 2**20
            if python_blocks >= 0:
                self.python_blocks = int(python_blocks)

    def on_images_lost(self, count: int) -> None:
        with self._lock:
            self.images_lost += max(0, int(count))

    def on_received(self, replaced_unprocessed: bool) -> None:
        with self._lock:
            self.received += 1
            if replaced_unprocessed:
                self.dropped_stale += 1

    def on_ignored(self) -> None:
        with self._lock:
            self.ignored_inactive += 1

    def on_bad_image(self, kind: str, reason: str) -> None:
        with self._lock:
            self.bad_images += 1
            self.bad_reasons[kind] = self.bad_reasons.get(kind, 0) + 1
            self.last_error = f"bad image: {reason}"

    def on_processed(self, processing_ms: float, latency_ms: Optional[float], active_tracks: int) -> None:
        """A published frame; a negative latency (stamp after the node clock) counts as a future stamp."""
        with self._lock:
            self.processed += 1
            self._processing_ms.append(float(processing_ms))
            if latency_ms is not None and np.isfinite(latency_ms):
                if latency_ms < 0.0:
                    self.future_stamps += 1
                else:
                    self._latency_ms.append(float(latency_ms))
            self.active_tracks = int(active_tracks)

    def on_faces(self, estimate_ages, abstained: int, events: int) -> None:
        """What a published frame said about its faces: each face's estimate age (s; inf: none yet), how many
        were withheld for quality, how many expression events went out. The period's oldest estimate shows
        whether the compute scheduler keeps its refresh floor on this machine."""
        ages = [float(a) for a in estimate_ages if np.isfinite(a)]
        with self._lock:
            if ages:
                oldest = max(ages)
                self._estimate_age_max = oldest if np.isnan(self._estimate_age_max) else max(self._estimate_age_max, oldest)
            self.abstained_faces += int(abstained)
            self.expression_events += int(events)

    def on_work(self, work: dict) -> None:
        """A processed image's ``FrameResult.work`` (counts of detector calls, regions, faces per model stage)."""
        with self._lock:
            for key, count in work.items():
                self._work[key] = self._work.get(key, 0) + int(count)

    def on_stamp_event(self, kind: str) -> None:
        with self._lock:
            self.stamp_events[kind] = self.stamp_events.get(kind, 0) + 1

    def on_configure_failed(self, reason: str) -> None:
        with self._lock:
            self.configure_error = reason
            self.last_error = reason

    def on_configured(self, missing_parts: tuple[str, ...], notices: tuple[str, ...] = ()) -> None:
        with self._lock:
            self.configure_error = ""
            self.last_error = ""
            self.missing_parts = tuple(missing_parts)
            self.notices = tuple(notices)

    def on_privacy_error(self, reason: str) -> None:
        """'' clears it."""
        with self._lock:
            self.privacy_error = reason
            if reason:
                self.last_error = reason

    def on_core_warning(self) -> None:
        """A warning or error logged by the core (Python logging, bridged to the ROS logger)."""
        with self._lock:
            self.core_warnings += 1

    def on_error(self, message: str) -> None:
        with self._lock:
            self.last_error = message

    def snapshot(self) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            t0, received0, processed0, bad0 = self._last
            dt = max(now - t0, 1e-6)
            lat = np.asarray(self._latency_ms) if self._latency_ms else np.zeros(0)
            proc = np.asarray(self._processing_ms) if self._processing_ms else np.zeros(0)
            snap = StatsSnapshot(
                state=self.state, input_rate=(self.received - received0) / dt,
                processed_rate=(self.processed - processed0) / dt, received=self.received,
                processed=self.processed, dropped_stale=self.dropped_stale,
                ignored_inactive=self.ignored_inactive, bad_images=self.bad_images,
                bad_images_period=self.bad_images - bad0,
                latency_ms_p50=float(np.percentile(lat, 50)) if lat.size else float("nan"),
                latency_ms_max=float(lat.max()) if lat.size else float("nan"),
                processing_ms_p50=float(np.percentile(proc, 50)) if proc.size else float("nan"),
                active_tracks=self.active_tracks, backend=self.backend, model=self.model,
                last_error=self.last_error, bad_reasons=dict(self.bad_reasons),
                configure_error=self.configure_error, missing_parts=self.missing_parts, notices=self.notices,
                privacy_error=self.privacy_error,
                stamp_events=dict(self.stamp_events),
                clock_jumps_period=self.stamp_events.get("clock_jump_reset", 0) - self._clock_jumps_at_snapshot,
                future_stamps=self.future_stamps, estimate_age_max=self._estimate_age_max,
                abstained_faces=self.abstained_faces, expression_events=self.expression_events,
                core_warnings=self.core_warnings, image_reader_renewals=self.image_reader_renewals,
                images_lost=self.images_lost, heap_trims=self.heap_trims,
                heap_in_use_mb=self.heap_in_use_mb, python_blocks=self.python_blocks,
                anon_after_trim_mb=self.anon_after_trim_mb,
                work_per_image={k: v / (self.processed - processed0) for k, v in self._work.items()}
                if self.processed > processed0 else {})
            self._estimate_age_max = float("nan")
            self._work = {}
            self._last = (now, self.received, self.processed, self.bad_images)
            self._clock_jumps_at_snapshot = self.stamp_events.get("clock_jump_reset", 0)
            self._latency_ms.clear()
            self._processing_ms.clear()
        return snap


def to_diagnostic_array(snap: StatsSnapshot, node_name: str, stamp) -> "object":
    """One DiagnosticArray with a single status named ``<node>: affect pipeline``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    status.name = f"{node_name}: affect pipeline"
    status.hardware_id = node_name
    if snap.configure_error or snap.last_error.startswith("model"):
        status.level = DiagnosticStatus.ERROR
        status.message = f"{snap.state}: configure failed: {snap.configure_error or snap.last_error}"
    elif snap.privacy_error:
        status.level = DiagnosticStatus.ERROR
        status.message = f"{snap.state}: privacy: {snap.privacy_error}"
    elif snap.state != "active":
        status.level = DiagnosticStatus.WARN
        status.message = f"{snap.state}" + (f": {snap.last_error}" if snap.last_error else "")
    elif snap.missing_parts:
        status.level = DiagnosticStatus.WARN
        status.message = "active without " + "; ".join(snap.missing_parts + snap.notices)
    elif snap.notices:
        status.level = DiagnosticStatus.WARN
        status.message = "active; " + "; ".join(snap.notices)
    elif snap.bad_images_period:
        status.level = DiagnosticStatus.WARN
        status.message = f"{snap.bad_images_period} bad image(s) in the last period: {snap.last_error}"
    elif snap.clock_jumps_period:
        status.level = DiagnosticStatus.WARN
        status.message = f"image stamps jumped back {snap.clock_jumps_period} time(s): tracks and smoothing reset"
    else:
        status.level = DiagnosticStatus.OK
        status.message = f"active, {snap.processed_rate:.1f} Hz processed"

    def fmt(x: float, digits: int = 2) -> str:
        return f"{x:.{digits}f}"

    values = {
        "state": snap.state,
        "input_rate_hz": fmt(snap.input_rate),
        "processed_rate_hz": fmt(snap.processed_rate),
        "received": str(snap.received),
        "processed": str(snap.processed),
        "dropped_stale": str(snap.dropped_stale),
        "ignored_inactive": str(snap.ignored_inactive),
        "bad_images": str(snap.bad_images),
        "bad_image_reasons": ", ".join(f"{k}={v}" for k, v in sorted(snap.bad_reasons.items())),
        "active_tracks": str(snap.active_tracks),
        "backend": snap.backend,
        "model": snap.model,
        "last_error": snap.last_error,
        "missing_parts": "; ".join(snap.missing_parts),
        "notices": "; ".join(snap.notices),
        "privacy_error": snap.privacy_error,
        **{kind: str(snap.stamp_events.get(kind, 0)) for kind in STAMP_EVENTS},
        "future_stamps": str(snap.future_stamps),
        "abstained_faces": str(snap.abstained_faces),
        "expression_events": str(snap.expression_events),
        "core_warnings": str(snap.core_warnings),
        "image_reader_renewals": str(snap.image_reader_renewals),
        "images_lost": str(snap.images_lost),
        "heap_trims": str(snap.heap_trims),
    }
    # percentiles only for a period with frames: absent (never "nan") when the node was idle
    for key, value in (("latency_ms_p50", snap.latency_ms_p50), ("latency_ms_max", snap.latency_ms_max),
                       ("processing_ms_p50", snap.processing_ms_p50)):
        if np.isfinite(value):
            values[key] = fmt(value, 1)
    if np.isfinite(snap.heap_in_use_mb):
        values["heap_in_use_mb"] = fmt(snap.heap_in_use_mb, 1)
    if snap.python_blocks >= 0:
        values["python_blocks"] = str(snap.python_blocks)
    if np.isfinite(snap.anon_after_trim_mb):
        values["anon_after_trim_mb"] = fmt(snap.anon_after_trim_mb, 1)
    if np.isfinite(snap.estimate_age_max):
        values["estimate_age_max_s"] = fmt(snap.estimate_age_max, 2)
    for key, per_image in sorted(snap.work_per_image.items()):
        values[f"{key}_per_image"] = fmt(per_image, 2)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg


def diagnostic_values(msg) -> dict[str, str]:
    """Key-values of the first status of a DiagnosticArray (for tests and tools)."""
    return {kv.key: kv.value for kv in msg.status[0].values} if msg.status else {}
