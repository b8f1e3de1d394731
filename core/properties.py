"""Named numbers about models (parameters, ImageNet top-1, held-out accuracy, …) and families of models.

A model's properties come from three places, later ones winning:

1. its spec (the published numbers of the built-ins, each with where it comes from);
2. what was measured here: the parameter count (counted when the model is loaded), the held-out
   accuracy of nets trained here, probe accuracies (``<cache>/models/measured_properties.json``);
3. what the user set (``alignscope models --set NAME key=value`` or a CSV import; kept in
   ``<cache>/uploads/registry.json``).

A family is a named group of models: every spec's ``family`` (``digits-ladder``, ``efficientnet``…),
and the groups a user saves (``alignscope families --add NAME --models a,b,c``). "family:NAME" names a
family wherever a list of models is asked for.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock

from alignscope.core.errors import AlignscopeError, InputError, UnknownModelError
from alignscope.core.files import atomic_write_bytes
from alignscope.core.models import ModelProperty, get_model_spec, list_models
from alignscope.core.names import check_name
from alignscope.core.settings import Settings, get_settings
from alignscope.core.sources import FactorySource, parse_source
from alignscope.core.user_store import read_registry, registry_path

MEASURED_FILE = "measured_properties.json"


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


def _measured_path(settings: Settings) -> Path:
    return settings.models_dir / MEASURED_FILE


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _entries(data: dict, model: str) -> dict:
    """The ``{name: entry}`` of ``model`` in a file read back (a hand-edited file may hold anything)."""
    entries = data.get(model)
    return entries if isinstance(entries, dict) else {}


def _as_property(name: str, entry: object) -> ModelProperty | None:
    if not isinstance(entry, dict):
        return None
    try:
        value = float(entry["value"])
    except (KeyError, TypeError, ValueError):
        return None
    if not math.isfinite(value):  # never written by us; would make `models --format json` invalid JSON
        return None
    return ModelProperty(name, value, str(entry.get("unit", "")), str(entry.get("source", "")))


def record_measured(model: str, prop: ModelProperty, settings: Settings | None = None) -> None:
    """Keep a number measured here (a parameter count, an accuracy) for ``model``."""
    if not math.isfinite(prop.value):
        raise InputError(f"property {prop.name} of {model}: {prop.value!r} is not a finite number")
    settings = settings or get_settings()
    path = _measured_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        data = _read_json(path)
        entry = {"value": prop.value, "unit": prop.unit, "source": prop.source}
        entries = _entries(data, model)
        if entries.get(prop.name) == entry:
            return
        data[model] = {**entries, prop.name: entry}
        atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def forget_measured(model: str, settings: Settings | None = None) -> None:
    """Drop what was measured for ``model`` (its weights are gone or replaced: a later model of that name
    would show the old parameter count or accuracy)."""
    settings = settings or get_settings()
    path = _measured_path(settings)
    if not path.exists():
        return
    with FileLock(str(path) + ".lock", timeout=30):
        data = _read_json(path)
        if data.pop(model, None) is not None:
            atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def measured_properties(model: str, settings: Settings | None = None) -> dict[str, ModelProperty]:
    settings = settings or get_settings()
    out: dict[str, ModelProperty] = {}
    for name, entry in _entries(_read_json(_measured_path(settings)), model).items():
        prop = _as_property(name, entry)
        if prop is not None:
            out[name] = prop
    spec = get_model_spec(model)
    try:
        source = parse_source(spec)
    except AlignscopeError:
        return out
    if isinstance(source, FactorySource) and source.factory.properties is not None:
        for prop in source.factory.properties(dict(spec.options)):
            out[prop.name] = prop
    return out


def user_properties(model: str, settings: Settings | None = None) -> dict[str, ModelProperty]:
    out = {}
    for name, entry in _entries(read_registry(settings)["properties"], model).items():
        prop = _as_property(name, entry)
        if prop is not None:
            out[name] = prop
    return out


def model_properties(model: str, settings: Settings | None = None) -> dict[str, ModelProperty]:
    """Every property of ``model``: the spec's, then measured here, then the user's (see module docstring)."""
    spec = get_model_spec(model)
    props = {prop.name: prop for prop in spec.properties}
    props.update(measured_properties(model, settings))
    props.update(user_properties(model, settings))
    return props


def check_property_name(name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 80 or not all(c.isalnum() or c in "_-.[]:" for c in name):
        raise InputError(f"property name {name!r} is not allowed: use letters, digits and _ - . [ ] :")
    return name


def set_user_property(
    model: str,
    name: str,
    value: float,
    *,
    unit: str = "",
    source: str = "set by the user",
    settings: Settings | None = None,
) -> ModelProperty:
    """Set (or replace) a property of a registered model; kept across restarts."""
    get_model_spec(model)  # an unknown model is an error, not a silent entry
    check_property_name(name)
    if not math.isfinite(float(value)):
        raise InputError(f"property {name} of {model}: {value!r} is not a finite number")
    check_property_value(name, float(value), str(unit), model=model)
    settings = settings or get_settings()
    path = registry_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    prop = ModelProperty(name, float(value), str(unit)[:40], str(source)[:200])
    with FileLock(str(path) + ".lock", timeout=30):
        registry = read_registry(settings)
        entries = _entries(registry["properties"], model)
        registry["properties"][model] = {
            **entries,
            name: {"value": prop.value, "unit": prop.unit, "source": prop.source},
        }
        atomic_write_bytes(path, json.dumps(registry, indent=1).encode())
    return prop


def check_property_value(name: str, value: float, unit: str = "", *, model: str = "the model") -> None:
    """What any property must hold, checked before anything is written: a parameter count is positive, a
    unit is one line of at most 40 characters (it is shown in tables and axis titles)."""
    if name == "params" and value <= 0:
        raise InputError(f"property params of {model} counts parameters: it must be positive, got {value:g}")
    if len(unit) > 40 or any(ord(c) < 32 or ord(c) == 127 for c in unit):
        raise InputError(f"the unit of {name} must be one line of at most 40 characters, got {unit[:60]!r}")


def parse_assignment(text: str) -> tuple[str, float]:
    """``key=value`` -> (key, value), e.g. ``imagenet_top1=77.6``."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise InputError(f"{text!r} is not key=value (e.g. imagenet_top1=77.6)")
    try:
        value = float(raw)
    except ValueError as exc:
        raise InputError(f"{text!r}: {raw!r} is not a number") from exc
    if not math.isfinite(value):  # refused here, so that every assignment is checked before any is written
        raise InputError(f"{text!r}: {raw!r} is not a finite number")
    name = check_property_name(key.strip())
    check_property_value(name, value)
    return name, value


def import_properties_csv(data: bytes, settings: Settings | None = None) -> int:
    """Set properties from a CSV with columns ``model, name, value`` [, ``unit``, ``source``]; returns how
    many were set. Every row is checked before any is written."""
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))  # -sig: spreadsheets write a BOM
        rows = list(reader)
    except UnicodeDecodeError as exc:
        raise InputError("the properties CSV is not UTF-8 text") from exc
    if not {"model", "name", "value"} <= set(reader.fieldnames or ()):
        raise InputError("the properties CSV needs the columns model, name, value (and optionally unit, source)")
    if not rows:
        raise InputError("the properties CSV has a header but no rows")
    parsed = []
    for number, row in enumerate(rows, start=2):
        try:
            if row["value"] is None:
                raise InputError("it has fewer columns than the header")
            get_model_spec(row["model"])
            value = float(row["value"])
            if not math.isfinite(value):
                raise InputError(f"{row['value']!r} is not a finite number")
            name = check_property_name(row["name"])
            check_property_value(name, value, row.get("unit") or "", model=row["model"])
        except (AlignscopeError, ValueError, TypeError) as exc:
            raise InputError(f"line {number} of the properties CSV: {exc}") from None
        parsed.append(
            (
                row["model"],
                name,
                value,
                row.get("unit") or "",
                row.get("source") or "imported from a CSV",
            )
        )
    for model, name, value, unit, source in parsed:
        set_user_property(model, name, value, unit=unit, source=source, settings=settings)
    return len(parsed)


# --------------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------------


def families(settings: Settings | None = None) -> dict[str, tuple[str, ...]]:
    """Family name -> its models: each spec's ``family`` (with two or more members), then saved groups."""
    grouped: dict[str, list[str]] = {}
    for spec in list_models():
        grouped.setdefault(spec.family, []).append(spec.name)
    out = {name: tuple(members) for name, members in grouped.items() if len(members) >= 2}
    for name, members in read_registry(settings)["families"].items():
        if isinstance(members, list):
            out[str(name)] = tuple(str(m) for m in members if isinstance(m, str))
    return out


def save_family(name: str, models: Sequence[str], settings: Settings | None = None) -> tuple[str, ...]:
    """Save a named group of registered models (two or more)."""
    check_name(name, what="family")
    if name in {spec.family for spec in list_models()}:
        # As with models, a user entry never shadows a built-in one (the ladder preset names its family).
        raise InputError(f"{name!r} is the family of registered models; choose another name")
    members = tuple(dict.fromkeys(models))
    for model in members:
        get_model_spec(model)
    if len(members) < 2:
        raise InputError(f"a family needs at least two models, got {len(members)}")
    settings = settings or get_settings()
    path = registry_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        registry = read_registry(settings)
        registry.setdefault("families", {})[name] = list(members)
        atomic_write_bytes(path, json.dumps(registry, indent=1).encode())
    return members


def remove_family(name: str, settings: Settings | None = None) -> tuple[str, ...]:
    """Remove a saved family; returns its members. A family of registered models (their specs' ``family``)
    is not saved and cannot be removed."""
    settings = settings or get_settings()
    path = registry_path(settings)
    with FileLock(str(path) + ".lock", timeout=30):
        registry = read_registry(settings)
        saved = registry.get("families", {})
        if name not in saved:
            if name in {spec.family for spec in list_models()}:
                raise InputError(f"{name!r} is the family of registered models, not a saved one; it cannot be removed")
            listed = ", ".join(sorted(saved)) or "none"
            raise InputError(f"no saved family {name!r}; saved families: {listed}")
        members = tuple(str(m) for m in saved.pop(name) if isinstance(m, str))
        atomic_write_bytes(path, json.dumps(registry, indent=1).encode())
    return members


def resolve_models(items: Sequence[str], settings: Settings | None = None) -> tuple[str, ...]:
    """Model names, with ``family:NAME`` expanded to its members (in order, without repeats)."""
    known = families(settings)
    out: list[str] = []
    for item in items:
        if item.startswith("family:"):
            name = item.removeprefix("family:")
            if name not in known:
                raise InputError(f"no family {name!r}; families: {', '.join(sorted(known)) or 'none'}")
            for member in known[name]:
                try:
                    get_model_spec(member)
                except UnknownModelError:
                    raise InputError(
                        f"family {name!r} lists {member!r}, which is no longer a registered model; "
                        f"save the family again (alignscope families --add {name} --models ...)"
                    ) from None
            out.extend(known[name])
        else:
            get_model_spec(item)
            out.append(item)
    return tuple(dict.fromkeys(out))
