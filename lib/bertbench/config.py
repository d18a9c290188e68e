"""Typed, frozen run configurations with named presets and ``BB_<FIELD>`` environment overrides.

Each notebook has one config dataclass derived from :class:`BaseConfig`. ``Config.from_env()`` starts from the preset
named by ``BB_PRESET`` (or the class default), applies keyword overrides, then ``BB_<FIELD>`` variables, coerced to the
field's type. An unknown ``BB_*`` variable is an error that lists the valid names (nanoGPT's "Unknown config key"),
and values are validated when the config is built, not an hour into training. No config text is ever executed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

from .paths import PATH_ENV_VARS

_TRUE = {"1", "true", "yes", "on"}
# Fields that say how to run, not what is run: a config class lists those it has in ``RUNTIME``. They are left out
# of run ids (and, but for ``num_threads``, of the recorded config), so a re-run with more threads, other checkpoint
# intervals, or one that forces a fresh start, is the same run.
TRAINING_RUNTIME = ("num_threads", "resume", "checkpoint_every", "checkpoint_minutes")
_FALSE = {"0", "false", "no", "off", ""}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert a string (from the environment or a task override) to ``annotation``; other values pass through."""
    if not isinstance(value, str):
        if typing.get_origin(annotation) is tuple and isinstance(value, list | tuple):
            return tuple(value)
        return value
    origin = typing.get_origin(annotation)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(annotation)
        items = [part.strip() for part in value.split(",") if part.strip()]
        return tuple(coerce(item, item_type, name) for item in items)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return coerce(value, options[0], name)
    try:
        if annotation is bool:
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")
        if annotation is int:
            return int(value)
        if annotation is float:
            number = float(value)
            if not math.isfinite(number):  # float() reads "nan" and "inf", and a NaN passes every range check
                raise ValueError("not a finite number")
            return number
    except ValueError as err:
        raise ValueError(f"config field {name!r}: cannot read {value!r} as {annotation.__name__}: {err}") from None
    return value


class ConfigOverrideWarning(UserWarning):
    """A ``BB_*`` variable replaced a value set in the notebook's parameters cell."""


# ``BB_*`` variables read where they act, for every notebook alike, not config fields: how to run, never part of a
# run id (the attention kernel, ``models.attention_setting``, packing, ``packing.packing_setting``, and the last
# layer on the first token, ``models.last_layer_setting``, are named in the results' device column instead)
PROCESS_ENV_VARS = ("BB_ATTENTION", "BB_PACKING", "BB_LAST_LAYER")


def known_env_names() -> set[str]:
    """Every ``BB_*`` name some bertbench config accepts: a variable set for one notebook is no error in another."""
    names, stack = set(PATH_ENV_VARS) | set(PROCESS_ENV_VARS), [BaseConfig]
    while stack:
        config = stack.pop()
        names.update(config.env_names())
        stack.extend(config.__subclasses__())
    return names


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Fields shared by every notebook's config. Subclasses add fields and fill ``PRESETS``."""

    preset: str = "cpu"

    # fields that do not change what a run computes (see TRAINING_RUNTIME)
    RUNTIME: ClassVar[tuple[str, ...]] = ("num_threads", "resume")
    # fields added after runs were committed, whose default computes what the code did before them: at their default
    # they are left out of the recorded config and the identity, so older run ids and pooling keys stay valid
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ()
    # preset name -> field overrides applied on top of the dataclass defaults; "gpu" is the preset taken when CUDA is
    # available and none was chosen (minutes to an hour on one GPU; "full" stays the paper-scale run)
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {}, "cpu": {}, "gpu": {}, "full": {}}

    @classmethod
    def automatic_preset(cls) -> tuple[str, str]:
        """(preset, why) when the user chose none: ``gpu`` where CUDA is available and the config has one, else the
        class default."""
        if "gpu" in cls.PRESETS and _cuda_available():
            return "gpu", "automatic: a CUDA device is available (BB_PRESET=cpu or preset = 'cpu' to override)"
        return cls.preset, "default"

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def env_names(cls) -> list[str]:
        """Every ``BB_*`` variable this config accepts: one per field, plus the path variables."""
        return [f"BB_{name.upper()}" for name in cls.field_types()] + list(PATH_ENV_VARS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any):
        """Build the config: class defaults < preset < keyword ``overrides`` (a notebook's parameters cell) <
        ``BB_<FIELD>`` variables. A ``BB_*`` variable that replaces a value the caller set prints a one-line warning
        naming both; ``None`` keyword values mean "not set" (the preset's value). The config remembers where each
        value came from (:meth:`origin`) and prints it.

        Args:
            environ: the environment to read (default ``os.environ``).
            **overrides: field values set by the caller (e.g. a notebook's parameters cell); ``None`` = not set.

        Raises:
            ValueError: a ``BB_*`` variable that no bertbench config knows (with the closest valid names), an unknown
                preset or field, or a value out of range.
        """
        environ = os.environ if environ is None else environ
        types_by_field = cls.field_types()
        overrides = {name: value for name, value in overrides.items() if value is not None}
        given = {key: val for key, val in environ.items() if key.startswith("BB_")}
        valid = set(cls.env_names())
        unknown = sorted(set(given) - valid - known_env_names())
        if unknown:
            hints = [f"{name} (did you mean {', '.join(close)}?)" if (close := difflib.get_close_matches(
                name, sorted(valid), n=2, cutoff=0.6)) else name for name in unknown]
            raise ValueError(
                f"unknown environment variable(s) {', '.join(hints)} for {cls.__name__}; "
                f"valid names are: {', '.join(sorted(valid))}"
            )
        bad_keys = sorted(set(overrides) - set(types_by_field))
        if bad_keys:
            raise ValueError(f"{cls.__name__} has no field(s) {bad_keys}; fields are {sorted(types_by_field)}")
        for origin, chosen in (("BB_PRESET", given.get("BB_PRESET")), ("preset (cell)", overrides.get("preset"))):
            # an empty value is a mistake (`BB_PRESET= make ...`), not a request for the automatic choice
            if isinstance(chosen, str) and not chosen.strip():
                raise ValueError(f"{origin} is set but empty: set it to one of {sorted(cls.PRESETS)}, or unset it "
                                 f"(None in the cell) for the automatic choice ({cls.automatic_preset()[0]} here)")
        preset = (given.get("BB_PRESET") or overrides.get("preset") or "").strip()
        preset_origin = "BB_PRESET" if given.get("BB_PRESET") else "cell" if preset else None
        if not preset:
            preset, preset_origin = cls.automatic_preset()
        if preset not in cls.PRESETS:
            raise ValueError(f"unknown preset {preset!r} for {cls.__name__}; presets are {sorted(cls.PRESETS)}")
        values: dict[str, Any] = dict(cls.PRESETS[preset])
        origins = {name: f"preset {preset}" for name in values}
        values.update(overrides)
        origins.update({name: "cell" for name in overrides})
        for name in types_by_field:
            key = f"BB_{name.upper()}"
            if key in given:
                if name in overrides and coerce(given[key], types_by_field[name], name) != coerce(
                        overrides[name], types_by_field[name], name):
                    warnings.warn(f"{key}={given[key]!r} overrides {name} = {overrides[name]!r} set in the notebook "
                                  f"(unset {key} to use the notebook's value)", ConfigOverrideWarning, stacklevel=2)
                values[name] = given[key]
                origins[name] = key
        values["preset"] = preset
        origins["preset"] = preset_origin
        coerced = {}
        for name, val in values.items():
            try:
                coerced[name] = coerce(val, types_by_field[name], name)
            except ValueError as err:
                raise ValueError(f"{err} (set by {origins.get(name, 'the caller')})") from None
        config = cls(**coerced)
        object.__setattr__(config, "_origins", origins)
        return config

    def origin(self, name: str) -> str:
        """Where field ``name`` got its value: ``default``, ``preset <name>``, ``cell`` or the ``BB_*`` variable."""
        return getattr(self, "_origins", {}).get(name, "default")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, ignore_unknown: bool = False):
        """The config that :meth:`to_dict` wrote (a result row's ``config`` JSON); lists become tuples again.

        Args:
            ignore_unknown: drop keys this class has no field for (a subclass's row read as its base class);
                otherwise they are an error. Fields the row lacks (added since) take their defaults.
        """
        types_by_field = cls.field_types()
        unknown = sorted(set(values) - set(types_by_field))
        if unknown and not ignore_unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
        return cls(**{name: coerce(val, types_by_field[name], name) for name, val in values.items()
                      if name in types_by_field})

    def replace(self, **changes: Any):
        """A copy with ``changes`` (strings are coerced like environment values); validated again."""
        types_by_field = self.field_types()
        bad_keys = sorted(set(changes) - set(types_by_field))
        if bad_keys:
            raise ValueError(f"{type(self).__name__} has no field(s) {bad_keys}")
        coerced = {name: coerce(val, types_by_field[name], name) for name, val in changes.items()}
        return dataclasses.replace(self, **coerced)

    def __post_init__(self) -> None:
        self.check_finite()
        self.validate()

    def check_finite(self) -> None:
        """Refuse NaN and infinite values in every float field (and every float of a tuple field), whatever the
        subclass checks: a NaN passes every range check (``nan < 0`` and ``nan > 1`` are both False), and the code
        reading it goes on silently (a NaN dropout reads as "keep the model's own", a NaN lr trains to NaN)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, float) and not math.isfinite(item):
                    raise ValueError(f"{field.name}: {item!r} is not a finite number; give a number "
                                     f"(BB_{field.name.upper()} or the notebook's parameters cell)")

    def validate(self) -> None:
        """Range checks; subclasses extend. Raises ValueError naming the field."""
        if self.preset not in self.PRESETS:
            raise ValueError(f"preset: {self.preset!r} is not one of {sorted(self.PRESETS)}")

    def to_dict(self) -> dict[str, Any]:
        return {name: (list(val) if isinstance(val, tuple) else val) for name, val in dataclasses.asdict(self).items()}

    def recorded(self) -> dict[str, Any]:
        """The config recorded with every result row (runtime fields but ``num_threads`` left out)."""
        skip = (set(self.RUNTIME) - {"num_threads"}) | self._added_at_default()
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def _added_at_default(self) -> set[str]:
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        return {name for name in self.ADDED_FIELDS if getattr(self, name) == defaults[name]}

    def to_json(self) -> str:
        return json.dumps(self.recorded(), sort_keys=True)

    def identity(self) -> dict[str, Any]:
        """The fields that decide what a run computes (``RUNTIME`` left out): run ids hash this."""
        skip = set(self.RUNTIME) | self._added_at_default()
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def __str__(self) -> str:
        """Every field; those not at the class default are marked with where their value came from."""
        width = max(len(name) for name in self.field_types())
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        lines = [f"{type(self).__name__} (preset {self.preset!r}; precedence: default < preset < cell < BB_*)"]
        for name, val in self.to_dict().items():
            default = defaults[name]
            default = list(default) if isinstance(default, tuple) else default
            origin = self.origin(name)
            explicit = origin == "cell" or origin.startswith(("BB_", "automatic"))
            mark = f"   <- {origin if origin != 'default' else 'set in code'}" if val != default or explicit else ""
            lines.append(f"  {name:<{width}} = {val!r}{mark}")
        return "\n".join(lines)

    _repr_pretty_ = lambda self, printer, cycle: printer.text(str(self))  # noqa: E731  (IPython shows str())


def check_range(name: str, value: float, low: float | None = None, high: float | None = None, *,
                low_open: bool = False) -> None:
    """Raise ValueError unless ``low <= value <= high`` (``low < value`` with ``low_open``); NaN and infinities
    are refused whatever the bounds (every comparison with NaN is False, so it would pass any of them)."""
    if not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} is not a finite number")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name}: {value!r} must be {'>' if low_open else '>='} {low}")
    if high is not None and value > high:
        raise ValueError(f"{name}: {value!r} must be <= {high}")


def check_choice(name: str, value: str, choices: typing.Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {choices}")


# Range rules of the training fields several notebook configs share: name -> (low, high, low_open)
TRAINING_RANGES = {"max_len": (8, 8192, False), "batch_size": (1, None, False), "grad_accum": (1, None, False),
                   "lr": (0, 1, True), "weight_decay": (0, None, False), "max_grad_norm": (0, None, False),
                   "num_threads": (0, None, False), "checkpoint_every": (0, None, False),
                   "checkpoint_minutes": (0, None, False)}


def check_training_fields(config) -> None:
    """Apply :data:`TRAINING_RANGES` to those of the fields that ``config`` has."""
    for name, (low, high, low_open) in TRAINING_RANGES.items():
        if hasattr(config, name):
            check_range(name, getattr(config, name), low, high, low_open=low_open)


def _override_items(text: str, normalise: typing.Callable[[str], str], field: str) -> list[tuple[str, str, str, str]]:
    """``(canonical name, field, value, entry as typed)`` for every ``name.field=value`` entry of ``text``."""
    items = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = item.partition("=")
        name, dot, name_field = key.strip().rpartition(".")
        if not sep or not dot:
            raise ValueError(f"{field} (BB_{field.upper()}): {item!r} is not 'name.field=value'")
        try:
            canonical = normalise(name)
        except (KeyError, ValueError) as err:
            raise ValueError(f"{field} (BB_{field.upper()}): {item!r}: unknown name {name!r} ({err})") from None
        items.append((canonical, name_field, value.strip(), item))
    return items


def parse_overrides(text: str, field_types: Mapping[str, Any], normalise: typing.Callable[[str], str],
                    fixed: typing.Iterable[str], field: str) -> dict[str, dict[str, Any]]:
    """Parse ``"name.field=value;..."`` per-task (or per-dataset) changes into ``{name: {field: value}}``.

    Args:
        normalise: maps a name as typed to its canonical form; raises ValueError for an unknown name.
        fixed: fields that cannot be changed per name.
        field: the config field being parsed, for messages (which name it and the entry).
    """
    changes: dict[str, dict[str, Any]] = {}
    fixed = tuple(fixed)
    for canonical, name_field, value, item in _override_items(text, normalise, field):
        if name_field not in field_types or name_field in fixed:
            raise ValueError(f"{field} (BB_{field.upper()}): {item!r}: {name_field!r} cannot be set per name")
        try:
            changes.setdefault(canonical, {})[name_field] = coerce(value, field_types[name_field], name_field)
        except ValueError as err:
            raise ValueError(f"{field} (BB_{field.upper()}): {item!r}: {err}") from None
    return changes


def check_overrides(text: str, normalise: typing.Callable[[str], str], build: typing.Callable[[str], Any],
                    field: str) -> None:
    """Build (and so validate) the config of every name that ``text`` overrides, with ``build(name)`` (e.g.
    ``GlueConfig.for_task``): a bad override is an error when the config is built, naming the entry, and not when its
    task comes up after the earlier ones have trained. Every named task or dataset is checked, run or not.

    Raises:
        ValueError: naming ``field``, its ``BB_*`` variable, the offending entry and what is wrong with it.
    """
    items = _override_items(text, normalise, field)
    for name in dict.fromkeys(canonical for canonical, *_ in items):
        try:
            build(name)
        except ValueError as err:
            entries = [item for canonical, _, _, item in items if canonical == name]
            # the entry whose field the error names (range checks start with it), else all of this name's entries
            named = [item for canonical, name_field, _, item in items
                     if canonical == name and str(err).startswith(f"{name_field}:")]
            raise ValueError(f"{field} (BB_{field.upper()}): entry {'; '.join(named or entries)!r} makes the {name} "
                             f"config invalid: {err}") from None


# ------------------------------------------------------------------------------------------------------- pooling
# Recorded config fields that say which runs a sweep makes or how a process ran, not what one run computed: runs whose
# configs differ only in these may be pooled (a median over seeds, one interval over their predictions). ``runs``,
# ``tasks``, ``datasets``, ``fusions``, ``poolings`` and ``studies`` list a sweep's other runs (the run's own is in its
# variant/task columns); ``fold`` is pooled out of fold under cross-validation.
POOLED_OVER = ("seed", "seeds", "pair_seeds", "fold", "runs", "tasks", "datasets", "fusions", "poolings", "studies",
               "task_overrides", "dataset_overrides", "num_threads", "resume", "checkpoint_every",
               "checkpoint_minutes", "keep_checkpoints", "tensorboard", "predict_test")


def pooling_key(config_json: str) -> str:
    """10 hex digits shared by exactly the runs that may be pooled: the recorded config (the ``config`` column)
    without :data:`POOLED_OVER`. Two learning rates, two subsets or two max lengths give two keys, never one row."""
    config = json.loads(config_json) if config_json else {}
    kept = {key: value for key, value in config.items() if key not in POOLED_OVER}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:10]


def config_differences(configs: list[str]) -> list[str]:
    """For each recorded config (JSON) of a list, the fields (outside :data:`POOLED_OVER`) whose value differs from
    another config of the list, as ``field=value`` text: what tells otherwise-alike table rows apart."""
    parsed = [json.loads(config) if config else {} for config in configs]
    fields = sorted({key for config in parsed for key in config} - set(POOLED_OVER))
    differing = [key for key in fields if len({json.dumps(config.get(key), sort_keys=True) for config in parsed}) > 1]
    return [", ".join(f"{key}={config.get(key)}" for key in differing) for config in parsed]


# settings a study may set per task (task overrides, a learning-rate sweep): runs whose configs differ only in these
# (and in POOLED_OVER) belong to one study, shown in one table, though only runs differing by seed alone are pooled
PER_TASK = ("lr", "epochs", "max_train_examples", "seed", "seeds", "tasks", "task_overrides")


def study_of(config_json: str) -> str:
    """The recorded config without :data:`PER_TASK` and :data:`POOLED_OVER`, as canonical JSON: one value per study."""
    config = json.loads(config_json) if config_json else {}
    return json.dumps({key: value for key, value in config.items() if key not in PER_TASK + POOLED_OVER},
                      sort_keys=True, default=str)
