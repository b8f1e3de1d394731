"""One pair, every entry point: the CLI, the Python API and each dashboard page show the same score,
chance level, p-value and interval — they all come from one scorer through one engine."""

from __future__ import annotations

import json

import pytest

from tests.dashboard.helpers import no_exception, run_page

pytestmark = pytest.mark.usefixtures("dashboard_cache")

SETTINGS = {
    "a": "digits-cnn-s0",
    "b": "digits-cnn-s1",
    "data": "digits",
    "n": "200",
    "seed": "1",
    "k": "10",
    "perm": "50",
    "boot": "20",
    "la": "-1",
    "lb": "-1",
    "metrics": "mutual_knn,linear_cka",
}


def _api(metric: str):
    from alignscope.core.analysis import PairRequest, metric_params, run

    return run(
        PairRequest(
            "digits-cnn-s0",
            "digits-cnn-s1",
            "digits",
            200,
            1,
            metric,
            metric_params(metric, k=10),
            "last",
            permutations=50,
            bootstrap=20,
        )
    )


def _cli(capsys) -> dict:
    from alignscope.core.cli import main

    assert (
        main(
            [
                "score",
                "--model-a",
                "digits-cnn-s0",
                "--model-b",
                "digits-cnn-s1",
                "--dataset",
                "digits",
                "--n",
                "200",
                "--seed",
                "1",
                "--k",
                "10",
                "--metric",
                "mutual_knn",
                "--metric",
                "linear_cka",
                "--layers",
                "last",
                "--permutations",
                "50",
                "--bootstrap",
                "20",
                "--format",
                "json",
            ]
        )
        == 0
    )
    return {score["metric"]: score for score in json.loads(capsys.readouterr().out)}


def test_cli_api_and_compare_page_agree_on_score_chance_p_and_interval(capsys):
    cli = _cli(capsys)
    app = run_page("compare", SETTINGS, fast=False)
    no_exception(app)
    table = app.dataframe[0].value
    for metric in ("mutual_knn", "linear_cka"):
        api = _api(metric)
        assert cli[metric]["value"] == api.value and cli[metric]["chance"] == api.chance
        assert cli[metric]["p_value"] == api.p_value
        assert (cli[metric]["ci_low"], cli[metric]["ci_high"]) == (api.ci_low, api.ci_high)
        row = table.loc[metric]
        assert row["score"] == f"{api.value:.4f}" and row["chance level"] == f"{api.chance:.4f}"
        assert row["95% CI"] == f"[{api.ci_low:.4f}, {api.ci_high:.4f}]"
        assert row["p-value"] == ("≤ 1/51" if api.at_floor else f"{api.p_value:.4f}")
    assert _api("mutual_knn").chance == pytest.approx(10 / 199)  # the closed form, everywhere


def test_the_neighbours_many_models_and_sweeps_pages_show_the_same_score():
    api = _api("mutual_knn")
    neighbours = run_page("neighbours", SETTINGS, fast=False)
    no_exception(neighbours)
    shown = {m.label: m.value for m in neighbours.metric}
    assert shown["Mutual k-NN (mean overlap)"] == f"{api.value:.3f}"
    assert shown["Chance level k/(n−1)"] == f"{api.chance:.3f}"
    many = run_page(
        "many_models",
        {**SETTINGS, "models": "digits-cnn-s0,digits-cnn-s1", "depth": "1.0", "metric": "mutual_knn"},
        fast=False,
    )
    no_exception(many)
    assert many.dataframe[0].value.loc["digits-cnn-s0", "digits-cnn-s1"] == pytest.approx(api.value, abs=1e-12)
    sweeps = run_page("sweeps", {**SETTINGS, "sweep": "k", "metric": "mutual_knn"}, fast=False)
    no_exception(sweeps)
    frame = sweeps.dataframe[0].value
    assert frame.loc[10.0, "mutual_knn"] == pytest.approx(api.value, abs=1e-12)
    assert frame.loc[10.0, "chance"] == pytest.approx(api.chance, abs=1e-12)
