"""YAML read with libyaml when the installed PyYAML has it (about ten times faster than the
pure-Python reader; the mappings, the supplier table and the mock population are read at every
start), else with PyYAML's own safe reader. Safe either way: plain data, no Python objects."""

from __future__ import annotations

from typing import IO, Any

import yaml

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    return yaml.load(stream, Loader=_LOADER)
