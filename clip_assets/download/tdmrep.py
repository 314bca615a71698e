"""TDMRep (W3C TDM Reservation Protocol): has the rightsholder reserved text and data mining?

Two of the protocol's carriers are read here, both pure functions of bytes already fetched:
``reserved_by_header`` reads an answer's ``tdm-reservation`` header (``1`` reserves);
``parse_tdmrep_json`` reads a host's ``/.well-known/tdmrep.json`` (a JSON array of
``{"location": pattern, "tdm-reservation": 0 | 1, ...}``) into ``TdmRules``, whose
``reserved(path)`` applies the rule with the longest matching ``location`` (robots.txt-style
patterns: a path prefix, ``*`` for any characters, a final ``$`` to anchor the end). A file that
is not such an array holds no reservation: the header still applies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

WELL_KNOWN_PATH = "/.well-known/tdmrep.json"


def reserved_by_header(values: Iterable[str]) -> bool:
    """True when a ``tdm-reservation`` header value is ``1``."""
    return any(value.strip() == "1" for value in values)


@dataclass(frozen=True)
class TdmRules:
    """The ``(pattern, reserved)`` rules of one host's tdmrep.json, longest pattern first."""

    rules: tuple[tuple[re.Pattern[str], int, bool], ...] = ()

    def reserved(self, path: str) -> bool:
        """Whether the most specific rule matching ``path`` (with its query) reserves it."""
        for pattern, _, reserved in self.rules:
            if pattern.match(path):
                return reserved
        return False


def parse_tdmrep_json(body: bytes) -> TdmRules:
    """The rules of a tdmrep.json body; an unreadable file gives no rules."""
    try:
        entries = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return TdmRules()
    if not isinstance(entries, list):
        return TdmRules()
    rules = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
            continue
        location = entry["location"]
        rules.append((_pattern(location), len(location), entry.get("tdm-reservation") == 1))
    rules.sort(key=lambda rule: -rule[1])
    return TdmRules(tuple(rules))


def _pattern(location: str) -> re.Pattern[str]:
    anchored = location.endswith("$")
    body = ".*".join(re.escape(part) for part in location.removesuffix("$").split("*"))
    if not body.startswith("/"):
        body = "/" + body
    return re.compile(body + ("$" if anchored else ""))
