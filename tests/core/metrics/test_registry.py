import pytest

from alignscope.core.errors import InputError, UnknownMetricError
from alignscope.core.metrics.registry import INVARIANCES, compute, get_metric, list_families, list_metrics


def test_every_spec_is_complete():
    specs = list_metrics()
    assert len({spec.name for spec in specs}) == len(specs)
    for spec in specs:
        assert spec.reference and spec.summary, spec.name
        low, high = spec.value_range
        assert low < high
        assert set(spec.invariances) <= set(INVARIANCES)
        for param in spec.params:
            assert param.validate(param.default, spec.name) == param.default


def test_family_filter():
    names = {spec.name for spec in list_metrics("knn")}
    assert {"mutual_knn", "cycle_knn", "jaccard_knn", "cknna"} <= names
    assert {"linear_cka", "debiased_cka", "rbf_cka"} <= {spec.name for spec in list_metrics("kernel")}
    assert "knn" in list_families()
    with pytest.raises(UnknownMetricError, match="no metric family"):
        list_metrics("nope")


def test_unknown_metric_lists_valid_names():
    with pytest.raises(UnknownMetricError, match="unknown metric 'mutal_knn'; valid metrics: .*mutual_knn"):
        get_metric("mutal_knn")


def test_compute_validates_params_against_bounds():
    import numpy as np

    feats = np.random.default_rng(0).standard_normal((20, 3))
    assert compute("mutual_knn", feats, feats, k=3) == 1.0
    with pytest.raises(InputError, match="mutual_knn: parameter k must be >= 1"):
        compute("mutual_knn", feats, feats, k=0)
    with pytest.raises(InputError, match="mutual_knn has no parameter topk; its parameters are: k"):
        compute("mutual_knn", feats, feats, topk=3)
    with pytest.raises(InputError, match="must be one of"):
        compute("cknna", feats, feats, similarity="l2")
    with pytest.raises(InputError, match="parameter sigma_factor must be a number"):
        compute("rbf_cka", feats, feats, sigma_factor="wide")
