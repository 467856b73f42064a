"""Band numbers: parsing '1,2,5-10' and checking numbers against a band count."""

from __future__ import annotations

import re
from typing import Optional, Sequence

from ..errors import HsiDetectError

def select_bands(bands: Optional[Sequence[int]], count: int, path: str = "") -> list:
    """Validate 1-based band numbers against a band count; None selects all bands."""
    if bands is None or len(bands) == 0:
        return list(range(1, count + 1))
    out = []
    for b in bands:
        try:
            n = int(b)
        except (TypeError, ValueError):
            raise HsiDetectError(f"Band '{b}' is not a band number. Give 1-based band numbers such as 1,2,5-10.") from None
        if n < 1 or n > count:
            raise HsiDetectError(f"Band {n} is out of range: {path or 'the image'} has bands 1 to {count}. Band numbers count from 1.")
        out.append(n)
    if len(set(out)) != len(out):
        raise HsiDetectError("A band number was given twice. List each band once.")
    return out


def parse_band_list(text: str) -> list:
    """Parse '1,2,5-10' into [1, 2, 5, 6, ..., 10]; a list that names no band is refused."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise HsiDetectError(f"Band range '{part}' runs backwards. Write it as {b}-{a}.")
            out.extend(range(a, b + 1))
        elif part.isdigit():
            out.append(int(part))
        else:
            raise HsiDetectError(f"'{part}' is not a band number or range. Use 1-based numbers such as 1,2,5-10.")
    if not out:
        raise HsiDetectError(f"The band list '{text}' names no band. Give 1-based numbers such as 1,2,5-10, or "
                             "leave the band option out to use every band.")
    return out
