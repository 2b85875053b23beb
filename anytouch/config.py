"""Layered run configuration: dataclass defaults -> YAML files -> ``key.sub=value`` overrides.

Every entry point (training stages, probes, the CLI) describes its settings as a tree of dataclasses and calls
:func:`load_config`. Rules:

* YAML files are merged in the order given; later files win. A file name that is not an existing path is looked up
  like a group file (:func:`resolve_config_file`): ``--config configs/probe_tag.yaml`` works from any folder, and
  from an installed package (which ships the ``configs/`` folder as ``anytouch/configs``).
* ``key.sub=value`` overrides come last. Values are parsed as YAML and coerced to the field's declared type
  (``lr=2e-4`` is a float even though YAML 1.1 would read it as a string).
* ``section=name`` where ``section`` is itself a dataclass loads the group file ``configs/<section>/<name>.yaml``
  into that section (``model=tiny``, ``data=synthetic``). The same works inside YAML (``model: tiny``).
* An unknown key is a :class:`ConfigError` naming the full dotted key and the closest valid one.
* Every batch-size setting (a key ending in ``batch_size``, in any entry point) is checked here, when it is set: a
  positive integer, or a dict of them over the loaders its default names (``train.batch_size.image``).

The resolved config is turned back into a plain dict with :func:`to_dict`, saved next to every run with
:func:`save_config` and read back with :func:`from_dict`.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Type, TypeVar, Union

import yaml

T = TypeVar("T")

PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"

__all__ = [
    "ConfigError",
    "config_dirs",
    "resolve_config_file",
    "load_config",
    "apply_overrides",
    "merge_dict",
    "from_dict",
    "to_dict",
    "save_config",
    "parse_cli",
    "config_help",
]


class ConfigError(ValueError):
    """A config file or override does not match the schema."""


def config_dirs() -> list[Path]:
    """Folders searched for config files and group files (``<dir>/<section>/<name>.yaml``), in order.

    ``$ANYTOUCH_CONFIG_DIR``, then ``./configs``, then the configs shipped with the package (``anytouch/configs``,
    in a source checkout a link to the top-level ``configs/``), then the ``configs/`` folder of the source checkout.
    """
    dirs = []
    if os.environ.get("ANYTOUCH_CONFIG_DIR"):
        dirs.append(Path(os.environ["ANYTOUCH_CONFIG_DIR"]))
    dirs.append(Path.cwd() / "configs")
    dirs.append(PACKAGED_CONFIGS)
    dirs.append(PACKAGED_CONFIGS.parent.parent / "configs")
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            out.append(d)
    return out


def resolve_config_file(name: Union[str, Path]) -> Path:
    """A ``--config`` file: ``name`` itself when it exists, else ``name`` (without a leading ``configs/``, with
    ``.yaml`` added when it has no suffix) in each of :func:`config_dirs`; raises ConfigError naming the places."""
    path = Path(name)
    if path.is_file():
        return path
    rel = Path(*path.parts[1:]) if len(path.parts) > 1 and path.parts[0] == "configs" else path
    if not rel.suffix:
        rel = rel.with_suffix(".yaml")
    for d in config_dirs():
        if (d / rel).is_file():
            return d / rel
    raise ConfigError(f"config file not found: {name} (looked in the current folder and as {rel} in "
                      f"{', '.join(map(str, config_dirs()))})")


def _group_file(section: str, name: str) -> Path:
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    for d in config_dirs():
        p = d / section / f"{name}.yaml"
        if p.is_file():
            return p
    avail = sorted({p.stem for d in config_dirs() if (d / section).is_dir() for p in (d / section).glob("*.yaml")})
    raise ConfigError(f"no config group '{section}={name}'; available: {', '.join(avail) or '(none)'}")


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp, key: str) -> Any:
    """Coerce a parsed YAML value to the declared field type; raise ConfigError on mismatch."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"config key '{key}' must not be null")
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                return value.lower() in ("true", "yes", "1", "on")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (list, tuple, Sequence) or tp in (list, tuple):
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            args = typing.get_args(tp)
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(args) != len(value):
                    raise ValueError
                return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            inner = args[0] if args else Any
            out = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
            return tuple(out) if origin is tuple else out
        if origin in (dict, Mapping) or tp is dict:
            if not isinstance(value, dict):
                raise ValueError
            args = typing.get_args(tp)
            inner = args[1] if len(args) == 2 else Any
            return {str(k): _coerce(v, inner, f"{key}.{k}") for k, v in value.items()}
        if origin is typing.Literal:
            if value not in typing.get_args(tp):
                raise ConfigError(f"config key '{key}' = {value!r}; expected one of {list(typing.get_args(tp))}")
            return value
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' = {value!r} is not a valid {getattr(tp, '__name__', tp)}") from None
    return value


def _closest(name: str, options: Iterable[str]) -> str:
    m = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{m[0]}'?" if m else ""


def _field_error(obj, name: str, prefix: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(obj)]
    return ConfigError(
        f"unknown config key '{prefix}{name}'{_closest(name, names)} (valid keys under "
        f"'{prefix.rstrip('.') or '<top>'}': {', '.join(names)})"
    )


def merge_dict(obj: T, data: Mapping[str, Any], prefix: str = "") -> T:
    """Return a copy of dataclass ``obj`` with ``data`` (nested dict) merged in. Unknown keys raise."""
    if data is None:
        return obj
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {data!r}")
    hints = _hints(type(obj))
    changes = {}
    fields = {f.name for f in dataclasses.fields(obj)}
    for k, v in data.items():
        if k not in fields:
            raise _field_error(obj, k, prefix)
        cur = changes.get(k, getattr(obj, k))
        key = f"{prefix}{k}"
        if dataclasses.is_dataclass(cur):
            if isinstance(v, str):
                v = _read_yaml(_group_file(k, v))
            changes[k] = merge_dict(cur, v, key + ".")
        elif isinstance(cur, dict) and isinstance(v, Mapping):
            merged = dict(cur)
            merged.update(_coerce(dict(v), hints[k], key))
            changes[k] = merged
        else:
            changes[k] = _coerce(v, hints[k], key)
        if k.endswith("batch_size"):
            _check_batch_size(obj, k, changes[k], key)
    return dataclasses.replace(obj, **changes)


def _check_batch_size(obj, name: str, value: Any, key: str) -> None:
    """A batch size is a positive integer; a per-loader dict may name only the loaders of the field's default (the
    loaders of that stage: image and video for stage 1, plus image_cross and video_cross for stage 2)."""
    if isinstance(value, dict):
        loaders = next(f for f in dataclasses.fields(obj) if f.name == name).default_factory()
        unknown = sorted(set(value) - set(loaders))
        if unknown:
            raise ConfigError(f"{key} has unknown loader(s) {unknown}; valid keys: {', '.join(loaders)}")
        bad = {k: v for k, v in value.items() if not isinstance(v, int) or v < 1}
    else:
        bad = value if value is not None and value < 1 else {}
    if bad != {}:
        raise ConfigError(f"{key} {bad}: a batch size must be a positive integer")


def _read_yaml(path: Union[str, Path]) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with open(path) as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _set_dotted(obj, dotted: str, raw: str):
    parts = dotted.split(".")
    head, rest = parts[0], parts[1:]
    fields = {f.name for f in dataclasses.fields(obj)}
    if head not in fields:
        raise _field_error(obj, head, "")
    value = yaml.safe_load(raw) if raw != "" else ""
    nested: Any = value
    for p in reversed(rest):
        nested = {p: nested}
    return merge_dict(obj, {head: nested})


def apply_overrides(obj: T, overrides: Iterable[str]) -> T:
    """Apply ``key.sub=value`` strings in order."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            obj = _set_dotted(obj, key, raw)
        except ConfigError as e:
            # re-anchor nested error messages on the full dotted key
            raise ConfigError(f"{e} [from override '{item}']") from None
    return obj


def load_config(
    schema: Type[T],
    files: Sequence[Union[str, Path]] = (),
    overrides: Sequence[str] = (),
) -> T:
    """Build a config: defaults of ``schema`` -> each YAML file -> each override."""
    cfg = schema()
    for f in files:
        cfg = merge_dict(cfg, _read_yaml(resolve_config_file(f)))
    return apply_overrides(cfg, overrides)


def to_dict(cfg) -> dict:
    """Plain nested dict (lists for tuples) suitable for YAML, JSON and ``torch.save(weights_only=True)``."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return conv(cfg)


def from_dict(schema: Type[T], data: Mapping[str, Any]) -> T:
    """Inverse of :func:`to_dict` (strict: unknown keys raise)."""
    return merge_dict(schema(), data)


def save_config(cfg, path: Union[str, Path]) -> Path:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
    os.replace(tmp, path)
    return path


def config_help(schema: type, doc: str = "", prog: str = "python -m <entry point>") -> str:
    """Usage, ``doc`` and every config key of ``schema`` with its default, one ``key.sub=value`` per line."""
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and k not in _DICT_VALUES:
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"  {prefix}{k}={v}"

    files = sorted({p.name for d in config_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    return (f"usage: {prog} [--config FILE]... [key.sub=value]... [--print-config]\n\n{(doc or '').strip()}\n\n"
            f"config files (configs/): {', '.join(files) or '(none found)'}\n"
            "groups: model=<preset> (configs/model/), data=synthetic (configs/data/)\n\n"
            "config keys and their defaults:\n" + "\n".join(flat(to_dict(schema()))))


_DICT_VALUES = ("batch_size", "repeats", "paths", "grid")  # dict-valued settings shown as one value in help


def parse_cli(argv: Sequence[str], schema: Optional[type] = None, doc: str = "",
              prog: str = "python -m <entry point>") -> tuple[list[str], list[str]]:
    """Split ``[--config FILE]... [key=value]...`` into (files, overrides).

    With ``-h`` / ``--help`` anywhere, print :func:`config_help` for ``schema`` and exit; with ``--print-config``,
    print the resolved config (defaults, then the files, then the overrides; validated) as YAML and exit.
    """
    if any(a in ("-h", "--help") for a in argv):
        print(config_help(schema, doc, prog) if schema is not None else
              f"usage: {prog} [--config FILE]... [key.sub=value]...\n\n{(doc or '').strip()}")
        raise SystemExit(0)
    files, overrides, show = [], [], False
    it = iter(argv)
    for a in it:
        if a == "--print-config":
            show = True
            continue
        if a in ("--config", "-c"):
            try:
                files.append(next(it))
            except StopIteration:
                raise ConfigError("--config needs a file path") from None
        elif a.startswith("--config="):
            files.append(a.split("=", 1)[1])
        elif "=" in a:
            overrides.append(a)
        else:
            raise ConfigError(f"unexpected argument '{a}'; expected --config FILE, key.sub=value or --print-config")
    if show:  # the resolved config (defaults <- files <- overrides), checked, as YAML; nothing runs
        if schema is None:
            raise ConfigError("--print-config: this entry point has no config schema")
        print(yaml.safe_dump(to_dict(load_config(schema, files, overrides)), sort_keys=False), end="")
        raise SystemExit(0)
    return files, overrides
