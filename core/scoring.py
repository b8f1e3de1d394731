"""Score a model pair on a dataset from cached features: ``alignscope score``.

For each metric: the full layer×layer matrix (``layers="all"``) with its best pair, or one layer pair
(``"last"`` or ``"i,j"``); the chance level of that pair (analytic where it exists, else empirical)
and, with ``permutations > 0``, a permutation p-value.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass

import numpy as np

from alignscope.core.cache import FeatureCache
from alignscope.core.datasets import load_dataset
from alignscope.core.errors import InputError
from alignscope.core.extract import Features
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.registry import compute, get_metric
from alignscope.core.stats import chance_level, permutation_test


@dataclass(frozen=True)
class PairScore:
    """One metric's result for one model pair; ``matrix`` is ``[La, Lb]`` when every pair was scored.

    ``p_value`` tests the reported pair as if it had been fixed in advance. When that pair is the best
    of ``pairs_searched`` > 1, ``p_value_corrected`` = min(1, p × pairs_searched) (Bonferroni) is the
    honest one.
    """

    metric: str
    layer_a: str
    layer_b: str
    value: float
    chance: float | None
    p_value: float | None
    higher_is_better: bool
    pairs_searched: int = 1
    p_value_corrected: float | None = None
    matrix: list[list[float]] | None = None
    permutations: int = 0


def metric_params(metric: str, **available) -> dict:
    """The subset of ``available`` parameters (e.g. ``k``) that ``metric`` takes, numbers clamped to the
    metric's bounds (a page-wide k=1 becomes CKNNA's minimum, 2). The CLI and the dashboard share it."""
    params = {}
    for param in get_metric(metric).params:
        value = available.get(param.name)
        if value is None:
            continue
        if param.kind in ("int", "float", "int_or_none") and not isinstance(value, bool):
            value = max(value, param.low) if param.low is not None else value
            value = min(value, param.high) if param.high is not None else value
            value = int(value) if param.kind != "float" else float(value)
        params[param.name] = value
    return params


def parse_layers(layers: str, features_a: Features, features_b: Features) -> tuple[int, int] | None:
    """``"all"`` -> None (every pair); ``"last"`` -> the last layers; ``"i,j"`` -> that pair."""
    if layers == "all":
        return None
    if layers == "last":
        return features_a.n_layers - 1, features_b.n_layers - 1
    try:
        i, j = (int(part) for part in layers.split(","))
    except ValueError as exc:
        raise InputError(f"--layers must be 'all', 'last' or 'i,j' (two layer indices), not {layers!r}") from exc
    for index, features in ((i, features_a), (j, features_b)):
        if not -features.n_layers <= index < features.n_layers:
            raise InputError(f"{features.model!r} has layers 0..{features.n_layers - 1}; got {index}")
    return i % features_a.n_layers, j % features_b.n_layers


def score_pair(
    features_a: Features,
    features_b: Features,
    metrics: list[str],
    *,
    layers: str = "all",
    k: int = 10,
    permutations: int = 0,
    seed: int = 0,
) -> list[PairScore]:
    """Score two models' features (same samples, same order) with each metric."""
    if features_a.sample_ids != features_b.sample_ids:
        raise InputError(
            f"{features_a.model!r} has {features_a.n_samples} samples and {features_b.model!r} "
            f"{features_b.n_samples}; both must hold the same samples in the same order"
        )
    pair = parse_layers(layers, features_a, features_b)
    results = []
    for metric in metrics:
        spec = get_metric(metric)
        params = metric_params(metric, k=k)
        matrix = None
        if pair is None:
            scored = layer_matrix(
                features_a.values, features_b.values, metric,
                names_a=[f"{features_a.model}:{n}" for n in features_a.layer_names],
                names_b=[f"{features_b.model}:{n}" for n in features_b.layer_names],
                **params,
            )
            i, j = scored.best_index
            value = scored.best_value
            matrix = np.asarray(scored.values).round(6).tolist()
        else:
            i, j = pair
            value = compute(metric, features_a.values[i], features_b.values[j],
                            name_a=features_a.model, name_b=features_b.model, **params)
        a, b = features_a.values[i], features_b.values[j]
        chance = chance_level(metric, a, b, n_shuffles=10, seed=seed, **params).value
        p_value = (
            permutation_test(metric, a, b, n_permutations=permutations, seed=seed, **params).p_value
            if permutations > 0 else None
        )
        searched = 1 if pair is not None else features_a.n_layers * features_b.n_layers
        corrected = None if p_value is None else min(1.0, p_value * searched)
        results.append(PairScore(metric, features_a.layer_names[i], features_b.layer_names[j], float(value),
                                 chance, p_value, spec.higher_is_better, searched, corrected, matrix,
                                 permutations))
    return results


def format_scores(scores: list[PairScore], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(s) for s in scores], indent=2)
    columns = ["metric", "layer_a", "layer_b", "value", "chance", "p_value", "pairs_searched", "p_value_corrected"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for score in scores:
            writer.writerow(asdict(score))
        return buffer.getvalue()
    rows = [
        [s.metric, s.layer_a, s.layer_b, f"{s.value:.4f}",
         "-" if s.chance is None else f"{s.chance:.4f}", "-" if s.p_value is None else f"{s.p_value:.4g}",
         str(s.pairs_searched), "-" if s.p_value_corrected is None else f"{s.p_value_corrected:.4g}"]
        for s in scores
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    lines += _p_value_notes(scores)
    return "\n".join(lines)


def _p_value_notes(scores: list[PairScore]) -> list[str]:
    """Footnotes on the resolution of the permutation p-values (table format only)."""
    tested = [s for s in scores if s.p_value is not None and s.permutations > 0]
    if not tested:
        return []
    permutations = tested[0].permutations
    notes = [f"p-values: {permutations} permutations, +1 corrected, so the smallest possible p is "
             f"1/{permutations + 1} = {1 / (permutations + 1):.4g}."]  # fmt: skip
    searched = max(s.pairs_searched for s in tested)
    if searched > 1:
        floor = min(1.0, searched / (permutations + 1))
        notes.append(
            f"p_value_corrected = min(1, p x {searched} layer pairs searched) (Bonferroni); its smallest possible "
            f"value is {floor:.4g}"
            + (f": use --permutations {20 * searched} or more for a corrected p that can fall below 0.05, "
               "or --layers i,j to test one pair fixed in advance." if floor >= 0.05 else ".")
        )
    return notes


def score_command(args) -> int:
    """``alignscope score``: features from the cache (extracted once if missing), then the scores."""
    metrics = args.metric or ["mutual_knn"]
    for metric in metrics:
        get_metric(metric)  # fail on a typo before extracting anything
    dataset = load_dataset(args.dataset, n=args.n, seed=args.seed)
    cache = FeatureCache()
    features_a, _ = cache.get_or_extract(args.model_a, dataset, device=args.device)
    features_b, _ = cache.get_or_extract(args.model_b, dataset, device=args.device)
    scores = score_pair(features_a, features_b, metrics, layers=args.layers, k=args.k,
                        permutations=args.permutations, seed=args.seed)
    sys.stdout.write(format_scores(scores, args.format) + "\n")
    return 0
