"""A budget for lookups that anyone able to send a review can trigger (pure: the time is given).
The controller's cleanup Jobs make the webhook read a CodeRun each, and without mutual TLS a
forged review is free to send: at most `per_second` reads (bursts of `burst`), and a name found
missing is not read again for `missing_seconds` (at most `max_missing` remembered)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class LookupBudget:
    per_second: float = 20.0
    burst: float = 40.0
    missing_seconds: float = 30.0
    max_missing: int = 4096
    _tokens: float = -1.0  # full at first use
    _at: float = 0.0
    _missing: OrderedDict[Hashable, float] = field(default_factory=OrderedDict)

    def take(self, now: float) -> bool:
        """One read, if the budget has one left now."""
        if self._tokens < 0:
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def known_missing(self, key: Hashable, now: float) -> bool:
        expires = self._missing.get(key)
        if expires is None:
            return False
        if expires <= now:
            del self._missing[key]
            return False
        return True

    def missing(self, key: Hashable, now: float) -> None:
        self._missing[key] = now + self.missing_seconds
        self._missing.move_to_end(key)
        while len(self._missing) > self.max_missing:
            self._missing.popitem(last=False)
