"""Geodesic distances on the body surface, behind one small protocol.

GPS compares an annotated surface point with a predicted one by their geodesic distance
on the body mesh of the data. A ``SurfaceMetric`` turns chart coordinates (I, U, V) into
surface point ids (the nearest surface sample of chart I in (U, V)) and measures geodesic
distances between ids. Implementations:

- ``SampledSurfaceMetric``: explicit samples (part, U, V) and a geodesic distance matrix;
  loaded from a user-supplied ``.npz`` (SMPL-based DensePose-COCO) or built in code
  (tests). ``convert_densepose_eval_files`` makes that ``.npz`` from the files the
  original DensePose evaluation uses.
- the Anny body model of the synthetic data (``densepose_ros.synth.geodesic``).

File format of the ``.npz`` (all arrays; K samples, M geodesic vertices):
  ``part``  (K,) int, chart 1..24 of each sample;
  ``uv``    (K, 2) float, (U, V) of each sample;
  ``vertex`` (K,) int, optional: row of the geodesic matrix of each sample (default
            ``arange(K)``, then M = K);
  and one of ``geodesic`` (M, M) float, distances in metres, or ``geodesic_condensed``
  (M*(M-1)/2,) float, the upper triangle row by row (``scipy.spatial.distance.squareform``
  order), which stores big meshes in half the memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from densepose_ros.data.coco import NUM_CHARTS

# Per-part normalisation kappa of GPS (2018+ protocol), by coarse body region.
_REGION_KAPPA = {
    "torso": 0.351, "hand": 0.107, "foot": 0.126, "upper_leg": 0.237,
    "lower_leg": 0.173, "upper_arm": 0.142, "lower_arm": 0.128, "head": 0.150,
}
# Region of each chart 1..24 (index 0 = background), from the DensePose chart list.
CHART_REGION = (
    (None,) + ("torso",) * 2 + ("hand",) * 2 + ("foot",) * 2 + ("upper_leg",) * 4
    + ("lower_leg",) * 4 + ("upper_arm",) * 4 + ("lower_arm",) * 4 + ("head",) * 2
)
# kappa of each chart index 0..24 (0 for background, never used as a GT part).
PART_KAPPA = np.array([0.0] + [_REGION_KAPPA[r] for r in CHART_REGION[1:]], dtype=np.float64)
# The single kappa of the 2018 paper, for comparison runs.
PAPER_KAPPA = 0.255


@runtime_checkable
class SurfaceMetric(Protocol):
    """Maps chart coordinates to surface points and measures geodesic distances."""

    def locate(self, part: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """[P] int64 surface point ids of points (part 1..24, u, v); callers pass part > 0."""

    def distance(self, ids_a: np.ndarray, ids_b: np.ndarray) -> np.ndarray:
        """[P] float geodesic distances between the paired surface points."""


class SampledSurfaceMetric:
    """A surface given by samples (part, U, V) and their pairwise geodesic distances."""

    def __init__(self, part: np.ndarray, uv: np.ndarray, *, geodesic: np.ndarray | None = None,
                 geodesic_condensed: np.ndarray | None = None,
                 vertex: np.ndarray | None = None) -> None:
        from scipy.spatial import cKDTree

        self.part = np.asarray(part, dtype=np.int64).reshape(-1)
        self.uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if self.uv.shape[0] != self.part.shape[0]:
            raise ValueError(f"surface samples: {self.part.shape[0]} parts but "
                             f"{self.uv.shape[0]} uv rows")
        if (geodesic is None) == (geodesic_condensed is None):
            raise ValueError("surface samples: give exactly one of 'geodesic' or "
                             "'geodesic_condensed'")
        if geodesic is not None:
            geodesic = np.asarray(geodesic)
            if geodesic.ndim != 2 or geodesic.shape[0] != geodesic.shape[1]:
                raise ValueError(f"'geodesic' must be square, got {geodesic.shape}")
            self.num_vertices = geodesic.shape[0]
        else:
            geodesic_condensed = np.asarray(geodesic_condensed).reshape(-1)
            n = int(round((1 + np.sqrt(1 + 8 * geodesic_condensed.shape[0])) / 2))
            if n * (n - 1) // 2 != geodesic_condensed.shape[0]:
                raise ValueError("'geodesic_condensed' length is not M*(M-1)/2 for any M")
            self.num_vertices = n
        self.geodesic = geodesic
        self.geodesic_condensed = geodesic_condensed
        self.vertex = (np.arange(self.part.shape[0]) if vertex is None
                       else np.asarray(vertex, dtype=np.int64).reshape(-1))
        if self.vertex.shape[0] != self.part.shape[0]:
            raise ValueError("'vertex' must have one entry per sample")
        if self.vertex.size and (self.vertex.min() < 0 or self.vertex.max() >= self.num_vertices):
            raise ValueError(f"'vertex' entries must index the {self.num_vertices} geodesic "
                             "vertices")
        # One nearest-neighbour tree per chart: lookups stay within the predicted chart.
        self._trees: dict[int, tuple[cKDTree, np.ndarray]] = {}
        for chart in range(1, NUM_CHARTS + 1):
            members = np.flatnonzero(self.part == chart)
            if members.size:
                self._trees[chart] = (cKDTree(self.uv[members]), members)

    def locate(self, part: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        part = np.asarray(part, dtype=np.int64).reshape(-1)
        query = np.stack([np.asarray(u, np.float64).reshape(-1),
                          np.asarray(v, np.float64).reshape(-1)], axis=1)
        ids = np.full(part.shape[0], -1, dtype=np.int64)
        for chart in np.unique(part):
            if chart not in self._trees:
                continue  # background or a chart without samples: no surface point
            tree, members = self._trees[int(chart)]
            selected = part == chart
            _, nearest = tree.query(query[selected])
            ids[selected] = members[nearest]
        return ids

    def distance(self, ids_a: np.ndarray, ids_b: np.ndarray) -> np.ndarray:
        a = self.vertex[np.asarray(ids_a, dtype=np.int64)]
        b = self.vertex[np.asarray(ids_b, dtype=np.int64)]
        if self.geodesic is not None:
            return self.geodesic[a, b].astype(np.float64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        n = self.num_vertices
        index = n * lo - lo * (lo + 1) // 2 + (hi - lo - 1)
        out = np.zeros(a.shape[0], dtype=np.float64)
        off_diagonal = lo != hi
        out[off_diagonal] = self.geodesic_condensed[index[off_diagonal]]
        return out

    def save(self, path: Path | str) -> None:
        arrays = {"part": self.part, "uv": self.uv, "vertex": self.vertex}
        if self.geodesic is not None:
            arrays["geodesic"] = self.geodesic
        else:
            arrays["geodesic_condensed"] = self.geodesic_condensed
        np.savez(path, **arrays)


def load_sampled_surface(path: Path | str) -> SampledSurfaceMetric:
    """Load a surface ``.npz`` (format in the module docstring) with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"geodesic file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from error
    missing = [key for key in ("part", "uv") if key not in data]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing} (need part, uv and geodesic or "
                         "geodesic_condensed)")
    try:
        return SampledSurfaceMetric(
            data["part"], data["uv"],
            geodesic=data["geodesic"] if "geodesic" in data else None,
            geodesic_condensed=(data["geodesic_condensed"] if "geodesic_condensed" in data
                                else None),
            vertex=data["vertex"] if "vertex" in data else None)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def anny_surface_metric() -> SurfaceMetric:
    """Geodesics on the Anny body model (synthetic data), from the synth package."""
    try:
        from densepose_ros.synth.geodesic import SurfaceGeodesics
    except ImportError as error:
        raise RuntimeError("Anny geodesics need densepose_ros.synth.geodesic.SurfaceGeodesics, "
                           f"which is not available: {error}") from error
    return SurfaceGeodesics()


def load_surface_metric(spec: str | Path) -> SurfaceMetric:
    """``"anny"`` for the Anny body model, else the path of a surface ``.npz``."""
    if str(spec) == "anny":
        return anny_surface_metric()
    return load_sampled_surface(spec)


def _densepose_pdist_index(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Index into the original ``Pdist_matrix`` of 0-based vertex pairs i != j.

    That file stores the condensed matrix with both vertex order and entry order reversed;
    the result is the condensed index of (n-1-max, n-1-min), counted from the end.
    """
    hi, lo = np.maximum(i, j), np.minimum(i, j)
    a, b = n - 1 - hi, n - 1 - lo  # a < b
    forward = n * a - a * (a + 1) // 2 + (b - a - 1)
    return n * (n - 1) // 2 - forward - 1


def convert_densepose_eval_files(subdiv_mat: Path | str, transform_mat: Path | str,
                                 pdist_pickle: Path | str, out_npz: Path | str) -> Path:
    """Write a surface ``.npz`` from the original DensePose evaluation files.

    Inputs (as distributed with DensePose, under their own licence; not bundled here):
    ``SMPL_subdiv.mat`` (``U_subdiv``, ``V_subdiv``, ``Part_ID_subdiv``),
    ``SMPL_SUBDIV_TRANSFORM.mat`` (``index``: 1-based geodesic vertex of each sample)
    and ``Pdist_matrix.pkl`` (``Pdist_matrix``: condensed geodesic distances).
    """
    import pickle

    from scipy.io import loadmat

    subdiv = loadmat(str(subdiv_mat))
    for key in ("U_subdiv", "V_subdiv", "Part_ID_subdiv"):
        if key not in subdiv:
            raise ValueError(f"{subdiv_mat}: missing '{key}'")
    part = np.asarray(subdiv["Part_ID_subdiv"]).reshape(-1).astype(np.int64)
    uv = np.stack([np.asarray(subdiv["U_subdiv"], np.float64).reshape(-1),
                   np.asarray(subdiv["V_subdiv"], np.float64).reshape(-1)], axis=1)
    transform = loadmat(str(transform_mat))
    if "index" not in transform:
        raise ValueError(f"{transform_mat}: missing 'index'")
    vertex = np.asarray(transform["index"]).reshape(-1).astype(np.int64) - 1
    with open(pdist_pickle, "rb") as handle:
        arrays = pickle.load(handle, encoding="latin1")
    if "Pdist_matrix" not in arrays:
        raise ValueError(f"{pdist_pickle}: missing 'Pdist_matrix'")
    original = np.asarray(arrays["Pdist_matrix"], dtype=np.float32).reshape(-1)
    n = int(round((1 + np.sqrt(1 + 8 * original.shape[0])) / 2))
    if n * (n - 1) // 2 != original.shape[0]:
        raise ValueError(f"{pdist_pickle}: length {original.shape[0]} is not n*(n-1)/2")
    # Re-order into scipy's condensed order, row by row to bound memory.
    condensed = np.empty_like(original)
    start = 0
    for row in range(n - 1):
        cols = np.arange(row + 1, n, dtype=np.int64)
        condensed[start:start + cols.shape[0]] = original[
            _densepose_pdist_index(np.full_like(cols, row), cols, n)]
        start += cols.shape[0]
    metric = SampledSurfaceMetric(part, uv, geodesic_condensed=condensed, vertex=vertex)
    metric.save(out_npz)
    return Path(out_npz)

