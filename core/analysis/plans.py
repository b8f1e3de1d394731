"""Batch runs: a plan (TOML) is a grid of models × datasets × metrics × layer choice × parameters; each
cell is one engine request, so a run is cached, resumable after a kill, and equal to ``alignscope score``
cell for cell. The output is one tidy table (Parquet + CSV), the paired differences asked for, and a JSON
run card echoing the plan.

A plan::

    name = "digits-ladder"
    datasets = ["digits"]          # or dataset = "digits"
    n = 500
    seed = 0
    models = ["family:digits-ladder", "digits-cnn-s0"]
    pairs = "unordered"            # "unordered" (a < b), "ordered" (a != b), or [["a", "b"], ...]
    metrics = ["mutual_knn", "linear_cka"]
    layers = "best"                # "best" (each pair's best layer pair), "last", or "depth:0.5"
    permutations = 200
    bootstrap = 100
    differences = [["digits-ladder-7", "digits-ladder-1", "digits-cnn-s0"]]   # A, B, reference
    [params]                       # a grid: every combination is a cell (only where a metric takes it)
    k = [5, 10]
    similarity = ["cosine", "ip"]
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignscope.core.analysis.differences import Difference, DifferenceRequest
from alignscope.core.analysis.engine import Engine, Prepared
from alignscope.core.analysis.ray_tasks import RayOptions
from alignscope.core.analysis.requests import PairRequest, Request, metric_params, parse_layer_choice
from alignscope.core.analysis.results import PairScore
from alignscope.core.analysis.sweeps import depth_layer
from alignscope.core.datasets import get_dataset_spec
from alignscope.core.errors import InputError
from alignscope.core.files import atomic_write_bytes
from alignscope.core.metrics.registry import get_metric
from alignscope.core.names import check_name
from alignscope.core.properties import resolve_models
from alignscope.core.stats import MAX_RESAMPLES
from alignscope.core.versions import versions_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TABLE_COLUMNS = (
    "model_a",
    "model_b",
    "dataset",
    "n",
    "metric",
    "params",
    "layer_a",
    "layer_b",
    "layer_a_name",
    "layer_b_name",
    "score",
    "chance",
    "chance_of_best",
    "p",
    "p_corrected",
    "ci_low",
    "ci_high",
    "n_permutations",
    "n_bootstrap",
    "feature_key_a",
    "feature_key_b",
    "result_key",
)
FLOAT_COLUMNS = ("score", "chance", "chance_of_best", "p", "p_corrected", "ci_low", "ci_high")
DIFFERENCE_COLUMNS = (
    "model_a",
    "model_b",
    "reference",
    "dataset",
    "n",
    "metric",
    "params",
    "layers",
    "score_a",
    "score_b",
    "difference",
    "ci_low",
    "ci_high",
    "p",
    "test",
    "n_resamples",
    "result_key",
)
PLAN_KEYS = {
    "name",
    "dataset",
    "datasets",
    "n",
    "seed",
    "models",
    "pairs",
    "metrics",
    "layers",
    "permutations",
    "bootstrap",
    "params",
    "differences",
    "description",
}
DIFFERENCE_BOOTSTRAP = 1000  # paired resamples of a difference when the plan asks for no bootstrap


@dataclass(frozen=True)
class Plan:
    """A parsed, validated plan (see the module docstring)."""

    name: str
    datasets: tuple[str, ...]
    n: int
    seed: int
    models: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    metrics: tuple[str, ...]
    layers: str
    permutations: int
    bootstrap: int
    params: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    differences: tuple[tuple[str, str, str], ...] = ()
    source: dict[str, Any] = field(default_factory=dict)


def _int(raw: dict, key: str, default: int, low: int, high: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"plan: {key} must be a whole number >= {low}, got {value!r}")
    if high is not None and value > high:
        raise InputError(f"plan: {key} must be at most {high:,}, got {value:,}")
    return value


def _resamples(raw: dict, key: str) -> int:
    """``permutations`` / ``bootstrap``: 0 (off) or a count the statistics accept."""
    value = _int(raw, key, 0, 0, MAX_RESAMPLES)
    if key == "bootstrap" and value == 1:
        raise InputError("plan: bootstrap must be 0 (off) or at least 2: one resample has no spread")
    return value


def parse_plan(text: str) -> Plan:
    """Read and check a plan; every problem is an InputError naming the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"the plan is not valid TOML: {error}") from None
    unknown = sorted(set(raw) - PLAN_KEYS)
    if unknown:
        raise InputError(f"plan: unknown keys {unknown}; known: {sorted(PLAN_KEYS)}")
    name = check_name(str(raw.get("name", "run")), what="run")
    if "dataset" in raw and "datasets" in raw:  # one of them was silently ignored
        raise InputError('plan: give dataset = "..." or datasets = [...], not both')
    datasets = raw["datasets"] if "datasets" in raw else [raw["dataset"]] if "dataset" in raw else []
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
        raise InputError('plan: name the dataset(s): dataset = "digits" or datasets = [...]')
    datasets = list(dict.fromkeys(datasets))  # listed twice, scored once (as models and [params] values are)
    for dataset in datasets:
        get_dataset_spec(dataset)
    if not isinstance(raw.get("models", []), list):
        raise InputError('plan: models must be a list of names, e.g. ["family:digits-ladder", "digits-cnn-s0"]')
    models = resolve_models([str(m) for m in raw.get("models", [])])
    metrics = raw.get("metrics", ["mutual_knn"])
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise InputError('plan: metrics must be a list of names, e.g. ["mutual_knn", "linear_cka"]')
    metrics = tuple(dict.fromkeys(metrics))
    for metric in metrics:
        get_metric(metric)
    layers = str(raw.get("layers", "best"))
    parse_layer_choice(layers)
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise InputError("plan: [params] must be a table of name = value or [values]")
    grid = {key: tuple(value if isinstance(value, list) else [value]) for key, value in params.items()}
    empty = sorted(key for key, values in grid.items() if not values)
    if empty:  # it ran the metric's default, as if the line were not there
        raise InputError(f"plan: [params] {empty[0]} = []: give at least one value, or leave the line out")
    _check_grid(grid, metrics)
    for metric in metrics:  # a bad value (k = 0, similarity = "manhattan") fails now, not mid-run
        for combo in _combinations(grid):
            metric_params(metric, **combo)
    pairs = tuple(dict.fromkeys(_pairs(raw.get("pairs", "unordered"), models)))
    differences = tuple(dict.fromkeys(_triples(raw.get("differences", []))))
    _check_modalities(datasets, {m for cell in pairs + differences for m in cell})
    if not pairs and not differences:  # an empty table is not a result
        why = "pairs is empty" if "pairs" in raw else f"{len(models)} different model(s) make no pair"
        raise InputError(
            f"plan: nothing to score: {why}; list at least two models, "
            "pairs = [[model_a, model_b]] or differences = [[model_a, model_b, reference]]"
        )
    return Plan(
        name=name,
        datasets=tuple(datasets),
        n=_int(raw, "n", 10**9, 3),
        seed=_int(raw, "seed", 0, 0),
        models=models,
        pairs=pairs,
        metrics=metrics,
        layers=layers,
        permutations=_resamples(raw, "permutations"),
        bootstrap=_resamples(raw, "bootstrap"),
        params=grid,
        differences=differences,
        source=raw,
    )


def _check_modalities(datasets: list[str], models: set[str]) -> None:
    """Every model of the plan must read every dataset of it (found when reading the plan, not mid-run)."""
    from alignscope.core.analysis.features import modality_problem

    for dataset in datasets:
        for model in sorted(models):
            problem = modality_problem(model, dataset)
            if problem is not None:
                raise InputError(f"plan: {problem}")


def _check_grid(grid: dict[str, tuple[Any, ...]], metrics: tuple[str, ...]) -> None:
    """Each [params] name must be taken by a metric of the plan, and each value accepted as written by
    one that takes it: ``metric_params`` clamps numbers into bounds (k = 0 would silently run k = 1)
    and ignores names no metric takes (a typo would silently run the default)."""
    for key, values in grid.items():
        takers = [(spec, param) for spec in map(get_metric, metrics) for param in spec.params if param.name == key]
        if not takers:
            raise InputError(f"plan: [params] {key}: none of the plan's metrics ({', '.join(metrics)}) takes it")
        for value in values:
            problems = []
            for spec, param in takers:
                try:
                    param.validate(value, spec.name)
                except InputError as error:
                    problems.append(str(error))
            if len(problems) == len(takers):
                raise InputError(f"plan: [params] {key} = {value!r}: {problems[0]}")


def _combinations(grid: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[k] for k in names))] or [{}]


def _pairs(spec: Any, models: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if spec == "unordered":
        return tuple(itertools.combinations(models, 2))
    if spec == "ordered":
        return tuple((a, b) for a in models for b in models if a != b)
    if isinstance(spec, list) and all(isinstance(p, list) and len(p) == 2 for p in spec):
        pairs = tuple((str(a), str(b)) for a, b in spec)
        resolve_models([m for pair in pairs for m in pair])
        return pairs
    raise InputError("plan: pairs must be 'unordered', 'ordered' or a list of [model_a, model_b]")


def _triples(spec: Any) -> tuple[tuple[str, str, str], ...]:
    if not isinstance(spec, list) or not all(isinstance(t, list) and len(t) == 3 for t in spec):
        raise InputError("plan: differences must be a list of [model_a, model_b, reference]")
    triples = tuple((str(a), str(b), str(x)) for a, b, x in spec)
    resolve_models([m for triple in triples for m in triple])
    return triples


def expand(plan: Plan, engine: Engine) -> list[Request]:
    """Every cell of the plan as a request: the pair scores (metrics only get the parameters they take),
    then the paired differences."""
    requests: list[Request] = []
    for dataset in plan.datasets:
        for metric in plan.metrics:
            seen: set = set()
            for combo in _combinations(plan.params):
                params = metric_params(metric, **combo)
                if params in seen:  # the grid varies a parameter this metric does not take
                    continue
                seen.add(params)
                for model_a, model_b in plan.pairs:
                    layers = pair_layers(plan.layers, engine, model_a, model_b, dataset, plan.n, plan.seed)
                    requests.append(
                        PairRequest(
                            model_a,
                            model_b,
                            dataset,
                            plan.n,
                            plan.seed,
                            metric,
                            params,
                            layers,
                            plan.permutations,
                            plan.bootstrap,
                        )
                    )
                for model_a, model_b, reference in plan.differences:
                    requests.append(
                        DifferenceRequest(
                            model_a,
                            model_b,
                            reference,
                            dataset,
                            plan.n,
                            plan.seed,
                            metric,
                            params,
                            plan.layers,
                            plan.bootstrap or DIFFERENCE_BOOTSTRAP,
                        )
                    )
    return requests


def pair_layers(text: str, engine: Engine, model_a: str, model_b: str, dataset: str, n: int, seed: int) -> str:
    """A :class:`PairRequest`'s ``layers`` for a layer choice (:func:`parse_layer_choice`): ``"all"`` for the
    best pair, ``"last"``, or each model's layer at a relative depth as ``"i,j"`` (``"last"`` while the
    features are not extracted yet: a batch extracts first and expands again)."""
    choice = parse_layer_choice(text)
    if choice == "best":
        return "all"
    if choice == "last":
        return "last"
    assert isinstance(choice, float)
    probe = engine.prepare(PairRequest(model_a, model_b, dataset, n, seed, "mutual_knn"))
    counts = {p.model: p.n_layers for p in probe.plans}
    if not all(counts.values()):
        return "last"
    return f"{depth_layer(choice, counts[model_a])},{depth_layer(choice, counts[model_b])}"


def score_row(score: PairScore, keys: dict[str, str | None], result_key: str | None) -> dict[str, Any]:
    """One line of the run's table."""
    return {
        "model_a": score.model_a,
        "model_b": score.model_b,
        "dataset": score.dataset,
        "n": score.n_samples,
        "metric": score.metric,
        "params": json.dumps(score.params, sort_keys=True),
        "layer_a": score.layer_a,
        "layer_b": score.layer_b,
        "layer_a_name": score.layer_a_name,
        "layer_b_name": score.layer_b_name,
        "score": score.value,
        "chance": score.chance,
        "chance_of_best": score.search_chance,
        "p": score.p_value,
        "p_corrected": score.p_maxstat if score.pairs_searched > 1 else score.p_value,
        "ci_low": score.ci_low,
        "ci_high": score.ci_high,
        "n_permutations": score.n_permutations,
        "n_bootstrap": score.n_bootstrap,
        "feature_key_a": keys.get(score.model_a),
        "feature_key_b": keys.get(score.model_b),
        "result_key": result_key,
    }


def difference_row(result: Difference, request: DifferenceRequest, result_key: str | None) -> dict[str, Any]:
    test = result.test
    return {
        "model_a": result.model_a,
        "model_b": result.model_b,
        "reference": result.reference,
        "dataset": result.dataset,
        "n": test.n_samples,
        "metric": test.metric,
        "params": json.dumps(dict(request.params), sort_keys=True),
        "layers": f"{result.layer_names_a[0]}~{result.layer_names_a[1]} | {result.layer_names_b[0]}~{result.layer_names_b[1]}",
        "score_a": test.score_a,
        "score_b": test.score_b,
        "difference": test.difference,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "p": test.p_value,
        "test": test.method,
        "n_resamples": test.n_resamples,
        "result_key": result_key,
    }


@dataclass(frozen=True)
class RunReport:
    """What a run did: its folder, how many cells were found stored and how many computed."""

    folder: Path
    cells: int
    cached: int
    computed: int
    seconds: float


ProgressCallback = Callable[[float, float, int, int], None]  # (done s, total s, cells done, cells)


RUN_MARKER = ".alignscope-run"
RUN_FILES = ("table.parquet", "table.csv", "differences.csv", "run.json")


def claim_run_folder(out: Path, plan_name: str, *, replace: bool = False) -> None:
    """Make ``out`` this plan's run folder before any work, or refuse: a run writes (and removes) the files
    of :data:`RUN_FILES` there, so it takes only a new or empty folder, or one of an earlier run of the same
    plan (its marker, or its card), unless ``replace``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot use {str(out)!r} as the run's folder: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):  # before any work: the run would be lost at its end
        raise InputError(f"cannot use {str(out)!r} as the run's folder: it is not writable")
    marker = out / RUN_MARKER
    owner = None
    try:
        owner = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        try:  # a run written before the marker: its card names the plan
            owner = str(json.loads((out / "run.json").read_text(encoding="utf-8")).get("name"))
        except (OSError, ValueError, AttributeError):
            owner = None
    if not replace:
        if owner is not None and owner != plan_name:
            raise InputError(
                f"{str(out)!r} holds the run of another plan ({owner!r}); choose another folder with --out, or "
                "--replace to write this plan's tables over it"
            )
        if owner is None and any(out.iterdir()):
            raise InputError(
                f"{str(out)!r} is not empty and holds no Alignscope run; choose a new or empty folder with --out, "
                f"or --replace to write there anyway (it replaces {', '.join(RUN_FILES)})"
            )
    try:
        atomic_write_bytes(marker, plan_name.encode())
    except OSError as exc:
        raise InputError(f"cannot use {str(out)!r} as the run's folder: {exc.strerror or exc}") from None


RUN_BUDGET_SECONDS = 24 * 3600.0  # estimated CPU time a run starts without being told to (``--yes``)


def check_budget(
    plan: Plan, prepared: Sequence[Prepared], engine: Engine, budget_seconds: float | None
) -> tuple[list[bool], list[float]]:
    """Which cells are stored, and each other cell's estimated CPU-seconds; an InputError when those add
    up to more than ``budget_seconds`` (None: no limit). Estimates are on the high side (see cost.py)."""
    from alignscope.core.numbers import duration

    hits = [engine.cached(item) is not None for item in prepared]
    estimates = [0.0 if hit else engine.estimate(item) for item, hit in zip(prepared, hits)]
    total = sum(estimates)
    if budget_seconds is not None and total > budget_seconds:
        raise InputError(
            f"plan {plan.name!r}: {len(prepared) - sum(hits)} cells to compute ({sum(hits)} stored) are estimated "
            f"at {duration(total)} of CPU time here, more than the {duration(budget_seconds)} a run starts "
            "without asking; shrink the grid (models, metrics, [params], permutations, bootstrap), or rerun "
            "with --yes to start it anyway (a run stopped at any point resumes)"
        )
    return hits, estimates


def _compute_cells(
    plan: Plan,
    engine: Engine,
    extract: Callable[[Any], None],
    on_progress: ProgressCallback | None,
    ray: RayOptions | None,
    budget_seconds: float | None,
    on_start: Callable[[int, int, float], None] | None,
) -> tuple[list[dict], list[dict], list[bool], list[Request]]:
    """:func:`execute`'s work: features, then every cell (stored, or computed); the table's rows, the
    differences' rows, which cells were stored, and the requests."""
    for request in expand(plan, engine):  # features of every (model, dataset), once
        for feature_plan in engine.prepare(request).missing:
            extract(feature_plan)
    requests = expand(plan, engine)
    prepared = [engine.prepare(request) for request in requests]
    hits, estimates = check_budget(plan, prepared, engine, budget_seconds)
    if on_start is not None:
        on_start(len(requests), sum(hits), sum(estimates))
    rows, differences, done = [], [], 0.0
    todo = [index for index, hit in enumerate(hits) if not hit]
    if ray is not None and todo:  # every cell stored: no cluster to start
        from alignscope.core.analysis.ray_tasks import run_cells_on_ray

        finished: list[int] = []

        def on_done(position: int) -> None:
            finished.append(todo[position])
            if on_progress is not None:
                seconds = sum(estimates[i] for i in finished)
                on_progress(seconds, sum(estimates), len(requests) - len(todo) + len(finished), len(requests))

        run_cells_on_ray([requests[i] for i in todo], engine.settings.cache_dir, ray, on_done=on_done)
        on_progress = None  # the cells are done: reading them back is not counted again from 0 %
    for index, request in enumerate(requests):
        # From the store when a Ray worker computed it; ``item`` names the features it read (new keys for
        # any extracted again, found damaged).
        result, item = engine.run_extracting_prepared(request, extract)
        if isinstance(request, DifferenceRequest):
            differences.append(difference_row(result, request, item.key))
        else:
            rows.append(score_row(result, {plan.model: plan.cached_key for plan in item.plans}, item.key))
        done += estimates[index]
        if on_progress is not None:
            on_progress(done, sum(estimates), index + 1, len(requests))
    return rows, differences, hits, requests


def execute(
    plan: Plan,
    out: Path,
    *,
    engine: Engine,
    extract: Callable[[Any], None],
    on_progress: ProgressCallback | None = None,
    ray: RayOptions | None = None,
    replace: bool = False,
    budget_seconds: float | None = None,
    on_start: Callable[[int, int, float], None] | None = None,
) -> RunReport:
    """Run every cell (features first), writing ``table.{parquet,csv}``, ``differences.csv`` and
    ``run.json`` into ``out``. A cell already in the result store is read, not recomputed, so a run
    killed at any point resumes where it stopped. Progress is weighed by each cell's cost estimate.
    With ``ray`` the cells not yet stored run as Ray tasks (:mod:`alignscope.core.analysis.ray_tasks`).
    ``out`` must be free for this plan (:func:`claim_run_folder`). A plan whose cells not yet stored are
    estimated above ``budget_seconds`` of CPU time is refused before any of them runs (and before
    extraction, where the estimate from the features' assumed widths already exceeds it); ``on_start(cells,
    stored, estimated seconds)`` is called once the features are there, before the first cell."""
    import pandas as pd

    started = time.perf_counter()
    check_budget(plan, [engine.prepare(request) for request in expand(plan, engine)], engine, budget_seconds)
    new_folder = not out.exists()
    claim_run_folder(out, plan.name, replace=replace)
    try:
        rows, differences, hits, requests = _compute_cells(
            plan, engine, extract, on_progress, ray, budget_seconds, on_start
        )
    except BaseException:  # the cells done are in the store; a folder made for the run holds nothing yet
        if new_folder and [p.name for p in out.iterdir()] == [RUN_MARKER]:
            shutil.rmtree(out, ignore_errors=True)
        raise
    out.mkdir(parents=True, exist_ok=True)
    # The card is written last and marks the run complete: an earlier run's card must not vouch for
    # tables half replaced by this one if it dies while writing them.
    (out / "run.json").unlink(missing_ok=True)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for column in FLOAT_COLUMNS:  # a column of None only (chance_of_best of fixed pairs) was stored as object
        table[column] = table[column].astype("float64")
    parquet = io.BytesIO()
    table.to_parquet(parquet, index=False)
    atomic_write_bytes(out / "table.parquet", parquet.getvalue())
    atomic_write_bytes(out / "table.csv", table.to_csv(index=False).encode())
    if differences:
        frame = pd.DataFrame(differences, columns=list(DIFFERENCE_COLUMNS))
        atomic_write_bytes(out / "differences.csv", frame.to_csv(index=False).encode())
    else:  # an earlier run's differences are not this plan's
        (out / "differences.csv").unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    cached = sum(hits)
    card = {
        "alignscope_run": 1,
        "name": plan.name,
        "plan": plan.source,
        "cells": len(requests),
        "cached": cached,
        "computed": len(requests) - cached,
        "seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions_of("alignscope", "torch", "numpy"),
    }
    atomic_write_bytes(out / "run.json", json.dumps(card, indent=1, default=str).encode())
    return RunReport(out, len(requests), cached, len(requests) - cached, seconds)


@dataclass(frozen=True)
class Run:
    """A finished run read back: its card (the plan echoed), its table, its differences (or None)."""

    folder: Path
    card: dict[str, Any]
    table: Any  # pandas DataFrame with TABLE_COLUMNS
    differences: Any | None


def read_run(folder: Path) -> Run:
    """A run's card and tables, for the Results page (an unreadable run is an InputError)."""
    import pandas as pd

    try:
        card = json.loads((folder / "run.json").read_text())
        table = pd.read_parquet(folder / "table.parquet")
    except (OSError, ValueError) as error:
        raise InputError(f"run {folder.name!r} cannot be read: {error}") from None
    differences_path = folder / "differences.csv"
    differences = pd.read_csv(differences_path) if differences_path.exists() else None
    return Run(folder, card, table, differences)


def list_runs(root: Path) -> list[str]:
    """Names of the finished runs under ``root`` (folders with a run card), newest first."""
    if not root.is_dir():
        return []
    cards = [path for path in root.glob("*/run.json") if (path.parent / "table.parquet").exists()]
    return [path.parent.name for path in sorted(cards, key=lambda p: p.stat().st_mtime, reverse=True)]
