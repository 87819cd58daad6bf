"""The mailbox operators as data (``mappings/mailbox_suppliers.yaml``): which ``ServiceSupplier``
Id is which mailbox, and the ``ServiceAdress`` prefixes a letter may go to (the allowlist).

Loaded and checked when the adapter is built (start-up): a broken table refuses to start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway import yamlio
from gateway.domain.documents import MailboxProvider
from gateway.errors import ConfigurationError
from gateway.mappings import DEFAULT_DIR

DEFAULT_FILE = DEFAULT_DIR / "mailbox_suppliers.yaml"


def _prefix_ok(prefix: str) -> str:
    parts = urlsplit(prefix)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"service address {prefix!r} is not an http(s) URL with a host")
    return prefix


class Supplier(BaseModel):
    """One operator: its organisation number as Mina meddelanden writes it, and where it takes mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^16\d{10}$", description="ServiceSupplier Id: 16 + the org number.")
    mailbox: MailboxProvider
    name: str = Field(min_length=1)
    service_addresses: tuple[str, ...] = ()

    @field_validator("service_addresses")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_prefix_ok(v) for v in value)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suppliers: tuple[Supplier, ...]


def allowed(address: str, prefixes: Sequence[str]) -> bool:
    """``address`` is under one of ``prefixes``: same scheme, host and port, and the path below."""
    try:
        got = urlsplit(address)
        port = got.port
    except ValueError:
        return False
    for prefix in prefixes:
        want = urlsplit(prefix)
        if (
            got.scheme == want.scheme
            and got.hostname == want.hostname
            and port == want.port
            and got.path.startswith(want.path)
            and not got.username
            and not got.password
        ):
            return True
    return False


@dataclass(frozen=True)
class SupplierTable:
    """The operators by ``ServiceSupplier`` Id, with the extra addresses settings allow."""

    by_id: Mapping[str, Supplier]

    def address_allowed(self, supplier: Supplier, address: str) -> bool:
        return allowed(address, supplier.service_addresses)

    def with_addresses(self, extra: Mapping[str, Sequence[str]]) -> SupplierTable:
        """The table with ``extra`` prefixes per supplier Id (``"*"``: every supplier)."""
        unknown = sorted(set(extra) - set(self.by_id) - {"*"})
        if unknown:
            raise ConfigurationError(f"GATEWAY_MAILBOX_SERVICE_ADDRESSES names unknown suppliers: {unknown}")
        every = tuple(_checked(extra.get("*", ())))
        table: dict[str, Supplier] = {}
        for sid, s in self.by_id.items():
            addresses = (*s.service_addresses, *every, *_checked(extra.get(sid, ())))
            table[sid] = s.model_copy(update={"service_addresses": addresses})
        return SupplierTable(table)


def _checked(prefixes: Sequence[str]) -> list[str]:
    try:
        return [_prefix_ok(p) for p in prefixes]
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_MAILBOX_SERVICE_ADDRESSES: {exc}") from exc


def load_suppliers(path: Path | None = None) -> SupplierTable:
    """Read and check the table; ``ConfigurationError`` naming the file and what is wrong."""
    path = path or DEFAULT_FILE
    try:
        with path.open(encoding="utf-8") as fh:
            data = yamlio.safe_load(fh)
        table = _Table.model_validate(data)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"mailbox supplier table missing: {path}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"mailbox supplier table {path.name} is invalid: {exc}") from exc
    by_id: dict[str, Supplier] = {}
    for supplier in table.suppliers:
        if supplier.id in by_id:
            raise ConfigurationError(f"mailbox supplier table {path.name}: {supplier.id} is listed twice")
        by_id[supplier.id] = supplier
    return SupplierTable(by_id)
