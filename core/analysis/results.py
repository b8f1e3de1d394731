"""Typed results of the analysis engine, and their lossless encoding for the result store.

Every number the CLI prints and the dashboard draws is a field of one of these frozen dataclasses.
Arrays are numpy (float64 unless stated); layer indices are resolved (0-based, never -1).
:func:`encode` splits a result into JSON-able metadata and named arrays (stored as safetensors), and
:func:`decode` rebuilds it exactly — no pickle anywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignscope.core.errors import InputError
from alignscope.core.stats import at_floor

# A layer pair counts as above chance when its p, corrected for the search over every pair, is at most this.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class PairScore:
    """One metric for one layer pair of two models, with its statistics.

    Attributes:
        value: the score on all n samples.
        chance: the score expected without alignment — the closed form where the metric has one
            (``chance_method="analytic"``), else the mean over ``chance_shuffles`` shuffled
            correspondences (``"shuffled"``, with ``chance_std``).
        p_value: one-sided permutation p, (1 + #null at least as good) / (1 + n_permutations); None when
            no permutations were asked for. Its floor is 1 / (n_permutations + 1).
        ci_low, ci_high: bootstrap interval (``interval_method``, ``confidence``), None without bootstrap.
        pairs_searched: layer pairs the reported one was chosen from: the scored, non-degenerate cells of the
            search (1 when fixed in advance).
        p_bonferroni: min(1, p × pairs_searched); ``p_maxstat``: the max-statistic permutation p of the
            best pair (family-wise over the whole layer matrix), when searched with permutations.
        search_chance: when the pair was searched, where the best of ``pairs_searched`` pairs lands with
            no alignment (:attr:`LayerMatrix.best_chance`), the level to read a searched score against;
            None when not searched or not shuffled.
        matrix: ``[La, Lb]`` scores of every layer pair when the pair was searched, else None.
        recall: with ``neighbors="approx"``, the lowest recall@k of the approximate neighbour searches
            behind the score, measured against exact search on seeded queries; None when exact.
    """

    metric: str
    model_a: str
    model_b: str
    dataset: str
    n_samples: int
    layer_a: int
    layer_b: int
    layer_a_name: str
    layer_b_name: str
    value: float
    higher_is_better: bool
    params: dict[str, Any] = field(default_factory=dict)
    chance: float | None = None
    chance_method: str | None = None
    chance_std: float | None = None
    chance_shuffles: int = 0
    p_value: float | None = None
    n_permutations: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    n_bootstrap: int = 0
    bootstrap_failed: int = 0
    interval_method: str | None = None
    confidence: float = 0.95
    pairs_searched: int = 1
    p_bonferroni: float | None = None
    p_maxstat: float | None = None
    matrix: np.ndarray | None = None
    recall: float | None = None
    search_chance: float | None = None

    @property
    def p_floor(self) -> float | None:
        """The smallest p the permutation test can give: 1 / (P + 1)."""
        return None if not self.n_permutations else 1.0 / (self.n_permutations + 1)

    @property
    def at_floor(self) -> bool:
        """True when no shuffle scored as well as the observed pair (p is its floor)."""
        return at_floor(self.p_value, self.p_floor)


@dataclass(frozen=True)
class LayerMatrix:
    """Scores of every (layer i of A, layer j of B).

    Attributes:
        values: ``[La, Lb]``; NaN where the metric is undefined for that pair (see ``problems``).
        best_index: (i, j) of the best valid, non-degenerate cell; ``best_value`` its score.
        chance: ``[La, Lb]`` chance level of each cell: the closed form, or the mean of the shuffled null.
        p_values: ``[La, Lb]`` one-sided permutation p of each cell as if fixed in advance.
        p_corrected: ``[La, Lb]`` p corrected for the search over every pair: single-step max-T on
            studentised scores ((score − null mean) / null sd), so cells with different null spreads
            compete fairly. ``p_corrected[best_index]`` is the honest p of "the best pair".
        best_chance: the chance level of the *best* cell: the mean over the shuffles of each shuffled
            matrix's best valid cell — where the best of La × Lb pairs lands with no alignment, above any
            one cell's ``chance``. None when the matrix was not shuffled (a closed form and no cheap shuffle).
        row_best_chance: ``[La]`` the same for each row: where the best layer of B for layer i of A lands
            with no alignment (NaN for a row with no valid cell); None when not shuffled.
        degenerate: ``[La, Lb]`` bool: the metric is degenerate there (e.g. CCA with d_a + d_b >= n - 1).
        problems: ``((i, j, reason), ...)`` for cells that could not be scored or are degenerate.
    """

    metric: str
    model_a: str
    model_b: str
    dataset: str
    n_samples: int
    names_a: tuple[str, ...]
    names_b: tuple[str, ...]
    values: np.ndarray
    best_index: tuple[int, int]
    best_value: float
    higher_is_better: bool
    params: dict[str, Any] = field(default_factory=dict)
    chance: np.ndarray | None = None
    p_values: np.ndarray | None = None
    p_corrected: np.ndarray | None = None
    n_permutations: int = 0
    best_chance: float | None = None
    row_best_chance: np.ndarray | None = None
    degenerate: np.ndarray | None = None
    problems: tuple[tuple[int, int, str], ...] = ()

    @property
    def searchable(self) -> np.ndarray:
        """``[La, Lb]`` bool: the cells a search for the best pair can pick (scored, not degenerate)."""
        scored = np.isfinite(np.asarray(self.values, dtype=float))
        return scored if self.degenerate is None else scored & ~np.asarray(self.degenerate, dtype=bool)

    def require_a_best(self) -> None:
        """An InputError naming why, when no cell could be scored (there is no best pair to report)."""
        if not np.isfinite(self.best_value):
            problem = self.problems[0][2] if self.problems else "no cell has a finite score"
            raise InputError(
                f"{self.metric} could not score any layer pair of {self.model_a} and {self.model_b}: {problem}"
            )

    @property
    def best_significant(self) -> bool | None:
        """Whether the best pair survives the correction at SIGNIFICANCE (None without a permutation test)."""
        if self.p_corrected is None:
            return None
        return bool(self.p_corrected[self.best_index] <= SIGNIFICANCE)

    @property
    def surviving_index(self) -> tuple[int, int] | None:
        """(i, j) of the scored, non-degenerate cell with the smallest corrected p, the best score among
        cells tied at it (several sit at the floor 1/(P+1) when the effect is real), when that p is at most
        SIGNIFICANCE (None otherwise, or without a test). The best *score* need not be it: a narrow null
        can make a worse score the stronger evidence."""
        if self.p_corrected is None:
            return None
        values = np.asarray(self.values, dtype=float)
        p = np.where(np.isfinite(values), np.asarray(self.p_corrected, dtype=float), 2.0)
        if self.degenerate is not None:
            p = np.where(self.degenerate, 2.0, p)
        sign = 1.0 if self.higher_is_better else -1.0
        order = np.lexsort((-sign * np.nan_to_num(values, nan=0.0).ravel(), p.ravel()))  # p first, then score
        index = np.unravel_index(int(order[0]), p.shape)
        return (int(index[0]), int(index[1])) if p[index] <= SIGNIFICANCE else None

    @property
    def not_above_chance(self) -> np.ndarray:
        """``[La, Lb]`` bool: scored cells whose corrected p is above SIGNIFICANCE (all False without a test)."""
        values = np.asarray(self.values, dtype=float)
        if self.p_corrected is None:
            return np.zeros(values.shape, dtype=bool)
        return (np.asarray(self.p_corrected, dtype=float) > SIGNIFICANCE) & np.isfinite(values)


@dataclass(frozen=True)
class Sweep:
    """A score as one parameter varies, with its chance curve.

    Attributes:
        kind: ``"k"``, ``"n"``, ``"prefix"`` or ``"depth"``; ``x``: the swept values.
        values: the score at each x.
        chance: the chance level at each x (closed form where it exists, else shuffled mean);
            ``chance_std``: its sd over shuffles (0 for closed forms); ``chance_analytic``: the closed
            form (NaN where there is none).
        series: extra curves over the same x, as ``((name, values), ...)``.
        series_chance: the chance curve of a series where it has its own (a best of several layers sits
            above ``chance``), as ``((series name, values), ...)``.
    """

    kind: str
    metric: str
    model_a: str
    model_b: str
    dataset: str
    n_samples: int
    x: np.ndarray
    values: np.ndarray
    chance: np.ndarray
    chance_std: np.ndarray
    chance_analytic: np.ndarray
    x_title: str
    note: str = ""
    series: tuple[tuple[str, tuple[float, ...]], ...] = ()
    series_chance: tuple[tuple[str, tuple[float, ...]], ...] = ()
    layer_a: int = -1
    layer_b: int = -1


@dataclass(frozen=True)
class ModelMatrix:
    """One metric between every pair of a set of models.

    Attributes:
        values: ``[m, m]``; cell (i, j) compares model i (as A) with model j (as B).
        layers: ``[m, m, 2]`` int: the layer pair behind each cell.
        order: leaf order of average-linkage clustering of the symmetrised scores.
        chance: ``[m, m]`` the chance level of each cell's layer pair (NaN where the metric has none
            without shuffles at a fixed depth); None in results stored before it was kept.
        search_chance: ``[m, m]`` with each pair's best layer pair, the chance level of that best
            (:attr:`LayerMatrix.best_chance`; NaN where the matrix was not shuffled); None at a fixed depth
            or where no cell has it.
    """

    metric: str
    models: tuple[str, ...]
    dataset: str
    n_samples: int
    values: np.ndarray
    layers: np.ndarray
    order: tuple[int, ...]
    higher_is_better: bool
    relative_depth: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    chance: np.ndarray | None = None
    search_chance: np.ndarray | None = None


@dataclass(frozen=True)
class GramVolume:
    """The GRAM volume of a set of models at one relative depth, or why it is undefined (``problem``)."""

    models: tuple[str, ...]
    dataset: str
    n_samples: int
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    volume: float | None = None
    chance: float | None = None
    chance_std: float | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Projection:
    """2-D coordinates of one model's layer: ``coords [n, 2]`` (rows = samples, in the view's order);
    ``explained`` holds PCA's explained-variance ratios (empty for UMAP)."""

    method: str
    model: str
    dataset: str
    layer: int
    coords: np.ndarray
    explained: tuple[float, ...] = ()


@dataclass(frozen=True)
class AlignedProjection:
    """Aligned UMAP of two models: ``coords_a`` and ``coords_b`` are each ``[n, 2]``."""

    model_a: str
    model_b: str
    dataset: str
    layer_a: int
    layer_b: int
    coords_a: np.ndarray
    coords_b: np.ndarray


@dataclass(frozen=True)
class LabelRollup:
    """Mean per-sample overlap of the samples with one label (``std_error`` of that mean)."""

    label: str
    mean: float
    std_error: float
    count: int


@dataclass(frozen=True)
class Neighbours:
    """Per-sample k-NN overlap of two models' layers.

    Attributes:
        idx_a, idx_b: ``[n, k]`` int64 neighbour lists (most similar first, self excluded).
        overlap: ``[n]`` |N_A(i) ∩ N_B(i)| / k; its mean is ``score`` (= mutual k-NN).
        chance: k / (n - 1).
    """

    model_a: str
    model_b: str
    dataset: str
    n_samples: int
    layer_a: int
    layer_b: int
    k: int
    idx_a: np.ndarray
    idx_b: np.ndarray
    overlap: np.ndarray
    score: float
    chance: float
    rollup: tuple[LabelRollup, ...] = ()


@dataclass(frozen=True)
class Extraction:
    """Features now in the feature cache: the entry's key and how it was served."""

    model: str
    dataset: str
    n_samples: int
    cache_key: str
    hit: bool
    seconds: float


RESULT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        PairScore,
        LayerMatrix,
        Sweep,
        ModelMatrix,
        GramVolume,
        Projection,
        AlignedProjection,
        LabelRollup,
        Neighbours,
        Extraction,
    )
}


def register_result_type(cls: type) -> type:
    """Make another result dataclass storable (results of later analyses)."""
    RESULT_TYPES[cls.__name__] = cls
    return cls


# --------------------------------------------------------------------------------------------------
# Encoding for the store: JSON metadata + named arrays
# --------------------------------------------------------------------------------------------------


def _encode_value(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays[path] = np.ascontiguousarray(value)
        return {"__array__": path}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: _encode_value(getattr(value, f.name), f"{path}.{f.name}", arrays) for f in dataclasses.fields(value)
        }
        return {"__type__": type(value).__name__, **fields}
    if isinstance(value, (list, tuple)):
        return [_encode_value(item, f"{path}.{i}", arrays) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            "__dict__": [
                [_encode_value(k, f"{path}.k{i}", arrays), _encode_value(v, f"{path}.v{i}", arrays)]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} at {path}")


def _decode_value(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__dict__" in value:
            return {_decode_value(k, arrays): _decode_value(v, arrays) for k, v in value["__dict__"]}
        kind = value.get("__type__")
        if kind not in RESULT_TYPES:
            raise ValueError(f"unknown stored result type {kind!r}")
        return RESULT_TYPES[kind](**{k: _decode_value(v, arrays) for k, v in value.items() if k != "__type__"})
    if isinstance(value, list):
        return tuple(_decode_value(item, arrays) for item in value)
    return value


def encode(result: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(metadata, arrays)``: the metadata is JSON-able (floats may be NaN), arrays are keyed by path.

    Example:
        >>> meta, arrays = encode(Projection("pca", "m", "d", 0, np.zeros((3, 2)), (0.5, 0.25)))
        >>> meta["coords"], sorted(arrays)
        ({'__array__': 'r.coords'}, ['r.coords'])
    """
    arrays: dict[str, np.ndarray] = {}
    meta = _encode_value(result, "r", arrays)
    return meta, arrays


def decode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """The result :func:`encode` split into ``meta`` and ``arrays``."""
    return _decode_value(meta, arrays)
