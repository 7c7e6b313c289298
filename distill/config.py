"""Typed configs loaded from YAML, with `a.b=c` overrides and one-line errors on bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from distill.errors import DistillError

C = TypeVar("C", bound=BaseModel)


class Config(BaseModel):
    """Base of every config: unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping holding one key twice (PyYAML keeps the last one silently:
    a pipeline once ran 172 shards of 7 rows that way). A merge key (`<<: *anchor`) is not a duplicate: the keys
    written beside it override the merged ones, as YAML says."""

    def construct_mapping(self, node, deep=False):
        first: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class names it
                break
            if seen != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (lines {seen} and {key_node.start_mark.line + 1})", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads `2e-5` as a string (its floats need a dot); 1.2 and every user read a float. Without
# this, `learning_rate: 2e-5` reached the optimizer as text and crashed after the model had loaded.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str):
    """YAML text as Python data, refusing duplicate keys: the one YAML reader of every config."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_yaml(path: Path) -> dict:
    """A YAML config file as a mapping; any problem is one line naming the file (and line)."""
    path = Path(path)
    if not path.exists():
        raise DistillError(f"{path}: file not found")
    if path.is_dir():
        raise DistillError(f"{path}: is a directory, expected a YAML file")
    try:
        data = parse_yaml(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DistillError(f"{path}: not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DistillError(f"{path}{at}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DistillError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise DistillError(f"override '{dotted}': '{k}' is not a mapping")
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `key.sub=value` strings; values are parsed as YAML scalars (so `3`, `true`, `[a, b]` work)."""
    for item in overrides or []:
        if "=" not in item:
            raise DistillError(f"override '{item}': expected key=value")
        key, raw = item.split("=", 1)
        set_dotted(data, key.strip(), parse_yaml(raw))
    return data


def parse(cls: type[C], data: dict, source: str | Path) -> C:
    """Validate `data` as `cls`; the first problem becomes `source: field 'a.b': message`."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise DistillError(f"{source}: field '{loc}': {err['msg']}{more}") from None


def load(cls: type[C], path: Path | None, overrides: list[str] | None = None, base: dict | None = None) -> C:
    """Config from an optional YAML file, then `base` defaults beneath it, then overrides on top."""
    data = dict(base or {})
    if path is not None:
        data.update(load_yaml(path))
    apply_overrides(data, overrides or [])
    return parse(cls, data, path or "config")
