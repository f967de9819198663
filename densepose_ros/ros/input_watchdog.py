"""Why no frames arrive: the node's input watchdog and QoS reasoning. ROS-free.

A camera whose frames never reach the node is the commonest failure on a real robot, and
DDS says nothing about it: large samples from a best-effort writer are lost silently by
Fast DDS unless its transports are tuned, and a reliable reader never matches a best-effort
writer. The node feeds this module what the ROS graph reports (publishers of the input
topic and their QoS) and the arrival of frames; the module decides when to warn, what to
say, and when the subscription's QoS should be chosen again.

Reliability names are the lower-case names of ``rclpy.qos.ReliabilityPolicy``:
``"reliable"``, ``"best_effort"``, ``"best_available"``, ``"system_default"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RELIABLE = "reliable"
BEST_EFFORT = "best_effort"
BEST_AVAILABLE = "best_available"

# What to do about large frames from a best-effort publisher (README "Large images and DDS").
LARGE_FRAME_ADVICE = (
    "Fast DDS with its built-in transports loses large frames (640x480 bgr8 and bigger) sent "
    "best effort: make the driver publish reliable, or start the driver (better: every "
    "process exchanging images) with FASTDDS_DEFAULT_PROFILES_FILE="
    "<share>/densepose_ros/config/fastdds_large_images.xml (larger shared-memory segments)"
)


@dataclass(frozen=True)
class PublisherQoS:
    """One publisher of the input topic as the ROS graph reports it.

    node: fully qualified name of the publishing node ('/camera/driver').
    topic_type: its message type ('sensor_msgs/msg/Image').
    reliability, durability: lower-case policy names ('best_effort', 'volatile').
    """

    node: str
    topic_type: str
    reliability: str
    durability: str

    def describe(self) -> str:
        return f"'{self.node}' ({self.topic_type}, {self.reliability}, {self.durability})"


def best_available_choice(publishers: Sequence[PublisherQoS]) -> str:
    """What a ``best_available`` subscription resolves to, given the publishers it sees:
    best effort if any of them is best effort (a reliable reader cannot match it), else
    reliable (also with no publisher at all). rmw chooses once, when the subscription is
    created, so the choice goes stale when publishers come or go afterwards."""
    if any(p.reliability == BEST_EFFORT for p in publishers):
        return BEST_EFFORT
    return RELIABLE


def needs_new_subscription(requested: str, resolved: str | None,
                           publishers: Sequence[PublisherQoS]) -> bool:
    """True when a ``best_available`` subscription resolved (at creation, maybe before the
    publishers were discovered) to another reliability than the publishers now call for:
    reliable against a best-effort camera (nothing can flow) or best effort against reliable
    ones only (large frames are lost)."""
    if requested != BEST_AVAILABLE or resolved is None or not publishers:
        return False
    return best_available_choice(publishers) != resolved


def likely_cause(publishers: Sequence[PublisherQoS], subscription_reliability: str,
                 expected_type: str) -> str:
    """One sentence on why frames from ``publishers`` do not arrive at a subscription of
    ``expected_type`` whose (resolved) reliability is ``subscription_reliability``."""
    foreign = [p for p in publishers if p.topic_type != expected_type]
    if foreign:
        return (f"{foreign[0].describe()} publishes another message type than the node "
                f"expects ({expected_type}): wrong topic, or use_compressed does not match")
    best_effort = [p for p in publishers if p.reliability == BEST_EFFORT]
    if subscription_reliability == RELIABLE and best_effort:
        return (f"QoS mismatch: the node subscribes reliable and {best_effort[0].describe()} "
                "offers best effort, so no message can flow; use qos_reliability:="
                "best_available (the default) or best_effort")
    if best_effort:
        return f"the publisher is best effort. {LARGE_FRAME_ADVICE}"
    if subscription_reliability == BEST_EFFORT:
        return ("the node subscribes best effort to a reliable publisher and Fast DDS loses "
                "large frames on such a link; use qos_reliability:=best_available (the "
                f"default) or reliable. {LARGE_FRAME_ADVICE}")
    return ("the publisher is matched reliably but sends nothing: is the driver streaming "
            "(check its rate with `ros2 topic hz`)?")


class InputWatchdog:
    """Warns once per episode when the input topic has publishers but no frame arrives.

    An episode starts when publishers appear or a frame arrives, and ends with the next frame
    (or when the last publisher leaves). Times are monotonic seconds supplied by the caller.
    """

    def __init__(self, timeout_s: float, topic: str, expected_type: str):
        self.timeout_s = timeout_s
        self.topic = topic
        self.expected_type = expected_type
        self.warning: str | None = None  # the current episode's warning, while it lasts
        self.publisher_count = 0  # as of the last check
        self._quiet_since: float | None = None  # publishers present, no frame since then

    def frame(self, now: float) -> str | None:
        """A frame arrived. Returns the warning this ends, if one was raised."""
        ended, self.warning = self.warning, None
        self._quiet_since = now
        return ended

    def check(self, now: float, publishers: Sequence[PublisherQoS],
              subscription_reliability: str) -> str | None:
        """Called periodically. Returns a new warning text once per episode, else None."""
        self.publisher_count = len(publishers)
        if not publishers:
            self._quiet_since, self.warning = None, None
            return None
        if self._quiet_since is None:
            self._quiet_since = now
        quiet = now - self._quiet_since
        if self.timeout_s <= 0 or self.warning is not None or quiet < self.timeout_s:
            return None
        names = "; ".join(p.describe() for p in publishers)
        count = len(publishers)
        self.warning = (
            f"no frame on {self.topic} for {quiet:.1f} s although {count} publisher"
            f"{'s' if count > 1 else ''} exist{'' if count > 1 else 's'}: {names}; the node "
            f"subscribes {subscription_reliability}. Likely cause: "
            f"{likely_cause(publishers, subscription_reliability, self.expected_type)}"
        )
        return self.warning
