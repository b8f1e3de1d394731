"""What every ``alignscope`` command shares: tables, progress bars, argument types, features on demand."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from alignscope.core.analysis.jobs import Progress
from alignscope.core.errors import AlignscopeError

NEIGHBOR_MODES = ("exact", "approx")
NEIGHBORS_HELP = (
    "k-NN metrics: exact (default) or approx (an IVF-Flat index over faiss from n = 4,096 on, exact below; the "
    "recall@k measured against exact search is reported beside the score)"
)
MAX_SEED = 2**31 - 1  # as in dashboard links


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(value: object, *, one_line: bool = False) -> str:
    r"""``value`` as text safe to print: control characters (an ANSI escape in an uploaded file's name would
    clear the screen on every listing) are shown escaped, never sent to the terminal; with ``one_line``,
    line breaks too (a table row, a name inside a sentence).

    Example:
        >>> terminal_text("\x1b[2Jevil.txt\tok")
        '\\x1b[2Jevil.txt\tok'
        >>> terminal_text("a\nb", one_line=True)
        'a\\nb'
    """
    text = _CONTROL.sub(lambda match: f"\\x{ord(match.group(0)):02x}", str(value))
    return text.replace("\n", "\\n") if one_line else text


def print_table(rows: list[dict], columns: list[str]) -> None:
    cells = [{c: terminal_text(row.get(c, ""), one_line=True) for c in columns} for row in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) if cells else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in cells:
        print("  ".join(row[c].ljust(widths[c]) for c in columns))


def progress_bar(label: str):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="sample", leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


class BarProgress(Progress):
    """A job's progress shown as one tqdm bar on stderr (the CLI runs engine jobs in the foreground)."""

    def __init__(self, label: str) -> None:
        from tqdm import tqdm

        super().__init__()
        self.bar = tqdm(
            total=1000,
            desc=label,
            leave=False,
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
        )

    def update(self, done: float, total: float, message: str | None = None) -> None:
        super().update(done, total, message)
        self.bar.update(int(self.fraction * 1000) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def int_at_least(low: int, high: int | None = None):
    """argparse type: an integer in [low, high], else a clear usage error (never silently clamped)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def resample_count(low: int):
    """argparse type: shuffles or resamples, an integer in [low, stats.MAX_RESAMPLES]."""
    from alignscope.core.stats import MAX_RESAMPLES

    return int_at_least(low, MAX_RESAMPLES)


def bootstrap_count(text: str) -> int:
    """argparse type: bootstrap resamples, 0 (off) or in [2, stats.MAX_RESAMPLES] (one has no spread)."""
    value = resample_count(0)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (off) or at least 2: one resample has no spread")
    return value


def read_upload(path: Path) -> bytes:
    """The bytes of a local file to upload; one over ALIGNSCOPE_MAX_UPLOAD_MB is refused from its size,
    before anything is read, and no more than the limit is ever read (a pipe or a growing file)."""
    from alignscope.core.settings import get_settings
    from alignscope.core.uploads import check_upload_size

    limit = get_settings().max_upload_bytes
    try:
        with open(path, "rb") as handle:
            check_upload_size(os.fstat(handle.fileno()).st_size, path.name, allow_empty=True)
            data = handle.read(limit + 1)
    except OSError as exc:
        raise AlignscopeError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    check_upload_size(len(data), path.name, at_least=len(data) > limit)
    return data


def split_names(text: str | None) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def new_engine():
    """An engine on the current settings (the CLI's: one process, one run)."""
    from alignscope.core.analysis.engine import Engine

    return Engine()


def neighbour_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The shared k-NN flags of a command (``--k``, ``--similarity``, ``--neighbors``; None where not given)."""
    return {"k": args.k, "similarity": args.similarity, "neighbors": args.neighbors}


def extract_with_bar(plan, device: str | None = None) -> None:
    """Extract one missing feature plan with a progress bar, on ``device``."""
    from alignscope.core.analysis.features import extract_for_plan

    extract_for_plan(plan, progress=progress_bar(f"{plan.model} on {plan.dataset}"), device=device)


def run_with_bar(engine, request, device: str | None = None) -> Any:
    """Features first (a bar each, on ``device``), then the request as one engine job with a bar and ETA;
    features found damaged on disk are extracted again (see ``Engine.run_extracting``)."""
    return engine.run_extracting(
        request, lambda plan: extract_with_bar(plan, device), lambda prepared: BarProgress(prepared.label)
    )


def check_device(device: str | None) -> None:
    """Refuse a ``--device`` this machine cannot use before any work, also when every feature is cached and
    nothing would run on it."""
    if device:
        from alignscope.core.devices import resolve_device

        resolve_device(device)


def note_fewer_samples(asked_n: int | None, used_n: int, dataset: str) -> None:
    """Say on stderr when the ``--n`` the user gave is more than ``dataset`` holds (all of it is used)."""
    if asked_n is not None and used_n < asked_n:
        print(
            f"note: {dataset} holds {used_n:,} samples, fewer than n = {asked_n:,}; all {used_n:,} are used",
            file=sys.stderr,
        )


PARAM_HELP = "a metric parameter NAME=VALUE, repeatable (e.g. alpha=0.5 n_folds=5 for shape_distance)"
