"""The chance level of the best of a layer search: where the best of La × Lb pairs lands with no
alignment. Recomputed here from plain metric calls on the same shuffles, and checked against what the
best of pure-noise layers actually scores (the fixed pair's closed form sits well below both)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from alignscope.core.analysis.cost import CHANCE_SHUFFLES, matrix_shuffles
from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.report import format_scores
from alignscope.core.analysis.requests import MatrixRequest, PairRequest, metric_params
from alignscope.core.analysis.scorer import layer_matrix_of, row_search_chance, score_pair
from alignscope.core.metrics.registry import compute

N, K = 120, 5


def _view(model: str, layers: list[np.ndarray]) -> ViewFeatures:
    ids = tuple(f"s{i}" for i in range(N))
    names = tuple(f"layer{i}" for i in range(len(layers)))
    return ViewFeatures(
        model, "noise", names, tuple(np.asarray(x, np.float32) for x in layers), ids, None, f"k-{model}"
    )


def _noise_views(seed: int, count: int = 4, width: int = 16) -> tuple[ViewFeatures, ViewFeatures]:
    rng = np.random.default_rng(seed)
    return (
        _view("A", [rng.standard_normal((N, width)) for _ in range(count)]),
        _view("B", [rng.standard_normal((N, width)) for _ in range(count)]),
    )


def _matrix(view_a, view_b, metric: str = "mutual_knn", seed: int = 0, permutations: int = 0, **params):
    request = MatrixRequest("A", "B", "noise", N, seed, metric, metric_params(metric, **params), permutations)
    return layer_matrix_of(request, view_a, view_b)


def test_the_best_cells_chance_is_the_mean_best_of_the_same_shuffles_scored_one_pair_at_a_time():
    view_a, view_b = _noise_views(0, count=3)
    matrix = _matrix(view_a, view_b, k=K)
    generator = torch.Generator().manual_seed(0)  # the shuffles of the search's permutation test
    bests = []
    for _ in range(CHANCE_SHUFFLES):
        perm = torch.randperm(N, generator=generator).numpy()
        bests.append(max(compute("mutual_knn", a, b[perm], k=K) for a in view_a.values for b in view_b.values))
    assert matrix.best_chance == pytest.approx(np.mean(bests), abs=1e-12)
    # each cell keeps its own closed form, k / (n - 1), which the best of nine sits above
    assert np.allclose(matrix.chance, K / (N - 1)) and matrix.best_chance > K / (N - 1) * 1.2


def test_the_best_of_pure_noise_lands_at_the_search_chance_not_at_a_fixed_pairs_chance():
    bests, levels = [], []
    for seed in range(12):
        matrix = _matrix(*_noise_views(seed), seed=seed, k=K)
        bests.append(matrix.best_value)
        levels.append(matrix.best_chance)
    fixed = K / (N - 1)
    spread = np.std(bests) / np.sqrt(len(bests))
    # no alignment at all: the searched best averages its search chance (within 3 standard errors) ...
    assert np.mean(bests) == pytest.approx(np.mean(levels), abs=3 * spread + 1e-3)
    # ... and lies far above the fixed pair's level that a best-layer point used to be drawn against
    assert np.mean(bests) - fixed > 6 * spread and np.mean(levels) > 1.3 * fixed


def test_lower_is_better_metrics_take_the_smallest_cell_of_each_shuffle():
    view_a, view_b = _noise_views(1, count=2)
    matrix = _matrix(view_a, view_b, "shape_distance")
    assert matrix.chance is not None and matrix.best_chance is not None
    assert not matrix.higher_is_better and matrix.best_chance < float(np.min(matrix.chance))


def test_which_matrices_are_shuffled():
    assert matrix_shuffles("mutual_knn", 0, 25) == CHANCE_SHUFFLES  # closed form, cheap shuffles: the search's
    assert matrix_shuffles("mutual_knn", 0, 1) == 0  # one cell: its closed form is the whole story
    assert matrix_shuffles("linear_cka", 0, 1) == CHANCE_SHUFFLES  # no closed form
    assert matrix_shuffles("mutual_knn", 500, 25) == 500  # a permutation test's shuffles serve both
    assert matrix_shuffles("retrieval_top1", 0, 25) == 0  # closed form, each shuffle a full recompute
    view_a, view_b = _noise_views(2, count=2, width=4)
    assert _matrix(view_a, view_b, "retrieval_top1").best_chance is None


def test_a_searched_pair_score_carries_its_search_chance_and_a_fixed_pair_none():
    view_a, view_b = _noise_views(3, count=3)
    params = metric_params("mutual_knn", k=K)
    searched = score_pair(PairRequest("A", "B", "noise", N, 0, "mutual_knn", params, "all", 99), view_a, view_b)
    # from the permutation test's 99 shuffles (the matrix alone would take 20)
    assert searched.pairs_searched == 9
    assert searched.search_chance == _matrix(view_a, view_b, permutations=99, k=K).best_chance
    # noise: the corrected p of the best is not small, though its score is well above a fixed pair's chance
    assert searched.p_maxstat > 0.05 and searched.value > searched.chance
    fixed = score_pair(PairRequest("A", "B", "noise", N, 0, "mutual_knn", params, "1,2"), view_a, view_b)
    assert fixed.search_chance is None and fixed.chance == pytest.approx(K / (N - 1))
    # JSON and CSV name it alike (JSON said search_chance, the table and CSV chance_of_best)
    (as_json,) = json.loads(format_scores([searched], "json"))
    (as_csv,) = csv.DictReader(io.StringIO(format_scores([searched], "csv")))
    assert as_json["chance_of_best"] == searched.search_chance == pytest.approx(float(as_csv["chance_of_best"]))
    assert "search_chance" not in as_json
    # a CSV row says what was compared, so the files of several calls stack (it had only metric and layers)
    assert (as_csv["model_a"], as_csv["model_b"], as_csv["dataset"], as_csv["n"]) == ("A", "B", "noise", str(N))
    assert json.loads(as_csv["params"]) == as_json["params"]


def test_each_rows_best_chance_is_the_mean_best_of_that_row_over_the_same_shuffles():
    view_a, view_b = _noise_views(4, count=3)
    matrix = _matrix(view_a, view_b, k=K)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(CHANCE_SHUFFLES):
        perm = torch.randperm(N, generator=generator).numpy()
        rows.append([max(compute("mutual_knn", a, b[perm], k=K) for b in view_b.values) for a in view_a.values])
    assert matrix.row_best_chance == pytest.approx(np.mean(rows, axis=0), abs=1e-12)
    # a row's best of three sits above one cell's chance and below the best of all nine
    assert (matrix.row_best_chance > K / (N - 1)).all() and (matrix.row_best_chance < matrix.best_chance).all()


def test_the_depth_sweeps_best_layer_of_b_on_noise_lands_at_its_own_chance_curve():
    from alignscope.core.analysis.requests import SweepRequest
    from alignscope.core.analysis.sweeps import run_sweep

    bests, levels = [], []
    for seed in range(10):
        view_a, view_b = _noise_views(seed)
        params = metric_params("mutual_knn", k=K)
        sweep = run_sweep(SweepRequest("depth", "A", "B", "noise", N, seed, "mutual_knn", params), view_a, view_b)
        bests.append(dict(sweep.series)["best layer of B"])
        levels.append(dict(sweep.series_chance)["best layer of B"])
    bests, levels = np.asarray(bests), np.asarray(levels)
    spread = bests.mean(axis=1).std() / np.sqrt(len(bests))
    assert bests.mean() == pytest.approx(levels.mean(), abs=3 * spread + 1e-3)  # no alignment: at its chance
    assert levels.mean() > 1.2 * K / (N - 1)  # ... which a fixed pair's closed form sits well below


def test_row_best_chance_of_a_lower_is_better_metric_and_of_rows_with_nothing_to_score():
    null = np.array([[[0.1, 0.3], [np.nan, np.nan]], [[0.2, np.nan], [np.nan, 0.4]]])  # [P = 2, La = 2, Lb = 2]
    valid = np.array([[True, True], [True, True]])
    # lower is better: each shuffle's smallest finite cell of the row; a shuffle with none in a row is left out
    assert row_search_chance(null, False, valid) == pytest.approx([0.15, 0.4])
    assert row_search_chance(null, True, valid) == pytest.approx([0.25, 0.4])
    none_valid = np.array([[True, True], [False, False]])
    high, low = row_search_chance(null, True, none_valid), row_search_chance(null, False, none_valid)
    assert np.isnan(high[1]) and np.isnan(low[1]) and high[0] == pytest.approx(0.25)
    assert str(row_search_chance(np.zeros((2, 1, 1)), False, np.ones((1, 1), bool))[0]) == "0.0"  # never -0.0


def test_a_search_counts_only_the_layer_pairs_it_could_pick():
    # GRAM volume needs equal widths: of 2 x 2 pairs with widths (8, 16) x (8, 4) only one can be scored;
    # the search said it searched 4 (and a Bonferroni p would have multiplied by 4)
    rng = np.random.default_rng(5)
    view_a = _view("A", [rng.standard_normal((N, 8)), rng.standard_normal((N, 16))])
    view_b = _view("B", [rng.standard_normal((N, 8)), rng.standard_normal((N, 4))])
    searched = score_pair(PairRequest("A", "B", "noise", N, 0, "gram_volume", (), "all"), view_a, view_b)
    assert searched.pairs_searched == 1 and (searched.layer_a, searched.layer_b) == (0, 0)
    full = score_pair(PairRequest("A", "B", "noise", N, 0, "mutual_knn", metric_params("mutual_knn", k=K), "all"),
                      view_a, view_b)  # fmt: skip
    assert full.pairs_searched == 4


def test_a_search_where_some_pairs_cannot_be_scored_still_gets_its_p_over_those_it_could():
    """GRAM volume over layers of different widths had no p, no corrected p and no search chance at all:
    the shuffled test needed every pair scoreable. Now it shuffles the scoreable pairs, and the best pair's
    p is the fixed pair's permutation p (the same shuffles)."""
    rng = np.random.default_rng(6)
    shared = rng.standard_normal((N, 8))
    view_a = _view("A", [shared + 0.5 * rng.standard_normal((N, 8)), rng.standard_normal((N, 16)),
                         rng.standard_normal((N, 8))])  # fmt: skip
    view_b = _view("B", [shared + 0.5 * rng.standard_normal((N, 8)), rng.standard_normal((N, 4))])
    request = PairRequest("A", "B", "noise", N, 0, "gram_volume", (), "all", 99)
    searched = score_pair(request, view_a, view_b)
    assert searched.pairs_searched == 2 and (searched.layer_a, searched.layer_b) == (0, 0)  # (0,0) and (2,0)
    fixed = score_pair(request.replace(layers="0,0"), view_a, view_b)
    assert searched.p_value == fixed.p_value == pytest.approx(0.01)  # the floor: the real pair
    assert searched.p_maxstat == pytest.approx(0.01) and searched.p_bonferroni == pytest.approx(0.02)
    # a weak pair, its p away from the floor: the same shuffles as the fixed pair's test, to the count
    weak_b = _view("B", [shared + 8.0 * rng.standard_normal((N, 8)), rng.standard_normal((N, 4))])
    weak = score_pair(request, view_a, weak_b)
    weak_fixed = score_pair(request.replace(layers=f"{weak.layer_a},{weak.layer_b}"), view_a, weak_b)
    assert 0.03 < weak.p_value < 0.9 and weak.p_value == weak_fixed.p_value
    assert weak.p_bonferroni == pytest.approx(min(1.0, 2 * weak.p_value))
    assert searched.search_chance is not None and searched.value < searched.search_chance  # lower is better
    matrix = _matrix(view_a, view_b, "gram_volume", permutations=99)
    assert np.isnan(matrix.p_values[[0, 1, 1, 2], [1, 0, 1, 1]]).all()  # the pairs it could not score
    assert np.isfinite(matrix.p_values[[0, 2], [0, 0]]).all()


def test_the_bonferroni_note_names_each_metrics_own_count_of_pairs_searched():
    """The note said "p x 9 layer pairs searched" for every row though PWCCA, which cannot score a layer
    wider than the samples allow, searched 4: its p_bonferroni is p x 4."""
    from alignscope.core.analysis.report import p_value_notes

    rng = np.random.default_rng(0)
    view_a, view_b = (_view(name, [rng.standard_normal((N, w)) for w in (4, 16, 200)]) for name in ("A", "B"))
    scores = [
        score_pair(PairRequest("A", "B", "noise", N, 0, metric, metric_params(metric), "all", 20), view_a, view_b)
        for metric in ("mutual_knn", "pwcca")
    ]
    assert [score.pairs_searched for score in scores] == [9, 4]
    assert scores[1].p_bonferroni == pytest.approx(min(1.0, 4 * scores[1].p_value))
    notes = " ".join(p_value_notes(scores))
    assert "p_maxstat: studentised max-T over all the layer pairs each metric searched (mutual_knn 9, pwcca 4)" in notes
    assert "p_bonferroni = min(1, p x the pairs its metric searched)" in notes and "9 layer pairs searched" not in notes
    alone = " ".join(p_value_notes(scores[:1]))
    assert "p_bonferroni = min(1, p x 9 layer pairs searched)" in alone and "over all 9 layer pairs" in alone
