"""Layer identification on the engine equals the convergent-learning reference on the same features."""

from __future__ import annotations

import numpy as np
import pytest

from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import extract_for_plan, load_view, plan_features
from alignscope.core.analysis.identification import identification_request
from alignscope.core.convergent import identify_layers
from alignscope.core.errors import InputError

NETS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
N = 150


def test_the_engine_table_equals_identify_layers_on_the_same_features(engine):
    request = identification_request(NETS, "digits", N, ("mutual_knn", "mutual_knn:ip", "linear_cka"), k=5)
    result = engine.run(request)
    nets = [list(load_view(plan_features(m, "digits", N, 0, engine.cache), engine.cache).values) for m in NETS]
    cosine = identify_layers(nets, ["mutual_knn", "linear_cka"], params={"mutual_knn": {"k": 5}})
    inner = identify_layers(nets, ["mutual_knn"], params={"mutual_knn": {"k": 5, "similarity": "ip"}})
    assert result.accuracy["mutual_knn"] == pytest.approx(cosine.accuracy["mutual_knn"])
    assert result.accuracy["linear_cka"] == pytest.approx(cosine.accuracy["linear_cka"])
    assert result.accuracy["mutual_knn:ip"] == pytest.approx(inner.accuracy["mutual_knn"])
    assert np.allclose(result.per_layer["mutual_knn"], cosine.per_layer["mutual_knn"])
    assert (result.n_nets, result.n_ordered_pairs, result.n_layers) == (3, 6, 5)
    assert Engine().run(request).accuracy == result.accuracy  # read back from the store


def test_bad_identification_requests_are_refused_by_name():
    with pytest.raises(InputError, match="at least two nets"):
        identification_request(NETS[:1], "digits", N, ("linear_cka",))
    with pytest.raises(InputError, match="linear_cka takes no similarity"):
        identification_request(NETS, "digits", N, ("linear_cka:ip",))
    with pytest.raises(Exception, match="nope"):
        identification_request(NETS, "digits", N, ("nope",))


def test_one_layer_nets_are_refused_not_identified_perfectly(engine):
    """Two uploaded [n, d] matrices (one layer each): every best layer is the only one, so the table read
    accuracy 1.000 against chance 1.000."""
    import io

    from alignscope.core.uploads import add_representation

    rng = np.random.default_rng(0)
    for name in ("rep-1", "rep-2"):
        buffer = io.BytesIO()
        np.save(buffer, rng.standard_normal((1797, 8)).astype(np.float32))
        add_representation(name, f"{name}.npy", buffer.getvalue(), dataset="digits")
    with pytest.raises(InputError, match="nets with two or more layers; rep-1, rep-2 have one each"):
        engine.run_extracting(
            identification_request(("rep-1", "rep-2"), "digits", N, ("linear_cka",)),
            lambda plan: extract_for_plan(plan, cache=engine.cache),
        )
