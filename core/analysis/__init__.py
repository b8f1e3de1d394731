"""The analysis engine: frozen requests -> typed results, one scorer, a result store and a job runner.

    >>> from alignscope.core.analysis import PairRequest, metric_params, run
    >>> request = PairRequest("digits-cnn-s0", "digits-cnn-s1", "digits", n=500, metric="mutual_knn",
    ...                       params=metric_params("mutual_knn", k=10), permutations=200, bootstrap=100)
    >>> score = run(request)  # doctest: +SKIP
    >>> score.value, score.chance, score.p_value, (score.ci_low, score.ci_high)  # doctest: +SKIP

``run`` extracts the features a request reads if they are not cached yet, then computes (or reads from
the result store) exactly what the CLI and the dashboard show for the same settings. The analyses of the
papers are requests too: :class:`UnitMatchingRequest` and :class:`FamilyMatrixRequest` (convergent
learning), :class:`IdentificationRequest` (layer identification), :class:`CompatibilityRequest`
(model-version compatibility), :class:`RdmRequest` and :class:`RsaRequest` (RSA against a recording),
:class:`TrendRequest`, :class:`DifferenceRequest` and :class:`ProbeRequest` (families).
"""

from __future__ import annotations

from typing import Any

from alignscope.core.analysis.compatibility import CompatibilityRequest
from alignscope.core.analysis.convergence import FamilyMatrixRequest, UnitMatchingRequest
from alignscope.core.analysis.differences import DifferenceRequest
from alignscope.core.analysis.engine import Engine, Outcome, default_engine
from alignscope.core.analysis.identification import IdentificationRequest
from alignscope.core.analysis.probes import ProbeRequest
from alignscope.core.analysis.requests import (
    AlignedProjectionRequest,
    GramRequest,
    MatrixRequest,
    ModelMatrixRequest,
    NeighbourRequest,
    PairRequest,
    ProjectionRequest,
    Request,
    SweepRequest,
    metric_params,
)
from alignscope.core.analysis.rsa import RdmRequest, RsaRequest
from alignscope.core.analysis.trends import TrendRequest


def run(request: Request, *, engine: Engine | None = None, device: str | None = None) -> Any:
    """The result of ``request``: features extracted first if needed, then from the store or computed."""
    from alignscope.core.analysis.features import extract_for_plan

    engine = engine or default_engine()
    return engine.run_extracting(request, lambda plan: extract_for_plan(plan, cache=engine.cache, device=device))


__all__ = [
    "AlignedProjectionRequest",
    "CompatibilityRequest",
    "DifferenceRequest",
    "Engine",
    "FamilyMatrixRequest",
    "GramRequest",
    "IdentificationRequest",
    "MatrixRequest",
    "ModelMatrixRequest",
    "NeighbourRequest",
    "Outcome",
    "PairRequest",
    "ProbeRequest",
    "ProjectionRequest",
    "RdmRequest",
    "Request",
    "RsaRequest",
    "SweepRequest",
    "TrendRequest",
    "UnitMatchingRequest",
    "default_engine",
    "metric_params",
    "run",
]
