"""plugdeck.retry: the one backoff schedule every retrying client uses."""

from __future__ import annotations

import pytest

from plugdeck.retry import Backoff


def test_the_delay_doubles_up_to_the_cap_without_jitter():
    backoff = Backoff(first=0.05, cap=2.0, jitter="none")
    assert [backoff.delay(n) for n in range(1, 9)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


@pytest.mark.parametrize("jitter, low_share", [("full", 0.0), ("half", 0.5)])
def test_jitter_stays_inside_its_share_of_the_delay_and_varies(jitter, low_share):
    backoff = Backoff(first=1.0, cap=4.0, jitter=jitter)
    for retry, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)):
        waits = [backoff.delay(retry) for _ in range(200)]
        assert all(ceiling * low_share <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # clients that failed together spread out


def test_retry_zero_or_less_waits_the_first_delay():
    assert Backoff(first=0.3, cap=5.0, jitter="none").delay(0) == 0.3
