"""The time a record is dated with (a sidecar's, a metrics record's, a report's ``created``): now, or the time
``$SOURCE_DATE_EPOCH`` gives, the reproducible-builds convention, so that the same work run again writes the same
record. Durations (a sidecar's ``timings_s``) are measured, never taken from it."""

from __future__ import annotations

import datetime as _dt
import logging
import os

__all__ = ["record_time"]

log = logging.getLogger(__name__)
_told: set[tuple[str, str]] = set()  # the unreadable values already named (a folder of cases dates a record for each)


def record_time(dated: str = "the record") -> str:
    """The time now in UTC, ISO 8601 to the second (``2026-01-01T00:00:00+00:00``), or the time
    ``$SOURCE_DATE_EPOCH`` gives (seconds since 1970, UTC). A value that is not a whole number of seconds since 1970
    in ASCII digits, as ``date +%s`` prints it (a sign, a fraction, digit separators, other scripts' digits), is
    named in a warning, once, saying that ``dated`` ("the report") is dated now, and now is used."""
    given = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if given:
        try:
            if not (given.isascii() and given.isdigit()):  # int() takes "-5", "+5", "1_000" and "١٢٣" too
                raise ValueError(given)
            return _dt.datetime.fromtimestamp(int(given), _dt.UTC).isoformat(timespec="seconds")
        except (ValueError, OverflowError, OSError):
            if (given, dated) not in _told:
                _told.add((given, dated))
                log.warning("SOURCE_DATE_EPOCH=%r is not a whole number of seconds since 1970 (UTC): %s is dated "
                            "now", given, dated)
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
