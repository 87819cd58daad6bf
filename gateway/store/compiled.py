"""Write statements compiled once by SQLAlchemy and run on the DB-API cursor (the hot paths).

SQLAlchemy's per-execution work (an execution context, the parameters processed inside the
call, a result object) cost the inbox's writer more than its fsync did, and in the processing
worker it ran while the statement held SQLite's one write lock, which the inbox needs for every
batch it acknowledges. Here the SQL is SQLAlchemy's own, compiled once per dialect and set of
keys, and each value goes through its column type's own bind processor before any statement
runs (on SQLite, a timestamp becomes the same text SQLAlchemy writes), so rows read back
exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import NullType


class Compiled:
    """One INSERT or UPDATE for rows with the given keys (its bind names and SET columns)."""

    def __init__(self, stmt: UpdateBase, dialect: Dialect, keys: Iterable[str], table: Table) -> None:
        keys = list(keys)
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        self.sql = compiled.string
        self.positional = bool(dialect.positional)
        binds = compiled.binds
        names = list(compiled.positiontup or ()) if self.positional else list(binds)
        escaped: dict[str, str] = dict(compiled.escaped_bind_names or {})
        # Values the statement carries itself (``.values(state=WAITING)``, ``attempts + 1``).
        self._defaults = {name: binds[name].effective_value for name in binds if name not in keys}
        processors: dict[str, Any] = {}
        for name, bind in binds.items():
            type_ = bind.type
            if isinstance(type_, NullType) and name in table.c:
                type_ = table.c[name].type
            processor = type_._cached_bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        # Laid out once for params(), the hot path: per value its name and default, and the
        # positions that go through a bind processor.
        #: The bind names in the order a positional driver takes them.
        self.names = names
        self._plan = [(name, self._defaults.get(name, _REQUIRED)) for name in names]
        self._keys = [escaped.get(name, name) for name in names]
        self._processed = [(i, processors[name]) for i, name in enumerate(names) if name in processors]

    def params(self, row: Mapping[str, Any]) -> Any:
        """The driver's parameters for one row (a tuple, or a dict for named paramstyles)."""
        get = row.get
        values = [row[name] if default is _REQUIRED else get(name, default) for name, default in self._plan]
        for i, processor in self._processed:
            values[i] = processor(values[i])
        if self.positional:
            return tuple(values)
        return dict(zip(self._keys, values, strict=True))


#: No default: the row must have the value.
_REQUIRED = object()


class CompiledCache:
    """:class:`Compiled` statements by (statement, keys), for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._cache: dict[tuple[int, tuple[str, ...]], Compiled] = {}

    def get(self, stmt: UpdateBase, keys: Sequence[str], table: Table) -> Compiled:
        key = (id(stmt), tuple(keys))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = Compiled(stmt, self._dialect, keys, table)
        return found
