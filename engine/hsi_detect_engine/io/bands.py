"""Band numbers: parsing '1,2,5-10' and checking them against a band count.

A typed list stays a list of ranges until the band count is known, so that a range such as
1-999999999 is refused without ever being expanded.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple, Union

from ..errors import HsiDetectError

EXAMPLE = "1-based numbers and ranges such as 1,2,5-10"


def parse_band_ranges(text: str) -> List[Tuple[int, int]]:
    """Parse '1,2,5-10' into [(1, 1), (2, 2), (5, 10)]; refuse a list that names no band."""
    ranges = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise HsiDetectError(f"Band range '{part}' runs backwards. Write it as {b}-{a}.")
            ranges.append((a, b))
        elif part.isdigit():
            ranges.append((int(part), int(part)))
        else:
            raise HsiDetectError(f"'{part}' is not a band number or range. Use {EXAMPLE}.")
    if not ranges:
        raise HsiDetectError(f"The band list '{text}' names no band. Use {EXAMPLE}, or leave it out for all bands.")
    return ranges


def select_bands(bands: Union[None, str, Sequence[int]], count: int, path: str = "") -> list:
    """Check band numbers (a typed list '1,5-10' or a sequence of numbers) against a band count;
    None or an empty sequence selects all bands."""
    if bands is None or (not isinstance(bands, str) and len(bands) == 0):
        return list(range(1, count + 1))
    if isinstance(bands, str):
        ranges = parse_band_ranges(bands)
    else:
        ranges = []
        for b in bands:
            try:
                n = int(b)
            except (TypeError, ValueError):
                raise HsiDetectError(f"Band '{b}' is not a band number. Use {EXAMPLE}.") from None
            ranges.append((n, n))
    for a, b in ranges:
        for n in (a, b):
            if n < 1 or n > count:
                raise HsiDetectError(f"Band {n} is out of range: {path or 'the image'} has bands 1 to {count}. "
                                     "Band numbers count from 1.")
    previous = 0
    for a, b in sorted(ranges):
        if a <= previous:
            raise HsiDetectError("A band number was given twice. List each band once.")
        previous = b
    return [n for a, b in ranges for n in range(a, b + 1)]
