"""Geodesic distances on the Anny surface, for Geodesic Point Similarity (GPS) evaluation.

The asset holds ``S`` surface samples (farthest-point samples of the visible template
vertices) and their pairwise geodesic distances. A predicted or annotated (I, U, V) is
mapped to the sample of chart I nearest in (U, V) (``locate``), as detectron2 does on its
subsampled SMPL mesh.

Units: metres on the Anny mean body (default phenotype, rest pose) scaled to stand
``GeodesicConfig.body_height_m`` = 1.70 m, about the height of the SMPL template on which
DensePose's per-part kappas (e.g. 0.107 for hands, 0.351 for the torso) were set.

Distances: Dijkstra on the mesh edges plus, for each pair of adjacent triangles, the
straight path across their shared edge when unfolded (only where that path really crosses
the edge). Every graph path is a real surface path, so distances are upper bounds of the
true geodesics (up to the mesh's own approximation of the surface): on an icosphere of
2,562 vertices they exceed great circles by 1.4 % (median), 4.6 % at most.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densepose_ros.synth.charts import ASSET_DIR, CHARTS_ASSET, NUM_CHARTS, UV_QUANT

GEODESIC_ASSET = ASSET_DIR / "anny_geodesics.npz"


@dataclass(frozen=True)
class GeodesicConfig:
    """How the geodesic asset is built.

    num_samples: surface samples kept (the matrix is num_samples^2 / 2 uint16 values).
    body_height_m: height the template is scaled to before measuring (SMPL-like units).
    """

    num_samples: int = 1200
    body_height_m: float = 1.70


def _edge_graph(vertices: np.ndarray, faces: np.ndarray):
    """Sparse symmetric graph of surface paths: mesh edges and unfolded cross-edge paths."""
    from scipy.sparse import coo_matrix

    n = len(vertices)
    # Directed half-edges (a -> b) with the opposite corner c of their triangle.
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    c = faces[:, [2, 0, 1]].reshape(-1)
    rows = [a]
    cols = [b]
    lengths = [np.linalg.norm(vertices[a] - vertices[b], axis=1)]
    # Pair half-edge (a, b, c) with its twin (b, a, d).
    key = a * n + b
    twin_key = b * n + a
    order = np.argsort(key)
    pos = np.searchsorted(key[order], twin_key)
    pos = np.clip(pos, 0, len(key) - 1)
    has_twin = key[order][pos] == twin_key
    i = np.flatnonzero(has_twin)
    j = order[pos[has_twin]]
    keep = i < j
    i, j = i[keep], j[keep]
    pa, pb, pc, pd = vertices[a[i]], vertices[b[i]], vertices[c[i]], vertices[c[j]]
    # Unfold both triangles into the plane: edge ab on the x axis, c above, d below.
    ab = np.linalg.norm(pb - pa, axis=1)
    ex = (pb - pa) / ab[:, None]

    def planar(p):
        rel = p - pa
        x = (rel * ex).sum(1)
        y = np.linalg.norm(rel - x[:, None] * ex, axis=1)
        return x, y

    cx, cy = planar(pc)
    dx, dy = planar(pd)
    dy = -dy
    # The straight c-d segment crosses the x axis at t in [0, ab] -> a valid surface path.
    t = cx + (dx - cx) * cy / np.maximum(cy - dy, 1e-12)
    crosses = (t > 0) & (t < ab)
    rows.append(c[i][crosses])
    cols.append(c[j][crosses])
    lengths.append(np.hypot(cx - dx, cy - dy)[crosses])
    r, cc, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(lengths)
    r, cc, w = np.r_[r, cc], np.r_[cc, r], np.r_[w, w]
    # Each mesh edge is listed once per adjacent triangle and direction: keep one copy
    # (the shortest), since sparse matrices would add duplicates up.
    key = r * n + cc
    order = np.lexsort((w, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    return coo_matrix((w[first], (r[first], cc[first])), shape=(n, n)).tocsr()


def _farthest_point_samples(points: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(points)))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return np.array(chosen, dtype=np.int64)


def build_geodesic_asset(
    charts_path: Path = CHARTS_ASSET,
    out_dir: Path = ASSET_DIR,
    config: GeodesicConfig | None = None,
) -> Path:
    """Compute the samples and their distance matrix from the chart asset; write the npz."""
    from scipy.sparse.csgraph import connected_components, dijkstra

    from densepose_ros.synth.charts import load_charts

    config = config or GeodesicConfig()
    charts = load_charts.__wrapped__(Path(charts_path))
    vertices = charts.rest_vertices.astype(np.float64)
    scale = config.body_height_m / np.ptp(vertices[:, 2])
    vertices = vertices * scale
    faces = charts.faces[~charts.face_hidden]
    graph = _edge_graph(vertices, faces)
    # Keep the main body component (eyeballs are separate meshes).
    _, comp = connected_components(graph, directed=False)
    used = np.unique(faces)
    main = np.bincount(comp[used]).argmax()
    candidates = used[comp[used] == main]
    samples = candidates[_farthest_point_samples(vertices[candidates], config.num_samples)]
    dist = dijkstra(graph, directed=False, indices=samples)[:, samples]
    dist = np.round((dist + dist.T) * 500.0)  # symmetrise; millimetres
    upper = dist[np.triu_indices(len(samples), k=1)].astype(np.uint16)
    # (chart, U, V) entries of every sample: one per chart corner that lands on it.
    sample_of_vertex = np.full(len(vertices), -1)
    sample_of_vertex[samples] = np.arange(len(samples))
    visible = np.flatnonzero(~charts.face_hidden)
    corner_sample = sample_of_vertex[charts.faces[visible]]
    corner_chart = np.repeat(charts.face_chart[visible], 3).reshape(-1, 3)
    corner_uv = charts.corner_uv[visible]
    on = corner_sample >= 0
    entries = np.c_[corner_chart[on], corner_sample[on],
                    np.round(corner_uv[on] * UV_QUANT)].astype(np.int64)
    entries = np.unique(entries, axis=0)
    out = Path(out_dir) / GEODESIC_ASSET.name
    np.savez_compressed(
        out,
        sample_vertex=samples.astype(np.int32),
        distance_mm_upper=upper,
        entry_chart=entries[:, 0].astype(np.uint8),
        entry_sample=entries[:, 1].astype(np.int32),
        entry_uv=entries[:, 2:].astype(np.uint16),
        scale=np.float64(scale),
    )
    return out


class SurfaceGeodesics:
    """Geodesic distances between surface samples of the Anny mean body (metres, SMPL-like
    scale; see the module docstring).

    Attributes:
        sample_vertex: (S,) template vertex index of each sample.
        matrix: (S, S) float32 symmetric geodesic distances in metres, zero diagonal.
        scale: factor from template metres to the SMPL-like scale.
    """

    def __init__(self, path: Path = GEODESIC_ASSET):
        from scipy.spatial import cKDTree

        if not Path(path).is_file():
            raise FileNotFoundError(
                f"{path} is missing; regenerate it with "
                "`python -m densepose_ros.synth.make_charts`"
            )
        with np.load(path) as data:
            self.sample_vertex = data["sample_vertex"].astype(np.int64)
            upper = data["distance_mm_upper"].astype(np.float32) / 1000.0
            entry_chart = data["entry_chart"].astype(np.int64)
            entry_sample = data["entry_sample"].astype(np.int64)
            entry_uv = data["entry_uv"].astype(np.float64) / UV_QUANT
            self.scale = float(data["scale"])
        s = len(self.sample_vertex)
        self.matrix = np.zeros((s, s), dtype=np.float32)
        self.matrix[np.triu_indices(s, k=1)] = upper
        self.matrix += self.matrix.T
        self._trees: dict[int, tuple] = {}
        for chart in range(1, NUM_CHARTS + 1):
            sel = entry_chart == chart
            if sel.any():
                self._trees[chart] = (cKDTree(entry_uv[sel]), entry_sample[sel])

    @property
    def num_samples(self) -> int:
        return len(self.sample_vertex)

    def locate(self, part: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(N,) sample index nearest in (U, V) within chart I for each point; -1 where I = 0."""
        part = np.asarray(part, dtype=np.int64).reshape(-1)
        uv = np.stack([np.asarray(u, np.float64).reshape(-1),
                       np.asarray(v, np.float64).reshape(-1)], axis=1)
        out = np.full(len(part), -1, dtype=np.int64)
        for chart in np.unique(part):
            if chart == 0:
                continue
            tree, samples = self._trees[int(chart)]
            sel = part == chart
            out[sel] = samples[tree.query(uv[sel])[1]]
        return out

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Geodesic distances (metres) between samples ``a`` and ``b``, elementwise."""
        return self.matrix[np.asarray(a), np.asarray(b)]


@functools.cache
def load_geodesics(path: Path = GEODESIC_ASSET) -> SurfaceGeodesics:
    return SurfaceGeodesics(path)
