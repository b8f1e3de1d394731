"""One frozen :class:`Settings`, read once from the environment.

Environment variables:
    ALIGNSCOPE_CACHE_DIR: where features, trained nets and the numba cache live (default ``./cache``
        next to the project, or ``~/.cache/alignscope`` when installed elsewhere); set but empty is an error.
    ALIGNSCOPE_DEVICE: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
    ALIGNSCOPE_MAX_UPLOAD_MB: largest accepted upload (default 200).
    ALIGNSCOPE_TRUST_REMOTE_CODE: comma-separated hub ids allowed to run their own code (default none).
    ALIGNSCOPE_DASHBOARD_LOCAL_PATHS: ``1`` lets the dashboard add models from server folders (default off;
        the CLI always can).
    ALIGNSCOPE_AUTO_BUDGET_S: CPU-seconds of work a link or a widget may start by itself (default 30);
        anything costlier shows its estimate and a Compute button.
    ALIGNSCOPE_WORKERS: background jobs run at once by the dashboard (default 1: on a small machine two
        heavy jobs at once only thrash).
    ALIGNSCOPE_READ_ONLY: ``1`` turns the dashboard's uploads, model adds and cache deletions off
        (``alignscope dashboard --read-only``, for a server shared with colleagues).
    ALIGNSCOPE_PREFETCH_DEFAULT: ``1`` extracts the whole embedded default in the background once the
        dashboard runs (``--prefetch-default``; the quick start uses it).
    ALIGNSCOPE_MAP_POINTS: points a projection map sends to the browser (default 10,000); a larger map
        draws a fixed random layer of that many, with the selection, over the density of all points,
        and its box and lasso selections are computed exactly over all of them.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from alignscope.core.errors import InputError

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_cache_dir() -> Path:
    in_checkout = (_PROJECT_ROOT / "pyproject.toml").exists() and (_PROJECT_ROOT / "cache").is_dir()
    return _PROJECT_ROOT / "cache" if in_checkout else Path.home() / ".cache" / "alignscope"


@dataclass(frozen=True)
class Settings:
    cache_dir: Path = field(default_factory=_default_cache_dir)
    device: str = "auto"
    max_upload_bytes: int = 200 * 1024 * 1024
    max_samples: int = 200_000
    trust_remote_code_for: frozenset[str] = frozenset()
    dashboard_local_paths: bool = False
    auto_budget_seconds: float = 30.0
    workers: int = 1
    read_only: bool = False
    prefetch_default: bool = False
    map_points: int = 10_000

    @property
    def features_dir(self) -> Path:
        return self.cache_dir / "features"

    @property
    def models_dir(self) -> Path:
        """Weights of nets trained here (digits CNNs), as safetensors."""
        return self.cache_dir / "models"

    @property
    def uploads_dir(self) -> Path:
        return self.cache_dir / "uploads"

    @property
    def results_dir(self) -> Path:
        """Computed results (scores, matrices, projections): the engine's result store."""
        return self.cache_dir / "results"

    @property
    def runs_dir(self) -> Path:
        """Batch runs (``alignscope run``): one folder per run with its table and run card."""
        return self.cache_dir / "runs"

    @property
    def numba_dir(self) -> Path:
        return self.cache_dir / "numba"


def _number(env: dict[str, str], name: str) -> float:
    """The environment variable ``name`` as a number, or an error that names it."""
    try:
        value = float(env[name])
    except ValueError:
        raise InputError(f"{name}={env[name]!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{name}={env[name]!r} is not a finite number")
    return value


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    kwargs: dict = {}
    if "ALIGNSCOPE_CACHE_DIR" in env:
        if not env["ALIGNSCOPE_CACHE_DIR"].strip():  # `ALIGNSCOPE_CACHE_DIR=$UNSET_VAR`: not silently ./cache
            raise InputError(
                "ALIGNSCOPE_CACHE_DIR is set but empty: give the cache folder, or unset it for the default "
                f"({_default_cache_dir()})"
            )
        kwargs["cache_dir"] = Path(env["ALIGNSCOPE_CACHE_DIR"]).expanduser().resolve()
    if env.get("ALIGNSCOPE_DEVICE"):
        kwargs["device"] = env["ALIGNSCOPE_DEVICE"]
    if env.get("ALIGNSCOPE_MAX_UPLOAD_MB"):
        kwargs["max_upload_bytes"] = int(_number(env, "ALIGNSCOPE_MAX_UPLOAD_MB") * 1024 * 1024)
    if env.get("ALIGNSCOPE_TRUST_REMOTE_CODE"):
        kwargs["trust_remote_code_for"] = frozenset(
            s.strip() for s in env["ALIGNSCOPE_TRUST_REMOTE_CODE"].split(",") if s.strip()
        )
    if env.get("ALIGNSCOPE_DASHBOARD_LOCAL_PATHS", "").lower() in ("1", "true", "yes"):
        kwargs["dashboard_local_paths"] = True
    if env.get("ALIGNSCOPE_AUTO_BUDGET_S"):
        kwargs["auto_budget_seconds"] = max(0.0, _number(env, "ALIGNSCOPE_AUTO_BUDGET_S"))
    if env.get("ALIGNSCOPE_READ_ONLY", "").lower() in ("1", "true", "yes"):
        kwargs["read_only"] = True
    if env.get("ALIGNSCOPE_PREFETCH_DEFAULT", "").lower() in ("1", "true", "yes"):
        kwargs["prefetch_default"] = True
    if env.get("ALIGNSCOPE_WORKERS"):
        kwargs["workers"] = max(1, int(_number(env, "ALIGNSCOPE_WORKERS")))
    if env.get("ALIGNSCOPE_MAP_POINTS"):
        kwargs["map_points"] = max(100, int(_number(env, "ALIGNSCOPE_MAP_POINTS")))
    return Settings(**kwargs)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    settings = settings_from_env()
    # umap's numba JIT is slow the first time; keep its compiled code across runs.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(settings.numba_dir))
    return settings
