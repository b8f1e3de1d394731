"""Batch runs (core/analysis/plans.py): a plan's cells are the engine's requests, cell for cell; a killed
run resumes from the result store; a run's folder never holds a half-written table or a stale card."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import alignscope.core.analysis.plans as plans
from alignscope.core.analysis.differences import DifferenceRequest
from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import extract_for_plan, plan_features
from alignscope.core.analysis.plans import RunReport, execute, expand, list_runs, parse_plan, read_run
from alignscope.core.analysis.requests import PairRequest, metric_params
from alignscope.core.analysis.store import ResultStore
from alignscope.core.cli import main
from alignscope.core.errors import AlignscopeError, InputError
from alignscope.core.settings import get_settings

MODELS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
N = 150
PLAN = """
name = "digits-trio"
dataset = "digits"
n = 150
models = ["digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"]
metrics = ["mutual_knn", "linear_cka"]
layers = "best"
permutations = 20
bootstrap = 20
differences = [["digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"]]
"""
CELLS = 2 * (3 + 1)  # per metric: three unordered pairs and one difference


def no_extraction(feature_plan) -> None:
    raise AssertionError(f"features of {feature_plan.model} should have been cached already")


@dataclass(frozen=True)
class Template:
    """A cache holding the CNNs' features on digits, and PLAN run once in it from an empty result store."""

    root: Path
    report: RunReport
    progress: list

    @property
    def clean(self) -> Path:
        return self.root / "clean"


@pytest.fixture(scope="module")
def template(trained_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("plan-template")
    shutil.copytree(trained_models_dir, root / "models")
    progress: list = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_CACHE_DIR", str(root))
        get_settings.cache_clear()
        try:
            for model in MODELS:
                extract_for_plan(plan_features(model, "digits", N, 0))
            report = execute(
                parse_plan(PLAN),
                root / "clean",
                engine=Engine(),
                extract=no_extraction,
                on_progress=lambda *args: progress.append(args),
            )
        finally:
            get_settings.cache_clear()
    return Template(root, report, progress)


@pytest.fixture
def run_cache(warm_cache_dir: Path, template: Template) -> Path:
    """This test's cache: the trained CNNs and their features, and an empty result store."""
    shutil.copytree(template.root / "features", warm_cache_dir / "features")
    return warm_cache_dir


def plan_text(**changes: str) -> str:
    """PLAN with some top-level lines replaced (``key=None`` drops the line)."""
    lines = [line for line in PLAN.strip().splitlines() if line.split(" = ")[0] not in changes]
    return "\n".join(lines + [f"{key} = {value}" for key, value in changes.items() if value is not None]) + "\n"


# -- parsing --------------------------------------------------------------------------------------------


def test_a_plan_is_parsed_into_its_grid():
    plan = parse_plan(plan_text(models='["family:digits-cnn"]', pairs='"ordered"'))
    assert plan.models == MODELS and plan.datasets == ("digits",) and plan.n == N and plan.seed == 0
    assert len(plan.pairs) == 6 and ("digits-cnn-s1", "digits-cnn-s0") in plan.pairs
    assert plan.differences == (("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"),)
    assert (plan.permutations, plan.bootstrap, plan.layers) == (20, 20, "best")
    assert parse_plan(plan_text()).pairs == (
        ("digits-cnn-s0", "digits-cnn-s1"),
        ("digits-cnn-s0", "digits-cnn-s2"),
        ("digits-cnn-s1", "digits-cnn-s2"),
    )
    listed = parse_plan(plan_text(pairs='[["digits-cnn-s2", "digits-cnn-s0"]]'))
    assert listed.pairs == (("digits-cnn-s2", "digits-cnn-s0"),)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": '"linear_cka"'}, r"plan: unknown keys \['metric'\]"),
        ({"layers": '"middle"'}, r"layers must be 'best' \(or 'all'\), 'last' or 'depth:<0\.\.1>'.*not 'middle'"),
        ({"layers": '"depth:1.5"'}, r"layers must be .*not 'depth:1\.5'"),
        ({"n": "2"}, r"plan: n must be a whole number >= 3, got 2"),
        ({"n": "true"}, r"plan: n must be a whole number >= 3, got True"),
        ({"permutations": "-1"}, r"plan: permutations must be a whole number >= 0, got -1"),
        ({"permutations": "10000000"}, r"plan: permutations must be at most 1,000,000, got 10,000,000"),
        ({"bootstrap": "1"}, r"plan: bootstrap must be 0 \(off\) or at least 2"),
        ({"models": '["digits-cnn-s0", "nope"]'}, r"unknown model 'nope'"),
        ({"models": '"digits-cnn-s0"'}, r"plan: models must be a list of names"),
        ({"models": '["family:nope"]'}, r"no family 'nope'"),
        ({"metrics": '["mutual_knn", "nope"]'}, r"unknown metric 'nope'"),
        ({"metrics": '"mutual_knn"'}, r"plan: metrics must be a list of names"),
        ({"dataset": '"nope"'}, r"unknown dataset 'nope'"),
        ({"dataset": None, "datasets": '"digits"'}, r"plan: name the dataset\(s\)"),
        ({"dataset": None}, r"plan: name the dataset\(s\)"),
        ({"pairs": '"all"'}, r"plan: pairs must be 'unordered', 'ordered' or a list"),
        ({"differences": '[["digits-cnn-s0", "digits-cnn-s1"]]'}, r"plan: differences must be a list of \["),
        ({"name": '"two words"'}, r"run name 'two words' is not allowed"),
        ({"n": "= 3"}, r"the plan is not valid TOML"),
        # one model (or one listed twice) and no differences: 0 cells, an empty table reported as success
        ({"models": '["digits-cnn-s0"]', "differences": "[]"}, r"plan: nothing to score: 1 different model"),
        ({"models": '["digits-cnn-s0", "digits-cnn-s0"]', "differences": "[]"}, r"plan: nothing to score"),
        ({"pairs": "[]", "differences": "[]"}, r"plan: nothing to score: pairs is empty"),
        # both: one was silently ignored; a model that cannot read the dataset: found only mid-run
        ({"datasets": '["sentences"]'}, r'plan: give dataset = "\.\.\." or datasets = \[\.\.\.\], not both'),
        ({"dataset": '"sentences"'}, r"plan: 'digits-cnn-s0' encodes image, but dataset 'sentences' holds text"),
    ],
)
def test_a_bad_plan_is_refused_with_a_message_naming_the_problem(changes, message):
    with pytest.raises(AlignscopeError, match=message):
        parse_plan(plan_text(**changes))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("k = 0", r"plan: \[params\] k = 0: mutual_knn: parameter k must be >= 1, got 0"),  # not clamped to 1
        ('k = "ten"', r"plan: \[params\] k = 'ten': mutual_knn: parameter k must be an integer"),
        ("k = [5, 5.5]", r"plan: \[params\] k = 5\.5: .*must be an integer"),
        ("kk = 5", r"plan: \[params\] kk: none of the plan's metrics \(mutual_knn, linear_cka\) takes it"),
        ('similarity = "manhattan"', r"similarity must be one of 'cosine', 'ip', 'euclidean'; got 'manhattan'"),
        ("k = []", r"plan: \[params\] k = \[\]: give at least one value, or leave the line out"),  # ran k = 10
    ],
)
def test_a_parameter_grid_value_no_metric_accepts_is_refused_not_silently_changed(params, message):
    with pytest.raises(InputError, match=message):
        parse_plan(PLAN + "[params]\n" + params + "\n")


def test_what_a_plan_lists_twice_is_scored_once():
    """Models and [params] values listed twice were scored once, but metrics, datasets, pairs and
    differences listed twice gave duplicate rows ("2 cells" for one)."""
    twice = parse_plan(
        plan_text(
            metrics='["linear_cka", "linear_cka"]',
            dataset=None,
            datasets='["digits", "digits"]',
            pairs='[["digits-cnn-s0", "digits-cnn-s1"], ["digits-cnn-s0", "digits-cnn-s1"]]',
            differences='[["digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"]] * 1',
        ).replace("]] * 1", '], ["digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"]]')
    )
    assert twice.metrics == ("linear_cka",) and twice.datasets == ("digits",)
    assert twice.pairs == (("digits-cnn-s0", "digits-cnn-s1"),) and len(twice.differences) == 1


def test_alignscope_run_refuses_a_bad_plan_in_one_line_before_any_work(tmp_path, cache_dir, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(plan_text(layers='"middle"'))
    assert main(["run", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layers must be 'best' (or 'all'), 'last' or 'depth:<0..1>'" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the plan" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (cache_dir / "features").exists()


def test_a_grid_value_one_metric_accepts_is_kept_and_clamped_only_for_the_other():
    plan = parse_plan(plan_text(metrics='["mutual_knn", "cknna"]') + "[params]\nk = [1, 10]\n")
    assert plan.params == {"k": (1, 10)}


# -- expansion ------------------------------------------------------------------------------------------


def test_expand_crosses_metrics_with_the_parameters_each_takes(run_cache):
    plan = parse_plan(PLAN + "[params]\nk = [5, 10]\n")
    requests = expand(plan, Engine())
    pairs = [r for r in requests if isinstance(r, PairRequest)]
    differences = [r for r in requests if isinstance(r, DifferenceRequest)]
    # linear_cka takes no k: one cell per pair, not two identical ones
    assert len(pairs) == 3 * (2 + 1) and len(differences) == 2 + 1
    assert sorted({dict(r.params).get("k") for r in pairs if r.metric == "mutual_knn"}) == [5, 10]
    assert {r.params for r in requests if r.metric == "linear_cka"} == {()}
    assert {(r.layers, r.permutations, r.bootstrap, r.n, r.seed) for r in pairs} == {("all", 20, 20, N, 0)}
    assert {(r.layers, r.bootstrap) for r in differences} == {("best", 20)}


@pytest.mark.parametrize(("layers", "expected"), [("last", "last"), ("depth:0.5", "2,2"), ("depth:1.0", "4,4")])
def test_a_fixed_layer_choice_becomes_each_pairs_layer_indices(run_cache, layers, expected):
    # the CNNs have five layers (conv1, conv2, conv3, fc1, logits): depth 0.5 is conv3, index 2
    plan = parse_plan(plan_text(layers=f'"{layers}"', bootstrap="0"))
    requests = expand(plan, Engine())
    assert {r.layers for r in requests if isinstance(r, PairRequest)} == {expected}
    differences = [r for r in requests if isinstance(r, DifferenceRequest)]
    assert {(r.layers, r.bootstrap) for r in differences} == {(layers, plans.DIFFERENCE_BOOTSTRAP)}


def test_a_depth_is_resolved_after_extraction_and_the_run_extracts_first(warm_cache_dir, template, tmp_path):
    plan = parse_plan(plan_text(metrics='["linear_cka"]', layers='"depth:0.5"', permutations="0", bootstrap="2"))
    engine = Engine()
    assert {r.layers for r in expand(plan, engine) if isinstance(r, PairRequest)} == {"last"}  # layers unknown yet
    extracted = []

    def extract(feature_plan) -> None:  # the entry extract_for_plan would write, copied from the template
        extracted.append(feature_plan.model)
        key = feature_plan.full_key
        folder = warm_cache_dir / "features" / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        for path in (template.root / "features" / key[:2]).glob(f"{key}.*"):
            shutil.copy(path, folder / path.name)

    execute(plan, tmp_path / "run", engine=engine, extract=extract)
    assert sorted(extracted) == sorted(MODELS)  # each model once, though every cell reads two
    table = read_run(tmp_path / "run").table
    assert set(zip(table.layer_a_name, table.layer_b_name)) == {("conv3", "conv3")}


# -- a run equals its cells computed one by one -----------------------------------------------------


def cell(table: pd.DataFrame, model_a: str, model_b: str, metric: str):
    (row,) = table[(table.model_a == model_a) & (table.model_b == model_b) & (table.metric == metric)].itertuples()
    return row


def test_every_table_row_equals_the_engine_on_that_pair_alone(run_cache, template, capsys):
    report, progress = template.report, template.progress
    assert (report.cells, report.cached, report.computed) == (CELLS, 0, CELLS)
    assert [cells_done for _, _, cells_done, _ in progress] == list(range(1, CELLS + 1))
    assert progress[-1][0] == pytest.approx(progress[-1][1]) and progress[-1][1] > 0
    run = read_run(template.clean)
    assert list(run.table.columns) == list(plans.TABLE_COLUMNS) and len(run.table) == 6
    assert run.card["cells"] == CELLS and run.card["computed"] == CELLS and run.card["plan"]["n"] == N
    assert pd.read_csv(template.clean / "table.csv").shape == run.table.shape

    fresh = Engine()  # this test's own, empty result store: every pair is computed again
    for row in run.table.itertuples():
        request = PairRequest(
            row.model_a, row.model_b, "digits", N, 0, row.metric, metric_params(row.metric), "all", 20, 20
        )
        prepared = fresh.prepare(request)
        assert fresh.cached(prepared) is None  # computed again, not read back
        score = fresh.run(request)
        assert row.result_key == prepared.key
        assert json.loads(row.params) == dict(metric_params(row.metric))
        assert (row.n, row.layer_a, row.layer_b) == (N, score.layer_a, score.layer_b)
        assert (row.layer_a_name, row.layer_b_name) == (score.layer_a_name, score.layer_b_name)
        assert (row.score, row.chance, row.p) == (score.value, score.chance, score.p_value)
        assert row.p_corrected == score.p_maxstat and score.pairs_searched == 25
        assert (row.ci_low, row.ci_high) == (score.ci_low, score.ci_high)
        assert (row.n_permutations, row.n_bootstrap) == (20, 20)
        assert row.p <= row.p_corrected  # the best of 25 cells against the best of each shuffle

    # ... and `alignscope score` asks for the very same cell (it finds the one just computed)
    argv = ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s2", "--dataset", "digits"]
    argv += ["--n", str(N), "--metric", "linear_cka", "--layers", "all", "--permutations", "20", "--bootstrap", "20"]
    assert main([*argv, "--format", "json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)
    row = cell(run.table, "digits-cnn-s0", "digits-cnn-s2", "linear_cka")
    assert (cli["value"], cli["p_value"], cli["ci_low"], cli["ci_high"]) == (row.score, row.p, row.ci_low, row.ci_high)
    assert (cli["layer_a"], cli["layer_b"]) == (row.layer_a, row.layer_b)


def test_every_difference_row_equals_the_difference_request_alone(run_cache, template):
    run = read_run(template.clean)
    assert list(run.differences.columns) == list(plans.DIFFERENCE_COLUMNS) and len(run.differences) == 2
    fresh, store = Engine(), ResultStore(root=template.root / "results")
    for row in run.differences.itertuples():
        request = DifferenceRequest(*MODELS, "digits", N, 0, row.metric, metric_params(row.metric), "best", 20)
        assert fresh.cached(fresh.prepare(request)) is None
        result = fresh.run(request)
        test = result.test
        stored = store.get(row.result_key)  # what the run computed, at full precision
        assert stored is not None and stored.test.bootstrap_differences.tolist() == test.bootstrap_differences.tolist()
        assert (stored.layers_a, stored.layers_b) == (result.layers_a, result.layers_b)
        exact = (test.score_a, test.score_b, test.difference, test.ci_low, test.ci_high, test.p_value)
        assert (stored.test.score_a, stored.test.score_b, stored.test.difference) == exact[:3]
        assert (stored.test.ci_low, stored.test.ci_high, stored.test.p_value) == exact[3:]
        written = (row.score_a, row.score_b, row.difference, row.ci_low, row.ci_high, row.p)
        assert written == pytest.approx(exact, rel=1e-5, abs=1e-9)  # the CSV keeps 6 significant digits
        assert (row.test, row.n_resamples, row.n) == (test.method, test.n_resamples, N)
        assert row.layers == " | ".join("~".join(names) for names in (result.layer_names_a, result.layer_names_b))
        # each side of the difference is that pair's best-layer score in the table
        for model, score in ((row.model_a, row.score_a), (row.model_b, row.score_b)):
            assert cell(run.table, model, "digits-cnn-s2", row.metric).score == pytest.approx(score, rel=1e-5)


# -- resuming, and never a half-written folder ------------------------------------------------------------


def stored_keys(cache: Path) -> set[str]:
    """Keys of the complete entries in the result store (the JSON sidecar is written last, atomically)."""
    return {path.stem for path in (cache / "results").glob("??/*.json")}


def alignscope_run(plan_path: Path, out: Path, log: Path) -> subprocess.Popen:
    """``alignscope run PLAN --out OUT`` in a process of its own (stderr, with the bars, into ``log``)."""
    command = [sys.executable, "-m", "alignscope.core.cli", "run", str(plan_path), "--out", str(out)]
    with open(log, "wb") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=dict(os.environ))


def test_a_killed_run_resumes_from_the_store_and_ends_equal_to_a_clean_run(run_cache, template, tmp_path, capsys):
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(PLAN)
    plan = parse_plan(PLAN)
    engine = Engine()
    cell_keys = {engine.prepare(request).key for request in expand(plan, engine)}
    assert len(cell_keys) == CELLS and None not in cell_keys
    out = tmp_path / "runs" / "killed"

    process = alignscope_run(plan_path, out, tmp_path / "killed.err")
    deadline = time.monotonic() + 180.0
    try:
        while not stored_keys(run_cache) & cell_keys:
            assert process.poll() is None, (tmp_path / "killed.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "no cell was stored within 180 s"
            time.sleep(0.005)  # polling for the first stored cell, not waiting a fixed time
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stored = stored_keys(run_cache) & cell_keys
    assert 1 <= len(stored) < CELLS
    # killed while computing: no table, no card, no temp file (only the folder's claim), not a finished run
    assert not out.exists() or sorted(path.name for path in out.iterdir()) in ([], [".alignscope-run"])
    assert list_runs(out.parent) == []

    capsys.readouterr()
    assert main(["run", str(plan_path), "--out", str(out)]) == 0  # the same command again, in this process
    card = json.loads((out / "run.json").read_text())
    assert card["cells"] == CELLS and card["cached"] == len(stored) and card["computed"] == CELLS - len(stored)
    summary, err = capsys.readouterr()
    assert f"{CELLS} cells ({len(stored)} already stored, {CELLS - len(stored)} computed)" in summary
    # the plan's bootstrap = 20 resamples its differences: a p that cannot fall below 2/21 is said so
    assert (
        "note: the differences were resampled 20 times (the plan's bootstrap): their p cannot fall below 0.0952" in err
    )
    assert stored_keys(run_cache) >= cell_keys
    assert list_runs(out.parent) == ["killed"]

    resumed, clean = read_run(out), read_run(template.clean)  # the clean run computed every cell
    pd.testing.assert_frame_equal(resumed.table, clean.table, check_exact=True)
    for name in ("table.csv", "differences.csv"):
        assert (out / name).read_bytes() == (template.clean / name).read_bytes()


QUICK_PLAN = plan_text(metrics='["linear_cka"]', layers='"last"', permutations="0", bootstrap="5")


def test_every_file_of_a_run_is_written_atomically(run_cache, tmp_path, monkeypatch):
    written = []

    def recording(path: Path, data: bytes) -> None:
        written.append(path.name)
        atomic_write(path, data)

    atomic_write = plans.atomic_write_bytes
    monkeypatch.setattr(plans, "atomic_write_bytes", recording)
    execute(parse_plan(QUICK_PLAN), tmp_path / "run", engine=Engine(), extract=no_extraction)
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == sorted(written)
    assert written[0] == ".alignscope-run" and written[-1] == "run.json"  # the folder claimed first, the card last
    assert sorted(written) == [".alignscope-run", "differences.csv", "run.json", "table.csv", "table.parquet"]
    run = read_run(tmp_path / "run")
    assert len(run.table) == 3 and len(run.differences) == 1 and run.card["cells"] == 4


def test_a_run_that_dies_while_writing_leaves_no_card_vouching_for_mixed_files(
    run_cache, template, tmp_path, monkeypatch
):
    root = tmp_path / "runs"
    shutil.copytree(template.clean, root / "run")  # a finished run (both metrics) ...
    assert list_runs(root) == ["run"]
    atomic_write = plans.atomic_write_bytes

    def dies_at_the_card(path: Path, data: bytes) -> None:
        if path.name == "run.json":
            raise OSError("killed")
        atomic_write(path, data)

    monkeypatch.setattr(plans, "atomic_write_bytes", dies_at_the_card)
    with pytest.raises(OSError, match="killed"):  # ... overwritten by another that dies at its card
        execute(parse_plan(QUICK_PLAN), root / "run", engine=Engine(), extract=no_extraction)
    # the new table is in place, whole; the old card that described the old table is not
    assert set(pd.read_csv(root / "run" / "table.csv").metric) == {"linear_cka"}
    assert list_runs(root) == []
    with pytest.raises(InputError, match="run 'run' cannot be read"):
        read_run(root / "run")
    assert not [path for path in (root / "run").iterdir() if path.name.endswith(".tmp")]


def test_a_rerun_without_differences_drops_the_earlier_runs_differences(run_cache, template, tmp_path):
    shutil.copytree(template.clean, tmp_path / "run")
    assert read_run(tmp_path / "run").differences is not None
    execute(
        parse_plan(plan_text(models='["digits-cnn-s0", "digits-cnn-s1"]', layers='"last"', differences=None)),
        tmp_path / "run",
        engine=Engine(),
        extract=no_extraction,
    )
    run = read_run(tmp_path / "run")
    assert run.differences is None and len(run.table) == 2  # one pair, two metrics


def test_list_runs_lists_finished_runs_newest_first_and_read_run_refuses_a_broken_one(tmp_path):
    assert list_runs(tmp_path / "missing") == []
    for index, name in enumerate(("older", "newer", "unfinished", "broken")):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame({"score": [0.5]}).to_parquet(folder / "table.parquet")
        if name != "unfinished":
            (folder / "run.json").write_text("{" if name == "broken" else json.dumps({"name": name}))
            os.utime(folder / "run.json", (1000.0 + index, 1000.0 + index))
    assert list_runs(tmp_path) == ["broken", "newer", "older"]
    assert read_run(tmp_path / "newer").card == {"name": "newer"}
    with pytest.raises(InputError, match="run 'broken' cannot be read"):
        read_run(tmp_path / "broken")


# -- on a real local Ray instance -----------------------------------------------------------------------


def test_the_cells_computed_by_ray_workers_equal_the_local_run(local_ray, run_cache, template: Template, tmp_path):
    from alignscope.core.analysis.ray_tasks import RayOptions

    plan = parse_plan(PLAN)
    report = execute(plan, tmp_path / "ray", engine=Engine(), extract=no_extraction, ray=RayOptions(num_cpus=2))
    assert report.cells == CELLS and report.cached == 0  # nothing was stored before: the workers computed all
    ours, clean = read_run(tmp_path / "ray"), read_run(template.clean)
    pd.testing.assert_frame_equal(ours.table, clean.table)
    pd.testing.assert_frame_equal(ours.differences, clean.differences)
    again = execute(plan, tmp_path / "again", engine=Engine(), extract=no_extraction, ray=RayOptions(num_cpus=2))
    assert again.cached == CELLS and again.computed == 0  # the workers' results are in the shared store


def test_a_run_never_writes_over_files_it_does_not_own(run_cache, tmp_path):
    """`run --out` into a folder of the user's replaced their table.csv and deleted their differences.csv;
    a second plan with the first one's folder replaced its tables without a word."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "differences.csv").write_text("precious")
    quick = parse_plan(QUICK_PLAN)
    with pytest.raises(InputError, match="is not empty and holds no Alignscope run"):
        execute(quick, mine, engine=Engine(), extract=no_extraction)
    assert (mine / "differences.csv").read_text() == "precious" and sorted(p.name for p in mine.iterdir()) == [
        "differences.csv"
    ]
    execute(quick, tmp_path / "run", engine=Engine(), extract=no_extraction)
    execute(quick, tmp_path / "run", engine=Engine(), extract=no_extraction)  # the same plan again: resumed
    other = parse_plan(plan_text(metrics='["linear_cka"]', layers='"last"', permutations="0", bootstrap="5",
                                 name='"another-plan"'))  # fmt: skip
    assert other.name == "another-plan"
    with pytest.raises(InputError, match="holds the run of another plan"):
        execute(other, tmp_path / "run", engine=Engine(), extract=no_extraction)
    assert read_run(tmp_path / "run").card["name"] == quick.name
    execute(other, tmp_path / "run", engine=Engine(), extract=no_extraction, replace=True)
    assert read_run(tmp_path / "run").card["name"] == "another-plan"


def test_a_plan_estimated_beyond_the_budget_is_refused_before_any_work_and_said_when_it_starts(run_cache, tmp_path):
    """A grid of 3,420 cells at 100,000 shuffles started at once, with a bar at 0 % and no word of its
    estimate (years of CPU time). The estimate is told when a run starts; beyond the budget it is refused
    before a folder is claimed or a feature extracted."""
    plan = parse_plan(plan_text(permutations="100000", bootstrap="10000"))
    engine = Engine()
    estimate = sum(engine.estimate(engine.prepare(request)) for request in expand(plan, engine))
    assert estimate > 3600  # 100,000 shuffles of six layer searches, at the cost model's rate
    with pytest.raises(InputError, match=r"8 cells to compute \(0 stored\) are estimated at ~\d+\.\d h of CPU"):
        execute(plan, tmp_path / "refused", engine=engine, extract=no_extraction, budget_seconds=3600.0)
    assert not (tmp_path / "refused").exists() and not any(ResultStore().keys())

    told: list = []
    quick = parse_plan(QUICK_PLAN)
    execute(quick, tmp_path / "quick", engine=engine, extract=no_extraction, budget_seconds=3600.0,
            on_start=lambda *args: told.append(args))  # fmt: skip
    assert len(told) == 1 and told[0][:2] == (4, 0) and 0 < told[0][2] < 3600  # one metric: 3 pairs, 1 difference
    execute(quick, tmp_path / "quick", engine=engine, extract=no_extraction, on_start=lambda *args: told.append(args))
    assert told[1] == (4, 4, 0.0)  # resumed: everything stored, nothing left to estimate


def test_run_refuses_a_plan_of_years_unless_told_yes(cache_dir, tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text(plan_text(permutations="100000", bootstrap="10000", n="1797"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "of CPU time here, more than the ~24.0 h a run starts without asking" in err and "--yes" in err
    assert not (tmp_path / "out").exists() and not (cache_dir / "features").exists()  # nothing extracted


def test_a_run_that_fails_leaves_no_folder_it_made(run_cache, tmp_path):
    """k = 500 at n = 150 is found when the first cell runs; the folder claimed for the run stayed behind,
    holding only the claim."""
    plan = parse_plan(plan_text(metrics='["mutual_knn"]', layers='"last"', differences="[]") + "[params]\nk = 500\n")
    with pytest.raises(InputError, match="k=500 needs more samples"):
        execute(plan, tmp_path / "new", engine=Engine(), extract=no_extraction)
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"  # a folder the user made is theirs: kept
    mine.mkdir()
    with pytest.raises(InputError, match="k=500 needs more samples"):
        execute(plan, mine, engine=Engine(), extract=no_extraction)
    assert mine.is_dir()


def test_run_says_when_ray_took_the_plan_for_its_address(tmp_path, cache_dir, capsys):
    """`alignscope run --ray plan.toml` said "the following arguments are required: PLAN.toml"."""
    assert main(["run", "--ray", str(tmp_path / "plan.toml")]) == 2
    err = capsys.readouterr().err
    assert "--ray took" in err and "plan.toml' as its cluster's address" in err and "put the plan first" in err


def test_the_csv_holds_the_tables_numbers_exactly_and_empty_columns_stay_numbers(run_cache, tmp_path):
    """table.csv was written at 6 significant digits (up to 4.7e-7 off the parquet), and a column with no
    value in any row (chance_of_best of fixed layer pairs) was stored as text (dtype object)."""
    report = execute(parse_plan(QUICK_PLAN), tmp_path / "run", engine=Engine(), extract=no_extraction)
    table = read_run(report.folder).table
    assert table["chance_of_best"].isna().all() and table["chance_of_best"].dtype == "float64"
    from_csv = pd.read_csv(report.folder / "table.csv")
    for column in plans.FLOAT_COLUMNS:
        assert from_csv[column].astype("float64").equals(table[column]), column  # bit for bit


def test_run_says_when_a_dataset_holds_fewer_samples_than_the_plans_n(warm_cache_dir, tmp_path, capsys):
    """A plan on captions (25 photos) with n = 200 ran on 25 without a word (the table's n said it)."""
    path = tmp_path / "captions.toml"
    path.write_text(
        plan_text(
            dataset='"captions"',
            n="200",
            metrics='["linear_cka"]',
            layers='"last"',
            permutations="0",
            bootstrap="0",
            differences="[]",
        )  # fmt: skip
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "note: captions holds 25 samples, fewer than the plan's n = 200: scored on all 25" in capsys.readouterr().out
    assert set(read_run(tmp_path / "out").table["n"]) == {25}
