"""Deterministic synthetic macro series in FRED's shapes (invented values, none copied from real data).

Daily series (business days, US holidays missing) from 2024-01-01 to 2027-12-31:

* ``SP500`` (index points): about 5,900 at the start of 2025, an April drawdown to about 5,000, about 6,800 by
  late 2025. ``NASDAQCOM`` moves with it at a beta of about 1.3.
* ``DGS10`` / ``DGS2`` (percent): the 10-year within roughly 4.0-4.6% through 2025, the 2-year 0.3-0.6 below.
* ``DEXJPUS`` (yen per USD) and ``DTWEXBGS`` (broad dollar index).
* ``DTB3`` (percent, **discount basis**): the 3-month Treasury bill's secondary-market rate, business days, bond
  holidays missing (``.``).

``DFF`` (percent), the effective fed funds rate, lists **every calendar day**: a weekend or holiday repeats the
business day before, as FRED's series does. It is the lower bound of the target range on a policy path shaped like
2024-2025 (``MEETINGS`` from ``POLICY_LOWER_START``: 5.25% to September 2024, 4.25% after December 2024, cuts
effective 18 September, 30 October and 11 December 2025, one invented cut in June 2026) plus a spread to it
(``EFFR_SPREAD``: 8 bp, drifting up through October 2025, 12 bp from 30 October, 14 bp from 11 December 2025), one
basis point higher on the last business day of a month. So it reads about 4.33% until the September 2025 cut,
4.08-4.09% after it (drifting to 4.11-4.12% late in October), 3.87-3.88% after 29 October and 3.64% after 10 December; its monthly averages are within
2 bp of the real FEDFUNDS of 2024-2025 (``tests/test_metrics_rate_expectations.py``).

The bill prices the cuts ahead of each decision: ``MEETINGS`` gives, per FOMC decision, the change made and the
change the market expected on given days before it (interpolated; decisions that changed nothing were priced for
a while too, such as the spring 2025 cuts priced after the April tariff shock). On each business day ``t`` the
bill's rate is the expected average overnight rate over the 91 days after ``t`` (the day's effective rate plus
every expected change weighted by the share of the 91 days after it takes effect), plus a bill-to-funds basis
(``BILL_BASIS``, a few basis points) and a small autocorrelated noise, turned into the discount rate of a 91-day
bill compounding that overnight rate daily. The pricing of December 2025 falls from about two thirds of a cut in
early November to about a third on 20 November and recovers by the 26th.

Monthly series, dated the 1st of the month they describe: ``PAYEMS`` (thousands of persons, a level),
``UNRATE`` (percent; **October 2025 is missing**: the household survey was not run during the government
shutdown), ``IRLTLT01JPM156N`` (Japan 10-year yield, percent).

Each observation has a publication date: the next business day for daily series, the first Friday of the
following month for the jobs report (September 2025 delayed to 2025-11-20, October and November 2025 to
2025-12-16), about six weeks for the OECD Japan series. The emulator serves only what was published by its
``now``. FRED has no LBMA gold series any more, so there is none here (see ``pipelines/sources/fred.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

from pipelines.emulator.market import DEFAULT_SEED

FIRST, LAST = date(2024, 1, 1), date(2027, 12, 31)
DAILY = ("SP500", "NASDAQCOM", "DGS10", "DGS2", "DEXJPUS", "DTWEXBGS", "DTB3")
CALENDAR_DAILY = ("DFF",)  # every calendar day, weekends and holidays included
MONTHLY = ("PAYEMS", "UNRATE", "IRLTLT01JPM156N")
SERIES = DAILY + CALENDAR_DAILY + MONTHLY
DECIMALS = {
    "SP500": 2,
    "NASDAQCOM": 2,
    "DGS10": 2,
    "DGS2": 2,
    "DEXJPUS": 4,
    "DTWEXBGS": 4,
    "DTB3": 2,
    "DFF": 2,
    "PAYEMS": 0,
    "UNRATE": 1,
    "IRLTLT01JPM156N": 2,
}
MISSING_MONTHS = {"UNRATE": {date(2025, 10, 1)}}
JOBS_RELEASE_OVERRIDE = {
    date(2025, 9, 1): date(2025, 11, 20),
    date(2025, 10, 1): date(2025, 12, 16),
    date(2025, 11, 1): date(2025, 12, 16),
}

SP500_ANCHORS = (
    ("2024-01-02", 4740),
    ("2024-07-16", 5660),
    ("2024-08-05", 5190),
    ("2024-12-31", 5890),
    ("2025-02-19", 6130),
    ("2025-04-08", 4990),
    ("2025-05-13", 5880),
    ("2025-07-31", 6350),
    ("2025-10-08", 6760),
    ("2025-10-29", 6880),
    ("2025-11-20", 6560),
    ("2025-12-31", 6830),
    ("2026-06-30", 7050),
    ("2026-12-31", 7200),
    ("2027-12-31", 7500),
)
DGS10_ANCHORS = (
    ("2024-01-02", 3.95),
    ("2024-04-25", 4.70),
    ("2024-09-16", 3.62),
    ("2024-12-31", 4.57),
    ("2025-01-14", 4.62),
    ("2025-04-04", 4.01),
    ("2025-04-11", 4.48),
    ("2025-05-21", 4.58),
    ("2025-09-01", 4.22),
    ("2025-10-22", 3.99),
    ("2025-11-28", 4.03),
    ("2025-12-31", 4.14),
    ("2026-12-31", 4.05),
    ("2027-12-31", 4.20),
)
SPREAD_ANCHORS = (
    ("2024-01-02", -0.40),
    ("2024-09-01", 0.05),
    ("2024-12-31", 0.32),
    ("2025-06-30", 0.52),
    ("2025-12-31", 0.58),
    ("2027-12-31", 0.60),
)
JPY_ANCHORS = (
    ("2024-01-02", 142.0),
    ("2024-07-10", 161.5),
    ("2024-09-16", 140.5),
    ("2024-12-31", 157.2),
    ("2025-04-21", 140.8),
    ("2025-07-31", 150.5),
    ("2025-09-30", 147.8),
    ("2025-11-20", 157.4),
    ("2025-12-31", 155.0),
    ("2027-12-31", 148.0),
)
DXY_ANCHORS = (
    ("2024-01-02", 121.0),
    ("2024-09-30", 120.5),
    ("2024-12-31", 129.5),
    ("2025-01-13", 130.2),
    ("2025-04-21", 122.0),
    ("2025-07-01", 119.8),
    ("2025-11-20", 121.6),
    ("2025-12-31", 120.8),
    ("2027-12-31", 119.0),
)
UNRATE_ANCHORS = (
    ("2024-01-01", 3.7),
    ("2024-07-01", 4.2),
    ("2024-12-01", 4.1),
    ("2025-06-01", 4.1),
    ("2025-09-01", 4.4),
    ("2025-11-01", 4.6),
    ("2026-12-01", 4.5),
    ("2027-12-01", 4.3),
)
JGB_ANCHORS = (
    ("2024-01-01", 0.65),
    ("2024-12-01", 1.05),
    ("2025-05-01", 1.38),
    ("2025-11-01", 1.72),
    ("2026-12-01", 1.95),
    ("2027-12-01", 2.05),
)

# Policy: (FOMC decision day, change of the target range in percentage points, the change the market expected
# on given days before the decision, interpolated between them, 0 before the first, the last one held until the
# decision). Decision days follow the FOMC calendar; the expectations are invented.
MEETINGS: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = (
    ("2024-03-20", 0.0, (("2024-01-02", -0.12), ("2024-02-05", -0.05), ("2024-03-19", 0.0))),
    ("2024-06-12", 0.0, (("2024-02-01", -0.10), ("2024-04-15", -0.02), ("2024-06-11", 0.0))),
    ("2024-07-31", 0.0, (("2024-05-01", -0.03), ("2024-07-11", -0.03), ("2024-07-30", -0.01))),
    (
        "2024-09-18",
        -0.50,
        (("2024-05-01", -0.10), ("2024-07-11", -0.25), ("2024-08-05", -0.40), ("2024-09-17", -0.45)),
    ),
    ("2024-11-07", -0.25, (("2024-08-05", -0.30), ("2024-10-04", -0.20), ("2024-11-06", -0.24))),
    ("2024-12-18", -0.25, (("2024-09-20", -0.20), ("2024-11-15", -0.15), ("2024-12-17", -0.24))),
    ("2025-01-29", 0.0, (("2024-11-01", -0.10), ("2024-12-19", -0.02), ("2025-01-28", 0.0))),
    ("2025-03-19", 0.0, (("2024-12-19", -0.08), ("2025-02-15", -0.03), ("2025-03-18", 0.0))),
    (
        "2025-05-07",
        0.0,
        (("2025-02-15", -0.05), ("2025-04-07", -0.18), ("2025-04-25", -0.05), ("2025-05-06", 0.0)),
    ),
    ("2025-06-18", 0.0, (("2025-04-07", -0.20), ("2025-05-13", -0.03), ("2025-06-17", 0.0))),
    ("2025-07-30", 0.0, (("2025-05-01", -0.12), ("2025-06-20", -0.05), ("2025-07-29", -0.01))),
    (
        "2025-09-17",
        -0.25,
        (("2025-06-01", -0.12), ("2025-08-01", -0.20), ("2025-08-05", -0.23), ("2025-09-16", -0.25)),
    ),
    ("2025-10-29", -0.25, (("2025-08-05", -0.12), ("2025-09-18", -0.20), ("2025-10-28", -0.245))),
    (
        "2025-12-10",
        -0.25,
        (
            ("2025-09-18", -0.15),
            ("2025-10-28", -0.22),
            ("2025-10-31", -0.18),
            ("2025-11-13", -0.17),
            ("2025-11-20", -0.075),
            ("2025-11-26", -0.20),
            ("2025-12-09", -0.24),
        ),
    ),
    ("2026-01-28", 0.0, (("2025-11-01", -0.06), ("2025-12-11", -0.05), ("2026-01-27", 0.0))),
    ("2026-03-18", 0.0, (("2025-12-11", -0.08), ("2026-02-15", -0.04), ("2026-03-17", 0.0))),
    ("2026-04-29", 0.0, (("2026-02-01", -0.08), ("2026-04-28", -0.02))),
    ("2026-06-17", -0.25, (("2026-03-18", -0.10), ("2026-05-15", -0.18), ("2026-06-16", -0.24))),
    ("2026-09-16", 0.0, (("2026-06-18", -0.08), ("2026-09-15", 0.0))),
)
POLICY_LOWER_START = 5.25  # lower bound of the target range on FIRST (the range then was 5.25-5.50%)
EFFR_SPREAD = (
    ("2024-01-01", 0.08),
    ("2025-09-30", 0.08),
    ("2025-10-29", 0.115),
    ("2025-10-30", 0.12),
    ("2025-12-10", 0.125),
    ("2025-12-11", 0.14),
    ("2027-12-31", 0.14),
)  # effective rate minus the lower bound, pp
BILL_BASIS = (
    ("2024-01-02", -0.01),
    ("2025-06-30", 0.01),
    ("2025-08-15", 0.03),
    ("2025-12-31", 0.02),
    ("2027-12-31", 0.01),
)  # bill minus the expected average overnight rate, pp (bill supply, etc.)
BILL_DAYS = 91  # a new 3-month bill


def _easter(y: int) -> date:
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = y % 19, y // 100, y % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(y, month, day)


def _nth_weekday(y: int, month: int, weekday: int, n: int) -> date:
    d = date(y, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    if n > 0:
        return d + timedelta(weeks=n - 1)
    last = date(y + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(d: date) -> date:
    return d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1) if d.weekday() == 6 else d


@lru_cache(maxsize=8)
def us_holidays(y: int, calendar: str) -> frozenset[date]:
    """``stocks`` (NYSE: Good Friday, no Columbus/Veterans Day) or ``bonds`` (Fed / bond market)."""
    days = {
        _observed(date(y, 1, 1)),
        _nth_weekday(y, 1, 0, 3),  # MLK
        _nth_weekday(y, 2, 0, 3),  # Presidents
        _nth_weekday(y, 5, 0, -1),  # Memorial
        _observed(date(y, 6, 19)),
        _observed(date(y, 7, 4)),
        _nth_weekday(y, 9, 0, 1),  # Labor
        _nth_weekday(y, 11, 3, 4),  # Thanksgiving
        _observed(date(y, 12, 25)),
    }
    if calendar == "stocks":
        days.add(_easter(y) - timedelta(days=2))
    else:
        days |= {_nth_weekday(y, 10, 0, 2), _observed(date(y, 11, 11))}
    return frozenset(days)


def is_holiday(d: date, calendar: str) -> bool:
    return d in us_holidays(d.year, calendar)


@dataclass
class Observation:
    day: date
    value: float | None
    published: date


@dataclass
class MacroData:
    seed: int
    series: dict[str, list[Observation]]


def _business_days() -> list[date]:
    out, d = [], FIRST
    while d <= LAST:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def _path(rng: np.random.Generator, days: list[date], anchors, sigma: float, log: bool) -> np.ndarray:
    x = np.array([d.toordinal() for d in days], dtype=float)
    ax = np.array([date.fromisoformat(t).toordinal() for t, _ in anchors], dtype=float)
    av = np.array([v for _, v in anchors], dtype=float)
    base = np.interp(x, ax, np.log(av) if log else av)
    walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, sigma, len(days) - 1))])
    bridge = np.interp(x, ax, np.interp(ax, x, walk))
    y = base + walk - bridge
    return np.exp(y) if log else y


def _next_business_day(d: date) -> date:
    d += timedelta(days=1)
    while d.weekday() >= 5 or is_holiday(d, "bonds"):
        d += timedelta(days=1)
    return d


def _first_friday(y: int, m: int) -> date:
    return _nth_weekday(y, m, 4, 1)


def _interp(day: date, anchors) -> float:
    ax = [date.fromisoformat(t).toordinal() for t, _ in anchors]
    return float(np.interp(day.toordinal(), ax, [v for _, v in anchors]))


def _is_business_day(d: date) -> bool:
    return d.weekday() < 5 and not is_holiday(d, "bonds")


def _last_business_day_of_month(d: date) -> bool:
    nxt = d + timedelta(days=1)
    while not _is_business_day(nxt):
        nxt += timedelta(days=1)
    return _is_business_day(d) and nxt.month != d.month


def policy_lower(d: date) -> float:
    """Lower bound of the target range in force on ``d`` (a decision takes effect the day after it)."""
    return POLICY_LOWER_START + sum(ch for day, ch, _ in MEETINGS if date.fromisoformat(day) < d)


def effective_rate(d: date) -> float:
    """The effective rate on ``d`` before rounding; a weekend or holiday carries the business day before."""
    while not _is_business_day(d) and d > FIRST:
        d -= timedelta(days=1)
    return policy_lower(d) + _interp(d, EFFR_SPREAD) + (0.01 if _last_business_day_of_month(d) else 0.0)


def expected_change(meeting: tuple[str, float, tuple], t: date) -> float:
    """The change the market expects from ``meeting`` at the close of ``t`` (the decision itself once made)."""
    day, change, anchors = meeting
    decision = date.fromisoformat(day)
    if t >= decision:
        return change
    first = date.fromisoformat(anchors[0][0])
    return 0.0 if t < first else _interp(t, anchors)


def expected_average_rate(t: date, days: int = BILL_DAYS) -> float:
    """The overnight rate the market expects on average over the ``days`` days after ``t``: the effective rate of
    ``t`` plus each decision not yet in it, weighted by the share of those days after it takes effect."""
    rate = round(effective_rate(t), 2)
    for meeting in MEETINGS:
        decision = date.fromisoformat(meeting[0])
        if decision < t:  # already in the effective rate (it took effect the day after the decision)
            continue
        after = max(
            0, min(days, (t + timedelta(days=days) - decision).days)
        )  # days t+1..t+days after it takes effect
        rate += expected_change(meeting, t) * after / days
    return rate


def bill_discount_rate(overnight_pct: float, days: int = BILL_DAYS) -> float:
    """The discount rate (percent) of a ``days``-day bill earning ``overnight_pct`` (act/360) compounded daily."""
    growth = (1 + overnight_pct / 100 / 360) ** days
    return (1 - 1 / growth) * 360 / days * 100


@lru_cache(maxsize=4)
def build_macro(seed: int = DEFAULT_SEED) -> MacroData:
    # a separate SeedSequence entropy pool (seed, 2) so that the market's children are untouched
    # children 0..8 are the same whichever number is spawned, so series added later leave the others' bytes alone
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(10)]
    days = _business_days()
    sp = _path(rngs[0], days, SP500_ANCHORS, 0.008, True)
    ndq = (
        19300.0
        * (sp / 5890.0) ** 1.3
        * _path(rngs[1], days, (("2024-01-02", 0.78), ("2024-12-31", 1.0), ("2027-12-31", 1.0)), 0.003, True)
    )
    dgs10 = _path(rngs[2], days, DGS10_ANCHORS, 0.022, False)
    dgs2 = dgs10 - _path(rngs[3], days, SPREAD_ANCHORS, 0.02, False)
    jpy = _path(rngs[4], days, JPY_ANCHORS, 0.004, True)
    dxy = _path(rngs[5], days, DXY_ANCHORS, 0.0025, True)
    daily = {
        "SP500": (sp, "stocks"),
        "NASDAQCOM": (ndq, "stocks"),
        "DGS10": (dgs10, "bonds"),
        "DGS2": (dgs2, "bonds"),
        "DEXJPUS": (jpy, "bonds"),
        "DTWEXBGS": (dxy, "bonds"),
    }
    series: dict[str, list[Observation]] = {}
    for sid, (values, cal) in daily.items():
        obs = []
        for d, v in zip(days, values, strict=True):
            value = None if is_holiday(d, cal) else round(float(v), DECIMALS[sid])
            obs.append(Observation(d, value, _next_business_day(d)))
        series[sid] = obs

    # the bill: expected average overnight rate + basis + AR(1) noise (phi 0.8, 0.5 bp steps), as a discount rate
    noise = np.zeros(len(days))
    steps = rngs[9].normal(0.0, 0.005, len(days))
    for i in range(1, len(days)):
        noise[i] = 0.8 * noise[i - 1] + steps[i]
    series["DTB3"] = [
        Observation(
            d,
            None
            if is_holiday(d, "bonds")
            else round(
                bill_discount_rate(expected_average_rate(d) + _interp(d, BILL_BASIS) + float(e)),
                DECIMALS["DTB3"],
            ),
            _next_business_day(d),
        )
        for d, e in zip(days, noise, strict=True)
    ]
    calendar = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    series["DFF"] = [
        Observation(d, round(effective_rate(d), DECIMALS["DFF"]), _next_business_day(d)) for d in calendar
    ]

    months = [date(y, m, 1) for y in range(FIRST.year, LAST.year + 1) for m in range(1, 13)]
    unrate = _path(rngs[6], months, UNRATE_ANCHORS, 0.06, False)
    jgb = _path(rngs[7], months, JGB_ANCHORS, 0.04, False)
    changes = rngs[8].normal(0.0, 45.0, len(months)) + np.where(
        np.array([m < date(2025, 4, 1) for m in months]), 170.0, 45.0
    )
    payems = 157_500.0 + np.cumsum(changes)

    def jobs_release(m: date) -> date:
        if m in JOBS_RELEASE_OVERRIDE:
            return JOBS_RELEASE_OVERRIDE[m]
        nxt = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        return _first_friday(nxt.year, nxt.month)

    for sid, values in (("PAYEMS", payems), ("UNRATE", unrate)):
        series[sid] = [
            Observation(
                m,
                None if m in MISSING_MONTHS.get(sid, ()) else round(float(v), DECIMALS[sid]),
                jobs_release(m),
            )
            for m, v in zip(months, values, strict=True)
        ]
    series["IRLTLT01JPM156N"] = [
        Observation(m, round(float(v), 2), m + timedelta(days=75)) for m, v in zip(months, jgb, strict=True)
    ]
    return MacroData(seed=seed, series=series)
