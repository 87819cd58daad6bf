"""A small, fast reader for HL7 v2 ER7 (pipe-delimited) messages.

hl7apy is the reference for HL7 v2 (it builds the test messages' structure checks and validates
ACKs in the tests), but a full hl7apy parse costs ~8 ms a message. The intake hot path only
needs to split on the message's own delimiters and decode escapes, which costs microseconds;
``tests/unit/test_hl7_reference.py`` checks this reader against hl7apy on the same messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import Location, MalformedMessage

# MSH-18 values (HL7 table 0211) -> codec, named as IANA registers it (the HTTP transport puts
# the name in its Content-Type charset) and Python knows it.
CHARSETS: dict[str, str] = {
    "": "utf-8",  # not stated: try UTF-8, then ISO 8859-1 (see decode)
    "ASCII": "us-ascii",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
}


@dataclass(frozen=True, slots=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_DELIMITERS = Delimiters()


def _msh_field_bytes(raw: bytes, number: int) -> bytes | None:
    """MSH-``number`` as raw bytes, read before the message is decoded (MSH is ASCII)."""
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 4:
        return None
    end = len(raw)
    for sep in (b"\r", b"\n"):
        pos = raw.find(sep, start)
        if 0 <= pos < end:
            end = pos
    line = raw[start:end]
    fs = line[3:4]
    if not fs:  # "MSH" and then the end of the line: no field separator, so no fields
        return None
    parts = line.split(fs)
    # parts[0] is "MSH", parts[1] is MSH-2; MSH-n is parts[n-1] for n >= 2.
    return parts[number - 1] if len(parts) >= number else b""


def decode(raw: bytes) -> tuple[str, str]:
    """Decode a message's bytes by its MSH-18 character set; return (text, MSH-18 value)."""
    declared_bytes = _msh_field_bytes(raw, 18)
    declared = (declared_bytes or b"").decode("ascii", "replace").strip()
    # MSH-18 may repeat; the first repetition is the one the message is written in.
    declared = declared.split("~", 1)[0].split("^", 1)[0].strip()
    codec = CHARSETS.get(declared.upper())
    if codec is None:
        raise MalformedMessage(
            f"character set {declared!r} is not supported (use 8859/1 or UNICODE UTF-8)",
            Location("MSH", 18),
            code="103",
        )
    try:
        return raw.decode(codec), declared
    except UnicodeDecodeError as exc:
        if declared == "":
            # Many Swedish journals send ISO 8859-1 without saying so.
            return raw.decode("latin-1"), declared
        raise MalformedMessage(
            f"message bytes are not valid {declared} at byte {exc.start}",
            Location("MSH", 18),
            code="102",
        ) from exc


_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")


class Segment:
    """One segment; ``fields[n]`` is HL7 field n (for MSH, fields[1] is the field separator)."""

    __slots__ = ("delimiters", "fields", "name")

    def __init__(self, name: str, fields: list[str], delimiters: Delimiters) -> None:
        self.name = name
        self.fields = fields
        self.delimiters = delimiters

    def raw(self, field: int) -> str:
        return self.fields[field] if field < len(self.fields) else ""

    def repetitions(self, field: int) -> list[str]:
        raw = self.raw(field)
        return raw.split(self.delimiters.repetition) if raw else []

    def get(self, field: int, component: int = 1, subcomponent: int = 1, repetition: int = 0) -> str:
        """The decoded value at field.component.subcomponent of one repetition ('' if empty).

        Always one sub-component (the first unless asked): a value is never returned with its
        component or sub-component delimiters still in it, so ``AIL|1||11&X-Ray Room&L`` reads
        as ``11`` at AIL-3.1, never as ``11&X-Ray Room&L`` (docs/hl7-profile.md 4).

        The intake's hottest function (~30 calls a message): it splits only where the value
        holds the delimiter, and decodes escapes only where there is one (bench/README.md)."""
        fields = self.fields
        if field >= len(fields):
            return ""
        raw = fields[field]
        if not raw:
            return ""
        if field <= 2 and self.name == "MSH":
            return raw
        d = self.delimiters
        if d.repetition in raw:
            reps = raw.split(d.repetition)
            raw = reps[repetition] if repetition < len(reps) else ""
        elif repetition:
            return ""
        if d.component in raw:
            comps = raw.split(d.component)
            raw = comps[component - 1] if component <= len(comps) else ""
        elif component != 1:
            return ""
        if d.subcomponent in raw:
            subs = raw.split(d.subcomponent)
            raw = subs[subcomponent - 1] if subcomponent <= len(subs) else ""
        elif subcomponent != 1:
            return ""
        return unescape(raw, d) if d.escape in raw else raw

    def subcomponents(self, field: int, component: int = 1, repetition: int = 0) -> list[str]:
        """Every sub-component of field.component (decoded), for composite components such as
        PL.1 (HD in v2.7 and later: ``11&X-Ray Room&L``); ``[]`` when empty."""
        if field >= len(self.fields) or not self.fields[field]:
            return []
        d = self.delimiters
        reps = self.fields[field].split(d.repetition)
        if repetition >= len(reps):
            return []
        comps = reps[repetition].split(d.component)
        if component > len(comps) or not comps[component - 1]:
            return []
        return [unescape(sub, d) for sub in comps[component - 1].split(d.subcomponent)]


def component_of(raw_repetition: str, d: Delimiters, component: int, subcomponent: int = 1) -> str:
    """One sub-component (the first unless asked) of one component of a raw repetition."""
    comps = raw_repetition.split(d.component)
    value = comps[component - 1] if component <= len(comps) else ""
    subs = value.split(d.subcomponent)
    value = subs[subcomponent - 1] if subcomponent <= len(subs) else ""
    return unescape(value, d)


def reencode(raw: str, source: Delimiters, target: Delimiters = DEFAULT_DELIMITERS) -> str:
    """A field's raw ER7 text written with other delimiters, every component, sub-component and
    repetition kept (the ACK echoes the sender's MSH-3/MSH-4 whole in its own delimiters)."""
    if source == target:
        return raw
    return target.repetition.join(
        target.component.join(
            target.subcomponent.join(
                escape(unescape(sub, source), target) for sub in comp.split(source.subcomponent)
            )
            for comp in rep.split(source.component)
        )
        for rep in raw.split(source.repetition)
    )


class Message:
    """A parsed ER7 message: its segments in order, with lookup by name."""

    __slots__ = ("_by_name", "delimiters", "segments")

    def __init__(self, segments: list[Segment], delimiters: Delimiters) -> None:
        self.segments = segments
        self.delimiters = delimiters
        self._by_name: dict[str, list[Segment]] | None = None

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def _index(self) -> dict[str, list[Segment]]:
        if self._by_name is None:
            self._by_name = {}
            for seg in self.segments:
                self._by_name.setdefault(seg.name, []).append(seg)
        return self._by_name

    def first(self, name: str) -> Segment | None:
        found = self._index().get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        return list(self._index().get(name, ()))


def parse(text: str) -> Message:
    """Split an ER7 message into segments and fields using the delimiters in its MSH."""
    text = text.strip("\r\n\x0b\x1c ")
    if not text.startswith("MSH") or len(text) < 8:
        raise MalformedMessage("message does not start with an MSH segment", Location("MSH"), code="100")
    fs = text[3]
    enc_end = text.find(fs, 4)
    enc = text[4:enc_end] if enc_end > 0 else text[4:]
    if len(enc) < 4 or fs.isalnum() or len(set(fs + enc[:4])) != 5:
        raise MalformedMessage("MSH-1/MSH-2 delimiters are invalid", Location("MSH", 2), code="102")
    d = Delimiters(fs, enc[0], enc[1], enc[2], enc[3])
    segments: list[Segment] = []
    # Segments end in CR; LF and CRLF are taken too (a plain split when there is no LF).
    lines = _SEGMENT_SPLIT.split(text) if "\n" in text else text.split("\r")
    for line in lines:
        if not line:
            continue
        parts = line.split(fs)
        name = parts[0]
        if len(name) != 3 or not name.isalnum():
            raise MalformedMessage(
                f"segment {len(segments) + 1} has an invalid name", Location(name[:3] or "?"), code="100"
            )
        if name == "MSH":
            parts.insert(1, fs)
        segments.append(Segment(name, parts, d))
    return Message(segments, d)


_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def unescape(value: str, d: Delimiters = DEFAULT_DELIMITERS, *, formatted: bool = False) -> str:
    """Decode HL7 escape sequences: \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\.br\\, \\Xhh..\\; drop \\H\\ \\N\\.

    ``formatted`` reads the value as FT (formatted text): its formatting commands become plain
    text too (see :func:`_formatting`) instead of being kept as they are.
    """
    esc = d.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = value.find(esc, i + 1)
        if end < 0:
            out.append(value[i:])  # an unterminated escape is kept as text
            break
        seq = value[i + 1 : end]
        i = end + 1
        if seq == "F":
            out.append(d.field)
        elif seq == "S":
            out.append(d.component)
        elif seq == "T":
            out.append(d.subcomponent)
        elif seq == "R":
            out.append(d.repetition)
        elif seq == "E":
            out.append(esc)
        elif seq == ".br":
            out.append("\n")
        elif seq in ("H", "N"):
            continue
        elif seq.startswith("X") and _HEX.match(seq[1:]) and len(seq) % 2 == 1:
            out.append(bytes.fromhex(seq[1:]).decode("latin-1"))
        elif formatted and seq.startswith("."):
            out.append(_formatting(seq))
        else:
            out.append(esc + seq + esc)
    return "".join(out)


_COMMAND = re.compile(r"^\.([a-z]{2})\s*([+-]?\d*)$")


def _formatting(seq: str) -> str:
    """An FT formatting command (HL7 v2 2.7) as plain text, keeping only what shapes the text:
    ``.sp<n>`` n line breaks (one without n), ``.sk<n>`` n spaces. Layout commands (``.fi``
    ``.nf`` ``.in`` ``.ti`` ``.ce``) and unknown ones are dropped: the citizen reads plain text."""
    match = _COMMAND.match(seq)
    if match is None:
        return ""
    command, number = match.groups()
    count = max(int(number), 0) if number.lstrip("+-") else 1
    if command == "sp":
        return "\n" * count
    if command == "sk":
        return " " * count
    return ""


def escape(value: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Encode text for an ER7 field (escape first, then the delimiters)."""
    e = d.escape
    # Most values (ids, names, codes) hold none of the characters: return them as they are
    # (each ACK escapes about seven fields).
    if (
        e not in value
        and d.field not in value
        and d.component not in value
        and d.subcomponent not in value
        and d.repetition not in value
        and "\r" not in value
        and "\n" not in value
    ):
        return value
    return (
        value.replace(e, f"{e}E{e}")
        .replace(d.field, f"{e}F{e}")
        .replace(d.component, f"{e}S{e}")
        .replace(d.subcomponent, f"{e}T{e}")
        .replace(d.repetition, f"{e}R{e}")
        .replace("\r\n", f"{e}.br{e}")
        .replace("\n", f"{e}.br{e}")
        .replace("\r", f"{e}.br{e}")
    )
