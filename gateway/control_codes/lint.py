"""``gateway lint-template FILE...``: check letter templates for their control code (R-DOC-1, R-DOC-2).

Prints each problem as ``FILE:LINE:COL: message`` (columns count characters, so a line with
å ä ö before the code points where an editor does) and exits 1 when there is any; exits 0 when
every file carries exactly one exact control code and nothing that looks like another. Files
are read as UTF-8 (a BOM is allowed); a file that is not UTF-8 is itself a problem, at the
first byte that does not decode.

Registered in ``gateway/cli.py`` as ``main.add_command(lint_template, "lint-template")``.
"""

from __future__ import annotations

from pathlib import Path

import click

from gateway.control_codes._scan import CodeKind, Problem, _LineIndex, scan

_EXPECTABLE = [CodeKind.E_BREV.value, CodeKind.E_REMISSBEKRAFTELSE.value]


def check_file(path: Path, expect: CodeKind | None = None) -> tuple[Problem, ...]:
    """The problems of one template file (``expect``: the kind the template must be)."""
    raw = path.read_bytes()
    try:
        # Text mode's universal newlines, so "\r\n" is one line end as in an editor.
        text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        good = raw[: exc.start].decode("utf-8-sig", errors="replace").replace("\r\n", "\n")
        at = _LineIndex(good).position(len(good))
        return (Problem(at, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the template as UTF-8"),)
    result = scan(text)
    problems = list(result.problems())
    if expect is not None and result.kind not in (expect, CodeKind.NONE):
        where = next(m.position for m in result.found if m.kind is result.kind)
        problems.append(
            Problem(where, f"{result.kind.code} marks an {result.kind.value}; expected {expect.code}")
        )
    return tuple(sorted(problems, key=lambda p: p.position.offset))


@click.command(name="lint-template")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--expect",
    type=click.Choice(_EXPECTABLE),
    help="The kind every FILE must be: e-brev ([4US:LPAT]) or e-remissbekräftelse ([4US:RPAT]).",
)
@click.pass_context
def lint_template(ctx: click.Context, files: tuple[Path, ...], expect: str | None) -> None:
    """Check letter templates: each needs exactly one control code, written exactly.

    [4US:LPAT] makes a letter an e-brev, [4US:RPAT] an e-remissbekräftelse. Near misses such as
    [4US: LPAT] or [4us:lpat] do not count (R-DOC-2); they are reported with line and column.
    """
    kind = CodeKind(expect) if expect else None
    failed = 0
    count = 0
    for path in files:
        problems = check_file(path, kind)
        for problem in problems:
            click.echo(f"{path}:{problem.position}: {problem.message}")
        count += len(problems)
        failed += bool(problems)
    if failed:
        click.echo(f"{count} problem(s) in {failed} of {len(files)} file(s)", err=True)
        ctx.exit(1)
