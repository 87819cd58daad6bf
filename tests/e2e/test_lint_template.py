"""``gateway lint-template FILE...`` as a template administrator runs it (R-DOC-1, R-DOC-2).

Run as a subprocess through the command object itself (the lead registers it in
``gateway/cli.py``), with the templates in ``tests/fixtures/templates/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "tests" / "fixtures" / "templates"
LINT = [sys.executable, "-c", "from gateway.control_codes.lint import lint_template; lint_template()"]


def _lint(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_AUTH"] = "off"  # tests/e2e/test_auth.py proves authentication
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [*LINT, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_r_doc_1_good_templates_pass_silently() -> None:
    run = _lint(TEMPLATES / "e_brev_ok.txt", TEMPLATES / "e_remissbekraftelse_ok.txt")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == ""


def test_r_doc_2_near_misses_are_printed_as_file_line_col_message() -> None:
    run = _lint("tests/fixtures/templates/near_misses.txt", TEMPLATES / "e_brev_ok.txt")
    assert run.returncode == 1
    name = "tests/fixtures/templates/near_misses.txt"
    assert run.stdout.splitlines() == [
        f"{name}:4:9: near miss: '[4US: LPAT]' is not [4US:LPAT]: space after ':'",
        f"{name}:5:24: near miss: '[4us:lpat]' is not [4US:LPAT]: '4us' instead of '4US'; "
        "'lpat' instead of 'LPAT'",
        f"{name}:6:16: near miss: '[4US:LPAT ]' is not [4US:LPAT]: space before ']'",
        f"{name}:7:1: near miss: '[ 4US:LPAT]' is not [4US:LPAT]: space after '['",
        f"{name}:8:17: near miss: '(4US:LPAT)' is not [4US:LPAT]: '(' instead of '['; ')' instead of ']'",
        f"{name}:9:7: near miss: '[4US;LPAT]' is not [4US:LPAT]: ';' instead of ':'",
        f"{name}:9:19: near miss: '4US:LPAT' is not [4US:LPAT]: '[' missing; ']' missing",
        f"{name}:9:32: near miss: '[4US:LPT]' is not [4US:LPAT]: 'LPT' instead of 'LPAT'",
    ]
    assert "8 problem(s) in 1 of 2 file(s)" in run.stderr


def test_r_doc_1_a_template_without_a_code_fails(tmp_path: Path) -> None:
    plain = tmp_path / "brev.txt"
    plain.write_text("Hej Åsa,\nvälkommen!\n", encoding="utf-8")
    run = _lint(plain)
    assert run.returncode == 1
    assert run.stdout.startswith(f"{plain}:1:1: no control code")


def test_r_doc_1_both_codes_or_one_twice_fail(tmp_path: Path) -> None:
    both = tmp_path / "both.txt"
    both.write_text("Sidfot [4US:LPAT]\nÄven [4US:RPAT]\n", encoding="utf-8")
    twice = tmp_path / "twice.txt"
    twice.write_text("[4US:RPAT]\n\nÅter [4US:RPAT]\n", encoding="utf-8")
    run = _lint(both, twice)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{both}:2:6: [4US:RPAT] next to [4US:LPAT] at 1:8")
    assert lines[1].startswith(f"{twice}:3:6: [4US:RPAT] again (first at 1:1)")


def test_r_doc_1_expect_names_the_kind_every_template_must_be() -> None:
    run = _lint("--expect", "e-brev", TEMPLATES / "e_brev_ok.txt", TEMPLATES / "e_remissbekraftelse_ok.txt")
    assert run.returncode == 1
    (line,) = run.stdout.splitlines()
    assert line == (
        f"{TEMPLATES / 'e_remissbekraftelse_ok.txt'}:12:1: "
        "[4US:RPAT] marks an e-remissbekräftelse; expected [4US:LPAT]"
    )


def test_r_doc_2_windows_line_ends_and_a_bom_keep_lines_and_columns(tmp_path: Path) -> None:
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("\ufeffRad ett\r\nRad två: [4us:LPAT]\r\n".encode())
    run = _lint(crlf)
    assert run.stdout.startswith(f"{crlf}:2:10: near miss: '[4us:LPAT]'")


def test_r_doc_2_a_template_that_is_not_utf8_is_a_problem_where_it_breaks(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Rad ett\nHälsningar [4US:LPAT]\n".encode("latin-1"))
    run = _lint(latin)
    assert run.returncode == 1
    assert run.stdout.startswith(f"{latin}:2:2: not UTF-8 text (byte 0xe4)")


def test_lint_template_refuses_a_missing_file_as_a_usage_error(tmp_path: Path) -> None:
    run = _lint(tmp_path / "nope.txt")
    assert run.returncode == 2
    assert "does not exist" in run.stderr


def test_r_doc_2_a_code_split_by_a_line_break_points_at_the_line_of_the_break() -> None:
    run = _lint("tests/fixtures/templates/split_by_line_break.txt")
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        "tests/fixtures/templates/split_by_line_break.txt:7:41: near miss: '[4US:\\nLPAT]' is not "
        "[4US:LPAT]: line break inside the code, after '[4US:'"
    ]
