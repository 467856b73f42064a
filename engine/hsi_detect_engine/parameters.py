"""The detectors' method parameters, declared once for the CLI and the pipelines.

Importing this module imports no torch, so the CLI can build its options quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Param:
    name: str  # python name; the CLI option is --name-with-dashes
    type: type
    default: object
    help: str
    choices: Optional[tuple] = None
    paper: object = None  # the paper's value where the default differs from it

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


BS3LNET: list = []
HYPERNET: list = []


def resolve(params: list, given: Optional[dict]) -> dict:
    """Defaults overlaid with the given values; unknown names are refused."""
    from .errors import HsiDetectError

    given = dict(given or {})
    names = {p.name for p in params}
    unknown = sorted(set(given) - names)
    if unknown:
        raise HsiDetectError(f"Unknown parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
    out = {p.name: p.default for p in params}
    for k, v in given.items():
        if v is not None:
            out[k] = v
    return out
