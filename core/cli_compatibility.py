"""``alignscope compatibility``: can a new model replace an old one without re-embedding the gallery?

BCT's criterion M(new queries, old gallery) > M(old, old) on a dataset's classes, with bootstrap
intervals over queries, M(new, new) for the re-indexed ceiling, and each setting's recall@k, mAP and
CMC. Everything goes through the engine: the numbers are the dashboard's.
"""

from __future__ import annotations

import argparse
import json

from alignscope.core.cli_support import MAX_SEED, int_at_least, new_engine, print_table, resample_count, run_with_bar


def cmd_compatibility(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.compatibility import CompatibilityRequest
    from alignscope.core.analysis.report import jsonable

    request = CompatibilityRequest(
        args.old,
        args.new,
        args.dataset,
        args.n or 10**9,
        args.seed,
        args.layer_old,
        args.layer_new,
        args.measure,
        args.query_fraction,
        args.bootstrap,
    )
    result = run_with_bar(new_engine(), request)
    report = result.report
    if args.format == "json":
        print(json.dumps(jsonable(result), indent=1))
        return 0
    print(
        f"old {result.old_model} ({result.layer_old_name}) vs new {result.new_model} ({result.layer_new_name}) on "
        f"{result.dataset}: {report.n_queries} queries, gallery of {report.n_gallery}, classes as relevance"
        + (f"; new → old through a ridge map fitted on {result.n_fit} other samples" if result.n_fit else "")
    )
    rows = result.setting_rows()
    print_table(rows, list(rows[0]))
    print("\n" + result.verdict())
    pairwise = report.pairwise
    print(
        f"Pairwise (BCT): {pairwise.positive_satisfied:.1%} of same-class pairs have new queries no farther than old "
        f"ones; {pairwise.negative_satisfied:.1%} of different-class pairs no nearer."
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("compatibility", help="can a new model's queries search the old model's gallery? (BCT)")
    parser.add_argument("--old", required=True, help="the deployed model (its embeddings index the gallery)")
    parser.add_argument("--new", required=True, help="the candidate model")
    parser.add_argument("--dataset", required=True, help="a labelled dataset: classes are the relevance")
    parser.add_argument("--layer-old", type=int, default=-1)
    parser.add_argument("--layer-new", type=int, default=-1)
    parser.add_argument("--measure", default="mean_average_precision", help="mean_average_precision or recall@k")
    parser.add_argument("--query-fraction", type=float, default=0.3, help="share of the samples used as queries")
    parser.add_argument("--bootstrap", type=resample_count(2), default=200, help="resamples of the queries")
    parser.add_argument("--n", type=int_at_least(3))
    parser.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.set_defaults(func=cmd_compatibility)
