"""Administrative division codes (GB/T 2260 行政区划代码) as the contract language understands them.

A code is six ASCII digits: two for the province, two for the prefecture (city), two for the county (district).
`310104` (Xuhui District) is within `310100` (Shanghai's city level) and within `310000` (Shanghai); `000000` is
the whole country, the central government's issuer code. Containment is decided from the digits alone; the
engine does not carry the full national table, so a code is accepted when its province exists.
"""

from __future__ import annotations

# The province-level prefixes in GB/T 2260 (mainland provinces, municipalities, autonomous regions, and the
# codes used for Taiwan, Hong Kong and Macao).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
COUNTRY = "000000"


def is_region_code(code: object) -> bool:
    """True for a well-formed six-digit code whose province exists, or for the country code 000000."""
    if type(code) is not str or len(code) != 6 or not (code.isascii() and code.isdigit()):
        return False
    if code == COUNTRY:
        return True
    if code[:2] not in PROVINCES:
        return False
    # A county code under no prefecture (e.g. 310004) is not a thing; neither is 3100xx beyond 310000 itself.
    return not (code[2:4] == "00" and code[4:] != "00")


def level(code: str) -> int:
    """0 for the country, 1 province, 2 prefecture/city, 3 county/district."""
    if code == COUNTRY:
        return 0
    if code.endswith("0000"):
        return 1
    if code.endswith("00"):
        return 2
    return 3


def prefix(code: str) -> str:
    """The digits a code contained in `code` starts with: '' for the country, 2 / 4 / 6 digits otherwise."""
    return code[: (0, 2, 4, 6)[level(code)]]


def within(code: str, area: str) -> bool:
    """Whether region `code` lies within region `area` (a region lies within itself)."""
    return code.startswith(prefix(area))


def overlaps(a: str, b: str) -> bool:
    """Whether two regions share any ground: one contains the other."""
    return within(a, b) or within(b, a)
