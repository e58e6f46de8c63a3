"""Up-front checks of the SDK's stream maps, so a bad map fails before the first record."""

from __future__ import annotations

import ast
from typing import Any


def missing_map_config(config: dict[str, Any]) -> str | None:
    """The first `config['key']` a stream map expression reads that `stream_map_config` does
    not set (absent or null), as one error line; None when every key is there.

    The SDK evaluates map expressions per record, so such a map would otherwise fail with a
    KeyError in the middle of a stream, after earlier streams' STATE was written.
    """
    maps = config.get("stream_maps")
    given = config.get("stream_map_config")
    available = {k for k, v in given.items() if v is not None} if isinstance(given, dict) else set()
    if not isinstance(maps, dict):
        return None
    for stream, mapping in maps.items():
        for prop, expression in (mapping.items() if isinstance(mapping, dict) else ()):
            for key in _config_keys(expression):
                if key not in available:
                    return (f"stream_maps.{stream}.{prop} reads config['{key}'], but "
                            f"stream_map_config does not set {key} (under Meltano: is the "
                            "environment variable it comes from set?)")
    return None


def _config_keys(expression: Any) -> list[str]:
    """Constant keys of `config[...]` subscripts in one map expression."""
    if not isinstance(expression, str):
        return []
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return []  # the SDK reports it
    return [node.slice.value for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == "config" and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)]
