"""``alignscope upload-recording`` and ``alignscope rsa``: model-vs-brain RSA in rsatoolbox's conventions.

A recording (responses to some of a dataset's stimuli, with subjects and repeats) is stored once; ``rsa``
scores every layer of a model against it: the mean over subjects of compare(model RDM, subject RDM),
a bootstrap interval over stimuli (and subjects), and the noise ceiling. Through the engine: the
numbers are the dashboard's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignscope.core.cli_support import (
    MAX_SEED,
    bootstrap_count,
    int_at_least,
    new_engine,
    print_table,
    read_upload,
    run_with_bar,
)
from alignscope.core.metrics.rdm import COMPARE_METHODS, RDM_METHODS
from alignscope.core.numbers import fixed


def profile_rows(profile) -> list[dict[str, str]]:
    """One row per layer: the score, its interval, and the noise ceiling it is read against."""
    rows = []
    for index, (name, score) in enumerate(zip(profile.layer_names, profile.scores)):
        rows.append(
            {
                "layer": f"{index}: {name}" + (" *" if index == profile.best_layer else ""),
                profile.method: fixed(score.value),
                f"{score.confidence:.0%} interval": (
                    f"[{fixed(score.ci_low)}, {fixed(score.ci_high)}]" if score.n_boot else "off (--bootstrap 0)"
                ),
                "noise ceiling": f"[{fixed(score.noise_ceiling_low)}, {fixed(score.noise_ceiling_high)}]",
            }
        )
    return rows


def cmd_upload_recording(args: argparse.Namespace) -> int:
    from alignscope.core.recordings import add_recording, list_recordings, parse_sample_ids

    path = Path(args.file)
    replacing = (args.name or path.stem) in list_recordings()
    data = read_upload(path)
    ids = None
    if args.ids:
        ids = parse_sample_ids(args.ids, read_upload(Path(args.ids)))
    recording = add_recording(
        args.name or path.stem, path.name, data, dataset=args.dataset, sample_ids=ids, over=args.over
    )
    if replacing:
        print(f"note: replaced the earlier recording {recording.name!r}; RSA against it is computed again")
    print(
        f"stored recording {recording.name}: {recording.describe()} of {recording.dataset} (sha256 {recording.digest[:12]}…)"
    )
    return 0


def cmd_rsa(args: argparse.Namespace) -> int:
    from alignscope.core.analysis.report import jsonable
    from alignscope.core.analysis.rsa import RsaRequest
    from alignscope.core.recordings import load_recording

    recording = load_recording(args.recording)
    request = RsaRequest(
        args.model,
        args.recording,
        args.dataset or recording.dataset,
        args.n or 10**9,
        args.seed,
        args.model_rdm,
        args.data_rdm,
        args.method,
        args.bootstrap,
    )
    profile = run_with_bar(new_engine(), request)
    if args.format == "json":
        payload = jsonable(profile)
        payload.pop("data_rdm_view", None)
        print(json.dumps(payload, indent=1))
        return 0
    first = profile.scores[0]
    print(
        f"{profile.model} against {profile.recording}: {profile.n_shared} shared stimuli (of {profile.n_recording} "
        f"recorded), {first.n_subjects} subject(s)"
        + (f" × {first.n_repeats} repeats" if first.n_repeats else "")
        + f"; model RDM {profile.model_rdm}, data RDM {profile.data_rdm}, compared by {profile.method}"
    )
    if profile.overlap_note():
        print(f"note: {profile.overlap_note()}", file=sys.stderr)
    print_table(profile_rows(profile), list(profile_rows(profile)[0]))
    print(f"\n* {profile.best_words()} {first.note}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    upload = sub.add_parser("upload-recording", help="store responses to a dataset's stimuli (brain data) for RSA")
    upload.add_argument(
        "file", help=".npy / .safetensors: [n, d], [subjects or repeats, n, d] or [subjects, repeats, n, d]"
    )
    upload.add_argument("--dataset", required=True, help="the dataset whose stimuli were shown")
    upload.add_argument("--name", help="recording name (default: the file's stem)")
    upload.add_argument("--ids", help="sample id per stimulus: a CSV with a sample_id column or one id per line")
    upload.add_argument(
        "--over", choices=["subjects", "repeats"], help="what a 3-D array's first axis is (default: subjects)"
    )
    upload.set_defaults(func=cmd_upload_recording)

    rsa = sub.add_parser("rsa", help="every layer of a model against a recording, with the noise ceiling")
    rsa.add_argument("--model", required=True)
    rsa.add_argument("--recording", required=True)
    rsa.add_argument("--dataset", help="default: the recording's")
    rsa.add_argument(
        "--model-rdm", default="correlation", choices=["correlation", "euclidean", "squared_euclidean", "cosine"]
    )
    rsa.add_argument("--data-rdm", default="correlation", choices=list(RDM_METHODS), help="crossnobis needs repeats")
    rsa.add_argument("--method", default="spearman", choices=list(COMPARE_METHODS), help="how RDMs are compared")
    rsa.add_argument("--bootstrap", type=bootstrap_count, default=100, help="resamples (0: no interval)")
    rsa.add_argument("--n", type=int_at_least(3), help="model samples to match against (default: the whole dataset)")
    rsa.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0)
    rsa.add_argument("--format", choices=["table", "json"], default="table")
    rsa.set_defaults(func=cmd_rsa)
