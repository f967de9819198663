"""The ByteTrack-style tracker on scripted box sequences (no model, no ROS)."""

import numpy as np

from densepose_ros.tracking.bytetrack import ByteTracker, TrackerConfig, iou_matrix


def person(x: float, y: float = 100.0, w: float = 60.0, h: float = 160.0) -> list[float]:
    return [x, y, x + w, y + h]


def run(tracker: ByteTracker, frames: list[tuple[list, list]]) -> list[list[int]]:
    return [tracker.update(np.array(boxes).reshape(-1, 4), np.array(scores)).tolist()
            for boxes, scores in frames]


def test_two_people_crossing_keep_their_ids():
    frames = []
    for k in range(40):  # A walks right, B walks left; they pass each other mid-way
        a, b = person(50 + 10 * k), person(450 - 10 * k, y=110)
        frames.append(([a, b], [0.95, 0.9]))
    ids = run(ByteTracker(), frames)
    assert ids[0] == [1, 2]
    assert all(frame == [1, 2] for frame in ids), ids


def test_a_person_hidden_for_some_frames_comes_back_with_the_same_id():
    tracker = ByteTracker(TrackerConfig(track_buffer=30))
    frames = [([person(100 + 5 * k)], [0.9]) for k in range(10)]
    frames += [([], [])] * 12  # hidden behind something for 12 frames, still walking
    frames += [([person(100 + 5 * k)], [0.9]) for k in range(22, 30)]
    ids = run(tracker, frames)
    assert {i for frame in ids for i in frame} == {1}


def test_after_the_track_buffer_a_returning_person_is_new():
    tracker = ByteTracker(TrackerConfig(track_buffer=5))
    ids = run(tracker, [([person(100)], [0.9])] * 3 + [([], [])] * 8 + [([person(100)], [0.9])])
    assert ids[0] == [1] and ids[-1] == [2]


def test_low_score_boxes_continue_a_track_but_start_none():
    tracker = ByteTracker()
    ids = run(tracker, [
        ([person(100)], [0.95]),
        ([person(105), person(400)], [0.5, 0.5]),  # the first half hidden: low score
        ([person(110), person(405)], [0.5, 0.5]),
        ([person(115)], [0.9]),
    ])
    assert ids == [[1], [1, 0], [1, 0], [1]]


def test_ids_are_never_reused_and_detections_keep_their_order():
    tracker = ByteTracker(TrackerConfig(track_buffer=0))
    first = tracker.update(np.array([person(0), person(300)]), np.array([0.9, 0.85]))
    second = tracker.update(np.array([person(300), person(600)]), np.array([0.9, 0.9]))
    assert first.tolist() == [1, 2] and second.tolist() == [2, 3]
    third = tracker.update(np.array([person(0)]), np.array([0.9]))
    assert third.tolist() == [4]  # id 1 ended; a new person gets a new id


def test_box_smoothing_damps_jitter():
    smooth = ByteTracker(TrackerConfig(box_smoothing=0.6))
    raw = ByteTracker()
    rng = np.random.default_rng(0)
    jitter_smooth, jitter_raw = [], []
    for k in range(30):
        box = np.array(person(100 + 4 * k)) + rng.normal(0, 6, 4)
        for tracker, out in ((smooth, jitter_smooth), (raw, jitter_raw)):
            ids = tracker.update(box[None], np.array([0.9]))
            out.append(tracker.boxes_of(ids)[0] - np.array(person(100 + 4 * k)))
    assert np.std(jitter_smooth[5:]) < 0.8 * np.std(jitter_raw[5:])


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5]], float)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 0.0], [0.25, 0.0]])


def test_mot_metrics_count_an_id_switch_and_a_miss():
    from densepose_ros.evaluation.tracking import tracking_metrics

    truth = [[(1, person(100)), (2, person(300))]] * 4
    perfect = [[(7, person(100)), (9, person(300))]] * 4
    switched = [[(7, person(100)), (9, person(300))]] * 2 + [[(9, person(100)),
                                                              (7, person(300))]] * 2
    missing = [[(7, person(100))]] * 4
    assert tracking_metrics([(truth, perfect)])["num_switches"] == 0
    assert tracking_metrics([(truth, perfect)])["mota"] == 100.0
    assert tracking_metrics([(truth, switched)])["num_switches"] == 2
    metrics = tracking_metrics([(truth, missing)])
    assert metrics["recall"] == 50.0 and metrics["mota"] == 50.0


def test_track_summary_flags_an_id_change_in_the_open_but_not_people_entering():
    from densepose_ros.evaluation.tracking import summarise_tracks

    frames = []
    for k in range(12):
        walker = [100 + 5 * k, 100, 160 + 5 * k, 260]
        frame = [(1 if k < 5 else 3, walker)]  # the same person's id changes at frame 5
        if k >= 7:  # someone enters from the left edge at frame 7
            frame.append((4, [0, 90, 50, 250]))
        frames.append(frame)
    summary = summarise_tracks(frames, image_size=(480, 640))
    assert summary.tracks == 3 and summary.lengths == {1: 5, 3: 7, 4: 5}
    assert summary.suspected_switches == [(5, 1, 3)]
    far = [[(1, [100, 100, 160, 260])]] * 3 + [[(2, [400, 100, 460, 260])]] * 3
    assert summarise_tracks(far, image_size=(480, 640)).suspected_switches == []


def test_follow_drops_low_scores_and_hands_over_smoothed_boxes():
    import torch

    from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult
    from densepose_ros.tracking.bytetrack import follow

    def result(boxes, scores):
        n = len(boxes)
        charts = DensePoseChartOutput(torch.zeros(n, 2, 4, 4), torch.zeros(n, 25, 4, 4),
                                      torch.zeros(n, 25, 4, 4), torch.zeros(n, 25, 4, 4))
        return DensePoseResult(torch.tensor(boxes, dtype=torch.float32),
                               torch.tensor(scores), charts, (480, 640))

    tracker = ByteTracker(TrackerConfig(high_threshold=0.8, box_smoothing=0.5))
    first, ids = follow(tracker, result([person(100), person(400)], [0.9, 0.9]))
    assert list(ids) == [1, 2]
    # the second person drops to 0.5: their track lives on, but they are not published
    shifted = np.array(person(110)) + [0, 6, 0, 6]
    second, ids = follow(tracker, result([shifted.tolist(), person(400)], [0.9, 0.5]))
    assert list(ids) == [1] and len(second) == 1
    np.testing.assert_allclose(second.boxes[0].numpy(), tracker.boxes_of(ids)[0], atol=1e-4)
    assert not np.allclose(second.boxes[0].numpy(), shifted)  # smoothed, not the raw box
    third, ids = follow(tracker, result([person(400)], [0.9]))
    assert list(ids) == [2]  # the same person, kept alive by the low-score frame
