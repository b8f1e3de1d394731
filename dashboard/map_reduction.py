"""What a projection map draws when the browser cannot hold every point, and how a box or lasso drawn on
it selects exactly among all points.

Up to a budget (``Settings.map_points``, ALIGNSCOPE_MAP_POINTS) a map draws every sample (trace point i =
sample i). Above that it draws a fixed random layer of that many samples over a density image of all n
points (``density_image``). The maps' frame (linked_maps) selects from a box's ranges or a lasso's polygon
over all n coordinates, so a selection holds every sample inside, drawn or not, and draws the selected
samples outside the layer on top; ``samples_in_box`` / ``samples_in_lasso`` state that rule (the browser
tests hold the frame to them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DENSITY_BINS = 160


@dataclass(frozen=True)
class DensityImage:
    """Counts of all finite points on a ``bins × bins`` grid: ``counts[row = y bin, column = x bin]``."""

    x_centres: np.ndarray  # [bins]
    y_centres: np.ndarray  # [bins]
    counts: np.ndarray  # [bins, bins] int64


def drawn_samples(n_samples: int, *, budget: int, seed: int = 0) -> np.ndarray:
    """Ascending indices of the samples a map draws: all of them up to ``budget``; above, a seeded random
    ``budget`` of them (the same on every rerun, whatever is selected)."""
    if n_samples <= budget:
        return np.arange(n_samples)
    return np.sort(np.random.default_rng(seed).choice(n_samples, size=budget, replace=False))


def density_image(coords: np.ndarray, bins: int = DENSITY_BINS) -> DensityImage:
    """A 2-D histogram of the finite rows of ``coords`` [n, 2] over their bounding box."""
    points = coords[np.isfinite(coords).all(axis=1)]
    if len(points) == 0:
        empty = np.zeros(bins)
        return DensityImage(empty, empty, np.zeros((bins, bins), dtype=np.int64))
    counts, x_edges, y_edges = np.histogram2d(points[:, 0], points[:, 1], bins=bins)
    return DensityImage((x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2, counts.T.astype(np.int64))


def samples_in_box(coords: np.ndarray, x_range: Sequence[float], y_range: Sequence[float]) -> np.ndarray:
    """Indices of the rows of ``coords`` [n, 2] inside the closed box (range ends in either order)."""
    x_low, x_high = sorted(float(v) for v in x_range)
    y_low, y_high = sorted(float(v) for v in y_range)
    x, y = coords[:, 0], coords[:, 1]
    return np.flatnonzero((x >= x_low) & (x <= x_high) & (y >= y_low) & (y <= y_high))


def samples_in_lasso(coords: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Indices of the rows of ``coords`` [n, 2] inside the closed polygon (even-odd rule, as plotly's lasso)."""
    poly_x, poly_y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(poly_x) < 3:
        return np.zeros(0, dtype=np.int64)
    x, y = coords[:, 0], coords[:, 1]
    inside = np.zeros(len(coords), dtype=bool)
    for i in range(len(poly_x)):  # one vectorised pass per edge (j -> i)
        xi, yi, xj, yj = poly_x[i], poly_y[i], poly_x[i - 1], poly_y[i - 1]
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = xi + (y - yi) * (xj - xi) / (yj - yi)
        inside ^= crosses & (x < at)
    return np.flatnonzero(inside)
