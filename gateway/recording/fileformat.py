"""The recording file: JSON Lines, one exchange a line, the first line a header (docs/recording.md).

Every line is an object with ``type``: ``recording`` (the header, first), ``inbound`` (a message
as the journal sent it, with the ACK it got), ``outbound`` (a call to an outside system with its
answer) or ``output`` (a FHIR resource as it stood after the recording, with the message that
last changed it). Bytes are text when they are UTF-8 (``body``, ``raw``), else base64
(``body_b64``, ``raw_b64``), so a file reads in an editor and still gives back every byte.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.errors import InvalidRequest

FORMAT = "gateway-recording"
VERSION = 1
TYPES = ("recording", "inbound", "outbound", "output")


class RecordingFormatError(InvalidRequest):
    """A recording file that is not one, or of a version this gateway cannot read."""


def put_bytes(target: dict[str, Any], name: str, data: bytes) -> None:
    """``target[name]`` as text when ``data`` is UTF-8, else ``target[name + '_b64']``."""
    try:
        target[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        target[name + "_b64"] = base64.b64encode(data).decode("ascii")


def get_bytes(source: dict[str, Any], name: str) -> bytes:
    if name in source and source[name] is not None:
        return str(source[name]).encode("utf-8")
    encoded = source.get(name + "_b64")
    return base64.b64decode(encoded) if encoded else b""


def dumps(line: dict[str, Any]) -> bytes:
    return orjson.dumps(line) + b"\n"


@dataclass(slots=True)
class Recording:
    """A recording read into memory: the header and the lines of each type, in file order."""

    header: dict[str, Any]
    inbound: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> Iterator[dict[str, Any]]:
        yield self.header
        yield from self.inbound
        yield from self.outbound
        yield from self.outputs


def header(**about: Any) -> dict[str, Any]:
    return {"type": "recording", "format": FORMAT, "version": VERSION, **about}


def write(path: Path | IO[bytes], lines: Iterable[dict[str, Any]]) -> int:
    """Write the lines (the header first); returns how many were written."""
    count = 0
    if isinstance(path, Path):
        with path.open("wb") as out:
            return write(out, lines)
    for line in lines:
        path.write(dumps(line))
        count += 1
    return count


def read(path: Path) -> Recording:
    """Read and check a recording file: the header first, a version we know, known line types."""
    try:
        with path.open("rb") as f:
            return parse(f)
    except OSError as exc:
        raise RecordingFormatError(f"cannot read {path}: {exc}") from exc


def parse(stream: Iterable[bytes]) -> Recording:
    recording: Recording | None = None
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RecordingFormatError(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(line, dict) or line.get("type") not in TYPES:
            raise RecordingFormatError(f"line {number} has no known type ({', '.join(TYPES)})")
        if recording is None:
            if line["type"] != "recording" or line.get("format") != FORMAT:
                raise RecordingFormatError(f"line {number}: a recording starts with its header line")
            if line.get("version") != VERSION:
                raise RecordingFormatError(
                    f"recording version {line.get('version')!r}; this gateway reads version {VERSION}"
                )
            recording = Recording(line)
            continue
        kind = line["type"]
        if kind == "inbound":
            recording.inbound.append(line)
        elif kind == "outbound":
            recording.outbound.append(line)
        elif kind == "output":
            recording.outputs.append(line)
        else:
            raise RecordingFormatError(f"line {number}: a second header")
    if recording is None:
        raise RecordingFormatError("empty file: no recording header")
    return recording
