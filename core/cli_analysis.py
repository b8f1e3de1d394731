"""``alignscope`` commands over families of models: model properties, families, trends, paired
differences, probes, batch runs, and uploaded representations.

Every command goes through the engine (:mod:`alignscope.core.analysis.engine`), so its numbers are the
dashboard's, stored once and read back on the next call.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from alignscope.core.analysis.requests import parse_param_items
from alignscope.core.cli_support import (
    MAX_SEED,
    NEIGHBOR_MODES,
    NEIGHBORS_HELP,
    PARAM_HELP,
    bootstrap_count,
    int_at_least,
    neighbour_flags,
    new_engine,
    print_table,
    read_upload,
    resample_count,
    run_with_bar,
    split_names,
    terminal_text,
)
from alignscope.core.errors import InputError
from alignscope.core.numbers import duration, fixed, signed


def _table_number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return fixed(value, digits)


# -- models: properties ---------------------------------------------------------------------------


def model_rows(with_properties: bool) -> list[dict[str, Any]]:
    """One row per registered model (``alignscope models``), with its properties when asked."""
    from alignscope.core.models import install_status, list_models
    from alignscope.core.properties import model_properties

    rows = []
    for spec in list_models():
        row: dict[str, Any] = {
            "name": spec.name,
            "family": spec.family,
            "kind": spec.kind,
            "modality": spec.modality,
            "installed": install_status(spec),
            "description": spec.description,
        }
        if with_properties:
            row["properties"] = {
                name: {"value": prop.value, "unit": prop.unit, "source": prop.source}
                for name, prop in sorted(model_properties(spec.name).items())
            }
        rows.append(row)
    return rows


def set_properties(args: argparse.Namespace) -> int:
    """``alignscope models --set NAME key=value ...`` and ``--import-properties FILE.csv``."""
    from alignscope.core.properties import (
        check_property_value,
        import_properties_csv,
        model_properties,
        parse_assignment,
        set_user_property,
    )

    if args.import_properties is not None:
        path = Path(args.import_properties).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        count = import_properties_csv(data)
        print(f"set {count} properties from {path.name}")
        return 0
    model, *assignments = args.set
    if not assignments:
        raise InputError("give the properties after the model: --set NAME key=value [key=value ...]")
    parsed = [parse_assignment(text) for text in assignments]  # all checked before any is written
    repeated = sorted({key for key, _ in parsed if [k for k, _ in parsed].count(key) > 1})
    if repeated:
        raise InputError(f"--set gives {', '.join(repeated)} more than once; give each property one value")
    for key, value in parsed:
        check_property_value(key, value, args.unit or "", model=model)
    before = model_properties(model)
    for key, value in parsed:
        prop = set_user_property(model, key, value, unit=args.unit or "")
        print(f"{model}: {prop.name} = {prop.value:g}{' ' + prop.unit if prop.unit else ''}")
        old = before.get(key)
        if old is not None and old.value != prop.value:
            source = f" ({old.source})" if old.source else ""
            print(f"note: replaced {key} = {old.value:g}{source}; trends and plans over {model} now read the new value")
    return 0


def print_models(fmt: str) -> int:
    rows = model_rows(with_properties=True)
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for row in rows:
        props = row.pop("properties")
        row["properties"] = ", ".join(f"{name}={entry['value']:g}" for name, entry in props.items())
    print_table(rows, ["name", "family", "kind", "modality", "installed", "properties", "description"])
    return 0


# -- families ---------------------------------------------------------------------------------------


def cmd_families(args: argparse.Namespace) -> int:
    from alignscope.core.properties import families, remove_family, save_family

    if args.remove is not None:
        if args.add or args.models:
            raise InputError("--remove is a step of its own: give it without --add or --models")
        members = remove_family(args.remove)
        print(f"removed family {args.remove!r} ({', '.join(members)}); its models stay")
        return 0
    if args.models and not args.add:
        raise InputError("--models names the members of a new family: give its name with --add NAME")
    if args.add:
        before = families().get(args.add)
        members = save_family(args.add, [m.strip() for m in (args.models or "").split(",") if m.strip()])
        if before is not None and before != members:
            print(f"note: replaced the earlier family {args.add!r} ({', '.join(before)})")
        print(f"saved family {args.add!r}: {', '.join(members)}")
        return 0
    rows = [{"family": name, "models": ", ".join(members)} for name, members in sorted(families().items())]
    print_table(rows, ["family", "models"])
    return 0


# -- trend ------------------------------------------------------------------------------------------


def trend_request_from_args(args: argparse.Namespace):
    from alignscope.core.analysis.requests import check_flags_apply
    from alignscope.core.analysis.trends import PRESETS, trend_request

    preset = PRESETS.get(args.preset) if args.preset else None
    if args.preset and preset is None:
        raise InputError(f"no trend preset {args.preset!r}; presets: {', '.join(PRESETS)}")
    models = split_names(args.models) or (preset.models if preset else ())
    if not models:
        raise InputError("name the models (--models a,b,c or family:NAME) or a --preset")
    reference = split_names(args.reference) if args.reference is not None else (preset.reference if preset else ())
    k_as_param = any(item.partition("=")[0].strip() == "k" for item in args.param or ())  # over the preset's k
    metric = args.metric or (preset.metric if preset else "mutual_knn")
    check_flags_apply(neighbour_flags(args), [metric])
    return trend_request(
        models,
        reference,
        args.dataset or (preset.dataset if preset else "digits"),
        n=args.n or (preset.n if preset else 500),
        seed=args.seed,
        metric=metric,
        k=args.k or (preset.k if preset and not k_as_param else None),
        layers=args.layers or (preset.layers if preset else "best"),
        prop=args.property or (preset.property if preset else "test_accuracy"),
        bootstrap=args.bootstrap,
        similarity=args.similarity,
        neighbors=args.neighbors,
        extra_params=tuple(args.param or ()),
    )


def trend_rows(trend, *, raw: bool = False) -> list[dict[str, Any]]:
    """One row per model; ``raw``: full-precision numbers and empty missing cells (CSV), else the table's."""

    def number(value: float | None, digits: int = 4) -> Any:
        if raw:
            return "" if value is None or not math.isfinite(value) else float(value)
        return _table_number(value, digits)

    rows = []
    for index, model in enumerate(trend.models):
        layers = [f"{ref}@{a},{b}" for m, ref, a, b in trend.pairs if m == model]
        rows.append(
            {
                "model": model,
                trend.property: number(trend.x[index], 4),
                trend.metric: number(trend.y[index]),
                "ci_low": number(trend.ci_low[index]),
                "ci_high": number(trend.ci_high[index]),
                "chance": number(trend.chance[index]),
                **({} if trend.search_chance is None else {"chance_of_best": number(trend.search_chance[index])}),
                "layers": " ".join(layers),
            }
        )
    return rows


def trend_chance_notes(trend) -> list[str]:
    """What a trend's points are read against: a search's level for best-layer points; at a fixed depth,
    why the chance is empty for a metric with no closed form."""
    if trend.relative_depth is not None:
        if any(math.isfinite(float(v)) for v in trend.chance):
            return []
        return [
            f"chance: — at a fixed depth, {trend.metric} has no closed-form chance level and trends do not "
            "shuffle each pair for one; `alignscope score` gives a pair's shuffled chance, and --layers best "
            "gives each point its search's."
        ]
    if trend.search_chance is None:
        return [
            "chance: for one layer pair fixed in advance; each point is the best of every layer pair, which sits "
            f"above it with no alignment at all ({trend.metric} is not shuffled for the search's own level). "
            "--layers depth:0.5 (any depth) scores pairs the chance fits."
        ]
    notes = [
        "chance: for one layer pair fixed in advance. Each point is the best of every layer pair, so read it "
        "against chance_of_best: where that best lands on average with shuffled correspondences (no alignment)."
    ]
    if trend.search_rho is not None:
        notes.append(
            f"chance_of_best alone has Spearman rho = {signed(trend.search_rho)} with {trend.property} (models with "
            "more layers search more pairs): part of a trend can be the search's."
        )
    return notes


def trend_summary(trend) -> list[str]:
    """The lines under a trend's table: what was scored, Spearman ρ with its p, and the chance notes."""
    # With no reference set, trend.references is the models themselves: each against the others.
    against = "the other models" if tuple(trend.references) == tuple(trend.models) else ", ".join(trend.references)
    rho = "—" if trend.rho is None else signed(trend.rho)
    p = "—" if trend.p_value is None else f"{trend.p_value:.3g}"
    lines = [
        f"{trend.metric} against {against} on {trend.dataset} (n = {trend.n_samples}), "
        f"{trend.n_bootstrap} bootstrap resamples; Spearman rho = {rho} across {len(trend.models)} models, "
        f"two-sided permutation p = {p} ({trend.n_orderings} orderings)"
    ]
    if trend.rho is None:
        lines.append(trend.why_no_rho())
    return lines + trend_chance_notes(trend)


def cmd_trend(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.report import output_json

    trend = run_with_bar(new_engine(), trend_request_from_args(args))
    if args.format == "json":
        sys.stdout.write(json.dumps(output_json(trend), indent=2) + "\n")
        return 0
    rows = trend_rows(trend, raw=args.format == "csv")
    if args.format == "csv":  # the rows on stdout, ρ and the notes on stderr: the file stays one table
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        print("\n".join(trend_summary(trend)), file=sys.stderr)
        return 0
    print_table(rows, list(rows[0]))
    print("\n" + "\n".join(trend_summary(trend)))
    return 0


# -- difference, probe ------------------------------------------------------------------------------


def cmd_difference(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.differences import DifferenceRequest
    from alignscope.core.analysis.report import jsonable
    from alignscope.core.analysis.requests import check_flags_apply, command_params

    shared = neighbour_flags(args)
    check_flags_apply(shared, [args.metric])
    request = DifferenceRequest(
        args.model_a,
        args.model_b,
        args.reference,
        args.dataset,
        args.n or 10**9,
        args.seed,
        args.metric,
        command_params(args.metric, shared, parse_param_items(args.param, [args.metric])[args.metric]),
        args.layers,
        args.bootstrap,
        args.method,
    )
    result = run_with_bar(new_engine(), request)
    test = result.test
    if args.format == "json":
        sys.stdout.write(json.dumps(jsonable(result), indent=2) + "\n")
        return 0
    print(
        f"{test.metric}({result.model_a}, {result.reference}) = {test.score_a:.4f}  at {' ~ '.join(result.layer_names_a)}"
    )
    print(
        f"{test.metric}({result.model_b}, {result.reference}) = {test.score_b:.4f}  at {' ~ '.join(result.layer_names_b)}"
    )
    print(
        f"difference = {signed(test.difference, 4)}, {test.confidence:.0%} paired interval [{signed(test.ci_low, 4)}, "
        f"{signed(test.ci_high, 4)}], {test.p_text} ({test.p_basis}, n = {test.n_samples})"
    )
    if test.caveat:
        print(f"warning: {test.caveat}")
    if result.selection_note:
        print(f"note: {result.selection_note}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.probes import ProbeRequest, probe_property_name
    from alignscope.core.analysis.report import output_json
    from alignscope.core.properties import measured_properties, user_properties

    earlier = measured_properties(args.model).get(probe_property_name(args.dataset))
    result = run_with_bar(new_engine(), ProbeRequest(args.model, args.dataset, args.n or 10**9, args.seed, args.folds))
    result.keep()  # also when read back from the store: the property is this probe's
    prop = result.as_property()
    notes = sys.stderr if args.format == "json" else sys.stdout  # JSON output is stdout alone
    if args.format == "json":
        sys.stdout.write(json.dumps(output_json(result), indent=2) + "\n")
    else:
        rows = [
            {"layer": name, "accuracy": f"{probe.accuracy:.4f}", "± folds": f"{probe.accuracy_std_over_folds:.4f}"}
            for name, probe in zip(result.layer_names, result.layers)
        ]
        print_table(rows, ["layer", "accuracy", "± folds"])
        print()
    print(f"set {args.model}: {prop.name} = {prop.value:.4f} (chance {result.layers[0].chance:.3f})", file=notes)
    print(
        f"It is the best of {len(result.layers)} layers' accuracies, picked on the same folds: optimistic, and more "
        "so for a model with more layers.",
        file=notes,
    )
    if earlier is not None and (earlier.value, earlier.source) != (prop.value, prop.source):
        print(f"note: replaced the earlier {prop.name} = {earlier.value:.4f} ({earlier.source})", file=notes)
    mine = user_properties(args.model).get(prop.name)
    if mine is not None:  # trends and `models` read the user's value, not this one
        print(
            f"note: the value you set, {prop.name} = {mine.value:g}, still wins; `models --set` replaces it", file=notes
        )
    return 0


def cmd_identify_layers(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.identification import identification_request
    from alignscope.core.analysis.report import output_json
    from alignscope.core.analysis.requests import check_flags_apply
    from alignscope.core.metrics.registry import get_metric
    from alignscope.core.properties import resolve_models

    models = resolve_models(list(split_names(args.models)))
    metrics = tuple(args.metric or ("mutual_knn", "mutual_knn:ip", "cknna", "linear_cka", "debiased_cka", "svcca"))
    check_flags_apply({"k": args.k, "similarity": args.similarity}, [entry.partition(":")[0] for entry in metrics])
    takers = [e for e in metrics if any(p.name == "similarity" for p in get_metric(e.partition(":")[0]).params)]
    if args.similarity is not None and all(":" in entry for entry in takers):  # each names its own
        own = "names its own" if len(takers) == 1 else "each name their own"
        raise InputError(f"--similarity does not apply: {', '.join(takers)} {own} similarity; leave it out")
    request = identification_request(
        models,
        args.dataset,
        args.n or 10**9,
        metrics,
        seed=args.seed,
        k=args.k,
        similarity=args.similarity,
    )
    result = run_with_bar(new_engine(), request)
    if args.format == "json":
        sys.stdout.write(json.dumps(output_json(result), indent=2) + "\n")
        return 0
    rows = [
        {
            "metric": label,
            "accuracy": f"{accuracy:.3f}",
            "per layer": " ".join(f"{v:.2f}" for v in result.per_layer[label]),
        }
        for label, accuracy in sorted(result.accuracy.items(), key=lambda item: -item[1])
    ]
    print_table(rows, ["metric", "accuracy", "per layer"])
    print(
        f"\n{result.n_nets} nets, {result.n_ordered_pairs} ordered pairs x {result.n_layers} layers; a hit: the metric's "
        f"best layer of the other net is the same layer. Chance {result.chance:.3f}."
    )
    return 0


# -- batch runs -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from alignscope.core.analysis.features import extract_for_plan
    from alignscope.core.analysis.plans import RUN_BUDGET_SECONDS, execute, parse_plan, read_run
    from alignscope.core.analysis.ray_tasks import RayOptions
    from alignscope.core.cli_support import progress_bar
    from alignscope.core.settings import get_settings

    if args.plan is None:
        took = f": --ray took {args.ray!r} as its cluster's address" if str(args.ray).endswith(".toml") else ""
        raise InputError(f"name the plan to run{took}; put the plan first: alignscope run PLAN.toml [--ray ...]")
    path = Path(args.plan).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the plan {str(path)!r}: {exc}") from None
    plan = parse_plan(text)
    out = Path(args.out).expanduser() if args.out else get_settings().runs_dir / plan.name
    bar = tqdm(
        total=1000,
        desc=f"run {plan.name}",
        file=sys.stderr,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} {elapsed}<{remaining}",
    )

    def on_progress(done: float, total: float, cells_done: int, cells: int) -> None:
        bar.set_postfix_str(f"{cells_done}/{cells} cells", refresh=False)
        bar.update(int(1000 * (done / total if total else cells_done / cells)) - bar.n)

    def extract(feature_plan) -> None:
        extract_for_plan(feature_plan, progress=progress_bar(f"{feature_plan.model} on {feature_plan.dataset}"))

    try:
        ray = None
        if args.ray is not None:
            ray = RayOptions(None if args.ray == "local" else args.ray, args.ray_cpus)
        report = execute(
            plan,
            out,
            engine=new_engine(),
            extract=extract,
            on_progress=on_progress,
            ray=ray,
            replace=args.replace,
            budget_seconds=None if args.yes else RUN_BUDGET_SECONDS,
            on_start=lambda cells, stored, seconds: tqdm.write(
                f"{cells} cells ({stored} stored); the rest estimated at {duration(seconds)} of CPU time here "
                "(estimates run high)",
                file=sys.stderr,
            ),
        )
    finally:
        bar.close()
    print(
        f"{report.cells} cells ({report.cached} already stored, {report.computed} computed) in "
        f"{report.seconds:.1f}s; table: {report.folder / 'table.csv'}"
    )
    if "n" in plan.source:  # asked for more samples than a dataset holds: scored on all it has, said so
        table = read_run(report.folder).table
        for dataset, held in table.groupby("dataset")["n"].max().items():
            if held < plan.n:
                print(f"note: {dataset} holds {held} samples, fewer than the plan's n = {plan.n}: scored on all {held}")
    if plan.differences and 0 < plan.bootstrap < 200:  # the differences' p is resampled with the plan's count
        floor = min(1.0, 2 / (plan.bootstrap + 1))
        print(
            f"note: the differences were resampled {plan.bootstrap} times (the plan's bootstrap): their p cannot "
            f"fall below {floor:.3g} and their intervals are rough; bootstrap = 1000 or more for ones to report",
            file=sys.stderr,
        )
    return 0


# -- uploads ----------------------------------------------------------------------------------------


def cmd_upload_representation(args: argparse.Namespace) -> int:
    """A precomputed ``[N, D]`` matrix (.npy, .csv, .safetensors) whose rows are a dataset's samples."""
    from alignscope.core.models import list_models
    from alignscope.core.properties import parse_assignment, set_user_property
    from alignscope.core.uploads import add_representation

    path = Path(args.file).expanduser()
    assignments = [parse_assignment(text) for text in args.set or []]
    name = args.name or path.stem
    earlier = next((spec for spec in list_models() if spec.name == name), None)
    spec = add_representation(name, path.name, read_upload(path), dataset=args.dataset)
    if earlier is not None:
        print(
            terminal_text(
                f"note: replaced the earlier model {name!r} ({earlier.description}); what was measured of it "
                "(probe accuracies) is dropped, your own properties are kept",
                one_line=True,
            )
        )
    for key, value in assignments:
        set_user_property(spec.name, key, value)
    print(f"added model {spec.name!r}: {spec.description}")
    return 0


# -- the parsers ------------------------------------------------------------------------------------


def _add_metric_arguments(parser: argparse.ArgumentParser, metric_default: str | None) -> None:
    parser.add_argument("--metric", default=metric_default, help="a registered metric (default mutual_knn)")
    parser.add_argument("--k", type=int_at_least(1), help="neighbours for k-NN metrics")
    parser.add_argument(
        "--similarity",
        choices=["cosine", "ip", "euclidean"],
        help="how k-NN metrics rank neighbours (default cosine)",
    )
    parser.add_argument("--neighbors", choices=NEIGHBOR_MODES, help=NEIGHBORS_HELP)
    parser.add_argument("--param", action="append", metavar="NAME=VALUE", help=PARAM_HELP)
    parser.add_argument("--n", type=int_at_least(3))
    parser.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)


def add_commands(sub: Any) -> None:
    """Register this module's subcommands on the main parser's subparsers."""
    families = sub.add_parser(
        "families", help="list families of models, save one (--add NAME --models a,b) or remove one (--remove NAME)"
    )
    families.add_argument("--add", metavar="NAME")
    families.add_argument("--remove", metavar="NAME", help="remove a saved family (its models stay)")
    families.add_argument("--models", help="comma-separated model names")
    families.set_defaults(func=cmd_families)

    trend = sub.add_parser("trend", help="each model's alignment to a reference set against a model property")
    trend.add_argument("--preset", help="prh (vision -> language vs ImageNet top-1) or ladder (digits ladder)")
    trend.add_argument("--models", help="comma-separated names or family:NAME")
    trend.add_argument("--reference", help="comma-separated names or family:NAME (default: the other models)")
    trend.add_argument("--dataset")
    trend.add_argument("--layers", help="best or all (each pair's best layer pair; default), last, or depth:0.5")
    trend.add_argument("--property", help="x axis: a model property, e.g. imagenet_top1, test_accuracy, params")
    trend.add_argument("--bootstrap", type=bootstrap_count, default=100)
    trend.add_argument("--format", choices=["table", "json", "csv"], default="table")
    _add_metric_arguments(trend, None)
    trend.set_defaults(func=cmd_trend)

    difference = sub.add_parser("difference", help="is A more aligned to a reference than B is? (paired test)")
    difference.add_argument("--model-a", required=True)
    difference.add_argument("--model-b", required=True)
    difference.add_argument("--reference", required=True)
    difference.add_argument("--dataset", required=True)
    difference.add_argument(
        "--layers", default="best", help="best or all (each model's best pair; default), last, or depth:0.5"
    )
    difference.add_argument("--bootstrap", type=resample_count(2), default=1000)
    difference.add_argument("--method", choices=["auto", "bootstrap", "sign_flip"], default="auto")
    difference.add_argument("--format", choices=["table", "json"], default="table")
    _add_metric_arguments(difference, "mutual_knn")
    difference.set_defaults(func=cmd_difference)

    probe = sub.add_parser("probe", help="cross-validated linear probe of every layer on a dataset's labels")
    probe.add_argument("--model", required=True)
    probe.add_argument("--dataset", required=True)
    probe.add_argument("--n", type=int_at_least(10))
    probe.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    probe.add_argument("--folds", type=int_at_least(2), default=5)
    probe.add_argument("--format", choices=["table", "json"], default="table")
    probe.set_defaults(func=cmd_probe)

    identify = sub.add_parser(
        "identify-layers", help="how often each metric matches layer i of one seed to layer i of another"
    )
    identify.add_argument("--models", required=True, help="nets of one architecture: a,b,c or family:NAME")
    identify.add_argument("--dataset", required=True)
    identify.add_argument(
        "--metric", action="append", help="repeatable; metric or metric:similarity (e.g. mutual_knn:ip)"
    )
    identify.add_argument("--k", type=int_at_least(1), help="neighbours for k-NN metrics")
    identify.add_argument("--similarity", choices=["cosine", "ip", "euclidean"])
    identify.add_argument("--n", type=int_at_least(3))
    identify.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    identify.add_argument("--format", choices=["table", "json"], default="table")
    identify.set_defaults(func=cmd_identify_layers)

    run = sub.add_parser("run", help="a batch run from a plan (TOML): models x datasets x metrics x params")
    run.add_argument("plan", metavar="PLAN.toml", nargs="?")
    run.add_argument("--out", help="output folder (default: <cache>/runs/<plan name>, listed on the Results page)")
    run.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="compute the cells as Ray tasks: a local Ray instance, or the cluster at ADDRESS ('auto': the one "
        "`ray start` runs here); workers must see the same cache directory",
    )
    run.add_argument("--ray-cpus", type=int_at_least(1), default=None, help="workers of a local Ray instance")
    run.add_argument(
        "--replace",
        action="store_true",
        help="write into a folder that holds another plan's run or other files (its tables are replaced)",
    )
    run.add_argument(
        "--yes",
        action="store_true",
        help="start even when the cells are estimated at more than a day of CPU time (estimates run high)",
    )
    run.set_defaults(func=cmd_run)

    upload = sub.add_parser("upload-representation", help="add a precomputed [N, D] matrix as a one-layer model")
    upload.add_argument("file", metavar="FILE", help=".npy, .csv or .safetensors; row i = sample i of --dataset")
    upload.add_argument("--dataset", required=True)
    upload.add_argument("--name")
    upload.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="properties of the new model")
    upload.set_defaults(func=cmd_upload_representation)
