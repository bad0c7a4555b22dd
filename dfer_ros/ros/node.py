"""``dfer_node``: the ROS 2 lifecycle node around the perception pipeline.

Lifecycle: the model (and any TensorRT engine) loads on configure; a missing or corrupt model makes
configure FAIL with the reason logged, and the node stays alive, unconfigured, so a lifecycle manager (or
a user fixing the path) can retry. With ``autostart`` (default) the node configures and activates itself,
so it also works without a manager.

Threading: the image callback only stores the NEWEST message (replacing an unprocessed one counts as a
stale drop) and wakes a worker thread, which decodes, runs the pipeline and publishes. The executor is
never blocked by inference, so parameters, lifecycle services and diagnostics stay responsive, and the
node never works through a backlog of old frames. The executor is rclpy's EventsExecutor by default (``executor``
parameter; SingleThreadedExecutor rebuilds its wait set in Python on every image).

Outputs (one message per processed image on each topic, stamped with the SOURCE image's header):
``faces/affect``, ``faces/expression``, ``faces/valence_arousal``, ``faces/action_units``,
``faces/tracked``; ``faces/expression_events`` only when an image produced expression events (episode
onsets/offsets, each stamped with the image that produced it); optional ``debug_image``; ``/diagnostics`` once per ``diagnostics_period``; with
``hri.enabled``, the REP-155 topics under ``/humans/faces`` (``hri_publisher``).

Re-identification (``perception.reid``): each face carries a ``person_id`` kept across tracks; the services
``~/forget_person`` (``dfer_ros/srv/ForgetPerson``) and ``~/forget_all_people`` (``dfer_ros/srv/ForgetAllPeople``)
drop one person's or everyone's descriptors, between two images. A missing descriptor model or a refused
gallery file is a WARN in diagnostics (``reid: <reason>``), not a failure. A forget answers success only once
it has reached the gallery file (or no file is configured); when the file cannot be written it answers
failure with the reason and diagnostics stay at ERROR until a retry (each diagnostics period) succeeds.
"""
from __future__ import annotations

import copy
import sys
import threading
import time
from typing import Any, Callable, Optional

import rclpy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image

from dfer_ros.perception.config import ConfigError, PipelineConfig
from dfer_ros.perception.native_threads import name_native_thread
from dfer_ros.ros import conversions, hri_publisher, qos
from dfer_ros.ros.diagnostics import NodeStats, to_diagnostic_array
from dfer_ros.ros.environment import EXIT_CANNOT_START_ROS, environment_problem
from dfer_ros.ros.log_bridge import RosLogBridge
from dfer_ros.ros.memory import TRIM_HEAP_EVERY_S, anonymous_rss_bytes, heap_in_use_bytes, trim_free_heap
from dfer_ros.ros.parameters import (NodeSettings, ParamSpec, all_parameter_specs, apply_pipeline_config,
                                     load_pipeline_defaults, validate_values)
from dfer_ros.ros.session import StopSignals, release_held_signals, ros_session
from dfer_ros.srv import ForgetAllPeople, ForgetPerson

NODE_NAME = "dfer_node"
OUTPUT_TOPICS = conversions.RESULT_TOPICS
EVENTS_TOPIC = "faces/expression_events"  # published only for images that produced events


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.low is not None and not isinstance(spec.default, bool):
        if isinstance(spec.default, int):
            d.type = ParameterType.PARAMETER_INTEGER
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        elif isinstance(spec.default, float):
            d.type = ParameterType.PARAMETER_DOUBLE
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    return d


def build_model(settings: NodeSettings, logger=None):
    """Load the configured model (the spec rule of ``estimators.loader``); raises with a reason naming the
    file when it is missing or corrupt. The ``checkpoint`` parameter belongs to a config YAML: with any
    other model it is ignored with a warning."""
    from dfer_ros.estimators.loader import load_model, parse_model_spec

    spec = parse_model_spec(settings.model)
    if spec.kind == "registered":
        options: dict[str, Any] = {"with_action_units": settings.with_action_units}
        if settings.checkpoint and logger is not None:
            logger.warning(f"parameter 'checkpoint' is ignored with model {settings.model!r}")
        return load_model(spec, settings.backend, **options)
    if spec.kind == "export":
        if settings.checkpoint and logger is not None:
            logger.warning(f"parameter 'checkpoint' is ignored: {spec.path} is an exported folder")
        return load_model(spec, settings.backend)
    return load_model(parse_model_spec(settings.model, settings.checkpoint or None), settings.backend)


class DferNode(LifecycleNode):
    """Faces in camera images -> per-face expression, valence-arousal and action units."""

    def __init__(self, node_name: str = NODE_NAME, stop_requested: Callable[[], bool] = lambda: False, **kwargs):
        super().__init__(node_name, **kwargs)
        self._stop_requested = stop_requested  # a stop signal arrived (e.g. during the autostart configure)
        # rclpy's ~/change_state handler passes any transition id straight to rcl, which raises
        # "Transition is not registered" out of spin() for an id that is not valid in the current state
        # (nav2's lifecycle manager sends ids). Check against the current state's transitions first.
        self._rclpy_change_state = self._service_change_state.callback
        self._service_change_state.callback = self._on_change_state_request
        self.stats = NodeStats()
        # the core's Python logging records -> this node's ROS logger (name, level, /rosout), counted in diagnostics
        self._log_bridge = RosLogBridge(self.get_logger(), on_warning=lambda record: self.stats.on_core_warning())
        self._lock = threading.Condition()
        self._pending: Optional[tuple[Any, str]] = None  # newest unprocessed (msg, kind)
        self._pending_config: Optional[PipelineConfig] = None
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._active = False
        self._pipeline = None
        self._model = None
        self._out_pubs: dict[str, Any] = {}
        self._debug_pub = None
        self._stamps = conversions.StampBook()  # float seconds -> the exact source Time, for event stamps
        self._hri: Optional[hri_publisher.HriPublisher] = None
        self._image_subs: list = []
        self._renew_image_reader = False  # an oversized raw image grew the DDS reader's buffers
        self._anon_at_subscribe = 0  # the node's anonymous memory when the image reader was made (bytes)
        self._images_lost_unchecked = False  # DDS reported lost images since the last _check_reader_growth
        self._trimmed_at = time.monotonic()  # when trim_free_heap last ran
        self._warned_at: dict[str, float] = {}
        self._config_error = ""
        self._pipeline_lock = threading.Lock()
        self._forget_services: list = []

        self.declare_parameter("pipeline_config", "", _descriptor(
            next(s for s in all_parameter_specs() if s.name == "pipeline_config")))
        base = PipelineConfig()
        try:
            base = load_pipeline_defaults(self.get_parameter("pipeline_config").value)
        except Exception as exc:  # noqa: BLE001 - ConfigError names the problem; anything else must not end the node
            reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            self._config_error = f"pipeline_config: {reason}"
            self.get_logger().error(f"pipeline_config: {reason}; configure will fail until it is fixed")
        self.specs = all_parameter_specs(base)
        for spec in self.specs:
            if spec.name != "pipeline_config":
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        values = self._values()
        self.settings = NodeSettings.from_values(values)
        # every value checked as a run-time change would be (type, range, choices such as
        # image_qos.reliability): descriptors alone do not know the choices
        problem, config = validate_values({}, values, self.specs)
        if problem:
            self._config_error = self._config_error or f"parameters: {problem}"
            self.get_logger().error(f"invalid parameters: {problem}; configure will fail until it is fixed")
        self.pipeline_config = config or base
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats.backend, self.stats.model = self.settings.backend, self.settings.model

        self._diag_pub = self.create_publisher(_diagnostic_type(), "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        if self.settings.autostart:
            self.autostart()

    # ------------------------------------------------------------------ parameters
    def _values(self) -> dict[str, Any]:
        return {s.name: self.get_parameter(s.name).value for s in self.specs}

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a parameter change; reject with a reason, or hand the new pipeline config to the worker."""
        changes = {p.name: p.value for p in params}
        problem, config = validate_values(self._values(), changes, self.specs)
        if problem:
            self.get_logger().warning(f"parameter change rejected: {problem}")
            return SetParametersResult(successful=False, reason=problem)
        settings = NodeSettings.from_values({**self._values(), **changes})
        with self._lock:
            self.settings = settings
            self.pipeline_config = config
            self._pending_config = config
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def _on_change_state_request(self, request, response):
        """~/change_state: refuse (success=false, logged) a transition the current state does not offer.

        Valid requests go to rclpy's own handler. Whatever rcl raises is turned into a refusal too, so no
        request, by id or by label, valid or not, can end the process.
        """
        state_id, state_label = self._state_machine.current_state
        offered = {tid: label for tid, label, *_ in self._state_machine.available_transitions}
        wanted = request.transition.label or offered.get(request.transition.id, "")
        if request.transition.label:
            known = wanted in offered.values()
        else:
            known = request.transition.id in offered
        if not known:
            what = f"label {wanted!r}" if request.transition.label else f"id {request.transition.id}"
            self.get_logger().warning(
                f"lifecycle transition {what} refused: not available in state {state_label!r} (available: "
                f"{', '.join(f'{label} ({tid})' for tid, label in sorted(offered.items())) or 'none'})")
            response.success = False
            return response
        try:
            return self._rclpy_change_state(request, response)
        except Exception as exc:  # noqa: BLE001 - rclpy raises its private RCLError
            self.get_logger().warning(f"lifecycle transition {wanted!r} from {state_label!r} failed: {exc}")
            response.success = False
            return response

    def autostart(self) -> bool:
        """Configure then activate; returns whether the node ended up active."""
        if self._stop_requested() or self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        if self._stop_requested():  # stopped while the model loaded: do not start processing
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        if self._config_error:
            log.error(f"configure failed: {self._config_error}")
            self.stats.on_configure_failed(self._config_error)
            return TransitionCallbackReturn.FAILURE
        s = self.settings
        t0 = time.monotonic()
        try:
            from dfer_ros.estimators.loader import load_reid_descriptor
            from dfer_ros.perception.pipeline import PerceptionPipeline

            self._model = build_model(s, self.get_logger())
            descriptor, no_descriptor = load_reid_descriptor(self.pipeline_config, s.backend)
            # live: the scheduler learns the stages' wall-clock costs, so the budget holds in real time
            self._pipeline = PerceptionPipeline(copy.deepcopy(self.pipeline_config), self._model,
                                                clock=time.perf_counter, descriptor=descriptor,
                                                descriptor_missing=no_descriptor)
        except Exception as exc:  # noqa: BLE001 - any load failure must leave the node alive and unconfigured
            reason = f"model {s.model!r} on backend {s.backend!r} failed to load: {type(exc).__name__}: {exc}"
            log.error(f"configure failed: {reason}")
            self.stats.on_configure_failed(reason)
            self._close_model()
            return TransitionCallbackReturn.FAILURE
        self.stats.model = self._model.name
        self.stats.backend = self._model.backend
        out_qos = qos.output_qos(s.output_qos_depth)
        self._out_pubs = {t: self.create_lifecycle_publisher(_output_type(t), t, out_qos)
                          for t in OUTPUT_TOPICS + (EVENTS_TOPIC,)}
        # advertised only when it is published (publish_debug_image is read-only for that reason)
        self._debug_pub = (self.create_lifecycle_publisher(Image, "debug_image", qos.output_qos(2))
                           if s.publish_debug_image else None)
        self._hri = hri_publisher.create_if_enabled(self, s.hri_enabled, s.hri_mode,
                                                    copy.deepcopy(self.pipeline_config.engagement))
        in_qos = qos.image_qos(s.image_qos_reliability, s.image_qos_depth)
        overrides = QoSOverridingOptions.with_default_policies()
        self._image_subs = [self._subscribe_raw_images()]
        if s.subscribe_compressed:
            self._image_subs.append(self.create_subscription(
                CompressedImage, "image/compressed", self._on_compressed, in_qos, qos_overriding_options=overrides))
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="dfer_worker", daemon=True)
        self._worker.start()
        self.stats.state = "inactive"
        missing = (tuple(getattr(self._model, "missing_parts", ()))
                   + hri_publisher.missing_parts(s.hri_enabled, self._hri) + self._reid_missing())
        self._forget_services = [
            self.create_service(ForgetPerson, "~/forget_person", self._on_forget_person),
            self.create_service(ForgetAllPeople, "~/forget_all_people", self._on_forget_all_people)]
        self.stats.on_configured(missing, self._reid_notices())
        self._update_privacy_state()
        for part in missing:
            log.warning(f"running without an optional model part: {part}")
        raw_sub = self._image_subs[0]
        log.info(f"configured in {time.monotonic() - t0:.1f} s: model {self._model.name!r}, backend "
                 f"{self._model.backend}, image QoS {qos.describe(raw_sub.qos_profile)} on {raw_sub.topic_name}")
        return TransitionCallbackReturn.SUCCESS

    def _reid_missing(self) -> tuple[str, ...]:
        """Re-identification that is off for a reason (diagnostics WARN "active without reid: <reason>")."""
        status = self._pipeline.reid.status()
        if self.pipeline_config.reid.enabled and status.reason:
            return (status.reason if status.reason.startswith("reid:") else f"reid: {status.reason}",)
        return ()

    def _reid_notices(self) -> tuple[str, ...]:
        """Re-identification runs, but its gallery file was refused or cannot be written (diagnostics WARN)."""
        status = self._pipeline.reid.status()
        notices = []
        if status.gallery_file_error:
            notices.append(f"reid gallery file refused, started with an empty gallery: {status.gallery_file_error}")
        if status.gallery_write_error:
            notices.append(f"reid gallery file: {status.gallery_write_error}")
        return tuple(notices)

    def _update_privacy_state(self) -> str:
        """ERROR in diagnostics while a forget has not reached the gallery file; returns that reason ('' = none)."""
        status = self._pipeline.reid.status() if self._pipeline is not None else None
        reason = ""
        if status is not None and status.forget_pending:
            reason = (f"a forgotten person is still in the gallery file: "
                      f"{status.gallery_write_error or 'not written yet'}")
        self.stats.on_privacy_error(reason)
        return reason

    def _on_forget_person(self, request, response):
        pipeline = self._pipeline
        if pipeline is None:
            response.success, response.message = False, "not configured"
            return response
        with self._pipeline_lock:
            found = pipeline.forget_person(request.person_id)
            not_durable = self._update_privacy_state()
        response.success = found and not not_durable
        response.message = (f"no person {request.person_id!r} in the gallery" if not found
                            else f"forgot {request.person_id} in memory, NOT in the gallery file: {not_durable}"
                            if not_durable else f"forgot {request.person_id}")
        (self.get_logger().error if not_durable else self.get_logger().info)(f"forget_person: {response.message}")
        return response

    def _on_forget_all_people(self, request, response):
        pipeline = self._pipeline
        if pipeline is None:
            response.forgotten, response.message = 0, "not configured"
            return response
        with self._pipeline_lock:
            response.forgotten = pipeline.forget_all_people()
            not_durable = self._update_privacy_state()
        response.message = (f"forgot {response.forgotten} people in memory, NOT in the gallery file: {not_durable}"
                             if not_durable else f"forgot {response.forgotten} people")
        (self.get_logger().error if not_durable else self.get_logger().info)(f"forget_all_people: {response.message}")
        return response

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self.stats.state = "active"
        self.get_logger().info("active: processing images")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stats.state = "inactive"
        with self._lock:
            self._pending = None
        if self._hri is not None:  # REP-155 consumers see every face end
            from std_msgs.msg import Header

            self._hri.end_all(header=Header(stamp=self.get_clock().now().to_msg()))
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.stats.state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.stats.state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.stats.state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        """Stop the worker, drop subscriptions/publishers and the model (idempotent)."""
        self._active = False
        self._stop.set()
        with self._lock:
            self._pending = None
            self._lock.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)
        self._worker = None
        for sub in self._image_subs:
            self.destroy_subscription(sub)
        self._image_subs = []
        for pub in list(self._out_pubs.values()) + ([self._debug_pub] if self._debug_pub else []):
            self.destroy_lifecycle_publisher(pub)
        self._out_pubs, self._debug_pub = {}, None
        if self._hri is not None:
            self._hri.close()
            self._hri = None
        for service in getattr(self, "_forget_services", []):
            self.destroy_service(service)
        self._forget_services = []
        if self._pipeline is not None:
            self._pipeline.close()  # its stage worker thread, before the model it runs is closed
        self._pipeline = None
        self._close_model()

    def _close_model(self) -> None:
        model, self._model = self._model, None
        if model is not None:  # native resources (MediaPipe's landmarker) must be closed before interpreter exit
            try:
                model.close()
            except Exception:  # noqa: BLE001
                pass

    # ------------------------------------------------------------------ input
    def _subscribe_raw_images(self):
        """The ``image`` subscription; a message-lost event from DDS may mean a dropped oversized image."""
        s = self.settings
        sub = self.create_subscription(Image, "image", self._on_image,
                                       qos.image_qos(s.image_qos_reliability, s.image_qos_depth),
                                       qos_overriding_options=QoSOverridingOptions.with_default_policies(),
                                       event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_images_lost))
        self._anon_at_subscribe = self._trim_heap()  # what the node holds, not the free pages frames touch again
        return sub

    def _trim_heap(self) -> int:
        """Give the heap's free pages back (ros/memory.py) and count what is held right after, for /diagnostics;
        the anonymous RSS then, in bytes (0 where the kernel does not say)."""
        trim_free_heap()
        anon = anonymous_rss_bytes()
        self.stats.on_heap_trimmed(heap_in_use_bytes(), sys.getallocatedblocks(), anon)
        return anon

    def _on_images_lost(self, info) -> None:
        """DDS lost images (best-effort QoS): the network, or a sample too large for the reader's buffers at
        that moment. Fast DDS drops the first sample of a new, larger size after growing the reader's buffers
        to it, so an oversized image that never reaches ``_on_image`` still leaves its size in the node; the
        next diagnostics period checks for that (``_check_reader_growth``)."""
        self.stats.on_images_lost(info.total_count_change)
        self._images_lost_unchecked = True

    def _check_reader_growth(self, anon_after_trim: int) -> None:
        """Right after a heap trim (``anon_after_trim``: the anonymous RSS then): when the node holds more than one
        image of ``max_image_pixels`` (4 bytes a pixel) beyond what it held when the reader was made, renew the
        reader as after a rejected image. The trim first takes the free pages out, so the heap's saw does not
        count; the node's own growth (its warm-up) can still renew it once, as each renewal takes the memory of
        that moment as its base."""
        self._images_lost_unchecked = False
        grown = anon_after_trim - self._anon_at_subscribe
        if self._anon_at_subscribe and grown > 4 * self.settings.max_image_pixels:
            self._renew_image_reader = True

    def _renew_raw_image_reader(self) -> None:
        """Re-create the ``image`` subscription (executor thread) after an oversized image.

        Fast DDS reassembles each sample into a reader buffer of the sample's size, and with rmw_fastrtps's
        reader memory policy those buffers grow to the largest sample and stay with the reader: an 8000x8000
        image left 183 MB of anonymous memory in the node for good. A new reader starts with small buffers,
        and deleting the old one frees its buffers (docs/hostile_inputs.md has the measured effect). Images
        published while the new reader is matched again are missed, so this runs at most once per
        diagnostics period.
        """
        self._renew_image_reader = False
        if not self._image_subs:  # cleaned up meanwhile
            return
        self.destroy_subscription(self._image_subs[0])
        self._image_subs[0] = self._subscribe_raw_images()
        self.stats.on_image_reader_renewed()
        self.get_logger().info("image subscription re-created to free the DDS reader buffers an oversized "
                               "image had grown (images sent meanwhile are missed)")

    def _on_image(self, msg: Image) -> None:
        self._store(msg, "raw")

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._store(msg, "compressed")

    def _store(self, msg, kind: str) -> None:
        """Keep only the newest message; an unprocessed one it replaces is a stale drop."""
        if not self._active:
            self.stats.on_ignored()
            return
        with self._lock:
            replaced = self._pending is not None
            self._pending = (msg, kind)
            self._lock.notify()
        self.stats.on_received(replaced)

    def _warn(self, kind: str, text: str) -> None:
        """A warning, at most once per ``warn_throttle_seconds`` per kind (all are counted elsewhere)."""
        now = time.monotonic()
        if now - self._warned_at.get(kind, -1e18) >= self.settings.warn_throttle_seconds:
            self._warned_at[kind] = now
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        name_native_thread("dfer_worker")  # per-thread CPU (top -H, the benchmarks) names this thread
        while not self._stop.is_set():
            with self._lock:
                while self._pending is None and not self._stop.is_set():
                    self._lock.wait(timeout=0.5)
                if self._stop.is_set():
                    return
                (msg, kind), self._pending = self._pending, None
                new_config, self._pending_config = self._pending_config, None
            try:
                if new_config is not None and self._pipeline is not None:
                    changed = apply_pipeline_config(self._pipeline, new_config)
                    if self._hri is not None:  # engagement.* is the REP-155 output's, not the pipeline's
                        self._hri.set_engagement_config(copy.deepcopy(new_config.engagement))
                    if changed:
                        self.get_logger().info(f"pipeline parameters updated: {', '.join(changed)}")
                self._process(msg, kind)
            except Exception as exc:  # noqa: BLE001 - the worker must survive any single frame
                self.stats.on_error(f"processing failed: {type(exc).__name__}: {exc}")
                self._warn("internal", f"frame skipped, processing failed: {type(exc).__name__}: {exc}")

    def _process(self, msg, kind: str) -> None:
        s = self.settings
        try:
            if kind == "compressed":
                frame, encoding = conversions.compressed_to_array(msg, s.max_image_pixels)
            else:
                frame, encoding = conversions.image_to_array(msg, s.max_image_pixels)
        except conversions.ImageError as exc:
            self.stats.on_bad_image(exc.kind, str(exc))
            self._warn(f"image:{exc.kind}", f"image skipped ({exc.kind}): {exc}")
            if exc.kind == "too_large" and kind == "raw":
                self._renew_image_reader = True  # done on the executor thread, with the next diagnostics
            return
        stamp = conversions.stamp_to_seconds(msg.header.stamp)
        if stamp == 0.0:
            self._warn("zero_stamp", "image header stamp is 0: using the arrival time for tracking (outputs "
                       "keep the source header); the camera driver should stamp its images")
            stamp = self.get_clock().now().nanoseconds * 1e-9
        else:
            self._stamps.remember(stamp, msg.header.stamp)
        t0 = time.perf_counter()
        with self._pipeline_lock:  # the forget services change the gallery between two images, never during one
            result = self._pipeline.process(frame, stamp, encoding)
        processing_ms = (time.perf_counter() - t0) * 1000.0
        event = getattr(result, "stamp_event", None)
        if event:
            self._on_stamp_event(event, stamp, result.skipped_reason)
            if event == "late_frame_dropped":
                return
        if result.skipped_reason:
            self.stats.on_bad_image("pipeline", result.skipped_reason)
            self._warn("image:pipeline", f"image skipped by the pipeline: {result.skipped_reason}")
            return
        header = conversions.optional_header_copy(msg.header)
        # only the topics somebody subscribes to are built and published (a subscriber that joins gets the
        # next image's); the REP-155 output is made from faces/affect
        wanted = [t for t in OUTPUT_TOPICS if self._out_pubs[t].get_subscription_count() > 0]
        needed = wanted + (["faces/affect"] if self._hri is not None and self._active else [])
        messages = conversions.result_to_messages(result, header, s.au_threshold, topics=needed)
        for topic in wanted:
            self._out_pubs[topic].publish(messages[topic])
        events = conversions.events_to_message(result.events, header, self._stamps.time_of)
        if events is not None:
            self._out_pubs[EVENTS_TOPIC].publish(events)
        if self._hri is not None and self._active:  # plain publishers: lifecycle deactivation does not gate them
            self._hri.publish(messages["faces/affect"], result.people_known, image_size=_image_size(frame),
                              frame=lambda: _bgr8(frame, encoding), stamp=stamp)
        if s.publish_debug_image and self._debug_pub is not None:
            from dfer_ros.perception.frames import to_bgr8

            debug = conversions.draw_faces(to_bgr8(frame, encoding, 1 << 30), conversions.result_face_dicts(result))
            self._debug_pub.publish(conversions.array_to_image(debug, "bgr8", header))
        now = self.get_clock().now().nanoseconds * 1e-9
        source = conversions.stamp_to_seconds(msg.header.stamp)
        self.stats.on_processed(processing_ms, (now - source) * 1000.0 if source > 0.0 else None, len(result.faces))
        self.stats.on_work(result.work)
        self.stats.on_faces([f.estimate_age for f in result.faces], sum(bool(f.abstain_reason) for f in result.faces),
                            len(result.events))

    def _on_stamp_event(self, event: str, stamp: float, reason: Optional[str]) -> None:
        """Count a stamp irregularity the pipeline handled and say so through the ROS logger (throttled per kind)."""
        self.stats.on_stamp_event(event)
        what = {
            "duplicate_stamp": "image stamp repeats the previous one; processed (check the camera driver's stamps)",
            "late_frame_dropped": "image stamped before the previous one, within stamp_reorder_tolerance: dropped",
            "clock_jump_reset": "image stamps jumped back beyond stamp_reorder_tolerance (bag loop, clock reset): "
                                "tracks, buffers and smoothing reset",
        }.get(event, f"stamp event {event}")
        self._warn(f"stamp:{event}", f"{what} (stamp {stamp:.6f}{'; ' + reason if reason else ''}); "
                   f"counted as {event} in /diagnostics")

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        if now - self._trimmed_at >= TRIM_HEAP_EVERY_S or self._images_lost_unchecked:
            self._trimmed_at = now  # the free pages inside malloc's arenas (ros/memory.py), then what is held
            anon = self._trim_heap()
            if self._images_lost_unchecked:
                self._check_reader_growth(anon)
        if self._renew_image_reader:
            self._renew_raw_image_reader()
        if self.stats.privacy_error and self._pipeline is not None:  # retry until the forget reaches the file
            with self._pipeline_lock:
                if self._pipeline is not None:
                    self._pipeline.reid.save_if_forget_pending()
                    self._update_privacy_state()
        snap = self.stats.snapshot()
        self._diag_pub.publish(to_diagnostic_array(snap, self.get_fully_qualified_name(),
                                                   self.get_clock().now().to_msg()))

    def shutdown_cleanly(self) -> None:
        """Stop the worker and free the model (Ctrl-C path)."""
        self._teardown()

    def destroy_node(self):
        self._log_bridge.close()
        return super().destroy_node()


def _image_size(frame) -> tuple[int, int]:
    """(width, height) of a decoded image array."""
    return int(frame.shape[1]), int(frame.shape[0])


def _bgr8(frame, encoding: str):
    from dfer_ros.perception.frames import to_bgr8

    return to_bgr8(frame, encoding, 1 << 30)


def _diagnostic_type():
    from diagnostic_msgs.msg import DiagnosticArray

    return DiagnosticArray


def _output_type(topic: str):
    from dfer_ros import msg

    return {"faces/affect": msg.FaceAffectArray, "faces/expression": msg.FaceExpressionArray,
            "faces/valence_arousal": msg.FaceValenceArousalArray, "faces/action_units": msg.FaceActionUnitsArray,
            "faces/tracked": msg.TrackedFaces, EVENTS_TOPIC: msg.ExpressionEventArray}[topic]


def main(args=None, stop: Optional[StopSignals] = None) -> int:
    """Run the node until SIGINT/SIGTERM (``dfer node`` enters through ``node_entry``, which passes the
    ``StopSignals`` it installed before importing this module).

    Any sequence of SIGINT/SIGTERM (during start-up, the autostart configure, mid-frame, twice within a moment
    as ``ros2 launch`` sends them) exits 0: the signals only set a flag (``StopSignals``), the loop below
    sees it, and the worker is stopped and the model freed while the ROS context is still valid.
    """
    if stop is None:
        with StopSignals() as own:
            release_held_signals()
            return main(args, own)
    from dfer_ros.ros.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any inference or DDS thread exists
    if stop.is_set():
        return 0
    problem = environment_problem()
    if problem:
        print(f"dfer_node: cannot start ROS: {problem}", file=sys.stderr)
        return EXIT_CANNOT_START_ROS
    session = ros_session(args if args is not None else sys.argv, signal_handlers=False)
    try:
        session.__enter__()
    except Exception as exc:  # noqa: BLE001 - rclpy.init raises its private RCLError (bad environment or arguments)
        print(f"dfer_node: cannot start ROS: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START_ROS
    try:
        return _spin_node(stop)
    finally:
        session.__exit__(None, None, None)


def _executor(name: str):
    """The executor the ``executor`` parameter names."""
    if name == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    return SingleThreadedExecutor()


def _spin_node(stop: StopSignals) -> int:
    """Create the node and spin it until a stop signal (the ROS context is up); the exit code."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    node = None
    try:
        node = DferNode(stop_requested=stop.is_set)
        executor = _executor(node.settings.executor)
        executor.add_node(node)
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
        # a bad value in the params file or on the command line: say which, without a traceback
        print(f"dfer_node: invalid parameter: {exc} (check --params-file / -p values; every parameter, its type "
              f"and range are in config/dfer.yaml)", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # the context was shut down from elsewhere
    finally:
        if node is not None:
            node.shutdown_cleanly()
            node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
