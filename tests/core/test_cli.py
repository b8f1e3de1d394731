"""The `alignscope` command line: listings, extraction with cache hits, scores, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from alignscope.core.cli import main
from alignscope.core.datasets import load_dataset
from alignscope.core.metrics.registry import compute
from alignscope.core.models import get_model_spec

pytestmark = pytest.mark.usefixtures("warm_cache_dir")


def test_models_and_datasets_are_listed(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "minilm-l6" in out and "digits-cnn-s2" in out and "efficientnet-lite0" in out
    assert main(["datasets"]) == 0
    assert "captions" in capsys.readouterr().out


def test_extract_reports_a_miss_then_a_hit_with_the_same_key(capsys):
    args = ["extract", "--model", "digits-cnn-s0", "--model", "digits-cnn-s1", "--dataset", "digits", "--n", "120"]
    assert main(args) == 0
    first = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("hit", "miss"))]
    assert main(args) == 0
    second = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("hit", "miss"))]
    assert [row[0] for row in first] == ["miss", "miss"] and [row[0] for row in second] == ["hit", "hit"]
    assert [row[1] for row in first] == [row[1] for row in second]


def test_extract_over_models_and_datasets_skips_the_pairs_that_cannot_be_extracted(capsys):
    """It stopped at the first image model x text dataset pair, after extracting the pairs before it."""
    args = ["extract", "--model", "digits-cnn-s0", "--model", "digits-cnn-s1", "--dataset", "digits", "--n", "30"]
    assert main([*args, "--dataset", "sentences"]) == 0
    captured = capsys.readouterr()
    done = [line.split()[2:4] for line in captured.out.splitlines() if line.startswith(("hit", "miss"))]
    assert done == [["digits-cnn-s0", "digits"], ["digits-cnn-s1", "digits"]]
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipping: ")]
    assert [line.split(". Pick")[0] for line in skipped] == [
        f"skipping: '{net}' encodes image, but dataset 'sentences' holds text samples"
        for net in ("digits-cnn-s0", "digits-cnn-s1")
    ]
    # nothing that fits: an error, before any work (a name given twice too)
    assert main(["extract", "--model", "digits-cnn-s0", "--model", "digits-cnn-s0", "--dataset", "sentences"]) == 2
    assert "encodes image, but dataset 'sentences' holds text" in capsys.readouterr().err
    assert main(["extract", "--model", "digits-cnn-s0", "--dataset", "sentences", "--n", "30"]) == 2
    assert "encodes image, but dataset 'sentences' holds text" in capsys.readouterr().err


def test_one_model_that_fails_to_load_does_not_stop_the_rest_of_an_extract(tmp_path, capsys):
    from tiny_models import save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert")
    assert main(["models", "--add", str(bert), "--name", "broken-bert"]) == 0
    (bert / "model.safetensors").write_bytes(b"not weights")  # damaged after it was added
    argv = ["extract", "--model", "broken-bert", "--model", "digits-cnn-s0", "--dataset", "sentences"]
    assert main([*argv, "--dataset", "digits", "--n", "20"]) == 2
    captured = capsys.readouterr()
    assert "failed  broken-bert on sentences: could not load" in captured.err
    assert [line.split()[2] for line in captured.out.splitlines() if line.startswith(("hit", "miss"))] == [
        "digits-cnn-s0"
    ]  # it was never attempted: the first failure stopped the batch
    assert "1 of 2 extractions failed: broken-bert on sentences" in captured.err
    main(["models", "--remove", "broken-bert"])


def test_cache_verify_and_gc_cover_the_computed_results(capsys):
    """verify read the features and nets only: a damaged result was found only when next read."""
    from alignscope.core.analysis.store import ResultStore

    score = ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits", "--n", "60"]
    assert main([*score, "--layers", "last"]) == 0
    store = ResultStore()
    (key,) = store.keys()
    capsys.readouterr()
    assert main(["cache", "ls"]) == 0
    assert "1 computed results (scores, matrices, maps; recomputed when removed)" in capsys.readouterr().out
    sidecar = next(store.root.glob(f"??/{key}.json"))
    sidecar.write_text(sidecar.read_text().replace('"label": "', '"label": "tampered '))
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"results/{key}  metadata checksum mismatch" in out and "computed results: 0 ok, 1 bad" in out
    assert sidecar.exists()  # verify removes nothing
    # a stray file is not an entry (it stopped verify with "'copy' is not a result key"); arrays without their
    # JSON are what a writer killed between its two writes leaves
    (sidecar.parent / "copy.json").write_text("{}")
    orphan = sidecar.parent / f"{'e' * 32}.safetensors"
    orphan.write_bytes(b"x" * 2048)
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"results/{orphan.parent.name}/{orphan.name}  no entry accounts for it" in out
    assert "computed results: 0 ok, 1 bad, 1 leftover" in out
    size = sidecar.stat().st_size
    assert main(["cache", "gc"]) == 0
    out = capsys.readouterr().out
    assert f"removed  results/{sidecar.parent.name}/{key}.json" in out and store.keys() == [] and not orphan.exists()
    freed = int(out.split("freed ")[1].split("(")[1].split(" bytes")[0])
    assert freed >= size + 2048  # the results removed are counted (it said 0.0 MiB)
    assert main(["cache", "verify"]) == 0

    # a whole entry copied under another request's key was served as that request's result
    assert main([*score, "--layers", "last", "--metric", "linear_cka"]) == 0
    assert main([*score, "--layers", "last", "--metric", "mutual_knn"]) == 0
    capsys.readouterr()
    labels = {entry.key: entry.label for entry in store.entries()}
    cka, knn = (next(key for key, label in labels.items() if metric in label) for metric in ("linear_cka", "mutual"))
    cka_path, knn_path = (next(store.root.glob(f"??/{k}.json")) for k in (cka, knn))
    cka_path.write_text(knn_path.read_text())
    assert main(["cache", "verify"]) == 1
    assert f"results/{cka}  the result of another request" in capsys.readouterr().out
    assert main([*score, "--layers", "last", "--metric", "linear_cka", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["metric"] == "linear_cka"  # recomputed, not mutual_knn's
    # a folder named like an entry, and an entry out of its folder: no crash, and gc clears what it can
    (store.root / knn[:2] / f"{'a' * 32}.json").mkdir()
    stray = store.root / "zz" / f"{'f' * 32}.json"
    stray.parent.mkdir()
    stray.write_text(knn_path.read_text())
    assert main(["cache", "verify"]) == 1
    assert f"results/zz/{stray.name}  no entry accounts for it" in capsys.readouterr().out
    assert main(["cache", "gc"]) == 0 and not stray.exists()
    # cache rm takes a computed result's key too
    assert main(["cache", "rm", knn[:10]]) == 0
    assert f"removed 1 computed results matching {knn[:10]}" in capsys.readouterr().out and knn not in store.keys()


def test_a_reader_that_leaves_early_is_not_an_error(monkeypatch, capsys):
    """`alignscope cache ls | head -1` on a long listing printed "error: unexpected BrokenPipeError"."""
    import io
    import sys

    class LeftEarly(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", LeftEarly())
    assert main(["models"]) == 0
    assert capsys.readouterr().err == ""


def test_cache_ls_verify_rm(capsys):
    main(["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "30"])
    key = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("miss"))
    assert main(["cache", "ls"]) == 0 and key in capsys.readouterr().out
    assert main(["cache", "verify"]) == 0 and "4 ok, 0 bad" in capsys.readouterr().out  # the entry + 3 nets
    assert main(["cache", "rm", key[:8], key[:8], key[:12]]) == 0  # it deleted, then exited 2 on the repeats
    main(["cache", "ls"])
    assert "0 entries" in capsys.readouterr().out
    assert main(["cache", "rm", key[:8]]) == 2  # removing nothing is an error, not a silent success
    assert f"nothing in the cache matches {key[:8]}" in capsys.readouterr().err
    assert main(["cache", "rm", "zzzz"]) == 2  # it said "give at least 4 hex digits" of four characters
    assert "'zzzz' is not a key: give a key, or its first 4 or more hex digits (0-9, a-f)" in capsys.readouterr().err


def test_score_json_matches_the_metric_library(capsys):
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
                "--metric",
                "mutual_knn",
                "--metric",
                "linear_cka",
                "--layers",
                "last",
                "--permutations",
                "20",
                "--format",
                "json",
            ]
        )
        == 0
    )
    scores = {s["metric"]: s for s in json.loads(capsys.readouterr().out)}
    from alignscope.core.extract import extract_features

    dataset = load_dataset("digits", n=200)
    a = extract_features(get_model_spec("digits-cnn-s0"), dataset, layers="last").values[0]
    b = extract_features(get_model_spec("digits-cnn-s1"), dataset, layers="last").values[0]
    assert scores["mutual_knn"]["value"] == pytest.approx(compute("mutual_knn", a, b, k=10), abs=1e-6)
    assert scores["linear_cka"]["value"] == pytest.approx(compute("linear_cka", a, b), abs=1e-6)
    assert scores["mutual_knn"]["p_value"] == pytest.approx(1 / 21)  # far above every shuffle
    assert scores["mutual_knn"]["chance"] < 0.1 < scores["mutual_knn"]["value"]


def test_a_param_item_sets_what_a_shared_flag_also_sets(capsys):
    """``--param k=5`` is a metric parameter like any other: it wins over --k's default (it crashed with
    "got multiple values for keyword argument 'k'")."""
    command = ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
    command += ["--n", "200", "--layers", "last", "--permutations", "0", "--bootstrap", "0", "--format", "json"]
    items = ["--param", "k=5", "--param", "similarity=euclidean", "--param", "neighbors=exact"]
    assert main([*command, "--metric", "mutual_knn", *items]) == 0
    (score,) = json.loads(capsys.readouterr().out)
    from alignscope.core.extract import extract_features

    dataset = load_dataset("digits", n=200)
    a = extract_features(get_model_spec("digits-cnn-s0"), dataset, layers="last").values[0]
    b = extract_features(get_model_spec("digits-cnn-s1"), dataset, layers="last").values[0]
    expected = compute("mutual_knn", a, b, k=5, similarity="euclidean")
    assert expected != pytest.approx(compute("mutual_knn", a, b, k=10), abs=1e-3)  # the items make a difference
    assert score["value"] == pytest.approx(expected, abs=1e-6)
    # the trend command builds its request the same way (it raised the same TypeError)
    from alignscope.core.analysis.trends import trend_request

    request = trend_request(["digits-cnn-s0", "digits-cnn-s1"], (), "digits", n=200, extra_params=("k=5",))
    assert dict(request.params)["k"] == 5
    # --k and --param k= with different values: which one ran was silent (the --param one); now it is refused
    assert main([*command, "--metric", "mutual_knn", "--k", "7", "--param", "k=5"]) == 2
    assert "k is given twice with different values: --k 7 and --param k=5" in capsys.readouterr().err
    assert main([*command, "--metric", "mutual_knn", "--k", "5", "--param", "k=5"]) == 0  # the same value: fine


def test_score_over_all_layers_reports_the_best_pair(capsys):
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
                "150",
                "--metric",
                "linear_cka",
                "--format",
                "json",
            ]
        )
        == 0
    )
    (score,) = json.loads(capsys.readouterr().out)
    matrix = np.array(score["matrix"])
    assert matrix.shape == (5, 5)
    assert score["value"] == pytest.approx(matrix.max(), abs=1e-6)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract", "--model", "nope", "--dataset", "digits"], "unknown model 'nope'"),
        (["extract", "--model", "digits-cnn-s0", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["extract", "--model", "minilm-l6", "--dataset", "digits"], "encodes text"),
        (["extract", "--model", "digits-cnn-s0"], "both --model and --dataset"),
        (
            [
                "score",
                "--model-a",
                "digits-cnn-s0",
                "--model-b",
                "digits-cnn-s1",
                "--dataset",
                "digits",
                "--metric",
                "nope",
            ],
            "unknown metric 'nope'",
        ),
        (
            [
                "score",
                "--model-a",
                "digits-cnn-s0",
                "--model-b",
                "digits-cnn-s1",
                "--dataset",
                "digits",
                "--n",
                "50",
                "--layers",
                "7,1",
            ],
            "layers 0..4",
        ),
        (
            [
                "score",
                "--model-a",
                "digits-cnn-s0",
                "--model-b",
                "digits-cnn-s1",
                "--dataset",
                "digits",
                "--n",
                "50",
                "--k",
                "60",
            ],
            "k",
        ),
        (["cache", "rm", "../x"], "hex"),
        (["models", "--add", "../../etc/passwd"], "hub id"),
        (["models", "--add", "org/model--x"], "not a valid hub id"),  # the hub's own rules, checked offline
        # each of these printed "error: unexpected ..." (exit 1), stored the value, or did something else
        (["models", "--add", ""], "a hub id like"),  # listed the models as if --add were not there
        (["models", "--add", "org/model", "--revision", "main\n; rm -rf /"], "is not a git branch, tag or commit"),
        (["models", "--add", "org/model", "--revision", "../../x"], "is not a git branch, tag or commit"),
        (["datasets", "--add", "/nonexistent", "--text-column", "t"], "neither an existing local folder nor a hub id"),
        (["upload-recording", "nonexistent.npy", "--dataset", "digits"], "cannot read 'nonexistent.npy'"),
        (
            ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
            + ["--layers", "depth:2"],
            "--layers must be 'all' or 'best' (search every pair), 'last', 'i,j'",  # it named best/last/depth only
        ),
        # flags no metric of the command takes were ignored without a word
        (
            ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
            + ["--metric", "linear_cka", "--k", "5"],
            "--k does not apply: linear_cka takes no k; leave it out",
        ),
        (
            ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
            + ["--metric", "linear_cka", "--metric", "svcca", "--neighbors", "approx"],
            "--neighbors does not apply: none of linear_cka, svcca takes neighbors",
        ),
        (
            ["difference", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--reference", "digits-cnn-s2"]
            + ["--dataset", "digits", "--metric", "debiased_cka", "--similarity", "ip"],
            "--similarity does not apply: debiased_cka takes no similarity",
        ),
        (
            ["trend", "--models", "digits-cnn-s0,digits-cnn-s1", "--metric", "linear_cka", "--k", "5"],
            "--k does not apply: linear_cka takes no k",
        ),
        (
            ["convergent", "--models", "digits-cnn-s0,digits-cnn-s1", "--dataset", "digits", "--metric", "linear_cka"]
            + ["--k", "5", "--thresholds", "0.5"],
            "--k does not apply: linear_cka takes no k",  # said after the unit matching had run
        ),
        (
            ["identify-layers", "--models", "digits-cnn-s0,digits-cnn-s1", "--dataset", "digits"]
            + ["--metric", "linear_cka", "--k", "5"],
            "--k does not apply",
        ),
        (
            ["identify-layers", "--models", "digits-cnn-s0,digits-cnn-s1", "--dataset", "digits"]
            + ["--metric", "mutual_knn:ip", "--metric", "linear_cka", "--similarity", "euclidean"],
            "--similarity does not apply: mutual_knn:ip names its own similarity",  # it did nothing
        ),
        pytest.param(
            ["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "30", "--device", "mps"],
            "no Apple GPU",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU"),
        ),
        (
            ["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "30", "--device", "tpu"],
            "torch device",
        ),
        (["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--pooling", "cls"], "leave --pooling out"),
        (
            ["convergent", "--models", "digits-cnn-s0,digits-cnn-s1", "--dataset", "digits", "--n", "100"]
            + ["--metric", "mutual_knn", "--k", "500", "--thresholds", "0.5"],
            "no layer pair of any seed pair can be scored: k=500 needs more",  # was a table of nan, exit 0
        ),
        (
            [
                "convergent",
                "--models",
                "digits-cnn-s0,digits-cnn-s1",
                "--dataset",
                "digits",
                "--thresholds",
                "0.5,,0.7",
            ],
            "--thresholds takes numbers in [0, 1] separated by commas, not '0.5,,0.7'",  # the empty item was dropped
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().split("\r")[-1].splitlines()[-1]  # after any progress bar
    assert last.startswith("error: ") and message in last and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "-1"], "--n: must be at least 3"),
        (["score", "--model-a", "a", "--model-b", "b", "--dataset", "d", "--k", "0"], "--k: must be at least 1"),
        (
            ["score", "--model-a", "a", "--model-b", "b", "--dataset", "d", "--permutations", "-3"],
            "--permutations: must be between 0 and 1000000",
        ),
        (["score", "--model-a", "a", "--model-b", "b", "--dataset", "d", "--k", "ten"], "'ten' is not an integer"),
        (["dashboard", "--port", "70000"], "--port: must be between 1 and 65535"),
        (  # refused before any computation, not after it
            ["score", "--model-a", "a", "--model-b", "b", "--dataset", "d", "--bootstrap", "1"],
            "--bootstrap: must be 0 (off) or at least 2",
        ),
        (["trend", "--models", "a,b", "--property", "p", "--bootstrap", "1"], "--bootstrap: must be 0 (off)"),
        (  # was a MemoryError after extracting: the null array of 1e11 shuffles is 745 GiB
            ["score", "--model-a", "a", "--model-b", "b", "--dataset", "d", "--permutations", "100000000000"],
            "--permutations: must be between 0 and 1000000",
        ),
        (
            ["score", "--model-a", "a", "--model-b", "b", "--dataset", "d", "--bootstrap", "2000001"],
            "--bootstrap: must",
        ),
        (
            [
                "difference",
                "--model-a",
                "a",
                "--model-b",
                "b",
                "--reference",
                "c",
                "--dataset",
                "d",
                "--bootstrap",
                "10000000",
            ],
            "--bootstrap: must be between 2 and 1000000",
        ),
    ],
)
def test_out_of_range_numbers_are_usage_errors_not_silently_clamped(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_hub_model_the_hub_does_not_know_is_not_added(monkeypatch, capsys):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    from alignscope.core.models import list_models

    def not_found(self, repo_id, **_):
        raise RepositoryNotFoundError.__new__(RepositoryNotFoundError)

    monkeypatch.setattr(HfApi, "model_info", not_found)
    assert main(["models", "--add", "someone/no-such-model"]) == 2
    assert "no model 'someone/no-such-model' on the Hugging Face hub" in capsys.readouterr().err
    assert "someone--no-such-model" not in [spec.name for spec in list_models()]


def test_an_unreachable_hub_adds_the_model_unverified_with_a_warning(monkeypatch, capsys):
    from huggingface_hub import HfApi

    from alignscope.core.models import get_model_spec as spec_of
    from alignscope.core.models import list_models

    def offline(self, repo_id, **_):
        raise OSError("Name or service not known")

    monkeypatch.setattr(HfApi, "model_info", offline)
    assert main(["models", "--add", "someone/offline-model", "--name", "offline-model", "--modality", "text"]) == 0
    captured = capsys.readouterr()
    assert "could not reach the Hugging Face hub" in captured.err and "added model 'offline-model'" in captured.out
    assert spec_of("offline-model").source == "someone/offline-model"
    # Without --modality it was added as a text model whatever it reads: now nothing is guessed offline.
    assert main(["models", "--add", "someone/offline-image", "--name", "offline-image"]) == 2
    assert "cannot tell whether 'someone/offline-image' reads text or images: the hub did not answer" in (
        capsys.readouterr().err
    )
    assert "offline-image" not in [spec.name for spec in list_models()]


@pytest.mark.parametrize(
    ("pipeline_tag", "files", "kind"),
    [
        ("image-classification", ["config.json", "tokenizer.json"], "hf-vision"),  # the tag decides
        ("sentence-similarity", ["config.json"], "hf-text"),
        (None, ["config.json", "preprocessor_config.json", "model.safetensors"], "hf-vision"),  # no tag: the files
        (None, ["config.json", "vocab.txt", "tokenizer_config.json"], "hf-text"),
        ("zero-shot-image-classification", ["tokenizer.json", "preprocessor_config.json"], None),  # CLIP: asked
        ("feature-extraction", ["config.json", "preprocessor_config.json"], "hf-vision"),  # either: the files
        ("audio-classification", ["config.json", "preprocessor_config.json"], None),  # was an image model
        ("video-classification", ["config.json", "preprocessor_config.json"], None),
    ],
)
def test_a_hub_model_reads_what_its_hub_metadata_says(monkeypatch, capsys, pipeline_tag, files, kind):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import ModelInfo

    from alignscope.core.models import list_models

    info = ModelInfo(id="someone/m", pipeline_tag=pipeline_tag, siblings=[{"rfilename": name} for name in files])
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, **_: info)
    code = main(["models", "--add", "someone/m", "--name", "tagged"])
    captured = capsys.readouterr()
    added = {spec.name: spec for spec in list_models()}
    if kind is None:
        why = "both a tokenizer and an image processor" if "image" in pipeline_tag else "neither text nor images"
        assert code == 2 and why in captured.err and "--modality" in captured.err
        assert "tagged" not in added
    else:
        assert code == 0 and added["tagged"].kind == kind and "note: reads" in captured.out
        main(["models", "--remove", "tagged"])


def test_what_was_measured_for_a_model_goes_with_it(tmp_path, capsys):
    """A removed or replaced model's parameter count stayed, and a later model of its name showed it."""
    from tiny_models import save_tiny_bert, save_tiny_vit

    from alignscope.core.properties import measured_properties, model_properties

    vit, bert = save_tiny_vit(tmp_path / "vit"), save_tiny_bert(tmp_path / "bert")
    assert main(["models", "--add", str(vit), "--name", "reused"]) == 0
    assert main(["extract", "--model", "reused", "--dataset", "digits", "--n", "20"]) == 0
    vit_params = measured_properties("reused")["params"].value
    assert main(["models", "--set", "reused", "flops=3e6"]) == 0
    assert main(["models", "--remove", "reused"]) == 0
    assert main(["models", "--add", str(bert), "--name", "reused"]) == 0
    assert "params" not in measured_properties("reused") and "flops" not in model_properties("reused")
    assert main(["extract", "--model", "reused", "--dataset", "sentences", "--n", "20"]) == 0
    bert_params = measured_properties("reused")["params"].value
    assert bert_params != vit_params
    assert main(["models", "--add", str(vit), "--name", "reused"]) == 0  # replaced without --remove
    assert "params" not in measured_properties("reused")
    main(["models", "--remove", "reused"])
    capsys.readouterr()


def test_uploading_again_under_a_name_says_it_replaces(tmp_path, capsys):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("one\ntwo\nthree\n")
    second.write_text("four\nfive\nsix\nseven\n")
    assert main(["datasets", "--upload", str(first), "--name", "same"]) == 0
    assert "replaced" not in capsys.readouterr().out
    assert main(["datasets", "--upload", str(second), "--name", "same"]) == 0
    assert "note: replaced the earlier dataset 'same' (" in capsys.readouterr().out  # it said nothing
    main(["datasets", "--remove", "same"])


def test_a_hub_clip_model_is_added_as_the_tower_asked_for(monkeypatch, capsys):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import ModelInfo

    info = ModelInfo(id="openai/clip", pipeline_tag="zero-shot-image-classification", config={"model_type": "clip"})
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, **_: info)
    assert main(["models", "--add", "openai/clip", "--name", "hub-clip"]) == 2
    assert "dual encoder" in capsys.readouterr().err
    assert main(["models", "--add", "openai/clip", "--name", "hub-clip", "--modality", "image"]) == 0
    assert get_model_spec("hub-clip").kind == "clip-image" and get_model_spec("hub-clip").pooling == "cls"
    main(["models", "--remove", "hub-clip"])


def test_a_local_model_folder_reads_what_its_files_say(tmp_path, capsys):
    from tiny_models import save_tiny_bert, save_tiny_clip, save_tiny_vit

    from alignscope.core.models import get_model_spec

    bert, vit, clip = (
        save_tiny_bert(tmp_path / "bert"),
        save_tiny_vit(tmp_path / "vit"),
        save_tiny_clip(tmp_path / "clip"),
    )
    assert main(["models", "--add", str(vit), "--name", "local-vit"]) == 0
    assert get_model_spec("local-vit").kind == "hf-vision" and get_model_spec("local-vit").pooling == "cls"
    capsys.readouterr()
    assert main(["models", "--add", str(bert), "--name", "local-bert"]) == 0
    assert get_model_spec("local-bert").kind == "hf-text" and get_model_spec("local-bert").pooling == "mean"
    assert capsys.readouterr().out.strip().endswith("it loads from that folder on first use")  # not "downloads"
    assert main(["models", "--add", str(clip), "--name", "local-clip"]) == 2
    assert (
        "is a clip dual encoder (a text and an image tower): choose its text or image tower" in capsys.readouterr().err
    )
    # a tower, as asked: added as text it was a plain text model, and extraction failed (CLIPModel needs pixels)
    assert main(["models", "--add", str(clip), "--name", "clip-t", "--modality", "text"]) == 0
    assert main(["models", "--add", str(clip), "--name", "clip-i", "--modality", "image"]) == 0
    assert (get_model_spec("clip-t").kind, get_model_spec("clip-i").kind) == ("clip-text", "clip-image")
    assert main(["extract", "--model", "clip-i", "--dataset", "digits", "--n", "20"]) == 0  # (the text tower: tests
    # of the loader; this tiny one's 64 positions are fewer than a sentence's characters)
    assert "layers=4" in capsys.readouterr().out  # embeddings, 2 layers, the projection
    # broken folders are refused when added, not at extraction ("it downloads on first use", then a failure)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert main(["models", "--add", str(broken), "--modality", "text"]) == 2
    assert "its config.json is not valid JSON" in capsys.readouterr().err
    (broken / "config.json").write_text('{"model_type": "bert"}')
    assert main(["models", "--add", str(broken), "--modality", "text"]) == 2
    assert "holds no weights (*.safetensors or *.bin files)" in capsys.readouterr().err
    assert main(["models", "--add", str(vit), "--revision", "main"]) == 2
    assert "is a local folder: leave it out" in capsys.readouterr().err
    (vit / "preprocessor_config.json").write_text("{oops")
    assert main(["models", "--add", str(vit), "--name", "vit-broken"]) == 2
    assert "its preprocessor_config.json is not valid JSON" in capsys.readouterr().err
    # A modality given against the files is taken, with a warning.
    assert main(["models", "--add", str(bert), "--name", "bert-as-image", "--modality", "image"]) == 0
    assert "added as an image model as asked, but it has a tokenizer and no image processor" in capsys.readouterr().err
    for name in ("local-vit", "local-bert", "bert-as-image", "clip-t", "clip-i"):
        main(["models", "--remove", name])


def test_added_models_and_datasets_can_be_removed_but_built_ins_cannot(monkeypatch, tmp_path, capsys):
    from huggingface_hub import HfApi

    from alignscope.core.datasets import list_datasets
    from alignscope.core.models import list_models

    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, **_: None)  # "the hub knows it"
    assert main(["models", "--add", "someone/removable", "--name", "removable", "--modality", "text"]) == 0
    texts = tmp_path / "gone.txt"
    texts.write_text("one\ntwo\nthree\n")
    assert main(["datasets", "--upload", str(texts)]) == 0
    assert main(["models", "--remove", "removable"]) == 0
    assert main(["datasets", "--remove", "gone"]) == 0
    assert "removable" not in [s.name for s in list_models()] and "gone" not in [s.name for s in list_datasets()]
    from alignscope.core.uploads import load_user_registry

    assert not {"removable", "gone"} & set(load_user_registry())  # not back after a restart
    capsys.readouterr()
    assert main(["models", "--remove", "digits-cnn-s0"]) == 2
    assert "built-in entries cannot be removed" in capsys.readouterr().err
    assert main(["datasets", "--remove", "never-added"]) == 2


def test_table_output_states_the_resolution_of_corrected_p_values(capsys):
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
                "100",
                "--metric",
                "linear_cka",
                "--permutations",
                "10",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "smallest possible p is 1/11 = 0.09091" in out
    assert "smallest possible value is 1" in out and "--permutations 500" in out
    assert "Lower is better" not in out  # linear CKA: higher is better, the table's usual reading


def test_the_table_says_which_metrics_read_lower_is_better(capsys):
    command = ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
    command += ["--n", "100", "--layers", "last", "--metric", "linear_cka", "--metric", "shape_distance"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "Lower is better for shape_distance (a distance or volume" in out and "linear_cka (" not in out


def test_datasets_can_be_added_from_a_local_hub_folder_and_a_text_file(tmp_path, capsys):
    import pandas as pd

    folder = tmp_path / "hubby"
    folder.mkdir()
    pd.DataFrame({"text": [f"line {i}" for i in range(5)], "y": list("ababa")}).to_csv(
        folder / "train.csv", index=False
    )
    assert (
        main(["datasets", "--add", str(folder), "--text-column", "text", "--label-column", "y", "--name", "hubby"]) == 0
    )
    assert "5 samples" in capsys.readouterr().out
    texts = tmp_path / "notes.txt"
    texts.write_text("first\nsecond\nthird\n")
    assert main(["datasets", "--upload", str(texts)]) == 0
    main(["datasets"])
    listing = capsys.readouterr().out
    assert "hubby" in listing and "notes" in listing
    assert main(["datasets", "--add", str(folder), "--text-column", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["datasets", "--upload", str(tmp_path / "missing.txt")]) == 2


def test_the_p_value_of_the_best_of_many_pairs_is_corrected(capsys):
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
                "100",
                "--metric",
                "linear_cka",
                "--permutations",
                "10",
                "--format",
                "json",
            ]
        )
        == 0
    )
    (score,) = json.loads(capsys.readouterr().out)
    assert score["pairs_searched"] == 25
    assert score["p_bonferroni"] == pytest.approx(min(1.0, 25 * score["p_value"]))


def test_pooling_is_part_of_the_cache_key(capsys):
    base = ["extract", "--model", "minilm-l6", "--dataset", "sentences", "--n", "12"]
    assert main(base) == 0 and main(base + ["--pooling", "cls"]) == 0
    keys = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith(("hit", "miss"))]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_cache_verify_checks_the_trained_weights_too(warm_cache_dir, capsys):
    """Regression (issue "Hardening", point 4): ``cache verify`` checked feature entries only, so a flipped
    bit in a trained digits net's weights (served until its next load retrains it) was reported ok."""
    weights = sorted((warm_cache_dir / "models").glob("digits-cnn-*-seed1.safetensors"))[0]
    assert main(["cache", "verify"]) == 0
    assert f"models/{weights.name}  ok" in capsys.readouterr().out
    blob = bytearray(weights.read_bytes())
    blob[-7] ^= 0x01
    weights.write_bytes(bytes(blob))
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"models/{weights.name}  checksum mismatch" in out and "2 ok, 1 bad" in out


def test_cache_verify_reports_a_sidecar_that_is_not_an_object_instead_of_crashing(capsys):
    """Regression (point 3): a sidecar holding ``[]`` crashed ``cache verify`` (and ``ls``) with an
    AttributeError ("unexpected", exit 1, the same as "found damage")."""
    assert main(["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "20"]) == 0
    key = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("miss"))
    from alignscope.core.cache import FeatureCache

    FeatureCache().sidecar_path(key).write_text("[]")
    assert main(["cache", "ls"]) == 0 and key in capsys.readouterr().out
    assert main(["cache", "verify"]) == 1
    captured = capsys.readouterr()
    assert f"{key}  sidecar is not a JSON object (list)" in captured.out and captured.err == ""
    assert main(["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "20"]) == 0
    assert "miss  " + key in capsys.readouterr().out  # recomputed under the same key
    assert main(["cache", "verify"]) == 0


_REPORT_PEAK = """
import atexit, sys

def report():
    with open("/proc/self/status") as status:
        sys.stderr.write(next(line for line in status if line.startswith("VmHWM")))

atexit.register(report)
from alignscope.core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_upload_over_the_limit_is_refused_from_its_size_without_reading_it(tmp_path, cache_dir):
    """Regression (issue "Hardening", point 9): the CLI read a whole upload into memory before its size
    check (a 2 GiB file: 2.38 GB peak and 20 s before "over the limit"). Now the size is checked first and
    at most the limit is ever read: the child's peak memory (its own VmHWM) stays far below 2 GiB."""
    import os
    import subprocess
    import sys

    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(2 * 2**30)  # sparse: 2 GiB that takes no disk
    env = {**os.environ, "ALIGNSCOPE_CACHE_DIR": str(cache_dir)}
    # The child reports its own high-water mark (VmHWM of its address space after exec): the rusage of a
    # child forked from a large test process also counts the parent's pages it shared before exec.
    child = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, "datasets", "--upload", str(big)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    lines = child.stderr.decode().splitlines()
    peak_kib = int(next(line for line in lines if line.startswith("VmHWM")).split()[1])
    err = "\n".join(line for line in lines if not line.startswith("VmHWM"))
    assert child.returncode == 2, err[-2000:]
    assert err.strip() == "error: 'big.txt' is 2048.0 MiB; the limit is 200 MiB (ALIGNSCOPE_MAX_UPLOAD_MB)"
    assert peak_kib / 1024 < 1024, f"peak {peak_kib / 1024:.0f} MiB"


def test_features_damaged_on_disk_are_extracted_again_in_the_same_command(capsys):
    """A feature file whose bytes changed on disk after it was stored: the next command recomputes it
    and answers (it failed once with 'damaged on disk ... compute them again', then worked on a rerun)."""
    from alignscope.core.analysis.features import LOADED_VIEWS, plan_features
    from alignscope.core.cache import FeatureCache

    command = ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
    command += ["--n", "150", "--layers", "last", "--permutations", "0", "--bootstrap", "0", "--format", "json"]
    assert main([*command, "--metric", "linear_cka"]) == 0
    capsys.readouterr()
    key = plan_features("digits-cnn-s0", "digits", 150, 0).cached_key
    tensor = FeatureCache().tensor_path(key)
    blob = bytearray(tensor.read_bytes())
    blob[-5] ^= 0xFF
    tensor.write_bytes(bytes(blob))
    LOADED_VIEWS.clear()  # as in a new process: nothing read before the damage
    assert main([*command, "--metric", "mutual_knn"]) == 0
    (score,) = json.loads(capsys.readouterr().out)
    from alignscope.core.extract import extract_features

    dataset = load_dataset("digits", n=150)
    a = extract_features(get_model_spec("digits-cnn-s0"), dataset, layers="last").values[0]
    b = extract_features(get_model_spec("digits-cnn-s1"), dataset, layers="last").values[0]
    assert score["value"] == pytest.approx(compute("mutual_knn", a, b, k=10), abs=1e-6)
    assert set(FeatureCache().verify().values()) == {"ok"}


def test_a_run_whose_folder_cannot_be_written_is_refused_before_any_work(tmp_path, capsys):
    """``--out`` naming a file: the run computed every cell, then ended with 'unexpected FileExistsError'."""
    plan = tmp_path / "p.toml"
    plan.write_text('dataset = "digits"\nn = 50\nmodels = ["digits-cnn-s0", "digits-cnn-s1"]\n')
    taken = tmp_path / "taken.npy"
    taken.write_bytes(b"x")
    assert main(["run", str(plan), "--out", str(taken)]) == 2
    assert f"cannot use {str(taken)!r} as the run's folder: File exists" in capsys.readouterr().err
    assert taken.read_bytes() == b"x"


def test_an_n_beyond_the_dataset_is_said_not_silently_cut(capsys):
    command = ["score", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--dataset", "digits"]
    command += ["--layers", "last", "--metric", "linear_cka", "--format", "json"]
    assert main([*command, "--n", "99999999"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["n_samples"] == 1797
    assert "note: digits holds 1,797 samples, fewer than n = 99,999,999; all 1,797 are used" in captured.err
    assert main(command) == 0 and "note:" not in capsys.readouterr().err  # no --n: all of them, as asked


def test_control_characters_in_an_uploads_name_are_shown_escaped_never_sent_to_the_terminal(tmp_path, capsys):
    """An upload named with an ANSI escape cleared the screen on every `alignscope datasets`."""
    texts = tmp_path / "\x1b[2J\x1b[31mevil.txt"
    texts.write_text("one\ntwo\nthree\n")
    assert main(["datasets", "--upload", str(texts), "--name", "evil1"]) == 0
    capsys.readouterr()
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert "\x1b" not in listing and "\\x1b[2J\\x1b[31mevil.txt" in listing
    assert main(["datasets", "--remove", "evil1\x1b[0m"]) == 2  # an error naming it escapes it too
    assert "\x1b" not in capsys.readouterr().err


def test_cache_gc_removes_damaged_feature_entries_and_counts_unused_locks_in_one_line(capsys):
    """gc left a feature entry that verify called bad in place (it is recomputed when next used, so removing
    it loses nothing) and listed every unused lock file on its own line (413 of them in a used cache)."""
    from alignscope.core.cache import FeatureCache

    cache = FeatureCache()
    dataset = load_dataset("digits", n=40)
    keys = [cache.get_or_extract(model, dataset)[1].key for model in ("digits-cnn-s0", "digits-cnn-s1")]
    blob = bytearray(cache.tensor_path(keys[0]).read_bytes())
    blob[-1] ^= 0x01
    cache.tensor_path(keys[0]).write_bytes(bytes(blob))
    assert main(["cache", "verify"]) == 1
    capsys.readouterr()
    assert main(["cache", "gc"]) == 0
    out = capsys.readouterr().out.splitlines()
    name = f"features/{keys[0][:2]}/{keys[0]}.safetensors"
    assert out[0] == f"removed  {name}  (damaged entry: checksum mismatch (corrupt or truncated), 0.0 MiB)"
    assert out[1] == "removed  2 lock files nobody holds"  # one line, however many
    assert cache.keys() == [keys[1]] and main(["cache", "verify"]) == 0


def test_convergent_takes_format_json_as_the_other_commands_do(capsys):
    """convergent alone spelled JSON output --json; --format json is what every other command takes."""
    argv = [
        "convergent",
        "--models",
        "digits-cnn-s0,digits-cnn-s1",
        "--dataset",
        "digits",
        "--n",
        "100",
        "--layer",
        "0",
    ]
    assert main([*argv, "--format", "json"]) == 0
    as_format = json.loads(capsys.readouterr().out)
    assert main([*argv, "--json"]) == 0  # the old spelling still works
    assert json.loads(capsys.readouterr().out) == as_format
    assert as_format["layer"] == "conv1" and as_format["n_nets"] == 2
