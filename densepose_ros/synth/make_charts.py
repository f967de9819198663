"""Regenerate the Anny chart and geodesic assets: ``python -m densepose_ros.synth.make_charts``.

Steps (all on Anny's default-phenotype template in its rest A-pose):
1. Regions. Hands, feet and head (with the eyes, mouth cavity and tongue) come from anny's
   shipped UV-space segmentation; the rest of the body is split by the dominant group of
   skinning weights (torso, upper/lower leg, upper/lower arm, each side; the neck joins
   the head). ``.L`` bones are the body's own left (+x).
2. Charts and (U, V). Each region has a frame (origin, axis, reference direction) from the
   rest bone heads, built on the body's left and mirrored for the right, so that mirrored
   points get identical (U, V). Torso, limbs and head use a cylindrical map: V = position
   along the axis, U = angle around it; limbs and torso split into a front and a back chart
   at +-90 degrees (head: right/left of the midline). Hands and feet are one chart each:
   a "mitten" map, orthographic onto the palm (sole) plane, the palm-facing and
   back-facing triangles side by side in U, joined along one edge.
3. Geodesics (``geodesic.py``): farthest-point samples of the visible surface and their
   pairwise geodesic distances, see ``densepose_ros.synth.geodesic.build_geodesic_asset``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densepose_ros.synth.charts import CHARTS_ASSET, UV_QUANT

# Segmentation labels of inner surfaces never seen from outside (rendered: no).
HIDDEN_LABELS = ("eye_back.L", "eye_back.R", "eye_cavity.L", "eye_cavity.R",
                 "mouth_cavity", "tongue")  # fmt: skip
HEAD_LABELS = ("head", "eye_front.L", "eye_front.R") + HIDDEN_LABELS

# Skinning groups: region name -> bone-name pattern (side suffix added for sided regions).
SIDED_GROUPS = {
    "upper_leg": r"upperleg0[12]",
    "lower_leg": r"lowerleg0[12]",
    "foot": r"(foot|toe.*)",
    "upper_arm": r"upperarm0[12]",
    "lower_arm": r"lowerarm0[12]",
    "hand": r"(wrist|finger.*|metacarpal.*)",
}
CENTRAL_GROUPS = {
    "head": r"(neck0[123]|head|eye\.[LR])",
    "torso": r"(root|pelvis\.[LR]|spine0[1-5]|clavicle\.[LR]|shoulder01\.[LR])",
}

# (back or right-side chart, front or left-side chart) for each two-chart region, per side.
PAIRED_CHARTS = {
    ("torso", ""): (1, 2),
    ("upper_leg", "R"): (7, 9), ("upper_leg", "L"): (8, 10),
    ("lower_leg", "R"): (11, 13), ("lower_leg", "L"): (12, 14),
    ("upper_arm", "L"): (17, 15), ("upper_arm", "R"): (18, 16),
    ("lower_arm", "L"): (21, 19), ("lower_arm", "R"): (22, 20),
    ("head", ""): (23, 24),
}  # fmt: skip
SINGLE_CHARTS = {("hand", "R"): 3, ("hand", "L"): 4, ("foot", "L"): 5, ("foot", "R"): 6}

# Region frames: origin bone, axis end bone (bone heads of the left side).
LIMB_BONES = {
    "upper_leg": ("upperleg01", "lowerleg01"),
    "lower_leg": ("lowerleg01", "foot"),
    "upper_arm": ("upperarm01", "lowerarm01"),
    "lower_arm": ("lowerarm01", "wrist"),
    "hand": ("wrist", "finger3-1"),
    "foot": ("foot", "toe3-1"),
}
MIRROR = np.array([-1.0, 1.0, 1.0])
FRONT = np.array([0.0, -1.0, 0.0])  # Anny faces -y
UP = np.array([0.0, 0.0, 1.0])
LEFT = np.array([1.0, 0.0, 0.0])


@dataclass(frozen=True)
class RestMesh:
    """Anny template at its default phenotype, rest pose.

    Attributes:
        vertices: (V, 3) float64 metres. faces: (F, 3) int64 triangles.
        corner_texcoords: (F, 3, 2) float64 anny's own UV (for its UV-space segmentation).
        vertex_bone_indices, vertex_bone_weights: (V, K) skinning.
        bone_labels: 104 names. bone_heads: (104, 3) float64 rest bone heads.
    """

    vertices: np.ndarray
    faces: np.ndarray
    corner_texcoords: np.ndarray
    vertex_bone_indices: np.ndarray
    vertex_bone_weights: np.ndarray
    bone_labels: list[str]
    bone_heads: np.ndarray


def load_rest_mesh() -> RestMesh:
    from densepose_ros.synth.body import load_anny

    model = load_anny()
    out = model()
    tc = model.texture_coordinates.detach().cpu().numpy().astype(np.float64)
    fti = model.face_texture_coordinate_indices.cpu().numpy()
    return RestMesh(
        vertices=out["rest_vertices"][0].detach().cpu().numpy().astype(np.float64),
        faces=model.get_triangular_faces().cpu().numpy().astype(np.int64),
        corner_texcoords=tc[fti],
        vertex_bone_indices=model.vertex_bone_indices.cpu().numpy().astype(np.int64),
        vertex_bone_weights=model.vertex_bone_weights.detach().cpu().numpy().astype(np.float64),
        bone_labels=list(model.bone_labels),
        bone_heads=out["rest_bone_heads"][0].detach().cpu().numpy().astype(np.float64),
    )


def segmentation_labels(mesh: RestMesh) -> np.ndarray:
    """(F,) anny UV-space segmentation label of each triangle (sampled at its UV centroid)."""
    import cv2
    import yaml
    from anny.paths import get_anny_root_dir

    seg_dir = Path(get_anny_root_dir()) / "data" / "segmentation"
    image = cv2.imread(str(seg_dir / "body_parts_segmentation.png"), cv2.IMREAD_COLOR)[..., ::-1]
    colors = yaml.safe_load((seg_dir / "body_parts_segmentation.yaml").read_text())["colors"]
    h, w = image.shape[:2]
    centre = mesh.corner_texcoords.mean(axis=1)
    px = np.clip((centre[:, 0] * w).astype(int), 0, w - 1)
    py = np.clip(((1.0 - centre[:, 1]) * h).astype(int), 0, h - 1)
    rgb = image[py, px].astype(np.int64)
    names = list(colors)
    palette = np.array([colors[n] for n in names], dtype=np.int64)
    nearest = np.abs(rgb[:, None, :] - palette[None]).sum(-1).argmin(1)
    return np.array(names, dtype=object)[nearest]


def vertex_mirror(vertices: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    dist, index = cKDTree(vertices).query(vertices * MIRROR)
    if dist.max() > 1e-4:
        raise ValueError(f"Anny template is not left/right symmetric ({dist.max():.2e} m)")
    return index.astype(np.int64)


def face_neighbours(faces: np.ndarray) -> np.ndarray:
    """(F, 3) index of the triangle across each edge (-1 on an open border)."""
    edges = np.sort(np.stack([faces, faces[:, [1, 2, 0]]], axis=-1), axis=-1).reshape(-1, 2)
    key = edges[:, 0] * (faces.max() + 1) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    first, second = order[:-1][same], order[1:][same]
    out = np.full(len(key), -1, dtype=np.int64)
    out[first], out[second] = second // 3, first // 3
    return out.reshape(-1, 3)


def quad_mates(vertices: np.ndarray, faces: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(F,) the other triangle of each triangle's quad (itself if it has none).

    Anny's triangles are split quads: two triangles whose longest edges are the same edge
    form a quad. Labelling quads rather than triangles keeps region borders on quad edges
    instead of saw-toothing across the diagonals."""
    corners = vertices[faces]
    lengths = np.linalg.norm(corners - corners[:, [1, 2, 0]], axis=-1)  # edge k: k -> k+1
    longest = lengths.argmax(1)
    index = np.arange(len(faces))
    other = neighbours[index, longest]
    safe = np.maximum(other, 0)
    # A quad when the neighbour across my longest edge has that same edge as its longest.
    mutual = (other >= 0) & (neighbours[safe, longest[safe]] == index)
    return np.where(mutual, other, index)


def smooth_labels(labels: np.ndarray, neighbours: np.ndarray, accept, iterations: int = 3):
    """Majority filter: a triangle takes the label two of its three neighbours share, when
    ``accept(faces, candidates)`` allows it. Synchronous updates keep mirror symmetry.

    Per-triangle labels on a mesh of split quads give one-triangle spikes along region
    borders; this removes them."""
    labels = labels.copy()
    for _ in range(iterations):
        nb = np.where(neighbours >= 0, labels[np.maximum(neighbours, 0)], -1)
        cand = np.where(nb[:, 0] == nb[:, 1], nb[:, 0],
                        np.where(nb[:, 0] == nb[:, 2], nb[:, 0],
                                 np.where(nb[:, 1] == nb[:, 2], nb[:, 1], -1)))
        change = np.flatnonzero((cand >= 0) & (cand != labels))
        change = change[accept(change, cand[change])]
        if change.size == 0:
            break
        labels[change] = cand[change]
    return labels


def face_regions(mesh: RestMesh, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(region name per face (F,), side per face (F,): 'L', 'R' or '')."""
    labels = mesh.bone_labels
    groups: list[tuple[str, str, np.ndarray]] = []
    for name, pattern in CENTRAL_GROUPS.items():
        groups.append((name, "", np.array([re.fullmatch(pattern, b) is not None for b in labels])))
    for name, pattern in SIDED_GROUPS.items():
        for side in "LR":
            bones = np.array([re.fullmatch(pattern + rf"\.{side}", b) is not None for b in labels])
            groups.append((name, side, bones))
    # Per-vertex weight of each group, summed over the triangle's corners.
    vertex_group = np.zeros((len(mesh.vertices), len(groups)))
    for g, (_, _, bones) in enumerate(groups):
        mask = bones[mesh.vertex_bone_indices]
        vertex_group[:, g] = (mesh.vertex_bone_weights * mask).sum(1)
    mates = quad_mates(mesh.vertices, mesh.faces, face_neighbours(mesh.faces))
    quad_weights = vertex_group[mesh.faces].sum(1) + vertex_group[mesh.faces[mates]].sum(1)
    face_group = quad_weights.argmax(1)
    region = np.array([groups[g][0] for g in face_group], dtype=object)
    side = np.array([groups[g][1] for g in face_group], dtype=object)
    # The shipped segmentation draws the hand, foot and head borders.
    for seg_label, (reg, sd) in {"hand.L": ("hand", "L"), "hand.R": ("hand", "R"),
                                 "foot.L": ("foot", "L"), "foot.R": ("foot", "R")}.items():
        region[seg == seg_label], side[seg == seg_label] = reg, sd
    is_head = np.isin(seg, HEAD_LABELS)
    region[is_head], side[is_head] = "head", ""
    # Body-labelled triangles skinned to a hand/foot belong to the limb next to it.
    for reg, neighbour in (("hand", "lower_arm"), ("foot", "lower_leg")):
        stray = (region == reg) & ~np.isin(seg, ("hand.L", "hand.R", "foot.L", "foot.R"))
        region[stray] = neighbour
    # Smooth the skinning-made borders; the segmentation-made ones stay as drawn.
    names, code = np.unique(np.char.add(region.astype(str), side.astype(str)),
                            return_inverse=True)
    fixed = np.isin(seg, ("hand.L", "hand.R", "foot.L", "foot.R") + HEAD_LABELS)
    mitten = np.array([n.startswith(("hand", "foot")) for n in names])
    code = smooth_labels(code, face_neighbours(mesh.faces),
                         lambda f, c: ~fixed[f] & ~mitten[c])
    region = np.array([n[:-1] if n[:-1] in SIDED_GROUPS else n for n in names],
                      dtype=object)[code]
    side = np.array([n[-1] if n[:-1] in SIDED_GROUPS else "" for n in names],
                    dtype=object)[code]
    return region, side


@dataclass(frozen=True)
class Frame:
    """A region's parameterisation frame: origin (3,), unit axis (3,), unit reference
    direction (3,) perpendicular to the axis, unit lateral direction (3,) completing it."""

    origin: np.ndarray
    axis: np.ndarray
    reference: np.ndarray
    lateral: np.ndarray

    def mirrored(self) -> Frame:
        return Frame(self.origin * MIRROR, self.axis * MIRROR, self.reference * MIRROR,
                     self.lateral * MIRROR)


def _perp(direction: np.ndarray, axis: np.ndarray) -> np.ndarray:
    d = direction - (direction @ axis) * axis
    return d / np.linalg.norm(d)


def _frame(origin, end, reference) -> Frame:
    axis = (end - origin) / np.linalg.norm(end - origin)
    ref = _perp(reference, axis)
    return Frame(origin, axis, ref, np.cross(axis, ref))


def region_frames(mesh: RestMesh, region: np.ndarray, side: np.ndarray) -> dict:
    """(region, side) -> Frame; right-side frames are mirror images of the left ones."""
    head_of = {b: mesh.bone_heads[i] for i, b in enumerate(mesh.bone_labels)}
    frames = {
        ("torso", ""): _frame(head_of["root"], head_of["neck01"], FRONT),
        ("head", ""): _frame(head_of["neck01"], head_of["head"] + UP * 0.1, FRONT),
    }
    for name, (start, end) in LIMB_BONES.items():
        origin, tip = head_of[f"{start}.L"], head_of[f"{end}.L"]
        if name in ("hand", "foot"):
            # Mitten frame: reference = normal of the palm (sole) plane, from PCA.
            pts = mesh.vertices[np.unique(mesh.faces[(region == name) & (side == "L")])]
            axis = (tip - origin) / np.linalg.norm(tip - origin)
            centred = pts - pts.mean(0)
            normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
            guide = UP if name == "foot" else LEFT
            normal = normal if normal @ guide >= 0 else -normal
            ref = _perp(normal, axis)
            frame = Frame(origin, axis, ref, np.cross(axis, ref))
        else:
            frame = _frame(origin, tip, FRONT)
        frames[(name, "L")] = frame
        frames[(name, "R")] = frame.mirrored()
    return frames


def _cyl(points: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """(angle around the axis from the reference direction, position along the axis).

    Right-side frames are mirrored left ones (lateral included), so mirrored points get
    equal angles on both sides."""
    rel = points - frame.origin
    return np.arctan2(rel @ frame.lateral, rel @ frame.reference), rel @ frame.axis


def _unwrap(corner_angle: np.ndarray, centre_angle: np.ndarray) -> np.ndarray:
    """Corner angles made continuous with their triangle's centroid angle."""
    return centre_angle[:, None] + np.angle(np.exp(1j * (corner_angle - centre_angle[:, None])))


def _split_halves(mesh: RestMesh, region, side, frames) -> np.ndarray:
    """(F,) chart of every triangle: its region's chart, or for two-chart regions the half
    its centroid lies in (front/back at +-90 degrees; head: right/left of the midline),
    with spikes along the splits smoothed away."""
    chart = np.zeros(len(mesh.faces), dtype=np.int64)
    neighbours = face_neighbours(mesh.faces)
    mates = quad_mates(mesh.vertices, mesh.faces, neighbours)
    # Quad centres where the quad lies in one region, else the triangle's own centre.
    same_region = (region[mates] == region) & (side[mates] == side)
    mates = np.where(same_region, mates, np.arange(len(mesh.faces)))
    own = mesh.vertices[mesh.faces].mean(1)
    centroids = (own + own[mates]) / 2
    partner = np.zeros(len(mesh.faces), dtype=np.int64)
    for (name, sd), frame in frames.items():
        sel = np.flatnonzero((region == name) & (side == sd))
        if name in ("hand", "foot"):
            chart[sel] = SINGLE_CHARTS[(name, sd)]
            continue
        first, second = PAIRED_CHARTS[(name, sd)]
        if name == "head":
            # The body's left half; own centres, since quads straddling the midline
            # have a centre at x = 0 up to round-off (which would break mirror symmetry).
            in_second = own[sel, 0] > 0
        else:
            in_second = np.abs(_cyl(centroids[sel], frame)[0]) <= np.pi / 2  # front half
        chart[sel] = np.where(in_second, second, first)
        partner[sel] = np.where(in_second, first, second)
    return smooth_labels(chart, neighbours, lambda f, c: (partner[f] > 0) & (c == partner[f]))


def assign_charts(mesh: RestMesh, region, side, frames) -> tuple[np.ndarray, np.ndarray]:
    """(chart index per face (F,), corner (U, V) (F, 3, 2)) before clipping to [0, 1]."""
    chart = _split_halves(mesh, region, side, frames)
    uv = np.zeros((len(mesh.faces), 3, 2))
    corners = mesh.vertices[mesh.faces]
    centroids = corners.mean(1)
    for (name, sd), frame in frames.items():
        sel = np.flatnonzero((region == name) & (side == sd))
        if sel.size == 0:
            continue
        verts = mesh.vertices[np.unique(mesh.faces[sel])]
        along_all = (verts - frame.origin) @ frame.axis
        lo, hi = along_all.min(), along_all.max()
        corner_pts = corners[sel].reshape(-1, 3)
        if name in ("hand", "foot"):
            uv[sel] = _mitten_uv(mesh, sel, frame, verts, lo, hi)
            continue
        first, second = PAIRED_CHARTS[(name, sd)]
        in_second = chart[sel] == second
        a_c, _ = _cyl(centroids[sel], frame)
        a, t = _cyl(corner_pts, frame)
        a = a.reshape(-1, 3)
        if name == "head":
            # Right half and left half, U = azimuth from the front (0) to the back (1).
            half_sign = np.where(in_second, 1.0, -1.0)
            u = _unwrap(a * half_sign[:, None], a_c * half_sign) / np.pi
        else:
            # Back chart: angle measured from the back direction, same orientation of U.
            a_back, a_c_back = np.pi - a, np.angle(np.exp(1j * (np.pi - a_c)))
            a = np.where(in_second[:, None], _unwrap(a, a_c), _unwrap(a_back, a_c_back))
            a = np.angle(np.exp(1j * a))
            u = (a + np.pi / 2) / np.pi
            if name == "torso":
                # Midline corners: U = 0.5 exactly (the angle is unstable near the crotch pole).
                u[np.abs(corner_pts[:, 0].reshape(-1, 3)) < 1e-7] = 0.5
        v = (t.reshape(-1, 3) - lo) / (hi - lo)
        uv[sel, :, 0], uv[sel, :, 1] = u, v
    return chart, uv


def _mitten_uv(mesh: RestMesh, sel, frame: Frame, verts, lo, hi) -> np.ndarray:
    """Hand/foot (U, V): palm-facing triangles map to U in [0, .5], back-facing to [.5, 1],
    both orthographically onto the palm plane, joined along the edge at lateral maximum."""
    corners = mesh.vertices[mesh.faces[sel]]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lat_all = (verts - frame.origin) @ frame.lateral
    lat_lo, lat_hi = lat_all.min(), lat_all.max()
    rel = corners - frame.origin
    lateral = (rel @ frame.lateral - lat_lo) / (lat_hi - lat_lo)  # 0..1 across the width
    along = (rel @ frame.axis - lo) / (hi - lo)
    facing = (normals @ frame.reference) >= 0  # back of the hand / top of the foot
    u = np.where(facing[:, None], 1.0 - 0.5 * lateral, 0.5 * lateral)
    return np.stack([u, along], axis=-1)


def fold_fraction(face_chart: np.ndarray, corner_uv: np.ndarray) -> dict[int, float]:
    """Per chart, the area fraction of triangles whose UV orientation opposes the majority."""
    e1 = corner_uv[:, 1] - corner_uv[:, 0]
    e2 = corner_uv[:, 2] - corner_uv[:, 0]
    signed = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    out = {}
    for c in np.unique(face_chart):
        s = signed[face_chart == c]
        major = np.sign(s.sum())
        out[int(c)] = float(np.abs(s[np.sign(s) != major]).sum() / np.abs(s).sum())
    return out


def build_chart_arrays(mesh: RestMesh) -> dict[str, np.ndarray]:
    seg = segmentation_labels(mesh)
    region, side = face_regions(mesh, seg)
    frames = region_frames(mesh, region, side)
    chart, uv = assign_charts(mesh, region, side, frames)
    uv = np.clip(uv, 0.0, 1.0)
    return {
        "faces": mesh.faces.astype(np.int32),
        "rest_vertices": mesh.vertices.astype(np.float32),
        "face_chart": chart.astype(np.uint8),
        "corner_uv": np.round(uv * UV_QUANT).astype(np.uint16),
        "face_hidden": np.isin(seg, HIDDEN_LABELS),
        "vertex_mirror": vertex_mirror(mesh.vertices).astype(np.int32),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=CHARTS_ASSET.parent)
    parser.add_argument("--geodesic-samples", type=int, default=None,
                        help="number of geodesic surface samples (default: GeodesicConfig)")
    args = parser.parse_args(argv)
    from densepose_ros.synth.geodesic import GeodesicConfig, build_geodesic_asset

    mesh = load_rest_mesh()
    arrays = build_chart_arrays(mesh)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out_dir / CHARTS_ASSET.name, **arrays)
    shown = ~arrays["face_hidden"]
    folds = fold_fraction(arrays["face_chart"][shown].astype(np.int64),
                          arrays["corner_uv"][shown].astype(np.float64) / UV_QUANT)
    print("charts written; folded area fraction per chart:",
          {c: round(f, 4) for c, f in folds.items()})
    config = GeodesicConfig()
    if args.geodesic_samples:
        config = GeodesicConfig(num_samples=args.geodesic_samples)
    build_geodesic_asset(args.out_dir / CHARTS_ASSET.name, args.out_dir, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
