"""Results as text: JSON (every field), CSV and a table for people, with notes on what the p-values can say."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from alignscope.core.analysis.results import PairScore
from alignscope.core.numbers import fixed

TABLE_COLUMNS = (
    "metric",
    "layer_a",
    "layer_b",
    "value",
    "chance",
    "chance_of_best",
    "p_value",
    "ci_low",
    "ci_high",
    "pairs_searched",
    "p_maxstat",
    "p_bonferroni",
)

# CSV rows also say what was compared, so the files of several calls stack into one table (as a run's do).
CSV_COLUMNS = ("model_a", "model_b", "dataset", "n", *TABLE_COLUMNS, "params")


def jsonable(value: Any) -> Any:
    """Plain JSON types: arrays become nested lists, NaN becomes None, dataclasses dicts."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Result fields whose names the tables say otherwise: JSON output uses the tables' names, so a script reading
# JSON and one reading CSV look for the same column.
TABLE_NAMES = {"search_chance": "chance_of_best", "search_rho": "chance_of_best_rho"}


def output_json(result: Any) -> Any:
    """:func:`jsonable` with the result's fields named as in the CLI's tables (:data:`TABLE_NAMES`)."""
    plain = jsonable(result)
    if isinstance(plain, dict):
        return {TABLE_NAMES.get(key, key): value for key, value in plain.items()}
    return plain


def score_row(score: PairScore) -> dict[str, Any]:
    """The table / CSV row of a score: layer names, not indices."""
    return {
        "metric": score.metric,
        "layer_a": score.layer_a_name,
        "layer_b": score.layer_b_name,
        "value": score.value,
        "chance": score.chance,
        "chance_of_best": score.search_chance,
        "p_value": score.p_value,
        "ci_low": score.ci_low,
        "ci_high": score.ci_high,
        "pairs_searched": score.pairs_searched,
        "p_maxstat": score.p_maxstat,
        "p_bonferroni": score.p_bonferroni,
    }


def _cell(value: Any, digits: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return fixed(value, int(digits[1:-1])) if digits.endswith("f") else format(value, digits)
    return str(value)


def format_scores(scores: Sequence[PairScore], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([output_json(score) for score in scores], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for score in scores:
            row = {
                "model_a": score.model_a,
                "model_b": score.model_b,
                "dataset": score.dataset,
                "n": score.n_samples,
                **score_row(score),
                "params": json.dumps(jsonable(score.params), sort_keys=True),
            }
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        return buffer.getvalue()
    rows = []
    for score in scores:
        row = score_row(score)
        rows.append([_cell(row[c], ".4g" if c.startswith("p_") else ".4f") for c in TABLE_COLUMNS])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines + p_value_notes(scores))


def p_value_notes(scores: Sequence[PairScore]) -> list[str]:
    """Footnotes on the resolution of the permutation p-values and the interval (table format only)."""
    notes = []
    tested = [s for s in scores if s.p_value is not None and s.n_permutations > 0]
    if tested:
        permutations = tested[0].n_permutations
        notes.append(
            f"p-values: {permutations} permutations, +1 corrected, so the smallest possible p is "
            f"1/{permutations + 1} = {1 / (permutations + 1):.4g}; 'p ≤ 1/(P+1)' means no shuffle "
            "scored as well."
        )
        searched = max(s.pairs_searched for s in tested)
        if searched > 1:
            floor = min(1.0, searched / (permutations + 1))
            counts = {s.metric: s.pairs_searched for s in tested if s.pairs_searched > 1}
            if len(set(counts.values())) == 1:
                over, times, smallest = (
                    f"all {searched} layer pairs",
                    f"{searched} layer pairs searched",
                    f"is {floor:.4g}",
                )
            else:  # some pairs cannot be scored by some metrics (PWCCA across widths): each its own count
                listed = ", ".join(f"{metric} {count}" for metric, count in counts.items())
                over = f"all the layer pairs each metric searched ({listed})"
                times, smallest = (
                    "the pairs its metric searched",
                    f"is that count/{permutations + 1}, up to {floor:.4g}",
                )
            advice = (
                f": use --permutations {20 * searched} or more for a corrected p that can fall below 0.05, "
                "or --layers i,j to test one pair fixed in advance."
                if floor >= 0.05
                else "."
            )
            notes.append(
                f"p_maxstat: studentised max-T over {over}: each pair's score standardised "
                "by its own null (mean and sd over the same shuffles), the best pair's against the per-shuffle "
                "maximum of those standardised scores; the honest p of a pair chosen because it scored best, "
                f"it can reach 1/{permutations + 1} however many pairs were searched."
            )
            notes.append(
                f"p_bonferroni = min(1, p x {times}), more conservative; its smallest possible value {smallest}{advice}"
            )
    approximate = [s for s in scores if s.recall is not None]
    if approximate:
        notes.append(
            "Neighbours: approximate (IVF-Flat over faiss); recall@k against exact search on seeded queries: "
            + ", ".join(f"{s.metric} {s.recall:.3f}" for s in approximate)
            + ". --neighbors exact gives the exact lists."
        )
    exact_anyway = [s for s in scores if s.params.get("neighbors") == "approx" and s.recall is None]
    if exact_anyway:
        from alignscope.core.ann import APPROX_MIN_SAMPLES

        notes.append(
            f"Neighbours: exact for {', '.join(s.metric for s in exact_anyway)} although approximate search was asked "
            f"for: at n = {exact_anyway[0].n_samples} (approximate search starts at {APPROX_MIN_SAMPLES:,} samples, "
            "with enough for 16 lists of 4k) exact search is as cheap."
        )
    if any(s.n_bootstrap for s in scores):
        boot = next(s for s in scores if s.n_bootstrap)
        notes.append(
            f"Interval: {boot.confidence:.0%} bootstrap over samples, {boot.n_bootstrap} resamples, "
            "re-centred on the estimate."
        )
    best_of_search = [s for s in scores if s.search_chance is not None]
    if best_of_search:
        notes.append(
            f"chance_of_best: the best of {best_of_search[0].pairs_searched} layer pairs sits above one fixed pair's "
            "chance with no alignment at all; this is where it lands on average with shuffled correspondences "
            "(the mean over the shuffles of each one's best pair), the level to read a searched score against."
        )
    chance_methods = {s.chance_method for s in scores}
    if "shuffled" in chance_methods:
        shuffles = next(s.chance_shuffles for s in scores if s.chance_method == "shuffled")
        notes.append(
            f"Chance: the closed form where a metric has one, else the mean of {shuffles} shuffled correspondences."
        )
    lower = sorted({s.metric for s in scores if not s.higher_is_better})
    if lower:  # read the wrong way round, an aligned pair looks worse than chance
        notes.append(
            f"Lower is better for {', '.join(lower)} (a distance or volume: 0 = the same geometry); its chance "
            "sits above an aligned pair's score."
        )
    return notes
