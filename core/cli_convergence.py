"""``alignscope convergent``: Li et al.'s convergent-learning analysis of a family of nets (seeds).

Prints, for one layer, the fraction of units whose best match in another net clears each |corr|
threshold next to the within-network baseline (each unit's best other unit of its own net), the
one-to-one and semi-matching curves at a few ranks, and a metric's layer × layer matrix as mean ± sd
over the seed pairs. Everything goes through the engine: the numbers are the dashboard's.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from alignscope.core.analysis.report import jsonable
from alignscope.core.cli_support import (
    MAX_SEED,
    PARAM_HELP,
    int_at_least,
    new_engine,
    print_table,
    run_with_bar,
    split_names,
)
from alignscope.core.convergent import CurveBand, FamilyLayerMatrices, FamilyMatchingCurves
from alignscope.core.errors import InputError

CURVE_RANKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _thresholds(text: str) -> tuple[float, ...]:
    try:  # an empty item ("0.5,,0.7") is a typo to say, not to drop
        values = tuple(float(part) for part in text.split(","))
    except ValueError as exc:
        raise InputError(f"--thresholds takes numbers in [0, 1] separated by commas, not {text!r}") from exc
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise InputError(f"--thresholds takes numbers in [0, 1] separated by commas, not {text!r}")
    return values


def _at(band: CurveBand, rank: float) -> str:
    mean = float(np.interp(rank, band.grid, band.mean)) if band.grid.size > 1 else float(band.mean[0])
    std = float(np.interp(rank, band.grid, band.std)) if band.grid.size > 1 else float(band.std[0])
    return f"{mean:.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else "")


def matching_rows(curves: FamilyMatchingCurves) -> list[dict[str, str]]:
    """One row per threshold: fraction of units matched above it in another net vs within their own."""
    rows = []
    for t in curves.fraction_above_mean:
        other, other_sd = curves.fraction_above_mean[t], curves.fraction_above_std[t]
        own, own_sd = curves.within_fraction_above_mean[t], curves.within_fraction_above_std[t]
        rows.append(
            {
                "|corr| >": f"{t:g}",
                "best match in another net": f"{other:.3f}" + (f" ± {other_sd:.3f}" if np.isfinite(other_sd) else ""),
                "best other unit of its own net": f"{own:.3f}" + (f" ± {own_sd:.3f}" if np.isfinite(own_sd) else ""),
            }
        )
    return rows


def curve_rows(curves: FamilyMatchingCurves) -> list[dict[str, str]]:
    """The three curves read at a few rank fractions (0 = best-matched unit, 1 = worst)."""
    return [
        {
            "rank": f"{rank:.2f}",
            "one-to-one": _at(curves.one_to_one, rank),
            "semi": _at(curves.semi, rank),
            "within net": _at(curves.within, rank),
        }
        for rank in CURVE_RANKS
    ]


def family_matrix_rows(family: FamilyLayerMatrices, names: tuple[str, ...]) -> list[dict[str, str]]:
    rows = []
    for i, name in enumerate(names):
        row = {"layer": name}
        for j, other in enumerate(names):
            sd = family.std[i, j]
            row[other] = f"{family.mean[i, j]:.3f}" + (f"±{sd:.3f}" if np.isfinite(sd) else "")
        rows.append(row)
    return rows


def cmd_convergent(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.convergence import FamilyMatrixRequest, UnitMatchingRequest
    from alignscope.core.analysis.requests import check_flags_apply, command_params, parse_param_items
    from alignscope.core.properties import resolve_models

    models = resolve_models(list(split_names(args.models)))
    n = args.n or 10**9
    check_flags_apply({"k": args.k}, [args.metric])  # before any work, as a bad --param is
    params = command_params(args.metric, {"k": args.k}, parse_param_items(args.param, [args.metric])[args.metric])
    engine = new_engine()
    curves: FamilyMatchingCurves = run_with_bar(
        engine,
        UnitMatchingRequest(
            models,
            args.dataset,
            n,
            args.seed,
            args.layer,
            _thresholds(args.thresholds),
            positions=args.positions,
            activation=args.activation,
        ),
    )
    family: FamilyLayerMatrices = run_with_bar(
        engine, FamilyMatrixRequest(models, args.dataset, n, args.seed, args.metric, params)
    )
    names = engine.prepare(UnitMatchingRequest(models, args.dataset, n, args.seed)).plans[0].layer_names
    if args.json or args.format == "json":
        print(json.dumps(jsonable(_as_json(curves, family, names)), indent=2))  # NaN: null, valid JSON
        return 0
    layer = names[curves.layer_index]
    over = "images × spatial positions" if args.positions else "images"
    after = ", after ReLU" if args.activation == "relu" else ""
    print(
        f"Unit matching of layer {curves.layer_index} ({layer}{after}) over {curves.n_nets} nets (Li et al. 2016), "
        f"correlations over {curves.n_rows} {over}:"
    )
    print_table(matching_rows(curves), ["|corr| >", "best match in another net", "best other unit of its own net"])
    print("\nSorted |corr| curves (mean ± sd over seed pairs; rank 0 = best-matched unit):")
    print_table(curve_rows(curves), ["rank", "one-to-one", "semi", "within net"])
    both = (
        " (each pair's matrix averaged with its transpose: cell i × j is layer i of one net against layer j of "
        "the other, both ways round, so the matrix is symmetric)"
        if family.symmetric
        else ""
    )
    print(f"\n{args.metric} layer × layer, mean ± sd over {len(family.pairs)} seed pairs{both}:")
    print_table(family_matrix_rows(family, names), ["layer", *names])
    return 0


def _as_json(curves: FamilyMatchingCurves, family: FamilyLayerMatrices, names: tuple[str, ...]) -> dict:
    def band(b: CurveBand) -> dict:
        return {"rank": b.grid.tolist(), "mean": b.mean.tolist(), "std": np.nan_to_num(b.std, nan=-1).tolist()}

    return {
        "layer": names[curves.layer_index],
        "n_nets": curves.n_nets,
        "fraction_above": {str(t): v for t, v in curves.fraction_above_mean.items()},
        "within_fraction_above": {str(t): v for t, v in curves.within_fraction_above_mean.items()},
        "one_to_one": band(curves.one_to_one),
        "semi": band(curves.semi),
        "within": band(curves.within),
        "family_matrix": {"metric": family.metric, "layers": list(names), "mean": family.mean.tolist()},
    }


def add_commands(sub: argparse._SubParsersAction) -> None:
    convergent = sub.add_parser(
        "convergent", help="unit matching vs the within-net baseline, and layer matrices over seed pairs"
    )
    convergent.add_argument("--models", required=True, help="nets of one architecture: a,b,c or family:NAME")
    convergent.add_argument("--dataset", required=True)
    convergent.add_argument(
        "--layer", type=int, default=0, help="layer index for unit matching (negative: from the end)"
    )
    convergent.add_argument(
        "--positions", action="store_true", help="conv units over images x spatial positions (Li et al.), not pooled"
    )
    convergent.add_argument(
        "--activation", choices=["output", "relu"], default="output", help="the hooked output, or after a ReLU"
    )
    convergent.add_argument("--thresholds", default="0.5,0.7,0.9", help="|corr| levels, e.g. 0.5,0.7,0.9")
    convergent.add_argument("--metric", default="linear_cka", help="metric of the layer × layer matrices")
    convergent.add_argument("--k", type=int_at_least(1), help="neighbours for k-NN metrics")
    convergent.add_argument("--param", action="append", metavar="NAME=VALUE", help=PARAM_HELP)
    convergent.add_argument("--n", type=int_at_least(3))
    convergent.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    convergent.add_argument("--format", choices=["table", "json"], default="table", help="json: the curves and matrix")
    convergent.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # before --format, as other commands
    convergent.set_defaults(func=cmd_convergent)
