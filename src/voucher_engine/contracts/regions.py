"""Administrative division codes (GB/T 2260 行政区划代码) as the contract language understands them.

A code is six ASCII digits: two for the province, two for the prefecture (city), two for the county (district).
`310104` (Xuhui District) is within `310100` (Shanghai's city level) and within `310000` (Shanghai); `000000` is
the whole country, the central government's issuer code. Containment is decided from the digits alone; whether a
code exists at all is decided by the national list shipped with the package (`data/gbt2260.tsv`: its source, date
and licence are in `data/README.md`), read once when this module is imported: the language's only read of anything.
"""

from __future__ import annotations

from pathlib import Path

COUNTRY = "000000"


def _load() -> dict[str, str]:
    names: dict[str, str] = {}
    with Path(__file__).with_name("data").joinpath("gbt2260.tsv").open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            code, _, name = line.rstrip("\n").partition("\t")
            names[code] = name
    return names


# code -> name (北京市, 市辖区, 东城区, ...) for every province, prefecture and county in the list.
NAMES: dict[str, str] = _load()
PROVINCES = frozenset(code[:2] for code in NAMES if code.endswith("0000"))
# The codes that have at least one other code of the list within them (a province, or a prefecture with counties).
_PARENTS = frozenset({code[:2] + "0000" for code in NAMES if not code.endswith("0000")}) | frozenset(
    {code[:4] + "00" for code in NAMES if not code.endswith("00")}
)
# Names GB/T 2260 gives the groupings of a municipality's or province's counties, which say nothing alone.
_GROUPINGS = ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划")


def is_well_formed(code: object) -> bool:
    """Six ASCII digits."""
    return type(code) is str and len(code) == 6 and code.isascii() and code.isdigit()


def is_region_code(code: object) -> bool:
    """True for a code in the GB/T 2260 list (province, prefecture or county), or for the country code 000000."""
    return is_well_formed(code) and (code == COUNTRY or code in NAMES)


def name(code: str) -> str:
    """The code's name with the province (and prefecture) it lies in: `上海市 徐汇区`, `浙江省 杭州市 西湖区`."""
    if code == COUNTRY:
        return "全国"
    parts: list[str] = []
    for area in (code[:2] + "0000", code[:4] + "00", code):
        part = NAMES.get(area)
        if part is not None and (not parts or part not in _GROUPINGS or area == code) and part not in parts:
            parts.append(part)
    return " ".join(parts)


def why_not(raw: str) -> str:
    """Why `raw` (as written) is not a region code, in one sentence that names it."""
    code = raw.strip('"')
    if not is_well_formed(code):
        return (
            f"{raw} is not a region code: those are six digits (GB/T 2260), "
            "like 310000 for Shanghai or 310104 for Xuhui District"
        )
    province, prefecture = code[:2] + "0000", code[:4] + "00"
    if province not in NAMES:
        return f"{raw} is not a region code in GB/T 2260: there is no province {code[:2]} (its first two digits)"
    if code[2:4] == "00":
        return (
            f"{raw} is not a region code in GB/T 2260: a county's code has its prefecture's digits in the middle "
            f"({province} is {name(province)})"
        )
    if prefecture not in NAMES:
        return f"{raw} is not a region code in GB/T 2260: {name(province)} ({province}) has no prefecture {prefecture}"
    return (
        f"{raw} is not a region code in GB/T 2260: {name(prefecture)} ({prefecture}) has no county or district {code}"
    )


def has_subdivisions(code: str) -> bool:
    """Whether other codes of the list lie within `code` (a province; a prefecture that has counties)."""
    return code in _PARENTS


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
