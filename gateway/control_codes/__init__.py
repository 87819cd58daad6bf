"""Control codes (styrkoder) in letters: ``[4US:LPAT]`` e-brev, ``[4US:RPAT]`` e-remissbekräftelse.

R-DOC-1, R-DOC-2: :func:`scan` finds the exact codes and reports near misses with line and
column; ``gateway lint-template`` (:mod:`gateway.control_codes.lint`) checks template files.
Pure, no I/O.
"""

from gateway.control_codes._scan import (
    CODES,
    CodeKind,
    CodeMatch,
    ControlCodeScan,
    NearMiss,
    Position,
    Problem,
    scan,
)

__all__ = [
    "CODES",
    "CodeKind",
    "CodeMatch",
    "ControlCodeScan",
    "NearMiss",
    "Position",
    "Problem",
    "scan",
]
