"""Posed and shaped Anny bodies: pose and phenotype sampling, skinning, COCO keypoints.

Poses are sampled per everyday activity (standing, walking, reaching/waving, crouching,
hands on hips, bending over, sitting on the ground) and then clipped to per-joint limits.
Rotations are given in anny's ``local-ref`` parameterisation: each bone's delta rotation is
expressed in
world-aligned axes (x = body's left, y = backwards, z = up). Angles are written for the
body's left side; the right side uses the mirrored rotation (x, -y, -z rotation vector).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

# Joint limits in degrees about the world-aligned axes (x, y, z), left side.
# Signs (checked on the model): hip flexion (thigh forward) is -x, knee flexion +x,
# shoulder abduction (arm up sideways) -y, shoulder flexion (arm forward) -x, elbow
# flexion -x, spine forward bend +x.
JOINT_LIMITS_DEG: dict[str, tuple[tuple[float, float], ...]] = {
    "root": ((0, 70), (0, 0), (0, 0)),  # forward lean only; heading is set by the scene
    "upperleg01": ((-110, 35), (-40, 12), (-25, 25)),
    "lowerleg01": ((0, 135), (-5, 5), (-10, 10)),
    "foot": ((-30, 30), (-10, 10), (-15, 15)),
    "upperarm01": ((-160, 50), (-130, 45), (-45, 45)),
    "lowerarm01": ((-145, 0), (-10, 10), (-40, 40)),
    "wrist": ((-40, 40), (-20, 20), (-30, 30)),
    "spine04": ((-15, 40), (-12, 12), (-20, 20)),
    "spine02": ((-10, 30), (-10, 10), (-20, 20)),
    "neck01": ((-25, 30), (-15, 15), (-35, 35)),
    "head": ((-20, 25), (-15, 15), (-30, 30)),
}
SIDED_JOINTS = ("upperleg01", "lowerleg01", "foot", "upperarm01", "lowerarm01", "wrist")
ACTIVITIES = ("standing", "walking", "reaching", "crouching", "hands_on_hips", "bending",
              "sitting_on_ground")
NUM_COCO_KEYPOINTS = 17


@dataclass(frozen=True)
class BodyConfig:
    """Ranges of the sampled bodies.

    activity_weights: relative frequency of each activity in ``ACTIVITIES`` order.
    child_fraction: fraction of children (anny age 0.38..0.6); adults get 0.6..1 (anny's
        age anchors: 1/3 child, 2/3 young adult, 1 old).
    """

    activity_weights: tuple[float, ...] = (0.23, 0.23, 0.18, 0.1, 0.09, 0.09, 0.08)
    child_fraction: float = 0.12
    pose_jitter_deg: float = 6.0


@dataclass
class BodySample:
    """One person's parameters.

    joint_angles_deg: bone label (with .L/.R where sided) -> (3,) rotation angles in degrees
        about the world-aligned axes (applied as one rotation vector).
    phenotype: anny phenotype label -> value in [0, 1].
    """

    activity: str
    joint_angles_deg: dict[str, np.ndarray] = field(default_factory=dict)
    phenotype: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PosedBodies:
    """Skinned bodies in their own frame (metres; x = body's left, y = backwards, z = up),
    standing on z = 0 with the root above the origin.

    Attributes:
        vertices: (B, V, 3) float32 posed template vertices.
        keypoints: (B, 17, 3) float32 COCO-17 keypoints (anny's regressor).
    """

    vertices: np.ndarray
    keypoints: np.ndarray


@functools.cache
def load_anny():
    """The Anny full-body model (first build compiles a Warp kernel: ~1-2 min, then cached)."""
    import anny

    return anny.Anny()


@functools.cache
def _keypoint_regressor():
    from anny import KeypointsRegressor

    return KeypointsRegressor.coco(load_anny())


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _activity_angles(rng: np.random.Generator, activity: str) -> dict[str, np.ndarray]:
    """Left-side-convention angles (x, y, z) per joint and side, before limits and jitter."""
    a: dict[str, list[float]] = {}
    for side in "LR":
        a[f"upperarm01.{side}"] = [_u(rng, -15, 15), _u(rng, 20, 42), _u(rng, -20, 20)]
        a[f"lowerarm01.{side}"] = [_u(rng, -35, 0), 0.0, _u(rng, -20, 20)]
        a[f"upperleg01.{side}"] = [_u(rng, -8, 5), _u(rng, -8, 3), _u(rng, -10, 10)]
        a[f"lowerleg01.{side}"] = [_u(rng, 0, 10), 0.0, 0.0]
    a["spine04"] = [_u(rng, -5, 10), _u(rng, -5, 5), _u(rng, -12, 12)]
    a["spine02"] = [_u(rng, -5, 8), _u(rng, -4, 4), _u(rng, -10, 10)]
    a["neck01"] = [_u(rng, -10, 15), 0.0, _u(rng, -25, 25)]
    a["head"] = [_u(rng, -10, 12), _u(rng, -8, 8), _u(rng, -20, 20)]
    if activity == "walking":
        phase = _u(rng, -1, 1)
        stride = _u(rng, 15, 35)
        front, back = ("L", "R") if phase > 0 else ("R", "L")
        a[f"upperleg01.{front}"][0] = -stride * abs(phase) - 5
        a[f"upperleg01.{back}"][0] = stride * abs(phase) * 0.7
        a[f"lowerleg01.{back}"][0] = _u(rng, 10, 50)
        a[f"lowerleg01.{front}"][0] = _u(rng, 0, 15)
        a[f"upperarm01.{back}"][0] = -stride * abs(phase) * 0.8  # arms swing opposite
        a[f"upperarm01.{front}"][0] = stride * abs(phase) * 0.6
        for side in "LR":
            a[f"lowerarm01.{side}"][0] = _u(rng, -45, -10)
    elif activity == "reaching":
        side = "L" if rng.random() < 0.5 else "R"
        if rng.random() < 0.5:  # up sideways (waving)
            a[f"upperarm01.{side}"][:2] = [_u(rng, -40, 10), _u(rng, -125, -40)]
        else:  # forward (reaching, pointing)
            a[f"upperarm01.{side}"][:2] = [_u(rng, -150, -50), _u(rng, -10, 30)]
        a[f"lowerarm01.{side}"][0] = _u(rng, -130, 0)
        if rng.random() < 0.3:  # both arms
            other = "R" if side == "L" else "L"
            a[f"upperarm01.{other}"][:2] = [_u(rng, -120, -40), _u(rng, -40, 30)]
            a[f"lowerarm01.{other}"][0] = _u(rng, -100, 0)
    elif activity == "crouching":
        # Both legs alike (feet on the ground), small differences.
        hip, knee = _u(rng, -105, -60), _u(rng, 70, 125)
        for side in "LR":
            a[f"upperleg01.{side}"][0] = hip + _u(rng, -6, 6)
            a[f"upperleg01.{side}"][1] = _u(rng, -25, 0)
            a[f"lowerleg01.{side}"][0] = knee + _u(rng, -6, 6)
            a[f"upperarm01.{side}"][0] = _u(rng, -70, -10)
            a[f"lowerarm01.{side}"][0] = _u(rng, -70, -5)
        a["spine04"][0] = _u(rng, 10, 35)
    elif activity == "hands_on_hips":
        for side in "LR":
            a[f"upperarm01.{side}"] = [_u(rng, -10, 20), _u(rng, 0, 25), _u(rng, -30, 10)]
            a[f"lowerarm01.{side}"][0] = _u(rng, -115, -70)
    elif activity == "bending":
        # Tilt the whole body forward at the root and flex the hips back by as much, so
        # the legs stay upright and the trunk leans over them.
        tilt = _u(rng, 20, 60)
        a["root"] = [tilt, 0.0, 0.0]
        a["spine04"][0] = _u(rng, 5, 25)
        a["spine02"][0] = _u(rng, 5, 20)
        for side in "LR":
            a[f"upperleg01.{side}"][0] = -tilt + _u(rng, -8, 4)
            a[f"upperarm01.{side}"][:2] = [_u(rng, -60, -10), _u(rng, 20, 40)]
            a[f"lowerarm01.{side}"][0] = _u(rng, -40, 0)
        a["neck01"][0] = _u(rng, -25, 0)  # look up a little
    elif activity == "sitting_on_ground":
        # Knees up, feet flat near the seat; the body is lowered until its lowest point
        # (the buttocks or heels) touches the ground.
        hip, knee = _u(rng, -100, -70), _u(rng, 80, 130)
        for side in "LR":
            a[f"upperleg01.{side}"] = [hip + _u(rng, -8, 8), _u(rng, -30, -5), _u(rng, -15, 5)]
            a[f"lowerleg01.{side}"][0] = knee + _u(rng, -10, 10)
            a[f"upperarm01.{side}"][:2] = [_u(rng, -60, 10), _u(rng, 10, 40)]
            a[f"lowerarm01.{side}"][0] = _u(rng, -70, -5)
        a["spine04"][0] = _u(rng, 0, 25)
    return {k: np.asarray(v, dtype=np.float64) for k, v in a.items()}


def sample_body(rng: np.random.Generator, config: BodyConfig = BodyConfig()) -> BodySample:
    weights = np.asarray(config.activity_weights, dtype=np.float64)
    activity = ACTIVITIES[int(rng.choice(len(ACTIVITIES), p=weights / weights.sum()))]
    angles = _activity_angles(rng, activity)
    for name, value in angles.items():
        base = name.split(".")[0]
        value = value + rng.normal(0.0, config.pose_jitter_deg, size=3)
        limits = np.asarray(JOINT_LIMITS_DEG[base], dtype=np.float64)
        angles[name] = np.clip(value, limits[:, 0], limits[:, 1])
    child = rng.random() < config.child_fraction
    phenotype = {
        "gender": _u(rng, 0, 1),
        "age": _u(rng, 0.38, 0.6) if child else _u(rng, 0.6, 1.0),
        "muscle": float(rng.beta(2, 2)),
        "weight": float(rng.beta(2, 2)),
        "height": _u(rng, 0, 1),
        "proportions": _u(rng, 0, 0.6),
    }
    return BodySample(activity=activity, joint_angles_deg=angles, phenotype=phenotype)


def _rotvec(name: str, angles_deg: np.ndarray) -> np.ndarray:
    r = np.deg2rad(angles_deg)
    if name.endswith(".R"):
        r = r * np.array([1.0, -1.0, -1.0])  # mirror of the left-side rotation
    return r


def pose_bodies(samples: list[BodySample]) -> PosedBodies:
    """Skin a batch of bodies with anny (one batched forward pass)."""
    import roma
    import torch

    model = load_anny()
    batch = len(samples)
    # anny needs at least one bone in the dict to infer the batch size.
    names = sorted({n for s in samples for n in s.joint_angles_deg} | {"root"})
    pose = {}
    for name in names:
        rv = np.stack([_rotvec(name, s.joint_angles_deg.get(name, np.zeros(3))) for s in samples])
        rot = roma.rotvec_to_rotmat(torch.as_tensor(rv, dtype=torch.float32))
        mat = torch.eye(4).repeat(batch, 1, 1)
        mat[:, :3, :3] = rot
        pose[name] = mat
    phenotype = {
        label: torch.tensor([s.phenotype[label] for s in samples], dtype=torch.float32)
        for label in samples[0].phenotype
    }
    with torch.no_grad():
        out = model(pose_parameters=pose, phenotype_kwargs=phenotype)
        keypoints = _keypoint_regressor()(out)[:, :NUM_COCO_KEYPOINTS]
    vertices = out["vertices"].numpy().astype(np.float32)
    keypoints = keypoints.numpy().astype(np.float32)
    root = out["bone_poses"][:, 0, :3, 3].numpy().astype(np.float32)
    # Stand on z = 0 with the root above the origin.
    offset = np.stack([root[:, 0], root[:, 1], vertices[..., 2].min(axis=1)], axis=1)
    return PosedBodies(vertices=vertices - offset[:, None], keypoints=keypoints - offset[:, None])
