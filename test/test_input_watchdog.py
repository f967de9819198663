"""The node's input watchdog and best_available QoS reasoning, without ROS."""

from densepose_ros.ros.input_watchdog import (
    InputWatchdog,
    PublisherQoS,
    best_available_choice,
    likely_cause,
    needs_new_subscription,
)

IMAGE = "sensor_msgs/msg/Image"
RELIABLE_CAMERA = PublisherQoS("/camera/driver", IMAGE, "reliable", "volatile")
BEST_EFFORT_CAMERA = PublisherQoS("/camera/driver", IMAGE, "best_effort", "volatile")


def test_best_available_is_best_effort_only_when_a_publisher_is():
    assert best_available_choice([]) == "reliable"
    assert best_available_choice([RELIABLE_CAMERA]) == "reliable"
    assert best_available_choice([RELIABLE_CAMERA, BEST_EFFORT_CAMERA]) == "best_effort"


def test_a_stale_best_available_choice_is_made_again():
    # chosen at start-up before the best-effort camera was discovered: nothing can flow
    assert needs_new_subscription("best_available", "reliable", [BEST_EFFORT_CAMERA])
    # chosen while a best-effort camera ran; now only reliable ones: large frames are lost
    assert needs_new_subscription("best_available", "best_effort", [RELIABLE_CAMERA])
    assert not needs_new_subscription("best_available", "reliable", [RELIABLE_CAMERA])
    assert not needs_new_subscription("best_available", "reliable", [])
    # an explicit choice (parameter or qos_overrides) is the user's: never changed
    assert not needs_new_subscription("reliable", "reliable", [BEST_EFFORT_CAMERA])
    assert not needs_new_subscription("best_effort", "best_effort", [RELIABLE_CAMERA])


def test_the_cause_names_what_to_change():
    assert "QoS mismatch" in likely_cause([BEST_EFFORT_CAMERA], "reliable", IMAGE)
    large = likely_cause([BEST_EFFORT_CAMERA], "best_effort", IMAGE)
    assert "fastdds_large_images.xml" in large and "reliable" in large
    assert "best_available" in likely_cause([RELIABLE_CAMERA], "best_effort", IMAGE)
    assert "sends nothing" in likely_cause([RELIABLE_CAMERA], "reliable", IMAGE)
    compressed = PublisherQoS("/cam", "sensor_msgs/msg/CompressedImage", "reliable", "volatile")
    assert "another message type" in likely_cause([compressed], "reliable", IMAGE)


def test_warns_once_per_episode_and_recovers_with_frames():
    watchdog = InputWatchdog(5.0, "/camera/image_raw", IMAGE)
    assert watchdog.check(0.0, [], "reliable") is None  # no publisher: nothing to expect
    assert watchdog.check(100.0, [], "reliable") is None
    assert watchdog.check(101.0, [BEST_EFFORT_CAMERA], "best_effort") is None  # appeared
    assert watchdog.check(105.9, [BEST_EFFORT_CAMERA], "best_effort") is None
    warning = watchdog.check(106.0, [BEST_EFFORT_CAMERA], "best_effort")
    assert warning is not None and watchdog.warning == warning
    assert "/camera/image_raw" in warning and "5.0 s" in warning
    assert "'/camera/driver' (sensor_msgs/msg/Image, best_effort, volatile)" in warning
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in warning
    assert watchdog.check(200.0, [BEST_EFFORT_CAMERA], "best_effort") is None  # once
    assert watchdog.warning == warning  # still the state until frames come
    assert watchdog.frame(201.0) == warning and watchdog.warning is None
    assert watchdog.check(205.0, [RELIABLE_CAMERA], "reliable") is None
    again = watchdog.check(206.5, [RELIABLE_CAMERA], "reliable")  # a new episode
    assert again is not None and "sends nothing" in again


def test_a_publisher_leaving_ends_the_episode():
    watchdog = InputWatchdog(1.0, "/image", IMAGE)
    watchdog.check(0.0, [RELIABLE_CAMERA], "reliable")
    assert watchdog.check(2.0, [RELIABLE_CAMERA], "reliable") is not None
    assert watchdog.check(3.0, [], "reliable") is None and watchdog.warning is None
    assert watchdog.publisher_count == 0
    assert watchdog.check(3.5, [RELIABLE_CAMERA], "reliable") is None  # silence restarts


def test_zero_timeout_disables_the_warning():
    watchdog = InputWatchdog(0.0, "/image", IMAGE)
    watchdog.check(0.0, [BEST_EFFORT_CAMERA], "best_effort")
    assert watchdog.check(1000.0, [BEST_EFFORT_CAMERA], "best_effort") is None
