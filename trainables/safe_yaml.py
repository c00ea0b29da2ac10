"""The one YAML loader of the project: safe, bounded, strict about duplicate keys.

Every YAML that enters (spec files, ``--set`` values of ``run``, ``submit`` and
``train``) goes through :func:`load_yaml`. It builds plain data only (PyYAML's safe
loader), reads ``2e-4`` as a float as YAML 1.2 does, and bounds what a document may
expand to before anything is built from it: an alias bomb ("billion laughs") is a few
hundred bytes that expand to billions of values, which later validation would walk. So
the text, the number of aliases, the expanded number of values and the nesting depth
have limits far above any real spec, and a document over one fails at once with one
line. A key given twice in one mapping is an error (PyYAML keeps the last silently).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from trainables.errors import ConfigError

__all__ = ["MAX_TEXT_BYTES", "MAX_ALIASES", "MAX_VALUES", "MAX_DEPTH", "load_yaml", "load_yaml_file"]

MAX_TEXT_BYTES = 1 << 20
MAX_ALIASES = 1_000
MAX_VALUES = 100_000
MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _LimitExceeded(yaml.YAMLError):
    """A document over one of the limits."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the limits of this module and duplicate keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _LimitExceeded(f"more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)

    def construct_document(self, node: Node) -> Any:
        _measure(node, 1, {}, set())
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:  # `<<: *base` may be overridden by the keys after it
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise ConstructorError(None, None, f"duplicate key {key!r} in a mapping", key_node.start_mark)
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _measure(node: Node, depth: int, memo: dict[int, tuple[int, int]], active: set[int]) -> tuple[int, int]:
    """Values and nesting depth ``node`` expands to, without expanding it: an aliased node
    is measured once (``memo``: id to size and height). Raises :class:`_LimitExceeded`."""
    key = id(node)
    if key in active:
        raise _LimitExceeded("an alias refers to a node that contains it (a recursive document)")
    if key in memo:
        size, height = memo[key]
    else:
        if depth > MAX_DEPTH:
            raise _LimitExceeded(f"values nested more than {MAX_DEPTH} levels deep")
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        active.add(key)
        size, height = 1, 1
        for child in children:
            child_size, child_height = _measure(child, depth + 1, memo, active)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_VALUES:
                raise _LimitExceeded(f"it expands to more than {MAX_VALUES} values (an alias bomb?)")
        active.discard(key)
        memo[key] = size, height
    if depth + height - 1 > MAX_DEPTH:
        raise _LimitExceeded(f"values nested more than {MAX_DEPTH} levels deep")
    return size, height


def _describe(error: yaml.YAMLError) -> str:
    """A YAML error as one line: where, and what is wrong."""
    if isinstance(error, _LimitExceeded):
        return f"refused: {error}"
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or error.context or "invalid YAML"
        return f"not valid YAML{where}: {' '.join(str(problem).split())}"
    return f"not valid YAML: {' '.join(str(error).split())}"


def load_yaml(text: str, *, source: str = "YAML") -> Any:
    """Parse one YAML document into plain data, within this module's limits.

    Args:
        text: the document.
        source: what it is, for errors, e.g. the spec file or ``--set key=value``.

    Raises:
        ConfigError: for invalid YAML, a duplicate key or a document over a limit.
    """
    source = source if len(source) <= 80 else source[:77] + "..."
    if len(text) > MAX_TEXT_BYTES:
        raise ConfigError(f"{source}: refused: longer than {MAX_TEXT_BYTES} characters")
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None
    except RecursionError:  # brackets nested thousands deep, before any limit is checked
        raise ConfigError(f"{source}: refused: values nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path, *, what: str = "file") -> Any:
    """Read a UTF-8 YAML file of at most :data:`MAX_TEXT_BYTES` and parse it with :func:`load_yaml`.

    Raises:
        ConfigError: for a missing, unreadable, oversized or non-UTF-8 file, or bad YAML.
    """
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_TEXT_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise ConfigError(f"{path}: refused: larger than {MAX_TEXT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None
    return load_yaml(text, source=str(path))
