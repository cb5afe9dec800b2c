"""medseg.record_time: the time records are dated with, $SOURCE_DATE_EPOCH's where it is set."""

import datetime as dt

import pytest

from medseg.record_time import record_time


@pytest.fixture
def untold(monkeypatch):
    """No unreadable value named yet in this process."""
    monkeypatch.setattr("medseg.record_time._told", set())


def test_now_in_utc_without_source_date_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    created = dt.datetime.fromisoformat(record_time())
    assert created.utcoffset() == dt.timedelta(0) and before <= created <= dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(("given", "dated"), [("1767225600", "2026-01-01T00:00:00+00:00"),
                                              (" 0 ", "1970-01-01T00:00:00+00:00"),
                                              ("1767225599", "2025-12-31T23:59:59+00:00")])
def test_source_date_epoch_dates_the_record_in_utc(monkeypatch, given, dated):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", given)
    monkeypatch.setenv("TZ", "America/New_York")  # the time is UTC's whatever the machine's zone
    assert record_time() == dated


def test_an_unreadable_value_is_named_once_per_record_kind_and_now_used(monkeypatch, caplog, untold):
    """A folder of 200 cases dates a record for each: the warning is said once, not 200 times."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with caplog.at_level("WARNING", logger="medseg.record_time"):
        times = [record_time("the metrics record") for _ in range(3)] + [record_time("the sidecar")]
    assert all(before <= dt.datetime.fromisoformat(time) <= dt.datetime.now(dt.UTC) for time in times)
    assert [record.getMessage() for record in caplog.records] == [
        "SOURCE_DATE_EPOCH='yesterday' is not a whole number of seconds since 1970 (UTC): the metrics record is "
        "dated now",
        "SOURCE_DATE_EPOCH='yesterday' is not a whole number of seconds since 1970 (UTC): the sidecar is dated now"]
