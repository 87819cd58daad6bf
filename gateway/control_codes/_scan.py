"""Find the control codes (styrkoder) in a letter's text, and the near misses that do not count.

R-DOC-1: an e-brev's template carries ``[4US:LPAT]`` in its footer, an e-remissbekräftelse's
``[4US:RPAT]``. R-DOC-2: only the exact code counts; 001 "Förutsättningar i TakeCare":

    "Det är viktigt att koden skrivs in utan mellanslag, annars kommer den inte att fungera."

A near miss is found in two steps rather than from a list of known typos:

1. a tolerant pattern anchors on ``4US`` in any case, with anything bracket-like before it,
   anything separator-like after it, and horizontal whitespace or invisible characters
   (zero-width space, BOM; 001 warns against pasting from Word) between any two characters;
2. the word after it is compared with ``LPAT`` and ``RPAT`` by edit distance (at most one
   letter inserted, dropped, changed or swapped, ignoring case). Each difference from the
   exact code becomes a line of the hint.

A ``[4US:...]`` with an unknown word is reported too (it cannot be anything but a broken code);
an unbracketed ``4US`` followed by an unrelated word (``4US.Portal`` in a meeting link) is not.

Positions are 1-based lines and columns; lines end at ``\\n`` (read files in text mode, so
``\\r\\n`` is one line end) and columns count characters (code points), not bytes.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class CodeKind(StrEnum):
    """What a letter's control code makes of it (R-DOC-1)."""

    E_BREV = "e-brev"
    E_REMISSBEKRAFTELSE = "e-remissbekräftelse"
    NONE = "none"

    @property
    def code(self) -> str | None:
        """The exact control code for this kind, ``None`` for NONE."""
        return _CODE_OF.get(self)


_CODE_OF = {CodeKind.E_BREV: "[4US:LPAT]", CodeKind.E_REMISSBEKRAFTELSE: "[4US:RPAT]"}
_WORD_OF = {CodeKind.E_BREV: "LPAT", CodeKind.E_REMISSBEKRAFTELSE: "RPAT"}
#: The exact codes, each with the kind it marks.
CODES: dict[str, CodeKind] = {code: kind for kind, code in _CODE_OF.items()}


@dataclass(frozen=True, slots=True)
class Position:
    """Where in the text: 1-based ``line`` and ``column`` (characters), 0-based ``offset``."""

    line: int
    column: int
    offset: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class CodeMatch:
    """An exact control code."""

    kind: CodeKind
    position: Position

    @property
    def code(self) -> str:
        return _CODE_OF[self.kind]


@dataclass(frozen=True, slots=True)
class NearMiss:
    """Text that looks like a control code but is not written exactly (R-DOC-2).

    ``resembles`` is the kind(s) it is one edit from (two for e.g. ``[4US:PAT]``), empty for a
    bracketed ``4US`` code with an unknown word. ``problems`` says what differs, in order.
    """

    position: Position
    text: str
    resembles: tuple[CodeKind, ...]
    problems: tuple[str, ...]

    @property
    def hint(self) -> str:
        """One line for the template's author: what it resembles and what differs."""
        if not self.resembles:
            return f"unknown control code {self.text!r}: the codes are [4US:LPAT] and [4US:RPAT]"
        wanted = " or ".join(_CODE_OF[k] for k in self.resembles)
        return f"near miss: {self.text!r} is not {wanted}: {'; '.join(self.problems)}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing to fix in a template, for a linter's ``FILE:LINE:COL: message``."""

    position: Position
    message: str


START = Position(1, 1, 0)


@dataclass(frozen=True, slots=True)
class ControlCodeScan:
    """The control codes of one text: exact ones (``found``) and ``near_misses``, in text order.

    Decisions where the routines say nothing (001 only says each kind has its own code):

    - both codes in one letter: ``kind`` is NONE, since the gateway cannot tell a letter from a
      referral confirmation; routing treats it as lacking its control code (R-DOC-3);
    - the same code twice: ``kind`` is that code (the intent is plain), but it is reported;
    - near misses next to an exact code do not change ``kind``; they are reported.
    """

    found: tuple[CodeMatch, ...]
    near_misses: tuple[NearMiss, ...]

    @property
    def kinds(self) -> frozenset[CodeKind]:
        return frozenset(m.kind for m in self.found)

    @property
    def kind(self) -> CodeKind:
        """The one kind of exact code present; NONE when there is none, or both (ambiguous)."""
        kinds = self.kinds
        return next(iter(kinds)) if len(kinds) == 1 else CodeKind.NONE

    @property
    def conflicting(self) -> bool:
        """Both ``[4US:LPAT]`` and ``[4US:RPAT]`` are present."""
        return len(self.kinds) > 1

    @property
    def repeated(self) -> tuple[CodeMatch, ...]:
        """Every exact code after the first of its kind."""
        seen: set[CodeKind] = set()
        again = []
        for match in self.found:
            if match.kind in seen:
                again.append(match)
            seen.add(match.kind)
        return tuple(again)

    @property
    def clean(self) -> bool:
        """Exactly one exact code and nothing that looks like another."""
        return len(self.found) == 1 and not self.near_misses

    def problems(self) -> tuple[Problem, ...]:
        """Everything a template's author should fix, in text order."""
        out = [Problem(n.position, n.hint) for n in self.near_misses]
        if not self.found and not self.near_misses:
            out.append(
                Problem(
                    START,
                    "no control code: an e-brev template needs [4US:LPAT] in its footer, "
                    "an e-remissbekräftelse template [4US:RPAT]",
                )
            )
        first: dict[CodeKind, CodeMatch] = {}
        for match in self.found:
            earlier = first.setdefault(match.kind, match)
            if earlier is not match:
                out.append(
                    Problem(
                        match.position,
                        f"{match.code} again (first at {earlier.position}); "
                        "a template carries its control code once",
                    )
                )
        if self.conflicting:
            later = max((first[k] for k in self.kinds), key=lambda m: m.position.offset)
            others = ", ".join(f"{m.code} at {m.position}" for m in first.values() if m is not later)
            out.append(
                Problem(
                    later.position,
                    f"{later.code} next to {others}: a template is either an "
                    "e-brev ([4US:LPAT]) or an e-remissbekräftelse ([4US:RPAT]), not both",
                )
            )
        return tuple(sorted(out, key=lambda p: p.position.offset))


def scan(text: str) -> ControlCodeScan:
    """The exact control codes and near misses in ``text`` (R-DOC-1, R-DOC-2)."""
    lines = _LineIndex(text)
    found = [CodeMatch(CODES[m.group()], lines.position(m.start())) for m in _EXACT.finditer(text)]
    taken = [(m.position.offset, m.position.offset + len(m.code)) for m in found]

    def overlaps_exact(miss: NearMiss) -> bool:
        start, end = miss.position.offset, miss.position.offset + len(miss.text)
        return any(start < t_end and t_start < end for t_start, t_end in taken)

    near = [n for n in _near_misses(text, lines) if not overlaps_exact(n)]
    split = list(_split_by_line_breaks(text, lines))
    if split:
        # A code broken over two lines reads, on its first line, as a shorter near miss too;
        # the whole one (with its line break) is the one to report.
        spans = [(m.position.offset, m.position.offset + len(m.text)) for m in split]
        near = [
            n
            for n in near
            if not any(n.position.offset < e and s < n.position.offset + len(n.text) for s, e in spans)
        ]
        near = sorted(near + split, key=lambda m: m.position.offset)
    return ControlCodeScan(tuple(found), tuple(near))


# -- codes split by a line break ----------------------------------------------------------------

#: A line break with the horizontal whitespace around it (a template's author pressing Enter, or
#: an editor wrapping the footer, inside ``[4US:LPAT]``).
_BREAK = re.compile(r"[^\S\r\n]*(?:\r\n|\r|\n)[^\S\r\n]*")


def _split_by_line_breaks(text: str, lines: _LineIndex) -> Iterator[NearMiss]:
    """Codes, exact or near misses, that a line break splits (``[4US:`` / ``LPAT]``): found in
    the text with its line breaks taken out, and reported where they start, on the line of the
    break (R-DOC-2: the split code does not count)."""
    if "\n" not in text and "\r" not in text:
        return
    joined: list[str] = []
    origin: list[int] = []  # joined index -> offset in text
    breaks: list[int] = []  # joined index of the first character after each break
    at = 0
    for brk in _BREAK.finditer(text):
        joined.append(text[at : brk.start()])
        origin.extend(range(at, brk.start()))
        breaks.append(len(origin))
        at = brk.end()
    joined.append(text[at:])
    origin.extend(range(at, len(text)))
    origin.append(len(text))
    flat = "".join(joined)
    flat_lines = _LineIndex(flat)

    def inside(start: int, end: int) -> int | None:
        i = bisect.bisect_right(breaks, start)
        return breaks[i] if i < len(breaks) and breaks[i] < end else None

    def miss(start: int, end: int, kinds: tuple[CodeKind, ...], problems: tuple[str, ...]) -> NearMiss | None:
        cut = inside(start, end)
        if cut is None:
            return None
        first, last = origin[start], origin[end - 1] + 1
        told = (f"line break inside the code, after {flat[start:cut]!r}",)
        return NearMiss(lines.position(first), text[first:last], kinds, told + problems)

    for exact in _EXACT.finditer(flat):
        found = miss(exact.start(), exact.end(), (CODES[exact.group()],), ())
        if found is not None:
            yield found
    for near in _near_misses(flat, flat_lines):
        start = near.position.offset
        found = miss(start, start + len(near.text), near.resembles, near.problems)
        if found is not None:
            yield found


# -- the tolerant pattern ---------------------------------------------------------------------

_EXACT = re.compile("|".join(re.escape(c) for c in CODES))

# Horizontal whitespace (a space, tab, no-break space...) and the invisible characters a paste
# from a word processor brings; never a line break: a code does not span lines.
_GAP_CHAR = r"(?:[^\S\r\n]|[\u200b\u200c\u200d\u2060\ufeff])"
_GAP = _GAP_CHAR + "*"
_OPENERS = "[({<［"
_CLOSERS = "])}>］"
_SEPARATORS = ":;.,-/：="
_ANCHOR = re.compile(
    rf"(?P<open>[{re.escape(_OPENERS)}])?(?P<gap_open>{_GAP})"
    rf"(?<![0-9A-Za-z])(?P<prefix>4{_GAP}U{_GAP}S)"
    rf"(?P<gap_before_sep>{_GAP})(?P<sep>[{re.escape(_SEPARATORS)}]?)(?P<gap_after_sep>{_GAP})"
    r"(?=[A-Za-z])",
    re.IGNORECASE,
)
_GAP_RE = re.compile(_GAP)
_LETTER = re.compile(r"[A-Za-z]")
_MAX_WORD = 12


def _near_misses(text: str, lines: _LineIndex) -> Iterator[NearMiss]:
    pos = 0
    while (anchor := _ANCHOR.search(text, pos)) is not None:
        miss = _judge(text, anchor, lines)
        if miss is None:
            pos = anchor.start("prefix") + 1
            continue
        yield miss
        pos = miss.position.offset + len(miss.text)


@dataclass(frozen=True, slots=True)
class _Word:
    letters: str
    start: int
    end: int
    spaced: str  # the gap characters inside the word

    def closer(self, text: str) -> tuple[str, str, int] | None:
        """(gap, closing bracket, end offset) right after the word, if there is one."""
        gap = _GAP_RE.match(text, self.end)
        assert gap is not None  # the pattern matches the empty string
        at = gap.end()
        if at < len(text) and text[at] in _CLOSERS:
            return gap.group(), text[at], at + 1
        return None


def _words(text: str, start: int) -> list[_Word]:
    """The ways to read a code word from ``start``: each run of letters may end at a gap."""
    words: list[_Word] = []
    letters, spaced, at = "", "", start
    while len(letters) < _MAX_WORD and at < len(text) and _LETTER.match(text, at):
        letters += text[at]
        at += 1
        if at < len(text) and _LETTER.match(text, at):
            continue  # letters next to each other belong to one word
        if len(letters) >= 2:
            words.append(_Word(letters, start, at, spaced))
        gap = _GAP_RE.match(text, at)
        assert gap is not None
        if not gap.group() or not _LETTER.match(text, gap.end()):
            break
        spaced += gap.group()
        at = gap.end()
    return words


def _judge(text: str, anchor: re.Match[str], lines: _LineIndex) -> NearMiss | None:
    words = _words(text, anchor.end())
    if not words:
        return None

    def rank(word: _Word) -> tuple[int, bool, int]:
        return (_best_distance(word.letters)[0], word.closer(text) is None, len(word.letters))

    word = min(words, key=rank)
    distance, kinds = _best_distance(word.letters)
    closer = word.closer(text)
    start = anchor.start("open") if anchor.group("open") else anchor.start("prefix")
    if distance > 1:
        if not (anchor.group("open") and closer and anchor.group("sep")):
            return None  # "4US.Portal": not a control code at all
        kinds = ()
    end = closer[2] if closer else word.end
    problems = _differences(anchor, word, closer, kinds)
    if not problems:
        return None  # the exact code itself
    return NearMiss(lines.position(start), text[start:end], kinds, problems)


def _differences(
    anchor: re.Match[str], word: _Word, closer: tuple[str, str, int] | None, kinds: tuple[CodeKind, ...]
) -> tuple[str, ...]:
    out: list[str] = []
    opener = anchor.group("open")
    if not opener:
        out.append("'[' missing")
    elif opener != "[":
        out.append(f"{opener!r} instead of '['")
    if anchor.group("gap_open") and opener:
        out.append(f"{_name_gap(anchor.group('gap_open'))} after '['")
    prefix = anchor.group("prefix")
    squeezed = _GAP_RE.sub("", prefix)
    if squeezed != prefix:
        out.append(f"{_name_gap(prefix)} inside 4US")
    if squeezed != "4US":
        out.append(f"{squeezed!r} instead of '4US'")
    sep = anchor.group("sep")
    if anchor.group("gap_before_sep"):
        out.append(
            f"{_name_gap(anchor.group('gap_before_sep'))} before ':'"
            if sep
            else f"{_name_gap(anchor.group('gap_before_sep'))} after 4US"
        )
    if not sep:
        out.append("':' missing")
    elif sep != ":":
        out.append(f"{sep!r} instead of ':'")
    if anchor.group("gap_after_sep") and sep:
        out.append(f"{_name_gap(anchor.group('gap_after_sep'))} after ':'")
    if word.spaced:
        out.append(f"{_name_gap(word.spaced)} inside {word.letters.upper()}")
    if not kinds:
        out.append(f"{word.letters!r} is neither 'LPAT' nor 'RPAT'")
    elif word.letters.upper() not in {_WORD_OF[k] for k in kinds}:
        wanted = " or ".join(repr(_WORD_OF[k]) for k in kinds)
        out.append(f"{word.letters!r} instead of {wanted}")
    elif word.letters != word.letters.upper():
        out.append(f"{word.letters!r} instead of {word.letters.upper()!r}")
    if closer is None:
        out.append("']' missing")
    else:
        gap, bracket, _ = closer
        if gap:
            out.append(f"{_name_gap(gap)} before ']'")
        if bracket != "]":
            out.append(f"{bracket!r} instead of ']'")
    return tuple(out)


_GAP_NAMES = {
    " ": "space",
    "\t": "tab",
    "\u00a0": "no-break space",
    "\u200b": "zero-width space",
    "\ufeff": "invisible BOM character",
}


def _name_gap(text: str) -> str:
    names = dict.fromkeys(
        _GAP_NAMES.get(ch, f"invisible character U+{ord(ch):04X}") for ch in text if _GAP_RE.fullmatch(ch)
    )
    return " and ".join(names)


def _best_distance(letters: str) -> tuple[int, tuple[CodeKind, ...]]:
    """Smallest edit distance to LPAT/RPAT (ignoring case), and the kinds at that distance."""
    scored = {kind: _osa_distance(letters.upper(), word) for kind, word in _WORD_OF.items()}
    best = min(scored.values())
    return best, tuple(k for k, d in scored.items() if d == best)


def _osa_distance(a: str, b: str) -> int:
    """Edit distance counting insertions, deletions, substitutions and adjacent swaps."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


class _LineIndex:
    """Offsets to 1-based line/column; lines end at ``\\n``."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._starts, offset)
        return Position(line, offset - self._starts[line - 1] + 1, offset)
