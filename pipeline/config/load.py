"""Load a run config from YAML with ``--set`` overrides; messages, canonical hash, resolved file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from pipeline.config.sections import RunConfig
from pipeline.errors import ConfigError
from pipeline.io.atomic import write_text_atomically


def duplicate_key(text: str) -> tuple[str, int, int] | None:
    """The first key repeated within one YAML mapping: ``(dotted path, first line, repeated line)``, or None.

    PyYAML keeps the last of repeated keys silently (YAML 1.2 forbids them), so a config with
    ``region`` twice ran with whichever came last. Merge keys (``<<``) may be overridden.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    seen_nodes: set[int] = set()

    def walk(node, path: list[str]):
        if node is None or id(node) in seen_nodes:  # an alias of a node already checked
            return None
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for k, v in node.value:
                if k.tag == "tag:yaml.org,2002:merge":
                    continue
                name = k.value if isinstance(k, yaml.ScalarNode) else None
                if name is not None:
                    if name in keys:
                        return ".".join([*path, name]), keys[name], k.start_mark.line + 1
                    keys[name] = k.start_mark.line + 1
                found = walk(v, [*path, str(name)])
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                found = walk(v, [*path, str(i)])
                if found:
                    return found
        return None

    return walk(root, [])


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set override '{item}' has no '='; write it as section.key=value, e.g. seed=1")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set override '{item}' has an empty key part; write it as section.key=value")
    try:
        dup = duplicate_key(raw) if raw.strip() else None
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set override '{item}': the value is not valid YAML ({getattr(err, 'problem', err)}); "
                          "quote it, e.g. --set 'report.title=\"a: b\"'") from None
    if dup:
        raise ConfigError(f"--set override '{item}': the key '{dup[0]}' appears twice in the value; give it once")
    return parts, value


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply ``a.b=c`` overrides (values parsed as YAML; list items by index) to a raw config dict."""
    for item in overrides or []:
        parts, value = _parse_override(item)
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, part, item)]
            elif isinstance(node.get(part, {}), (dict, list)):
                node = node.setdefault(part, {})
            else:
                node = None
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, item)] = value
        else:
            node[last] = value
    return raw


def _list_index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override '{item}': '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def _model_entry(kind: str):
    """The config class of a ``models:`` entry of ``kind`` (None for an unknown kind)."""
    from pipeline.config.models import _ENTRIES

    return next((c for c in _ENTRIES if c.model_fields["kind"].annotation.__args__[0] == kind), None)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> tuple[str, list[str]]:
    """Walk a validation error location to the section it points into; return its name and keys."""
    section, cls = "top level", model
    shown = []
    for i, part in enumerate(loc[:-1]):
        if loc[:1] == ("models",) and i == 2:  # the union's tag: the entry's kind
            cls = _model_entry(part)
            continue
        if isinstance(part, int) or cls is None:
            shown.append(str(part))
            continue
        field = cls.model_fields.get(part)
        if field is None:
            break
        shown.append(str(part))
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or ())]
        cls = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        section = f"section '{'.'.join(shown)}'"
    return section, sorted(cls.model_fields) if cls else []


def _where(loc: tuple, raw: dict | None) -> str:
    """A location for messages; a model entry is named by its name and kind (``models.1 (xgboost 'xgb')``)."""
    if len(loc) >= 3 and loc[0] == "models" and isinstance(loc[1], int):
        name = None
        if raw and isinstance(raw.get("models"), list) and loc[1] < len(raw["models"]):
            entry = raw["models"][loc[1]]
            name = entry.get("name") if isinstance(entry, dict) else None
        head = f"models.{loc[1]} ({loc[2]} model" + (f" '{name}')" if name else ")")
        return ".".join([head, *(str(p) for p in loc[3:])])
    return ".".join(str(p) for p in loc) or "(top level)"


def _from_override(loc: tuple, msg: str, overrides) -> str | None:
    """The ``--set`` item that put the value at ``loc`` there (the last that covers it), or None.

    An override covers ``loc`` when it set that key or a section above it; a problem of a whole
    section (a cross-field check, ``loc`` above the override's key) only when its message names
    the key the override set.
    """
    loc_s = [str(p) for p in loc]
    hit = None
    for parts, item in overrides or ():
        if parts[: len(loc_s)] == loc_s[: len(parts)] and (
                len(parts) <= len(loc_s) or parts[len(loc_s)] in msg):
            hit = item
    return hit


def format_validation_error(err: ValidationError, source: str, raw: dict | None = None,
                            overrides: list[tuple[list[str], str]] | None = None) -> str:
    """One readable message for every problem pydantic found, naming key, section and fix.

    A problem with a value that a ``--set`` override put there is reported as ``in --set
    KEY=VALUE: ...``, not as a problem of the file ``source``.
    """
    from pipeline.config.models import MODEL_KINDS

    lines = []
    tagged = []
    for e in err.errors():
        loc = tuple(e["loc"])
        tagged.append(_from_override(loc, str(e.get("msg", "")), overrides))
        where = _where(loc, raw)
        if e["type"] == "extra_forbidden":
            section, allowed = _allowed_keys(RunConfig, loc)
            if loc[:1] == ("models",) and len(loc) >= 3:
                section = f"'{_where(loc[:-1], raw)}'"
            lines.append(f"unknown key '{loc[-1]}' in {section}; allowed keys: {', '.join(allowed)}")
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            got = (e.get("ctx") or {}).get("tag")
            what = f"unknown model kind {got!r}" if got else "a model entry without 'kind'"
            lines.append(f"'{where}': {what}; available kinds: {', '.join(MODEL_KINDS)} "
                         "(`terrascale models` lists them with their tasks and parameters)")
        elif e["type"] == "missing":
            lines.append(f"'{where}' is required but missing")
        else:
            got = e.get("input")
            shown = repr(got) if not isinstance(got, dict) else "a mapping"
            lines.append(f"'{where}': {e['msg']} (got {shown})")
    lines = [f"in --set {item}: {line}" if item else line for item, line in zip(tagged, lines)]
    if tagged and all(tagged):
        return "; ".join(lines)
    return f"invalid config {source}: " + "; ".join(lines)


def resolve_config(raw: dict, source: str = "(dict)", *,
                   overrides: list[tuple[list[str], str]] | None = None) -> RunConfig:
    """Validate a raw config mapping into a :class:`RunConfig`, with a readable error.

    ``overrides``: ``(key parts, "KEY=VALUE")`` of the ``--set`` items applied to ``raw``, so
    that their problems are reported as theirs.
    """
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, raw, overrides)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML config file, apply ``--set`` overrides and validate it.

    Parameters
    ----------
    path
        YAML file; ``None`` starts from the defaults.
    overrides
        ``"section.key=value"`` strings, values parsed as YAML.

    Returns
    -------
    RunConfig
        The resolved configuration (all defaults filled in).
    """
    raw: dict = {}
    source = "(defaults)"
    if path is not None:
        path = Path(path)
        source = str(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a directory; pass a YAML file such as configs/demo.yaml")
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass the path of a YAML config such as configs/demo.yaml")
        try:
            text = path.read_text(encoding="utf-8")
            dup = duplicate_key(text)
            raw = yaml.safe_load(text) or {}
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read as UTF-8 text ({err}); pass a YAML file") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"config file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
        if dup:
            key, first, again = dup
            raise ConfigError(f"config file {path}: the key '{key}' appears twice (lines {first} and {again}); YAML "
                              "would keep only the last one silently: remove one of them")
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    parsed = [(_parse_override(item)[0], item) for item in overrides or []]
    return resolve_config(raw, source, overrides=parsed)


def config_dict(cfg: RunConfig) -> dict:
    """The resolved config as plain JSON-compatible data."""
    return cfg.model_dump(mode="json")


def config_sha256(cfg: RunConfig) -> str:
    """sha256 of the canonical JSON of the resolved config."""
    canonical = json.dumps(config_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML text (loads back to the same config and sha256)."""
    return yaml.safe_dump(config_dict(cfg), sort_keys=False)


def write_resolved_config(cfg: RunConfig, run_dir: str | Path) -> Path:
    """Write ``config.resolved.yaml`` and ``config.sha256`` into the run directory."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / "config.resolved.yaml"
        write_text_atomically(target, dump_config(cfg))
        write_text_atomically(run_dir / "config.sha256", config_sha256(cfg) + "\n")
    except OSError as err:
        raise ConfigError(f"cannot write the resolved config into {run_dir} ({err}); set output.root to a writable directory") from None
    return target
