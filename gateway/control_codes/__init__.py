"""Control codes [4US:LPAT] / [4US:RPAT] in letters. Not built yet: see issue 4."""
