"""``alignscope`` command line: list models and datasets, precompute features, manage the cache,
score a model pair, and start the dashboard.

Every user error is printed as one ``error: ...`` line with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from pathlib import Path

from alignscope.core.analysis.requests import check_flags_apply, parse_param_items
from alignscope.core.cli_support import (
    MAX_SEED,
    NEIGHBOR_MODES,
    NEIGHBORS_HELP,
    PARAM_HELP,
    bootstrap_count,
    check_device,
    extract_with_bar,
    int_at_least,
    neighbour_flags,
    note_fewer_samples,
    print_table,
    progress_bar,
    read_upload,
    resample_count,
    run_with_bar,
    terminal_text,
)
from alignscope.core.errors import AlignscopeError
from alignscope.core.files import NoSpaceError

MAX_SAMPLES = 200_000


def _bootstrap_registries() -> None:
    from alignscope.core.uploads import load_user_registry

    load_user_registry()


def cmd_models(args: argparse.Namespace) -> int:
    from alignscope.core.cli_analysis import print_models, set_properties
    from alignscope.core.uploads import add_hub_model, remember_model

    steps = (args.add, args.remove, args.set, args.import_properties, args.text_variant)
    if sum(x is not None for x in steps) > 1:
        raise AlignscopeError(
            "--add, --remove, --set, --import-properties and --text-variant are separate steps; give one"
        )
    if args.set or args.import_properties is not None:
        return set_properties(args)
    if args.text_variant:
        from alignscope.core.models import get_model_spec, text_variant

        name, text = args.text_variant
        if not text.isdigit():
            raise AlignscopeError(f"--text-variant takes a model name and a text number, not {text!r}")
        spec = remember_model(text_variant(get_model_spec(name), int(text)))
        print(f"added {spec.name}: {spec.description}")
        return 0
    if args.remove is not None:
        from alignscope.core.uploads import forget

        forget("models", args.remove)
        print(f"removed model {args.remove!r} (its cached features stay until `alignscope cache rm`)")
        return 0
    if args.add is not None:  # "" too: an empty id is said, not taken for no --add at all
        added = add_hub_model(
            args.add,
            modality=args.modality,
            name=args.name,
            revision=args.revision,
            trust_remote_code=args.trust_remote_code,
        )
        spec = added.spec
        if added.previous is not None:
            print(
                terminal_text(
                    f"note: replaced the earlier entry {spec.name!r} ({added.previous.kind}, {added.previous.source})",
                    one_line=True,
                )
            )
        if added.hub_warning:
            print(f"warning: {added.hub_warning}", file=sys.stderr)
        if added.modality_note:
            print(terminal_text(f"note: {added.modality_note}; --modality overrides", one_line=True))
        if added.modality_warning:
            print(f"warning: {added.modality_warning}", file=sys.stderr)
        where = "loads from that folder" if Path(spec.source).expanduser().is_dir() else "downloads"
        print(
            terminal_text(
                f"added model {spec.name!r} ({spec.kind}, {spec.source}); it {where} on first use", one_line=True
            )
        )
        return 0
    return print_models(args.format)


def cmd_datasets(args: argparse.Namespace) -> int:
    from alignscope.core.datasets import hub_dataset_spec, list_datasets, load_dataset
    from alignscope.core.uploads import (
        add_image_caption_csv,
        add_image_folder,
        add_text_dataset,
        forget,
        remember_dataset,
    )

    if args.remove is not None:
        forget("datasets", args.remove)
        print(f"removed dataset {args.remove!r} (its cached features stay until `alignscope cache rm`)")
        return 0
    if args.add is not None:
        spec = hub_dataset_spec(
            args.add,
            name=args.name,
            revision=args.revision,
            split=args.split,
            text_column=args.text_column,
            image_column=args.image_column,
            label_column=args.label_column,
        )
        n = len(load_dataset(spec))  # fail now, with the reason, rather than on first use
        remember_dataset(spec)
        print(f"added dataset {spec.name!r} ({spec.modality}, {n} samples)")
        return 0
    if args.upload:
        path = Path(args.upload).expanduser()
        name = args.name or path.stem
        earlier = next((s for s in list_datasets() if s.name == name), None)
        if args.image_pairs and path.suffix.lower() != ".csv":  # it was read as plain text, header and all
            raise AlignscopeError(f"--image-pairs reads a .csv of image paths and captions, not {path.name!r}")
        if path.is_dir():
            spec = add_image_folder(name, path)
        elif path.suffix.lower() == ".csv" and args.image_pairs:
            spec = add_image_caption_csv(name, path)
        elif path.suffix.lower() == ".zip":
            from alignscope.core.uploads import add_image_dataset

            spec = add_image_dataset(name, path.name, read_upload(path))
        else:
            spec = add_text_dataset(name, path.name, read_upload(path))
        if earlier is not None:
            print(
                terminal_text(
                    f"note: replaced the earlier dataset {name!r} ({earlier.description}); results on it are "
                    "recomputed for the new samples, and recordings of it pair with them by sample id",
                    one_line=True,
                )
            )
        print(terminal_text(f"added dataset {spec.name!r} ({spec.modality}): {spec.description}", one_line=True))
        return 0

    rows = [
        {"name": s.name, "modality": s.modality, "source": s.source, "description": s.description}
        for s in list_datasets()
    ]
    print_table(rows, ["name", "modality", "source", "description"])
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.features import modality_problem
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import get_dataset_spec, load_dataset
    from alignscope.core.models import POOLING_KINDS, get_model_spec

    if args.model or args.dataset:
        if not (args.model and args.dataset):
            raise AlignscopeError("give both --model and --dataset, or neither for the whole default")
        jobs = list(dict.fromkeys((m, d) for m in args.model for d in args.dataset))  # a name given twice: once
    else:
        from alignscope.core.defaults import DEFAULT_JOBS

        jobs = list(DEFAULT_JOBS)
    # Validate every name, and which pairs can be extracted at all, before computing anything.
    pooling: dict[str, str | None] = {}  # a pooling only where the model reads one (else a copy of one entry)
    skipped = {}
    for model_name, dataset_name in jobs:
        spec = get_model_spec(model_name)
        get_dataset_spec(dataset_name)
        reason = modality_problem(model_name, dataset_name)
        if reason:
            skipped[model_name, dataset_name] = reason
        pooling[model_name] = args.pooling if spec.kind in POOLING_KINDS else None
        if args.pooling and args.model and spec.kind not in POOLING_KINDS:
            raise AlignscopeError(
                f"--pooling applies to transformers models; {model_name} ({spec.kind}) gives each layer's output "
                "its own way whatever the pooling: leave --pooling out"
            )
    if skipped and len(skipped) == len(jobs):
        raise AlignscopeError(next(iter(skipped.values())))
    for reason in skipped.values():  # --model a --model b --dataset x --dataset y: the pairs that fit
        print(f"skipping: {terminal_text(reason)}", file=sys.stderr)
    jobs = [job for job in jobs if job not in skipped]
    cache = FeatureCache()
    started = time.perf_counter()
    if args.ray is not None:
        return _extract_on_ray(args, jobs, pooling, started)
    check_device(args.device)
    failed: list[str] = []
    for model_name, dataset_name in jobs:
        try:
            dataset = load_dataset(dataset_name, n=args.n, seed=args.seed)
            features, result = cache.get_or_extract(
                model_name,
                dataset,
                device=args.device,
                batch_size=args.batch_size,
                pooling=pooling[model_name],
                progress=progress_bar(f"{model_name} on {dataset_name}"),
            )
        except AlignscopeError as error:  # one model that will not load does not stop the others of the batch
            if len(jobs) == 1:
                raise
            failed.append(f"{model_name} on {dataset_name}")
            print(f"failed  {model_name} on {dataset_name}: {terminal_text(error)}", file=sys.stderr)
            continue
        note_fewer_samples(args.n, features.n_samples, dataset_name)
        status = "hit " if result.hit else "miss"
        print(
            f"{status}  {result.key}  {model_name:<20} {dataset_name:<10} n={features.n_samples:<6} "
            f"layers={features.n_layers:<3} {result.seconds:7.2f}s"
        )
    print(f"done in {time.perf_counter() - started:.1f}s; cache at {cache.root}")
    if failed:
        raise AlignscopeError(f"{len(failed)} of {len(jobs)} extractions failed: {', '.join(failed)} (reasons above)")
    return 0


def _extract_on_ray(
    args: argparse.Namespace, jobs: list[tuple[str, str]], pooling: dict[str, str | None], started: float
) -> int:
    """``alignscope extract --ray``: one Ray task per (model, dataset), into this cache directory."""
    from alignscope.core.analysis.ray_tasks import ExtractJob, RayOptions, extract_on_ray

    options = RayOptions(None if args.ray == "local" else args.ray, args.ray_cpus)
    tasks = [ExtractJob(m, d, args.n, args.seed, args.batch_size, pooling[m], args.device) for m, d in jobs]

    def report(index: int, outcome: tuple) -> None:
        key, hit, n_samples, n_layers, seconds = outcome
        print(
            f"{'hit ' if hit else 'miss'}  {key}  {tasks[index].model:<20} {tasks[index].dataset:<10} "
            f"n={n_samples:<6} layers={n_layers:<3} {seconds:7.2f}s  (ray)"
        )

    from alignscope.core.settings import get_settings

    extract_on_ray(tasks, get_settings().cache_dir, options, on_done=report)
    from alignscope.core.cache import FeatureCache

    print(f"done in {time.perf_counter() - started:.1f}s on Ray; cache at {FeatureCache().root}")
    return 0


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def cmd_cache(args: argparse.Namespace) -> int:
    from alignscope.core.cache import FeatureCache

    if args.action in ("ls", "verify", "gc") and args.keys:
        raise AlignscopeError(f"`alignscope cache {args.action}` takes no keys (only `cache rm` does)")
    actions = {"ls": _cache_ls, "verify": _cache_verify, "gc": _cache_gc, "rm": _cache_rm}
    if args.action not in actions:
        raise AlignscopeError(f"unknown cache action {args.action!r}")
    return actions[args.action](FeatureCache(), args.keys)


def _results(cache):
    """The result store of ``cache``'s folder, or None for a feature cache kept elsewhere."""
    from alignscope.core.analysis.store import ResultStore

    return ResultStore(settings=cache.settings) if cache.owns_cache_dir else None


def _cache_ls(cache, _keys: list[str]) -> int:
    entries = cache.entries()
    rows = [
        {
            "key": e.key,
            "model": e.model,
            "dataset": e.dataset,
            "n": e.n_samples,
            "layers": e.n_layers,
            "MiB": f"{e.bytes / 2**20:.2f}",
            "created": e.created,
        }
        for e in entries
    ]
    print_table(rows, ["key", "model", "dataset", "n", "layers", "MiB", "created"])
    print(f"{len(entries)} entries, {_mib(sum(e.bytes for e in entries))} in {cache.root}")
    store = _results(cache)
    if store is not None:
        results = store.entries()
        print(
            f"{len(results)} computed results (scores, matrices, maps; recomputed when removed), "
            f"{_mib(sum(r.bytes for r in results))} in {store.root}"
        )
    leftovers = cache.leftovers()
    if leftovers:
        print(
            f"plus {len(leftovers)} leftover files, {_mib(sum(item.bytes for item in leftovers))} (temp files of "
            "killed writers, halves of interrupted entries): `alignscope cache gc` removes them"
        )
    return 0


def _cache_verify(cache, _keys: list[str]) -> int:
    from alignscope.core.cache_health import check_cache

    health = check_cache(cache)
    for key, status in health.features.items():
        print(f"{key}  {status}")
    bad_results = {k: v for k, v in health.results.items() if v != "ok"}
    for key, status in bad_results.items():  # the good ones are many: counted, not listed
        print(f"results/{key}  {status}; `alignscope cache gc` removes it (recomputed when next asked for)")
    for name in health.result_leftovers:
        print(f"results/{name}  no entry accounts for it (a killed writer's arrays, or a file out of its folder); "
              "`alignscope cache gc` removes it")  # fmt: skip
    bad_uploads = {k: v for k, v in health.uploads.items() if v != "ok"}
    for name, status in bad_uploads.items():  # never removed: nothing can recompute what a user uploaded
        print(terminal_text(f"{name}  {status}", one_line=True))
    bad = sum(status != "ok" for status in health.features.values())
    results, uploads, leftovers = health.results, health.uploads, health.result_leftovers
    print(
        f"{len(health.features) - bad} ok, {bad} bad"
        + (f"; computed results: {len(results) - len(bad_results)} ok, {len(bad_results)} bad" if results else "")
        + (f", {len(leftovers)} leftover" if leftovers else "")
        + (f"; uploads and recordings: {len(uploads) - len(bad_uploads)} ok, {len(bad_uploads)} bad" if uploads else "")
    )
    return 0 if health.intact else 1


def _cache_gc(cache, _keys: list[str]) -> int:
    from alignscope.core.cache import UNUSED_LOCK

    store = _results(cache)
    results = store.remove_damaged() if store is not None else []  # first: its locks are then cleaned up too
    for name, size in results:
        print(f"removed  results/{name}  (a damaged or half-written computed result, {_mib(size)})")
    removed = cache.gc()
    locks = [item for item in removed if item.what == UNUSED_LOCK]
    for item in removed:
        if item.what != UNUSED_LOCK:  # one line for all of those: a cache used for a while has hundreds
            print(f"removed  {item.name}  ({item.what}, {_mib(item.bytes)})")
    if locks:
        print(f"removed  {len(locks)} lock files nobody holds")
    freed = sum(item.bytes for item in removed) + sum(size for _, size in results)
    count = len(removed) + len(results)
    print(f"freed {_mib(freed)} ({freed} bytes) in {count} files under {cache.settings.cache_dir}")
    return 0


def _cache_rm(cache, keys: list[str]) -> int:
    """Feature entries, and computed results, whose keys start with each prefix (4+ hex digits)."""
    if not keys:
        raise AlignscopeError("name the keys (or key prefixes of 4+ hex digits) to remove")
    store = _results(cache)
    unmatched, gone = [], []
    for prefix in dict.fromkeys(keys):
        removed_keys = cache.remove(prefix)
        results = [key for key in store.keys() if key.startswith(prefix)] if store is not None else []
        for key in results:
            store.remove(key)
        gone.extend(removed_keys + results)
        if removed_keys or results:
            what = [f"{len(removed_keys)} entries"] * bool(removed_keys) + [f"{len(results)} computed results"] * bool(
                results
            )
            print(f"removed {' and '.join(what)} matching {prefix}")
        elif not any(key.startswith(prefix) for key in gone):  # not one an earlier prefix removed
            unmatched.append(prefix)
    if unmatched:
        raise AlignscopeError(
            f"nothing in the cache matches {', '.join(unmatched)}; `alignscope cache ls` lists the feature keys, "
            "`cache verify` names bad results"
        )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """``alignscope score``: features from the cache (extracted once if missing), then engine jobs."""
    from alignscope.core.analysis.engine import Engine
    from alignscope.core.analysis.report import format_scores
    from alignscope.core.analysis.requests import PairRequest, command_params
    from alignscope.core.datasets import get_dataset_spec
    from alignscope.core.metrics.registry import get_metric

    metrics = args.metric or ["mutual_knn"]
    for metric in metrics:
        get_metric(metric)  # fail on a typo before extracting anything
    extra = parse_param_items(args.param, metrics)
    shared = neighbour_flags(args)
    check_flags_apply(shared, metrics)
    get_dataset_spec(args.dataset)
    check_device(args.device)
    params = {metric: command_params(metric, shared, extra[metric]) for metric in metrics}  # checked before work
    engine = Engine()
    layers = _score_layers(args, engine)
    requests = [
        PairRequest(
            args.model_a,
            args.model_b,
            args.dataset,
            args.n or MAX_SAMPLES,
            args.seed,
            metric,
            params[metric],
            layers,
            args.permutations,
            args.bootstrap,
        )
        for metric in metrics
    ]
    scores = [run_with_bar(engine, request, args.device) for request in requests]
    note_fewer_samples(args.n, scores[0].n_samples, args.dataset)
    sys.stdout.write(format_scores(scores, args.format) + "\n")
    return 0


def _score_layers(args: argparse.Namespace, engine) -> str:
    """``score --layers`` as a PairRequest's: ``all`` or ``best`` (the search), ``last``, ``i,j``, or
    ``depth:x`` (each model's layer at that relative depth, as trend, difference and plans take it; the
    features are extracted first to count the layers)."""
    from alignscope.core.analysis.plans import pair_layers
    from alignscope.core.analysis.requests import PairRequest, parse_layer_choice, parse_layers
    from alignscope.core.errors import InputError

    if args.layers in ("all", "best"):
        return "all"
    try:  # one message with every form score takes (each parser names only its own)
        if not args.layers.startswith("depth:"):
            parse_layers(args.layers)
            return args.layers
        parse_layer_choice(args.layers)  # a bad depth is refused before any extraction
    except InputError:
        raise InputError(
            f"--layers must be 'all' or 'best' (search every pair), 'last', 'i,j' (two layer indices, -1 = last) "
            f"or 'depth:<0..1>', not {args.layers!r}"
        ) from None
    n = args.n or MAX_SAMPLES
    for plan in engine.prepare(PairRequest(args.model_a, args.model_b, args.dataset, n, args.seed)).missing:
        extract_with_bar(plan, args.device)
    layers = pair_layers(args.layers, engine, args.model_a, args.model_b, args.dataset, n, args.seed)
    if layers == "last":  # pair_layers' answer while layers are uncounted: never a silent substitute here
        raise AlignscopeError(f"could not count the layers of {args.model_a} and {args.model_b} for {args.layers}")
    return layers


def streamlit_command(port: int, host: str) -> list[str]:
    """The command line that serves the dashboard: headless, no usage stats, no tracebacks in the page,
    no full garbage collection after every script run (Streamlit's ``runner.postScriptGC``: ~0.2 s
    holding the GIL per run in a warmed server, which under 20 sessions stalled the event loop —
    /_stcore/health — for seconds; Python's own generational collection still runs), and no "magic"
    (the pages call ``st.*`` for everything they show; magic re-parses each page's source whenever the
    last session leaves, as Streamlit then clears its compiled scripts: ~0.1 s of the next page open)."""
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    options = {
        "server.port": str(port),
        "server.address": host,
        "server.headless": "true",
        "browser.gatherUsageStats": "false",
        "client.showErrorDetails": "none",
        "runner.postScriptGC": "false",
        "runner.magicEnabled": "false",
    }
    return [sys.executable, "-m", "streamlit", "run", str(app)] + [
        part for name, value in options.items() for part in (f"--{name}", value)
    ]


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Run Streamlit headless (no first-run e-mail prompt, no credentials file) on ``--host`` (loopback
    unless asked) and, unless ``--headless``, open the browser once the server answers. SIGTERM, SIGINT
    and SIGHUP are forwarded to the server, and the server dies with this process, so stopping
    ``alignscope dashboard`` always frees the port."""
    import signal

    command = streamlit_command(args.port, args.host)
    shown_host = "localhost" if args.host in ("127.0.0.1", "::1", "localhost") else args.host
    url = f"http://{shown_host}:{args.port}/"
    if _port_in_use(args.port):
        raise AlignscopeError(f"port {args.port} is already in use; pass --port with a free one")
    env = {
        **os.environ,
        **({"ALIGNSCOPE_READ_ONLY": "1"} if args.read_only else {}),
        **({"ALIGNSCOPE_PREFETCH_DEFAULT": "1"} if args.prefetch_default else {}),
    }
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"warning: serving on {args.host}: anyone who can reach this machine can use the dashboard"
            + ("" if args.read_only else " (uploads, adding models, deleting cache entries); consider --read-only"),
            file=sys.stderr,
        )
    print(f"starting the dashboard at {url}  (Ctrl+C stops it)")
    process = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if process.poll() is None:
            process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        if not args.headless and _has_display():
            threading.Thread(target=_open_when_ready, args=(process, args.port, url), daemon=True).start()
        try:
            code = process.wait(timeout=None)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return 0 if received[0] == signal.SIGINT else 128 + received[0]
    return code if code >= 0 else 128 - code  # killed by signal N: the shell's 128 + N


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when this process dies (even by kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _has_display() -> bool:
    """Whether a graphical browser can open (never a console browser inside this terminal)."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _open_when_ready(process: subprocess.Popen, port: int, url: str, wait_s: float = 120.0) -> None:
    deadline = time.monotonic() + wait_s
    while process.poll() is None and time.monotonic() < deadline:
        if _port_in_use(port):
            webbrowser.open(url)
            return
        time.sleep(0.25)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line, like every other error of this CLI."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alignscope", description="Representation alignment explorer")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list models, or add a hub model with --add")
    models.add_argument("--add", metavar="HUB_ID_OR_PATH", help="register a transformers model by hub id / path")
    models.add_argument("--remove", metavar="NAME", help="remove a model added with --add or uploaded")
    models.add_argument(
        "--modality",
        choices=["text", "image"],
        help="what the model reads (default: from the hub's tag or the folder's tokenizer / image processor)",
    )
    models.add_argument("--name")
    models.add_argument("--revision")
    models.add_argument(
        "--trust-remote-code", action="store_true", help="also needs ALIGNSCOPE_TRUST_REMOTE_CODE to list the id"
    )
    models.add_argument(
        "--set",
        nargs="+",
        metavar="NAME KEY=VALUE",
        help="set properties of a model, e.g. --set lite2 imagenet_top1=77.6",
    )
    models.add_argument("--unit", help="unit of the properties given with --set (e.g. %%, count)")
    models.add_argument(
        "--import-properties", metavar="FILE.csv", help="a CSV with columns model, name, value [, unit, source]"
    )
    models.add_argument(
        "--text-variant",
        nargs=2,
        metavar=("NAME", "TEXT"),
        help="add NAME.textTEXT: the text model NAME encoding each sample's TEXT-th text (e.g. minilm-l6 3)",
    )
    models.add_argument("--format", choices=["table", "json"], default="table")
    models.set_defaults(func=cmd_models)

    datasets = sub.add_parser("datasets", help="list datasets, add a hub dataset (--add) or a local file (--upload)")
    datasets.add_argument("--add", metavar="HUB_ID_OR_FOLDER", help="a Hugging Face dataset by id or local folder")
    datasets.add_argument("--split", default="train")
    datasets.add_argument("--revision")
    datasets.add_argument("--text-column")
    datasets.add_argument("--image-column")
    datasets.add_argument("--label-column")
    datasets.add_argument(
        "--upload",
        metavar="PATH",
        help="texts (.csv/.parquet/.txt), images (.zip or a folder) or, with --image-pairs, "
        "a CSV of image path + caption",
    )
    datasets.add_argument("--image-pairs", action="store_true")
    datasets.add_argument("--remove", metavar="NAME", help="remove an uploaded or added dataset")
    datasets.add_argument("--name")
    datasets.set_defaults(func=cmd_datasets)

    extract = sub.add_parser("extract", help="precompute features into the cache (default: the whole default)")
    extract.add_argument("--model", action="append", help="model name (repeatable)")
    extract.add_argument("--dataset", action="append", help="dataset name (repeatable)")
    extract.add_argument("--n", type=int_at_least(3), help="a seeded subset of n samples")
    extract.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    extract.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    extract.add_argument("--batch-size", type=int_at_least(1), default=32)
    extract.add_argument(
        "--pooling",
        choices=["mean", "cls", "last"],
        help="token pooling (default: the model's own, e.g. mean for MiniLM, cls for ViT)",
    )
    extract.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="one Ray task per (model, dataset), a GPU each where the cluster has them: a local Ray instance, "
        "or the cluster at ADDRESS ('auto': the one `ray start` runs here); workers must see this cache directory",
    )
    extract.add_argument("--ray-cpus", type=int_at_least(1), default=None, help="workers of a local Ray instance")
    extract.set_defaults(func=cmd_extract)

    cache = sub.add_parser(
        "cache",
        help="ls | verify (features, nets and computed results) | gc (remove what killed writers left, and "
        "damaged results) | rm KEY...",
    )
    cache.add_argument("action", choices=["ls", "verify", "gc", "rm"])
    cache.add_argument("keys", nargs="*")
    cache.set_defaults(func=cmd_cache)

    score = sub.add_parser("score", help="alignment of two models on a dataset")
    score.add_argument("--model-a", required=True)
    score.add_argument("--model-b", required=True)
    score.add_argument("--dataset", required=True)
    score.add_argument("--metric", action="append", help="metric name (repeatable; default mutual_knn)")
    score.add_argument(
        "--layers",
        default="all",
        help="'all' or 'best' (search every layer pair; default), 'last', 'i,j' for one layer pair, or 'depth:0.5'",
    )
    score.add_argument("--k", type=int_at_least(1), help="neighbours for k-NN metrics (default 10)")
    score.add_argument(
        "--similarity",
        choices=["cosine", "ip", "euclidean"],
        default=None,
        help="neighbour similarity of the k-NN metrics (default cosine, platonic-rep's convention)",
    )
    score.add_argument("--neighbors", choices=NEIGHBOR_MODES, help=NEIGHBORS_HELP)
    score.add_argument("--param", action="append", metavar="NAME=VALUE", help=PARAM_HELP)
    score.add_argument("--n", type=int_at_least(3))
    score.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    score.add_argument(
        "--permutations",
        type=resample_count(0),
        default=0,
        help="shuffled correspondences for the permutation p-value (0 = off)",
    )
    score.add_argument(
        "--bootstrap", type=bootstrap_count, default=0, help="bootstrap resamples for the 95%% interval (0 = off)"
    )
    score.add_argument("--device", default=None)
    score.add_argument("--format", choices=["table", "json", "csv"], default="table")
    score.set_defaults(func=cmd_score)

    dashboard = sub.add_parser("dashboard", help="start the Streamlit dashboard")
    dashboard.add_argument("--port", type=int_at_least(1, 65535), default=8501)
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0: everyone who can reach it)",
    )
    dashboard.add_argument(
        "--read-only", action="store_true", help="no uploads, no model adds, no cache deletions (for sharing a server)"
    )
    dashboard.add_argument(
        "--prefetch-default",
        action="store_true",
        help="extract the rest of the embedded default in the background once the server runs",
    )
    dashboard.add_argument("--headless", action="store_true")
    dashboard.set_defaults(func=cmd_dashboard)

    from alignscope.core import cli_analysis, cli_compatibility, cli_convergence, cli_rsa

    for module in (cli_analysis, cli_convergence, cli_compatibility, cli_rsa):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _bootstrap_registries()
        return args.func(args)
    except AlignscopeError as error:
        # The machine is the user's here: a full disk names its folder (the dashboard's message does not).
        message = error.with_folder() if isinstance(error, NoSpaceError) else error
        print(f"error: {terminal_text(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the cache holds only complete entries", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `alignscope cache ls | head`: the reader left, nothing is wrong
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error as Python flushes
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    except Exception as error:  # a bug or an environment problem: still one line, unless debugging
        if os.environ.get("ALIGNSCOPE_DEBUG"):
            raise
        print(
            f"error: unexpected {type(error).__name__}: {terminal_text(error)}. The cache holds only complete entries; "
            "rerun with ALIGNSCOPE_DEBUG=1 for the traceback.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
