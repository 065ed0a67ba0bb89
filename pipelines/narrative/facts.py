"""The facts engine: pure functions from a week's table rows (and their history up to the week) to ranked facts.

A ``Fact`` has a key, a priority (higher first; ties broken by key so the order never depends on input order),
its raw numbers, a full sentence and an optional headline fragment. Every number in them is a ``Num`` carrying
its source (table, partition, column, row key, derivation), so the report can show and check its lineage.

Rules every function follows:
* only rows with ``week_start <= week`` are used (``WeekData`` is cut point in time);
* a fact whose inputs are null is not produced; the function adds a line to ``gaps`` instead, so the report
  says the data is missing rather than printing a sentence that is not supported;
* the first week of history has no previous week: comparisons with it ("turned negative", "since") are simply
  not made.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from pipelines.narrative.data import WeekData
from pipelines.narrative.format import FORMATS
from pipelines.narrative.pieces import Num, Phrase, Txt, join
from pipelines.narrative.predicates import Predicate, hold
from pipelines.narrative.vocabulary import ASSET_LABELS, INDEX_LABELS

SECTORS = ("l2", "gaming", "depin", "ai", "defi", "meme", "core_l1")
EQUITIES = (
    "nasdaq",
    "sp500",
)  # the equity indices of the cross-asset table: "macro de-risking" needs them down
DELEVERAGING_PCT = -20.0  # open interest this far below its reference peak is "deleveraged"
RESILIENT_SPOT_PCT = -10.0  # spot volume falling less than this is "resilient"
MIN_SINCE_WEEKS = 4  # "lowest since" is only news when the earlier week is at least this far back
MIN_SINCE_DAYS = 14  # a daily "highest since D": D at least this many days before the week's open


@dataclass(frozen=True)
class Fact:
    key: str
    priority: int
    sentence: Phrase
    headline: Phrase | None = None
    numbers: dict[str, Any] = field(default_factory=dict, hash=False)
    predicates: tuple[Predicate, ...] = field(default=(), hash=False)  # the judgments the sentence makes
    weight: float | None = None  # headline ranking (the size of the news); None: the priority

    @property
    def nums(self) -> list[Num]:
        out = self.sentence.nums() + (self.headline.nums() if self.headline else [])
        return list(dict.fromkeys(out))

    @property
    def sources(self) -> list[str]:
        return sorted({n.source for n in self.nums})

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "priority": self.priority,
            "text": self.sentence.md(),
            "numbers": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.numbers.items()},
            "sources": self.sources,
            "predicates": [p.rule for p in self.predicates],
        }


def num(
    table: str,
    week: str,
    column: str,
    value: Any,
    format: str,
    where: dict | None = None,
    kind: str = "value",
) -> Num:
    if format not in FORMATS:
        raise KeyError(format)
    return Num(value, format, table, week, column, tuple(sorted((where or {}).items())), kind)


def _prev_row(wd: WeekData, table: str) -> dict | None:
    h = wd.hist(table).filter(pl.col("week_start") < wd.week_date).sort("week_start")
    return h.row(-1, named=True) if h.height else None


def _dir(value: float, up: str, down: str, flat: str) -> str:
    r = round(value, 1)
    return flat if r == 0 else (up if r > 0 else down)


# ---- one function per kind of fact --------------------------------------------------------------------------
TM = "weekly_total_market_cap"
# An estimated market total is within this share of the true total (METHODOLOGY.md, "The market's total": at
# most 0.62% on real listings with the share of another instant, 0.37% with the constant share); a level is said
# to be crossed on an estimate only when the close lies beyond it by more than this.
ESTIMATE_MARGIN = 0.0075


def _market_level(wd: WeekData, end: str) -> Phrase | None:
    """The market's total at the open or close (``end``): "$3.01T" when observed, "about $3.01T" when estimated."""
    t = wd.one(TM)
    if t is None or t.get(f"market_total_{end}_usd") is None:
        return None
    v = num(TM, wd.week, f"market_total_{end}_usd", t[f"market_total_{end}_usd"], "usd")
    return Phrase("about {v}" if t[f"basis_{end}"] == "estimated" else "{v}", {"v": v})


def mcap_change(wd: WeekData, gaps: list[str]) -> list[Fact]:
    s = wd.one("weekly_market_summary")
    if s is None or s["total_mcap_change_pct"] is None:  # non-null in the schema: only a missing row
        gaps.append("Total market cap change: not available for the week.")
        return []
    t, w = "weekly_market_summary", wd.week
    change_col = _mcap_change_col(s)
    if s[change_col] is None:
        gaps.append("Total market cap change: no coin had a market cap at both the open and the close.")
        return []
    # The week's move is the like-for-like change of the coins tracked (coverage rule); the levels printed beside
    # it are the market's total (CoinGecko's global figure, observed or estimated: METHODOLOGY.md).
    ch = num(t, w, change_col, s[change_col], "updown_pct")
    start, end = _market_level(wd, "open"), _market_level(wd, "close")
    tm = wd.one(TM)
    if start is None or end is None or tm is None:
        sent = Phrase("The coins we track were {ch} over the week, like for like.", {"ch": ch})
        headline = Phrase("Crypto Market Cap {ch}", {"ch": ch})
        gaps.append("The market's total: not available for the week, so no market cap level is printed.")
    elif change_col != "total_mcap_change_pct" and round(s["total_mcap_change_pct"], 1) != round(
        s[change_col], 1
    ):
        # the coins priced at the open and at the close differ enough to move the total: say what is compared
        parts = {
            "ch": ch,
            "end": end,
            "n": num(t, w, "coins_common", s["coins_common"], "int"),
            "a": num(t, w, "coins_start", s["coins_start"], "int"),
            "b": num(t, w, "coins_end", s["coins_end"], "int"),
        }
        sent = Phrase(
            "Total crypto market cap was {ch} over the week across the {n} coins with a market cap at both "
            "ends ({a} at the open, {b} at the close); the market's total closed at {end}.",
            parts,
        )
        gaps.append(
            "Market cap coverage changed: not every coin had a market cap at both the open and the close, so "
            "the weekly change compares the coins present at both ends, not the totals."
        )
    elif tm["market_total_change_pct"] is not None and round(tm["market_total_change_pct"], 1) == round(
        s[change_col], 1
    ):
        sent = Phrase(
            "Total crypto market cap was {ch} over the week, from {start} to {end}.",
            {"ch": ch, "start": start, "end": end},
        )
    else:
        # the market's total moved differently from the coins compared (another share at one end, or the top
        # coins it is estimated from moving apart from the rest): both are said, each for what it measures
        mch = num(TM, w, "market_total_change_pct", tm["market_total_change_pct"], "pct")
        sent = Phrase(
            "Total crypto market cap was {ch} over the week for the coins tracked at both ends; the "
            "market's total went from {start} to {end} ({mch}).",
            {"ch": ch, "start": start, "end": end, "mch": mch},
        )
    if start is not None and end is not None:
        headline = Phrase("Crypto Market Cap {ch} to {end}", {"ch": ch, "end": end})
    # the size of the news: a 10% week outranks a volatility "since" and most positioning facts
    facts = [
        Fact(
            "mcap_change",
            50,
            sent,
            headline,
            {"change_pct": s[change_col]},
            weight=40 + 6 * abs(s[change_col]),
        )
    ]
    facts += _market_basis(wd, gaps)
    btc = _btc_close(wd)
    if btc is not None:
        facts.append(
            Fact(
                "btc_price",
                49,
                Phrase("Bitcoin closed the week at {p}.", {"p": btc}),
                None,
                {"btc_close": btc.value},
            )
        )
    majors = [
        Phrase(label + " {r}", {"r": num(t, w, col, s[col], "pct")})
        for col, label in (("btc_return_pct", "Bitcoin returned"), ("eth_return_pct", "Ether"))
        if s[col] is not None
    ]
    if majors:
        facts.append(
            Fact(
                "mcap_majors",
                48,
                Phrase("{m} on the week.", {"m": join(majors)}),
                None,
                {"btc": s["btc_return_pct"], "eth": s["eth_return_pct"]},
            )
        )
    else:
        gaps.append("Bitcoin and Ether weekly returns: missing at the open or the close.")
    return facts


def _share_clause(wd: WeekData, t: dict, end: str) -> Phrase:
    """How the market's total at one end was estimated: the top coins' market cap over their share, and where
    the share comes from."""
    parts = {
        "n": num(TM, wd.week, f"top_coins_{end}", t[f"top_coins_{end}"], "int"),
        "s": num(TM, wd.week, f"share_{end}", t[f"share_{end}"], "share_pct1"),
    }
    if t[f"share_source_{end}"] == "measured":
        parts["d"] = num(TM, wd.week, f"share_observed_at_{end}", t[f"share_observed_at_{end}"], "long_date")
        return Phrase(
            "the top {n} coins' market cap divided by their {s} share of CoinGecko's global figure, "
            "measured on {d}",
            parts,
        )
    return Phrase(
        "the top {n} coins' market cap divided by {s}, their share of the global figure measured on real "
        "market listings",
        parts,
    )


def _market_basis(wd: WeekData, gaps: list[str]) -> list[Fact]:
    """What the printed levels are: CoinGecko's global figure as observed, or an estimate and how it was made."""
    t = wd.one(TM)
    if t is None or t.get("basis_open") is None or t.get("basis_close") is None:
        return []
    ends = {e: t[f"basis_{e}"] for e in ("open", "close")}
    if all(b == "observed" for b in ends.values()):
        sent = Phrase(
            "The market's total is CoinGecko's global figure as observed at the open and at the close."
        )
    elif all(b == "estimated" for b in ends.values()) and all(
        t[f"{c}_open"] == t[f"{c}_close"] for c in ("share", "share_source", "share_observed_at", "top_coins")
    ):
        sent = Phrase(
            "The market's total is estimated at both ends: {how}.", {"how": _share_clause(wd, t, "close")}
        )
    else:
        said = {
            e: Phrase("CoinGecko's global figure as observed") if b == "observed" else _share_clause(wd, t, e)
            for e, b in ends.items()
        }
        sent = Phrase(
            "The market's total is, at the open, {o}; at the close, {c}.",
            {"o": said["open"], "c": said["close"]},
        )
    if "real-data constant" in (t["share_source_open"], t["share_source_close"]):
        gaps.append(
            "CoinGecko's global market cap: no observation was usable for the week (none made by two days "
            "after its close), so the market's total rests on the top 100's share measured on real listings."
        )
    return [
        Fact("mcap_total_basis", 47, sent, None, {"basis_open": ends["open"], "basis_close": ends["close"]})
    ]


def _btc_close(wd: WeekData) -> Num | None:
    rows = wd.rows("weekly_cross_asset")
    if rows is None:
        return None
    b = rows.filter((pl.col("asset") == "btc") & pl.col("close_value").is_not_null())
    if not b.height:
        return None
    return num(
        "weekly_cross_asset", wd.week, "close_value", b["close_value"][0], "usd_price", {"asset": "btc"}
    )


def _mcap_change_col(s: dict) -> str:
    """The like-for-like change when the row has it (rows written before it existed: the change of the totals)."""
    return (
        "total_mcap_change_like_for_like_pct"
        if "total_mcap_change_like_for_like_pct" in s
        else "total_mcap_change_pct"
    )


# A level last seen on this side within this many days is a return, not a "first time since".
RECENT_CROSSING_DAYS = 35


def mcap_crossing(wd: WeekData, gaps: list[str]) -> list[Fact]:
    """Round levels crossed by the market's total (``weekly_mcap_crossings`` is computed on it), judged on the
    market's total at the open and the close printed in the lede. On an estimated close the level must lie
    ``ESTIMATE_MARGIN`` beyond it; a close within the estimate's error of the level is said as such."""
    rows = wd.rows("weekly_mcap_crossings")
    t = wd.one(TM)
    if (
        rows is None
        or rows.height == 0
        or t is None
        or t.get("market_total_open_usd") is None
        or t.get("market_total_close_usd") is None
    ):
        return []
    # The crossing that still holds at the close: per level the last crossing; then the level furthest moved.
    last = rows.sort(["level_usd", "crossed_on"]).group_by("level_usd", maintain_order=True).last()
    down = last.filter(pl.col("direction") == "down").sort("level_usd")
    up = last.filter(pl.col("direction") == "up").sort("level_usd", descending=True)
    start = num(TM, wd.week, "market_total_open_usd", t["market_total_open_usd"], "usd")
    end = num(TM, wd.week, "market_total_close_usd", t["market_total_close_usd"], "usd")
    estimated = t["basis_close"] == "estimated"
    for pick in (down, up):
        for r in pick.iter_rows(named=True):
            tc, w, where = (
                "weekly_mcap_crossings",
                wd.week,
                {"level_usd": r["level_usd"], "crossed_on": r["crossed_on"].isoformat()},
            )
            level = num(tc, w, "level_usd", r["level_usd"], "usd_level", where)
            side = "below" if r["direction"] == "down" else "above"
            # "closed below L" only when the week opened at or above L and closed below it (the printed totals)
            pred = Predicate(
                "between_down" if side == "below" else "between_up",
                (start, level, end),
                f"the market's total opened on the other side of the level and closed {side} it",
            )
            if not pred.holds():
                continue
            if estimated:
                m = r["level_usd"] * ESTIMATE_MARGIN
                beyond = Predicate(
                    "gt_by",
                    (level, end) if side == "below" else (end, level),
                    f"the estimated close is {side} the level by more than the estimate's error",
                    m,
                )
                if not beyond.holds():
                    near = (
                        Predicate(
                            "gt",
                            (end, r["level_usd"] - m),
                            "the estimated close is within the estimate's error of the level",
                        ),
                        Predicate(
                            "lt",
                            (end, r["level_usd"] + m),
                            "the estimated close is within the estimate's error of the level",
                        ),
                    )
                    sent = Phrase(
                        "The market's total ended the week at about {end}, within the estimate's error of "
                        "{level}, so we do not call a close " + side + " it.",
                        {"end": end, "level": level},
                    )
                    return [Fact("mcap_near_level", 54, sent, None, dict(r), near)]
                return [_crossing_fact(wd, r, level, side, pred, beyond)]
            return [_crossing_fact(wd, r, level, side, pred)]
    return []


def _crossing_fact(
    wd: WeekData, r: dict, level: Num, side: str, pred: Predicate, beyond: Predicate | None = None
) -> Fact:
    t, w, where = (
        "weekly_mcap_crossings",
        wd.week,
        {"level_usd": r["level_usd"], "crossed_on": r["crossed_on"].isoformat()},
    )
    parts: dict[str, Any] = {"level": level}
    since_day = r["last_other_side_day"]
    base: tuple[Predicate, ...] = (pred,) if beyond is None else (pred, beyond)
    if since_day is not None and (r["crossed_on"] - since_day).days <= RECENT_CROSSING_DAYS:
        # back where it was a few weeks ago: true but no news, so no "first time since" and no headline
        sent = Phrase("The total market cap closed back " + side + " {level}.", parts)
        return Fact("mcap_crossing", 55, sent, None, dict(r), base)
    preds: tuple[Predicate, ...] = base
    if since_day is not None:
        parts["since"] = since = num(t, w, "last_other_side_day", since_day, "month_year", where)
        crossed = num(t, w, "crossed_on", r["crossed_on"], "iso_date", where)
        preds += (
            Predicate(
                "days_before",
                (since, crossed),
                "the 'since' day is more than five weeks before the crossing",
                RECENT_CROSSING_DAYS + 1,
            ),
        )
        tail = " for the first time since {since}"
    else:
        tail = " for the first time in the available history"
    sent = Phrase("The total market cap closed " + side + " {level}" + tail + ".", parts)
    verb = "Falls Below" if side == "below" else "Climbs Above"
    return Fact(
        "mcap_crossing", 100, sent, Phrase("Crypto " + verb + " {level}", {"level": level}), dict(r), preds
    )


def _asset_returns(wd: WeekData) -> tuple[Num | None, list[Num]]:
    """Crypto's weekly return and the other ranked major asset classes' returns, as claims."""
    rows = wd.rows("weekly_cross_asset")
    if rows is None:
        return None, []
    crypto, others = None, []
    for r in (
        rows.filter(pl.col("rank").is_not_null() & pl.col("return_pct").is_not_null())
        .sort("asset")
        .iter_rows(named=True)
    ):
        n = num("weekly_cross_asset", wd.week, "return_pct", r["return_pct"], "pct", {"asset": r["asset"]})
        if r["asset"] == "crypto":
            crypto = n
        else:
            others.append(n)
    return crypto, others


def crypto_rank(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_crypto_rank")
    if r is None or r["crypto_rank"] is None or r["is_worst"] is None:
        rows = wd.rows("weekly_crypto_rank")
        if rows is not None and rows.height:  # an empty partition: missing inputs, named with the source gaps
            gaps.append("Cross-asset rank: crypto had no return this week, so it is not ranked.")
        return []
    t, w = "weekly_crypto_rank", wd.week
    n = num(t, w, "assets_ranked", r["assets_ranked"], "int")
    crypto, others = _asset_returns(wd)
    if crypto is None or not others:
        return []
    worst = Predicate(
        "strict_min", (crypto, *others), "crypto's return is below every other ranked asset class's"
    )
    best = Predicate(
        "strict_max", (crypto, *others), "crypto's return is above every other ranked asset class's"
    )
    # Ties are decided on the printed return: two classes that both print -4.2% tie.
    printed = [crypto.text] + [o.text for o in others]
    tied_worst = crypto.value <= min(o.value for o in others) and printed.count(crypto.text) > 1
    if r["is_worst"] and worst.holds() and not tied_worst and r["worst_streak_weeks"] >= 2:
        k = num(t, w, "worst_streak_weeks", r["worst_streak_weeks"], "ordinal")
        streak = Predicate(
            "ge",
            (num(t, w, "worst_streak_weeks", r["worst_streak_weeks"], "int"), 2),
            "the worst-asset streak is at least two weeks",
        )
        return [
            Fact(
                "crypto_worst_streak",
                90,
                Phrase(
                    "Crypto was the worst-performing major asset class for the {k} consecutive week (of {n} ranked).",
                    {"k": k, "n": n},
                ),
                Phrase("Worst Major Asset Class for the {k} Straight Week", {"k": k}),
                dict(r),
                (worst, streak),
            )
        ]
    if r["is_worst"] and worst.holds() and not tied_worst:
        return [
            Fact(
                "crypto_worst",
                70,
                Phrase("Crypto was the worst-performing of {n} major asset classes this week.", {"n": n}),
                Phrase("Crypto Trails Every Major Asset Class", {}),
                dict(r),
                (worst,),
            )
        ]
    if crypto.value <= min(o.value for o in others):  # tied for last on the printed return
        tie = Predicate(
            "le",
            (crypto, min(others, key=lambda o: o.value)),
            "crypto's return is no higher than the lowest other",
        )
        return [
            Fact(
                "crypto_tied_worst",
                40,
                Phrase(
                    "Crypto tied for the weakest return of the {n} major asset classes ({r}).",
                    {"n": n, "r": crypto},
                ),
                None,
                dict(r),
                (tie,),
            )
        ]
    if best.holds() and printed.count(crypto.text) == 1:
        return [
            Fact(
                "crypto_best",
                60,
                Phrase(
                    "Crypto was the best-performing of {n} major asset classes this week ({r}).",
                    {"n": n, "r": crypto},
                ),
                Phrase("Crypto Leads Every Major Asset Class", {}),
                dict(r),
                (best,),
            )
        ]
    return []


def mcap_extreme(wd: WeekData, gaps: list[str]) -> list[Fact]:
    # weekly closes of the market's total, each as its own week computed it (point in time)
    cur = wd.one(TM)
    col = "market_total_close_usd"
    if cur is None or cur.get(col) is None:
        return []
    h = wd.hist(TM).filter((pl.col("week_start") < wd.week_date) & pl.col(col).is_not_null())
    if h.height == 0:  # first week of history: nothing to compare with
        return []
    t, w, v = TM, wd.week, cur[col]
    out = []
    for kind, op, word, pri in (
        ("last_le", pl.col(col) <= v, "lowest", 60),
        ("last_ge", pl.col(col) >= v, "highest", 55),
    ):
        earlier = h.filter(op)
        if earlier.height == 0:
            continue
        since = earlier["week_start"].max()
        if (wd.week_date - since).days < 7 * MIN_SINCE_WEEKS:
            continue
        close = _market_level(wd, "close")
        s = num(t, w, col, since, "long_date", kind=kind)
        ws = num(t, w, "week_start", wd.week_date, "iso_date")
        pred = Predicate(
            "days_before",
            (s, ws),
            f"the '{word} since' week is at least {MIN_SINCE_WEEKS} weeks back",
            7 * MIN_SINCE_WEEKS,
        )
        out.append(
            Fact(
                f"mcap_{word}_since",
                pri,
                Phrase(
                    "At {close}, the week's close was the "
                    + word
                    + " weekly close since the week of {since}.",
                    {"close": close, "since": s},
                ),
                None,
                {"market_total_close_usd": v, "since_week": since},
                (pred,),
            )
        )
    return out


def funding(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_leverage")
    if r is None:
        return []
    if r["funding_8h_mean"] is None:
        gaps.append("Funding: no funding settlements for the week.")
        return []
    t, w = "weekly_leverage", wd.week
    cur = r["funding_8h_mean"]
    f = num(t, w, "funding_8h_mean", cur, "funding_bp")
    ann = (
        num(t, w, "funding_annualized_mean", r["funding_annualized_mean"], "ann_pct")
        if r["funding_annualized_mean"] is not None
        else None
    )
    parts: dict[str, Any] = {"f": f}
    # The sentence names the weighting the table records (funding_weighting), never more than it was.
    weighting, share = r.get("funding_weighting"), r.get("funding_oi_share")
    if weighting == "oi" or weighting is None:
        base = "Open-interest-weighted funding averaged {f} per 8h"
        how = ""
    elif weighting == "equal":
        base = "Equal-weighted funding (no open-interest readings) averaged {f} per 8h"
        how = ""
    else:  # mixed: OI-weighted over the settlements that had OI, the others left out
        base = "Funding averaged {f} per 8h"
        if share is not None:
            parts["share"] = num(t, w, "funding_oi_share", share, "share_pct")
            how = "open-interest-weighted over the {share} of settlements with an open-interest reading"
        else:
            how = "open-interest-weighted over the settlements with an open-interest reading"
        venues = _venue_labels(r.get("funding_venues_without_oi"))
        gaps.append(
            "Funding weighting: "
            + (" and ".join(venues) + " settlements" if venues else "some settlements")
            + " had no open-interest reading, so the weekly mean is open-interest-weighted over the others only."
        )
    if ann is not None:
        parts["ann"] = ann
        base += " ({ann} annualized" + ("; " + how if how else "") + ")"
    elif how:
        base += " (" + how + ")"
    prev = _prev_row(wd, t)
    facts = []
    if prev is not None and prev["funding_8h_mean"] is not None:
        p = Num(prev["funding_8h_mean"], "funding_bp", t, prev["week_start"].isoformat(), "funding_8h_mean")
        parts["prev"] = p
        neg = Predicate("lt", (f, 0), "funding averaged below zero this week")
        pos = Predicate("gt", (f, 0), "funding averaged above zero this week")
        if cur < 0 <= prev["funding_8h_mean"]:
            was = Predicate("ge", (p, 0), "funding was at or above zero the week before")
            facts.append(
                Fact(
                    "funding_turned_negative",
                    85,
                    Phrase(base + ", turning negative after {prev} the week before.", parts),
                    Phrase("Funding Turns Negative", {}),
                    {"funding": cur, "prev": prev["funding_8h_mean"]},
                    (neg, was),
                )
            )
        elif cur > 0 >= prev["funding_8h_mean"]:
            was = Predicate("le", (p, 0), "funding was at or below zero the week before")
            facts.append(
                Fact(
                    "funding_turned_positive",
                    80,
                    Phrase(base + ", turning positive after {prev} the week before.", parts),
                    Phrase("Funding Turns Positive", {}),
                    {"funding": cur, "prev": prev["funding_8h_mean"]},
                    (pos, was),
                )
            )
        elif cur < 0:
            streak = _neg_streak(wd, t, "funding_8h_mean")
            parts["k"] = k = num(t, w, "funding_8h_mean", streak, "ordinal", kind="neg_streak")
            facts.append(
                Fact(
                    "funding_negative_streak",
                    70,
                    Phrase(base + ", negative for the {k} consecutive week.", parts),
                    None,
                    {"funding": cur, "streak": streak},
                    (neg, Predicate("ge", (k, 2), "funding was negative in at least two consecutive weeks")),
                )
            )
        else:
            facts.append(
                Fact(
                    "funding_level",
                    30,
                    Phrase(base + ", against {prev} the week before.", parts),
                    None,
                    {"funding": cur},
                )
            )
    else:
        facts.append(Fact("funding_level", 30, Phrase(base + ".", parts), None, {"funding": cur}))
    # Daily negative-funding facts from the leverage table itself.
    if r["first_negative_day"] is not None:
        d = {"day": num(t, w, "first_negative_day", r["first_negative_day"], "day_month")}
        if r["first_negative_since"] is not None:
            d["since"] = num(t, w, "first_negative_since", r["first_negative_since"], "day_month")
            tpl = "Daily funding first turned negative on {day}, the first negative day since {since}."
            dpreds = (
                Predicate(
                    "days_before", (d["since"], d["day"]), "the previous negative day is before this one", 1
                ),
            )
        else:
            tpl = "Daily funding turned negative on {day}, the first negative day in the available history."
            dpreds = ()
        facts.append(
            Fact(
                "funding_first_negative_day",
                62,
                Phrase(tpl, d),
                None,
                {"day": r["first_negative_day"]},
                dpreds,
            )
        )
    if r["longest_negative_run_days"] >= 2 and r["longest_negative_run_since"] is not None:
        facts.append(
            Fact(
                "funding_longest_negative_run",
                64,
                Phrase(
                    "The run of negative daily funding reached {n} days, the longest since {since}.",
                    {
                        "n": num(t, w, "longest_negative_run_days", r["longest_negative_run_days"], "int"),
                        "since": num(
                            t, w, "longest_negative_run_since", r["longest_negative_run_since"], "day_month"
                        ),
                    },
                ),
                None,
                {"days": r["longest_negative_run_days"]},
                (
                    Predicate(
                        "ge",
                        (num(t, w, "longest_negative_run_days", r["longest_negative_run_days"], "int"), 2),
                        "the negative run is at least two days",
                    ),
                ),
            )
        )
    return facts


def _neg_streak(wd: WeekData, table: str, column: str) -> int:
    h = wd.hist(table).sort("week_start", descending=True)
    n, expect = 0, wd.week_date
    for row in h.iter_rows(named=True):
        if row["week_start"] != expect or row[column] is None or not row[column] < 0:
            break
        n += 1
        expect = date.fromordinal(expect.toordinal() - 7)
    return n


VENUE_LABELS = {"binance": "Binance", "bybit": "Bybit", "okx": "OKX"}


def _venue_labels(venues: str | None) -> list[str]:
    """Display names of a comma-separated venue (or venue:symbol) list, deduplicated, in order. Unknown venues keep
    only their letters: these strings also go into the Data gaps lines, which are plain text."""
    out: list[str] = []
    for item in (venues or "").split(","):
        v = item.strip().split(":", 1)[0]
        if not v:
            continue
        label = VENUE_LABELS.get(v.lower()) or re.sub(r"[^A-Za-z]", "", v).capitalize() or "another venue"
        if label not in out:
            out.append(label)
    return out


def _and(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _oi_change(wd: WeekData, r: dict, gaps: list[str]) -> list[Fact]:
    """The weekly OI change, like for like: only the series present at both ends (see METHODOLOGY)."""
    t, w = "weekly_leverage", wd.week
    if "oi_change_like_for_like_pct" not in r:  # a row written before the coverage columns existed
        if r["oi_change_pct"] is None:
            return []
        c = num(t, w, "oi_change_pct", r["oi_change_pct"], "pct")
        return [
            Fact(
                "oi_weekly_change",
                32,
                Phrase("Open interest changed {c} on the week.", {"c": c}),
                None,
                {"oi_change_pct": r["oi_change_pct"]},
            )
        ]
    lfl = r["oi_change_like_for_like_pct"]
    if lfl is None:
        gaps.append(
            "Open interest: no venue had a reading at both the open and the close, so no weekly change is reported."
        )
        return []
    parts: dict[str, Any] = {"c": num(t, w, "oi_change_like_for_like_pct", lfl, "pct")}
    numbers = {"oi_change_like_for_like_pct": lfl, "oi_change_pct": r["oi_change_pct"]}
    if not r.get("coverage_changed"):
        return [
            Fact(
                "oi_weekly_change", 32, Phrase("Open interest changed {c} on the week.", parts), None, numbers
            )
        ]
    v_open, v_close = _venue_labels(r.get("oi_venues_open")), _venue_labels(r.get("oi_venues_close"))
    common = _venue_labels(r.get("oi_venues_common"))
    lost = [v for v in v_open if v not in v_close]
    joined = [v for v in v_close if v not in v_open]
    if lost or joined:
        parts["venues"] = Txt(_and(common))
        tpl = "Open interest changed {c} on the week, comparing {venues} at both ends"
        notes = []
        if lost:
            parts["lost"] = Txt(_and(lost))
            tpl += "; {lost} had no open-interest reading on the close day"
            notes.append(_and(lost) + " had no open-interest reading on the close day")
        if joined:
            parts["joined"] = Txt(_and(joined))
            tpl += "; {joined} had no reading at the open"
            notes.append(_and(joined) + " had no open-interest reading at the open")
        gaps.append(
            "Open interest coverage changed: "
            + "; ".join(notes)
            + ". The weekly change compares "
            + _and(common)
            + " at both ends, not the totals."
        )
    else:
        parts |= {
            "n": num(t, w, "oi_series_common", r["oi_series_common"], "int"),
            "o": num(t, w, "oi_series_open", r["oi_series_open"], "int"),
            "k": num(t, w, "oi_series_close", r["oi_series_close"], "int"),
        }
        tpl = "Open interest changed {c} on the week over the {n} venue-symbol series present at both ends ({o} at the open, {k} at the close)"
        gaps.append(
            "Open interest coverage changed: some symbols had a reading at only one end of the week; the "
            "weekly change compares the series present at both ends, not the totals."
        )
    return [Fact("oi_weekly_change", 32, Phrase(tpl + ".", parts), None, numbers)]


def open_interest(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_leverage")
    if r is None:
        return []
    if r["oi_close_usd"] is None:
        gaps.append("Open interest: no reading at the week's close.")
        return []
    t, w = "weekly_leverage", wd.week
    oi = num(t, w, "oi_close_usd", r["oi_close_usd"], "usd")
    facts = []
    if r["oi_ref_usd"] is not None and r["oi_vs_ref_pct"] is not None and r["oi_ref_day"] is not None:
        # oi_vs_ref_pct is like for like (the series present on the reference day and at the close): the
        # headline reads it, so a venue missing at the close cannot make "Leverage Resets".
        parts = {
            "oi": oi,
            "ref": num(t, w, "oi_ref_usd", r["oi_ref_usd"], "usd"),
            "day": num(t, w, "oi_ref_day", r["oi_ref_day"], "day_month"),
            "pct": num(t, w, "oi_vs_ref_pct", r["oi_vs_ref_pct"], "below_above_pct"),
        }
        tpl = "Total perpetual open interest stands at {oi}, {pct} {ref}, the 90-day high set on {day}."
        left_out = _venue_labels(r.get("oi_ref_missing"))
        if left_out:
            parts["left"] = Txt(_and(left_out))
            tpl = (
                "Total perpetual open interest stands at {oi}; over the series with a reading on both days it is {pct} "
                "{ref}, the 90-day high set on {day} ({left} series without a reading on that day are left out)."
            )
        # "Leverage Resets": open interest well below its reference peak AND not rising this week
        preds = [
            Predicate(
                "le",
                (parts["pct"], DELEVERAGING_PCT),
                f"open interest is at least {-DELEVERAGING_PCT:.0f}% below its reference peak",
            )
        ]
        lfl_col = "oi_change_like_for_like_pct" if "oi_change_like_for_like_pct" in r else "oi_change_pct"
        if r[lfl_col] is not None:
            preds.append(
                Predicate(
                    "le", (num(t, w, lfl_col, r[lfl_col], "pct"), 0), "open interest did not rise on the week"
                )
            )
        delev = len(preds) == 2 and hold(preds)
        facts.append(
            Fact(
                "oi_deleveraging" if delev else "oi_vs_peak",
                75 if delev else 35,
                Phrase(tpl, parts),
                Phrase("Leverage Resets", {}) if delev else None,
                {"oi_vs_ref_pct": r["oi_vs_ref_pct"], "oi_change_pct": r[lfl_col]},
                tuple(preds) if delev else (),
            )
        )
    facts.extend(_oi_change(wd, r, gaps))
    return facts


def spot_volume(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_volume")
    if r is None:
        return []
    if r["spot_volume_usd"] is None:
        gaps.append("Spot volume: fewer than seven days of volume for the week, so it is not reported.")
        return []
    t, w = "weekly_volume", wd.week
    parts: dict[str, Any] = {"v": num(t, w, "spot_volume_usd", r["spot_volume_usd"], "usd")}
    tpl = "Spot volume totalled {v} over the week"
    resilient, preds = False, ()
    if r["spot_change_pct"] is not None:
        parts["c"] = num(t, w, "spot_change_pct", r["spot_change_pct"], "pct")
        tpl += " ({c} against the week before)"
        s = wd.one("weekly_market_summary")
        if s is not None and s[_mcap_change_col(s)] is not None:
            mc = num("weekly_market_summary", w, _mcap_change_col(s), s[_mcap_change_col(s)], "pct")
            preds = (
                Predicate(
                    "ge",
                    (parts["c"], RESILIENT_SPOT_PCT),
                    f"spot volume fell less than {-RESILIENT_SPOT_PCT:.0f}% on the week",
                ),
                Predicate("lt", (mc, 0), "the total market cap fell on the week"),
            )
            resilient = hold(preds)
    facts = [
        Fact(
            "spot_resilient" if resilient else "spot_volume",
            55 if resilient else 30,
            Phrase(tpl + (", holding up while prices fell." if resilient else "."), parts),
            None,
            {"spot_change_pct": r["spot_change_pct"]},
            preds if resilient else (),
        )
    ]
    if r["perp_to_spot"] is not None:
        pp: dict[str, Any] = {"r": num(t, w, "perp_to_spot", r["perp_to_spot"], "ratio")}
        tpl = "Perp volume was {r} spot volume"
        if r["perp_to_spot_prev"] is not None:
            pp["p"] = num(t, w, "perp_to_spot_prev", r["perp_to_spot_prev"], "ratio")
            tpl += " (the week before: {p})"
        facts.append(
            Fact("perp_to_spot", 28, Phrase(tpl + ".", pp), None, {"perp_to_spot": r["perp_to_spot"]})
        )
    return facts


def leverage_skew(wd: WeekData, gaps: list[str]) -> list[Fact]:
    """Positioning: where funding and the long/short account ratio agree, which way leverage leans; where they
    disagree, both are stated without a lean. The table's ``leverage_skew`` label is not printed on its own."""
    r = wd.one("weekly_leverage")
    if r is None or r["funding_8h_mean"] is None or r["long_short_ratio_mean"] is None:
        return []
    t, w = "weekly_leverage", wd.week
    f = num(t, w, "funding_8h_mean", r["funding_8h_mean"], "funding_bp")
    ls = num(t, w, "long_short_ratio_mean", r["long_short_ratio_mean"], "fixed2")
    short = (
        Predicate("lt", (f, 0), "funding averaged below zero"),
        Predicate("lt", (ls, 1), "fewer accounts long than short"),
    )
    long_ = (
        Predicate("gt", (f, 0), "funding averaged above zero"),
        Predicate("gt", (ls, 1), "more accounts long than short"),
    )
    if hold(short):
        return [
            Fact(
                "leverage_skew_short",
                40,
                Phrase(
                    "Positioning leans short: funding is below zero and the long/short account ratio averaged {ls}, fewer accounts long than short.",
                    {"ls": ls},
                ),
                None,
                {"skew": "short"},
                short,
            )
        ]
    if hold(long_):
        return [
            Fact(
                "leverage_skew_long",
                25,
                Phrase(
                    "Positioning leans long: funding is above zero and the long/short account ratio averaged {ls}, more accounts long than short.",
                    {"ls": ls},
                ),
                None,
                {"skew": "long"},
                long_,
            )
        ]
    return [
        Fact(
            "leverage_skew_mixed",
            20,
            Phrase(
                "Positioning gives no clear lean: the long/short account ratio averaged {ls} while funding averaged {f} per 8h.",
                {"ls": ls, "f": f},
            ),
            None,
            {"skew": "mixed"},
        )
    ]


def correlation(wd: WeekData, gaps: list[str]) -> list[Fact]:
    rows = wd.rows("weekly_correlation_buckets")
    if rows is None:
        return []
    b = {r["bucket"]: r for r in rows.iter_rows(named=True)}
    top, small = b.get("1-10"), b.get("51-100")
    if top is None or small is None:
        gaps.append("Correlation: the 1-10 or 51-100 bucket is missing.")
        return []
    t, w = "weekly_correlation_buckets", wd.week
    facts = []
    need = ("avg_pairwise_corr", "ew_return_pct")
    if any(top[c] is None or small[c] is None for c in need):
        gaps.append(
            "Correlation: not enough overlapping daily returns to compare the 1-10 and 51-100 buckets."
        )
    else:
        p = {
            "tc": num(t, w, "avg_pairwise_corr", top["avg_pairwise_corr"], "corr", {"bucket": "1-10"}),
            "tr": num(t, w, "ew_return_pct", top["ew_return_pct"], "pct", {"bucket": "1-10"}),
            "sc": num(t, w, "avg_pairwise_corr", small["avg_pairwise_corr"], "corr", {"bucket": "51-100"}),
            "sr": num(t, w, "ew_return_pct", small["ew_return_pct"], "pct", {"bucket": "51-100"}),
        }
        others = [
            num(t, w, "ew_return_pct", r["ew_return_pct"], "pct", {"bucket": r["bucket"]})
            for r in b.values()
            if r["bucket"] != "1-10" and r["ew_return_pct"] is not None
        ]
        preds = (
            Predicate(
                "gt_by",
                (p["tc"], p["sc"]),
                f"the top 10's average pairwise correlation is above ranks 51-100's by more than {CORR_MARGIN}",
                CORR_MARGIN,
            ),
            Predicate(
                "strict_min",
                (p["tr"], *others),
                "the top 10's equal-weight return is below every other rank bucket's",
            ),
        )
        if hold(preds) and p["tr"].text not in {o.text for o in others}:
            # the lowest return in words that fit its sign: in a rising week the top 10 "gained the least"
            if round(top["ew_return_pct"], 1) < 0:
                did, sign = (
                    "lost the most",
                    (Predicate("lt", (p["tr"], 0), "the top 10's equal-weight return is below zero"),),
                )
            elif round(top["ew_return_pct"], 1) > 0:
                did, sign = (
                    "gained the least",
                    (Predicate("gt", (p["tr"], 0), "the top 10's equal-weight return is above zero"),),
                )
            else:
                did, sign = "did worst", ()
            facts.append(
                Fact(
                    "corr_concentrated_top",
                    60,
                    Phrase(
                        "Correlation is concentrated in the top 10 (average pairwise {tc}), which also "
                        + did
                        + " of the rank buckets (equal-weight return {tr}); ranks 51-100 averaged a correlation of {sc} and an equal-weight return of {sr}.",
                        p,
                    ),
                    None,
                    {"top": top["avg_pairwise_corr"], "small": small["avg_pairwise_corr"]},
                    preds + sign,
                )
            )
        elif hold(preds[:1]):
            facts.append(
                Fact(
                    "corr_concentrated",
                    35,
                    Phrase(
                        "Correlation is highest in the top 10 (average pairwise {tc}, equal-weight return {tr}) and lower in ranks 51-100 ({sc}, equal-weight return {sr}).",
                        p,
                    ),
                    None,
                    {"top": top["avg_pairwise_corr"], "small": small["avg_pairwise_corr"]},
                    preds[:1],
                )
            )
        else:
            facts.append(
                Fact(
                    "corr_buckets",
                    30,
                    Phrase(
                        "Average pairwise correlation was {tc} in the top 10 (equal-weight return {tr}) and {sc} in ranks 51-100 (equal-weight return {sr}).",
                        p,
                    ),
                    None,
                    {"top": top["avg_pairwise_corr"], "small": small["avg_pairwise_corr"]},
                )
            )
    if small["decoupling"] and small["avg_corr_to_btc_change"] is not None:
        c = num(
            t,
            w,
            "avg_corr_to_btc_change",
            small["avg_corr_to_btc_change"],
            "corr_change",
            {"bucket": "51-100"},
        )
        pred = Predicate(
            "lt", (c, 0), "ranks 51-100's correlation to BTC fell against the previous weeks' average"
        )
        if pred.holds() and round(small["avg_corr_to_btc_change"], 2) < 0:
            facts.append(
                Fact(
                    "small_caps_decoupling",
                    58,
                    Phrase(
                        "Ranks 51-100 show early signs of decoupling: their correlation to BTC moved {c} against the previous weeks' average.",
                        {"c": c},
                    ),
                    None,
                    {"change": small["avg_corr_to_btc_change"]},
                    (pred,),
                )
            )
    return facts


def btc_volatility(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_btc_volatility")
    if r is None:
        return []
    if r["rv7_hourly_pct"] is None:
        gaps.append("BTC volatility: not enough hourly bars for the 7-day window.")
        return []
    t, w = "weekly_btc_volatility", wd.week
    p: dict[str, Any] = {"rv": num(t, w, "rv7_hourly_pct", r["rv7_hourly_pct"], "level_pct")}
    tpl = "Bitcoin's 7-day realized volatility (hourly, annualized) is {rv}"
    if r["rv7_change_pts"] is not None:
        p["ch"] = num(t, w, "rv7_change_pts", r["rv7_change_pts"], "pts")
        tpl += " ({ch} on the week)"
    if r["rv7_highest_since"] is not None and r["rv7_change_pts"] is not None:
        # "highest since D" only when the volatility rose and D lies well before the week (not inside it)
        since = num(t, w, "rv7_highest_since", r["rv7_highest_since"], "day_month")
        preds = (
            Predicate("gt", (p["ch"], 0), "the 7-day volatility rose on the week"),
            Predicate(
                "days_before",
                (since, num(t, w, "week_start", wd.week_date, "iso_date")),
                f"the 'since' day is at least {MIN_SINCE_DAYS} days before the week's open",
                MIN_SINCE_DAYS + 1,
            ),
        )
        if hold(preds) and round(r["rv7_change_pts"], 1) > 0:
            p["since"] = since
            # a rise under 10 points is a footnote, not a headline
            big = r["rv7_change_pts"] >= 10
            return [
                Fact(
                    "btc_rv_highest_since",
                    65 if big else 40,
                    Phrase(tpl + ", the highest since {since}.", p),
                    Phrase("Bitcoin Volatility Highest Since {since}", {"since": since}) if big else None,
                    {"rv7": r["rv7_hourly_pct"]},
                    preds,
                    weight=40 + r["rv7_change_pts"],
                )
            ]
    h = wd.hist(t).filter(pl.col("rv7_hourly_pct").is_not_null())
    if r["rv7_highest_since"] is None and r["rv7_change_pts"] is not None and h.height >= 8:
        # the dataset's maximum: no earlier day was higher, so say so (instead of saying nothing)
        top = num(t, w, "rv7_hourly_pct", h["rv7_hourly_pct"].max(), "level_pct", kind="hist_max")
        preds = (
            Predicate("gt", (p["ch"], 0), "the 7-day volatility rose on the week"),
            Predicate(
                "ge", (p["rv"], top), "the 7-day volatility is the highest weekly reading of the history"
            ),
        )
        if hold(preds) and round(r["rv7_change_pts"], 1) > 0:
            return [
                Fact(
                    "btc_rv_record",
                    66,
                    Phrase(tpl + ", the highest weekly reading in the available history.", p),
                    Phrase("Bitcoin Volatility at a Record for the Data", {}),
                    {"rv7": r["rv7_hourly_pct"]},
                    preds,
                    weight=40 + r["rv7_change_pts"],
                )
            ]
    return [Fact("btc_rv", 30, Phrase(tpl + ".", p), None, {"rv7": r["rv7_hourly_pct"]})]


def sector_extremes(wd: WeekData, gaps: list[str]) -> list[Fact]:
    rows = wd.rows("weekly_index_returns")
    if rows is None:
        return []
    sec = rows.filter(pl.col("index").is_in(list(SECTORS)) & pl.col("return_pct").is_not_null())
    if sec.height < 2:
        return []
    t, w = "weekly_index_returns", wd.week
    # Ties are decided on the printed value: two sectors that both print -12.0% are named together.
    sec = sec.with_columns(pl.col("return_pct").round(1).alias("_r")).sort(["_r", "index"])
    facts = []
    for key, val, word, pri in (
        ("worst_sector", sec["_r"].min(), "weakest", 45),
        ("best_sector", sec["_r"].max(), "strongest", 35),
    ):
        tied = sec.filter(pl.col("_r") == val).sort("index")
        names = [r["index"] for r in tied.iter_rows(named=True)]
        labels = " and ".join(INDEX_LABELS.get(n, n) for n in names)
        first = tied.row(0, named=True)
        if (
            word == "weakest"
        ):  # the wording follows the sign: the weakest of a rising week only "gained least"
            word = "weakest" if val < 0 else "smallest-gaining" if val > 0 else "flattest"
        else:
            word = "strongest" if val > 0 else "most resilient" if val < 0 else "flattest"
        verb = "were the " + word + " sectors" if len(names) > 1 else "was the " + word + " sector"
        r = num(t, w, "return_pct", first["return_pct"], "pct", {"index": first["index"]})
        rest = [
            num(t, w, "return_pct", x["return_pct"], "pct", {"index": x["index"]})
            for x in sec.filter(pl.col("_r") != val).iter_rows(named=True)
        ]
        pred = Predicate(
            "strict_min" if key == "worst_sector" else "strict_max",
            (r, *rest),
            f"the {word} sector's return is beyond every other sector's",
        )
        if not pred.holds():
            continue
        facts.append(
            Fact(
                key,
                pri,
                Phrase(labels.replace("{", "(").replace("}", ")") + " " + verb + " ({r}).", {"r": r}),
                None,
                {"indices": names, "return_pct": first["return_pct"]},
                (pred,),
            )
        )
    return facts


def coin_label(name: str, symbol: str) -> Phrase:
    """A coin as "Name (SYM)". A name that carries its own parenthesis ("POL (ex-MATIC)") is not followed by a
    second one: it is printed alone when it already contains the symbol, else as "Name, SYM"."""
    sym = symbol.upper()
    if "(" not in name and ")" not in name:
        return Phrase("{n} ({s})", {"n": Txt(name), "s": Txt(sym)})
    if re.search(r"(?<![A-Za-z0-9])" + re.escape(sym) + r"(?![A-Za-z0-9])", name, re.IGNORECASE):
        return Phrase("{n}", {"n": Txt(name)})
    return Phrase("{n}, {s}", {"n": Txt(name), "s": Txt(sym)})


def top_mover(wd: WeekData, gaps: list[str]) -> list[Fact]:
    rows = wd.rows("weekly_movers")
    if rows is None or rows.height == 0:
        return []
    t, w = "weekly_movers", wd.week
    out = []
    for kind, word, pri in (("gainer", "best", 26), ("loser", "worst", 25)):
        m = rows.filter((pl.col("kind") == kind) & (pl.col("position") == 1))
        if m.height:
            r = m.row(0, named=True)
            out.append(
                Fact(
                    f"top_{kind}",
                    pri,
                    Phrase(
                        "{coin} was the " + word + " performer of the top 100 ({r}).",
                        {
                            "coin": coin_label(r["name"], r["symbol"]),
                            "r": num(
                                t, w, "return_pct", r["return_pct"], "pct", {"kind": kind, "position": "1"}
                            ),
                        },
                    ),
                    None,
                    {"coin_id": r["coin_id"]},
                )
            )
    return out


FACT_FUNCTIONS = (
    mcap_crossing,
    crypto_rank,
    mcap_change,
    mcap_extreme,
    funding,
    open_interest,
    spot_volume,
    leverage_skew,
    correlation,
    btc_volatility,
    sector_extremes,
    top_mover,
)


def derive_facts(wd: WeekData) -> tuple[list[Fact], list[str]]:
    """Every fact the week supports, ranked (priority, then key), and the data gaps met on the way."""
    gaps: list[str] = []
    facts: list[Fact] = []
    for fn in FACT_FUNCTIONS:
        facts.extend(fn(wd, gaps))
    facts.sort(key=lambda f: (-f.priority, f.key))
    return facts, gaps


# ---- Our View: reasoning built by rules -------------------------------------------------------------------------
# Two to four paragraphs, each present only when its facts are: where the week sits, the state of leverage,
# flows / correlation / volatility, and what would change the view. Every number is a claim (a Num) and every
# judgment a Predicate that must hold on the tables (and is re-checked on the lake before publication). The
# wording varies across weeks by a hash of the week key, never by randomness, so a week always reads the same.
VIEW_HORIZON = (
    "over the next one to two weeks",
    "within the coming fortnight",
    "over the next couple of weekly closes",
)
CORR_MARGIN = 0.05  # "more tightly together" needs at least this gap in average pairwise correlation
FLOW_MARGIN = 0.05  # "towards spot / derivatives": the perp-to-spot ratio moved by more than this
VOL_MARGIN = 3.0  # "rising" / "calming" volatility: 7-day at least this many points from the 30-day


def _pick(week: str, salt: str, options: tuple[str, ...]) -> str:
    h = int(hashlib.sha256((week + "|" + salt).encode()).hexdigest(), 16)
    return options[h % len(options)]


@dataclass
class _Para:
    key: str
    pieces: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    preds: list[Predicate] = field(default_factory=list)

    def add(
        self,
        template: str,
        parts: dict[str, Any] | None = None,
        preds: tuple[Predicate, ...] | list[Predicate] = (),
    ) -> bool:
        """Add a sentence when its predicates hold; return whether it was added."""
        if not hold(list(preds)):
            return False
        self.pieces.append((template, parts or {}))
        self.preds.extend(preds)
        return True

    def fact(self) -> Fact | None:
        if not self.pieces:
            return None
        parts: dict[str, Any] = {}
        tpls = []
        for i, (tpl, pp) in enumerate(self.pieces):
            sub = {k: f"s{i}_{k}" for k in pp}
            for k, v in pp.items():
                parts[sub[k]] = v
            tpls.append(tpl.format(**{k: "{" + sub[k] + "}" for k in pp}))
        return Fact("view_" + self.key, 0, Phrase(" ".join(tpls), parts), None, {}, tuple(self.preds))


def our_view(facts: list[Fact], wd: WeekData | None = None) -> list[Fact]:
    """The week's view as reasoning: thesis, evidence, mechanism, condition, horizon. Without the week's tables
    (``wd`` None) only the rule-free fallback is returned."""
    if wd is None:
        return [Fact("view_fallback", 0, Phrase(FALLBACK_VIEW))]
    keys = {f.key for f in facts}
    paras = [
        p
        for p in (
            _view_position(wd, keys),
            _view_leverage(wd),
            _view_flows(wd, keys),
            _view_change(wd, facts),
        )
        if p is not None
    ]
    out = [f for f in (p.fact() for p in paras) if f is not None]
    if len(out) < 2:
        out.append(Fact("view_fallback", 0, Phrase(FALLBACK_VIEW)))
    return out


def _summary_nums(wd: WeekData) -> tuple[Num, Num, Num] | None:
    s = wd.one("weekly_market_summary")
    if s is None or s[_mcap_change_col(s)] is None:
        return None
    t = "weekly_market_summary"
    return (
        num(t, wd.week, _mcap_change_col(s), s[_mcap_change_col(s)], "pct"),
        num(t, wd.week, "total_mcap_end_usd", s["total_mcap_end_usd"], "usd"),
        num(t, wd.week, "total_mcap_start_usd", s["total_mcap_start_usd"], "usd"),
    )


def _equities_down(wd: WeekData) -> list[Predicate]:
    """One predicate per equity index of the cross-asset table saying it fell; empty when there is none or one
    rose (then nothing may be called a macro de-risking)."""
    _, others = _asset_returns(wd)
    preds = [
        Predicate("lt", (e, 0), f"{dict(e.where)['asset']} fell on the week")
        for e in others
        if dict(e.where).get("asset") in EQUITIES
    ]
    return preds if preds and hold(preds) else []


def _view_position(wd: WeekData, keys: set[str]) -> _Para | None:
    sm = _summary_nums(wd)
    if sm is None:
        return None
    ch, tracked_end, _ = sm
    # the level printed is the one the lede prints: the market's total ("about" when estimated); without it, the
    # tracked coins' total, said as such
    end = _market_level(wd, "close") or Phrase("{v} for the coins tracked", {"v": tracked_end})
    w = wd.week
    p = _Para("position")
    up, down = (
        Predicate("gt", (ch, 0), "the total market cap rose on the week"),
        Predicate("lt", (ch, 0), "the total market cap fell on the week"),
    )
    crypto, others = _asset_returns(wd)
    worst = (
        Predicate(
            "strict_min", (crypto, *others), "crypto's return is below every other ranked asset class's"
        )
        if crypto and others
        else None
    )
    best = (
        Predicate(
            "strict_max", (crypto, *others), "crypto's return is above every other ranked asset class's"
        )
        if crypto and others
        else None
    )
    # "Macro de-risking" and "highest-beta risk asset" only when equities fell too; crypto falling alone is its own.
    equities = [o for o in others if dict(o.where).get("asset") in EQUITIES]
    eq_down = _equities_down(wd)
    eq_up = next(
        (
            e
            for e in sorted(equities, key=lambda e: dict(e.where)["asset"])
            if e.value is not None and e.value > 0
        ),
        None,
    )
    prev = _prev_row(wd, "weekly_market_summary")
    pch = None
    if prev is not None and prev[_mcap_change_col(prev)] is not None:
        pcol = _mcap_change_col(prev)
        pch = Num(prev[pcol], "pct", "weekly_market_summary", prev["week_start"].isoformat(), pcol)
    if (
        worst is not None
        and eq_down
        and p.add(
            _pick(
                w,
                "thesis-worst",
                (
                    "Crypto traded as the market's highest-beta risk asset: its {cr} on the week (total market cap, close to close) was worse than every other major asset class we track, equities included.",
                    "The week was a macro de-risking in which crypto took the brunt: {cr} for the total market cap, the weakest of the major asset classes while equities fell too.",
                ),
            ),
            {"cr": crypto},
            (down, worst, *eq_down),
        )
    ):
        pass
    elif (
        worst is not None
        and eq_up is not None
        and p.add(
            "Crypto fell on its own: its {cr} on the week (total market cap, close to close) was the weakest of the major asset classes while the "
            + ASSET_LABELS[dict(eq_up.where)["asset"]]
            + " returned {eq}, so the selling came from inside crypto rather than from a retreat from risk everywhere.",
            {"cr": crypto, "eq": eq_up},
            (down, worst, Predicate("gt", (eq_up, 0), "an equity index rose on the week")),
        )
    ):
        pass
    elif best is not None and p.add(
        _pick(
            w,
            "thesis-best",
            (
                "Crypto led the risk complex this week: its {cr} (total market cap, close to close) was ahead of every other major asset class we track.",
                "Crypto outpaced every other major asset class this week: {cr} for the total market cap.",
            ),
        ),
        {"cr": crypto},
        (up, best),
    ):
        pass
    elif pch is not None and p.add(
        _pick(
            w,
            "thesis-up",
            (
                "The total market cap moved {ch} on the week to {end}, a recovery from the week before's {pch} rather than a trend so far.",
                "The market recovered {ch} on the week, closing at {end} after {pch} the week before.",
            ),
        ),
        {"ch": ch, "end": end, "pch": pch},
        (up, Predicate("lt", (pch, 0), "the total market cap fell the week before")),
    ):
        pass
    elif pch is not None and p.add(
        _pick(
            w,
            "thesis-down",
            (
                "The total market cap moved {ch} on the week to {end}, extending the week before's {pch} and the pressure on positioning.",
                "The market lost ground again, {ch} on the week to a close of {end} after {pch} the week before.",
            ),
        ),
        {"ch": ch, "end": end, "pch": pch},
        (down, Predicate("lt", (pch, 0), "the total market cap fell the week before")),
    ):
        pass
    elif not p.add("The total market cap rose {ch} on the week to {end}.", {"ch": ch, "end": end}, (up,)):
        p.add("The total market cap fell {ch} on the week to {end}.", {"ch": ch, "end": end}, (down,))
    # Where the week sits against the peak of the available history.
    cur = wd.one(TM)
    col = "market_total_close_usd"  # the market's total, each week as it computed it
    hist = wd.hist(TM).filter(pl.col(col).is_not_null())
    if cur is not None and cur.get(col) is not None and hist.height >= 4:
        t = TM
        close = num(t, w, col, cur[col], "usd")
        top = hist.sort([col, "week_start"], descending=True).row(0, named=True)
        peak = num(t, w, col, top[col], "usd", kind="hist_max")
        peak_week = num(t, w, col, top["week_start"], "long_date", kind="hist_max_week")
        below = Predicate(
            "lt", (close, peak), "the week's close is below the highest weekly close of the history"
        )
        said = {
            "close": _market_level(wd, "close") or close,
            "peak": Phrase("about {v}" if top.get("basis_close") == "estimated" else "{v}", {"v": peak}),
        }
        if not p.add(
            "At {close} the market sits below its peak weekly close of {peak} (week of {pw}).",
            {**said, "pw": peak_week},
            (below,),
        ):
            p.add(
                "The close of {close} is the highest weekly close in the available history.",
                {"close": said["close"]},
                (
                    Predicate(
                        "ge", (close, peak), "the week's close is the highest weekly close of the history"
                    ),
                ),
            )
    r = wd.one("weekly_crypto_rank")
    if (
        r is not None
        and r["worst_streak_weeks"] is not None
        and r["worst_streak_weeks"] >= 2
        and "crypto_worst_streak" in keys
    ):
        k = num("weekly_crypto_rank", w, "worst_streak_weeks", r["worst_streak_weeks"], "ordinal")
        streak = Predicate(
            "ge",
            (num("weekly_crypto_rank", w, "worst_streak_weeks", r["worst_streak_weeks"], "int"), 2),
            "the worst-asset streak is at least two weeks",
        )
        if not (
            eq_down
            and p.add(
                "It is the {k} straight week at the bottom of the cross-asset table, so the driver is macro risk appetite rather than anything specific to crypto.",
                {"k": k},
                (streak, *eq_down),
            )
        ):
            p.add("It is the {k} straight week at the bottom of the cross-asset table.", {"k": k}, (streak,))
    return p


def _view_leverage(wd: WeekData) -> _Para | None:
    r = wd.one("weekly_leverage")
    if r is None or r["funding_8h_mean"] is None:
        return None
    t, w = "weekly_leverage", wd.week
    p = _Para("leverage")
    f = num(t, w, "funding_8h_mean", r["funding_8h_mean"], "funding_bp")
    neg, pos = (
        Predicate("lt", (f, 0), "funding averaged below zero"),
        Predicate("gt", (f, 0), "funding averaged above zero"),
    )
    lfl_col = "oi_change_like_for_like_pct" if "oi_change_like_for_like_pct" in r else "oi_change_pct"
    oc = num(t, w, lfl_col, r[lfl_col], "pct") if r[lfl_col] is not None else None
    vs = None
    if r["oi_vs_ref_pct"] is not None and r["oi_ref_usd"] is not None and r["oi_ref_day"] is not None:
        vs = num(t, w, "oi_vs_ref_pct", r["oi_vs_ref_pct"], "below_above_pct")
        ref = num(t, w, "oi_ref_usd", r["oi_ref_usd"], "usd")
        day = num(t, w, "oi_ref_day", r["oi_ref_day"], "day_month")
        flushed = (
            Predicate(
                "le",
                (vs, DELEVERAGING_PCT),
                f"open interest is at least {-DELEVERAGING_PCT:.0f}% below its reference peak",
            ),
            neg,
        )
        if not p.add(
            _pick(
                w,
                "flushed",
                (
                    "Leverage has been flushed out: perpetual open interest is {vs} {ref}, its 90-day high of {day}, and funding averaged {f} per 8h, so shorts are paying longs. With positioning this light, forced selling has less fuel left, which is what usually precedes a more orderly market.",
                    "Positioning has reset: open interest is {vs} {ref}, its 90-day high of {day}, and with funding at {f} per 8h the cost of leverage now sits with shorts. Fewer leveraged longs means fewer forced sellers if prices slip again.",
                ),
            ),
            {"vs": vs, "ref": ref, "day": day, "f": f},
            flushed,
        ):
            if not p.add(
                "Leverage is lighter than at its peak, open interest being {vs} {ref}, its 90-day high of {day}, but funding of {f} per 8h says longs are still paying to hold their positions: the reset is in size, not yet in sentiment.",
                {"vs": vs, "ref": ref, "day": day, "f": f},
                (flushed[0], pos),
            ):
                p.add(
                    "Perpetual open interest is {vs} {ref}, its 90-day high of {day}, with funding averaging {f} per 8h.",
                    {"vs": vs, "ref": ref, "day": day, "f": f},
                )
    else:
        p.add("Funding averaged {f} per 8h.", {"f": f})
    sm = _summary_nums(wd)
    if oc is not None and sm is not None:
        ch = sm[0]
        rising = (Predicate("gt", (oc, 0), "open interest rose on the week"), pos)
        if p.add(
            "Leverage is rebuilding: open interest rose {oc} on the week with funding positive,",
            {"oc": oc},
            rising,
        ):
            if not p.add(
                "which supports the move.",
                {},
                (Predicate("same_sign", (f, ch), "funding and the market's move have the same sign"),),
            ):
                p.add(
                    "adding longs into a falling market, which leaves it exposed to a long squeeze.",
                    {},
                    (
                        Predicate(
                            "opposite_sign", (f, ch), "funding and the market's move have opposite signs"
                        ),
                    ),
                )
        else:
            p.add(
                "Open interest moved {oc} on the week, so the market is not re-levering into the move.",
                {"oc": oc},
                (Predicate("le", (oc, 0), "open interest did not rise on the week"),),
            )
    streak = _neg_streak(wd, t, "funding_8h_mean")
    if streak >= 2:
        k = num(t, w, "funding_8h_mean", streak, "ordinal", kind="neg_streak")
        p.add(
            "Funding has now been negative for the {k} consecutive week.",
            {"k": k},
            (Predicate("ge", (k, 2), "funding was negative in at least two consecutive weeks"),),
        )
    if r["long_short_ratio_mean"] is not None:
        ls = num(t, w, "long_short_ratio_mean", r["long_short_ratio_mean"], "fixed2")
        if not p.add(
            "Accounts lean short as well (long/short ratio {ls}).",
            {"ls": ls},
            (Predicate("lt", (ls, 1), "fewer accounts long than short"), neg),
        ):
            if not p.add(
                "Accounts still lean long (long/short ratio {ls}) even with funding below zero, so the short skew is in the price of leverage, not in the head count.",
                {"ls": ls},
                (Predicate("gt", (ls, 1), "more accounts long than short"), neg),
            ):
                p.add(
                    "Accounts lean long (long/short ratio {ls}).",
                    {"ls": ls},
                    (Predicate("gt", (ls, 1), "more accounts long than short"),),
                )
    return p


def _view_flows(wd: WeekData, keys: set[str]) -> _Para | None:
    w = wd.week
    p = _Para("flows")
    v = wd.one("weekly_volume")
    if v is not None and v["perp_to_spot"] is not None and v["perp_to_spot_prev"] is not None:
        t = "weekly_volume"
        r, q = (
            num(t, w, "perp_to_spot", v["perp_to_spot"], "ratio"),
            num(t, w, "perp_to_spot_prev", v["perp_to_spot_prev"], "ratio"),
        )
        if not p.add(
            _pick(
                w,
                "spot",
                (
                    "Flows moved towards spot: perpetual volume was {r} spot volume, down from {q} the week before (both full seven-day weeks), so more of the trading is cash rather than leverage.",
                    "Activity rotated to the spot market: perpetual volume fell to {r} spot volume from {q} the week before, comparing two full seven-day weeks.",
                ),
            ),
            {"r": r, "q": q},
            (
                Predicate(
                    "gt_by",
                    (q, r),
                    f"the perpetual-to-spot volume ratio fell by more than {FLOW_MARGIN}",
                    FLOW_MARGIN,
                ),
            ),
        ):
            p.add(
                "Activity tilted towards derivatives: perpetual volume rose to {r} spot volume from {q} the week before, so leverage rather than cash is doing more of the trading.",
                {"r": r, "q": q},
                (
                    Predicate(
                        "gt_by",
                        (r, q),
                        f"the perpetual-to-spot volume ratio rose by more than {FLOW_MARGIN}",
                        FLOW_MARGIN,
                    ),
                ),
            )
    rows = wd.rows("weekly_correlation_buckets")
    sm = _summary_nums(wd)
    if rows is not None and sm is not None:
        b = {x["bucket"]: x for x in rows.iter_rows(named=True)}
        top, small = b.get("1-10"), b.get("51-100")
        if top and small and top["avg_pairwise_corr"] is not None and small["avg_pairwise_corr"] is not None:
            t = "weekly_correlation_buckets"
            tc = num(t, w, "avg_pairwise_corr", top["avg_pairwise_corr"], "corr", {"bucket": "1-10"})
            sc = num(t, w, "avg_pairwise_corr", small["avg_pairwise_corr"], "corr", {"bucket": "51-100"})
            hi = Predicate(
                "gt_by",
                (tc, sc),
                f"the top 10's correlation is above ranks 51-100's by more than {CORR_MARGIN}",
                CORR_MARGIN,
            )
            fell = (hi, Predicate("lt", (sm[0], 0), "the total market cap fell on the week"))
            if top["ew_return_pct"] is not None:
                tr = num(t, w, "ew_return_pct", top["ew_return_pct"], "pct", {"bucket": "1-10"})
                fell += (Predicate("lt", (tr, 0), "the top 10's equal-weight return is below zero"),)
            macro = _equities_down(wd)
            if (
                "corr_concentrated_top" in keys
                and macro
                and p.add(
                    "The largest coins moved as one trade (average pairwise correlation {tc} against {sc} in ranks 51-100) and fell the most: with equities down as well, the selling came from macro de-risking, not from a verdict on individual projects.",
                    {"tc": tc, "sc": sc},
                    (*fell, *macro),
                )
            ):
                pass
            elif "corr_concentrated_top" in keys and p.add(
                "The largest coins moved as one trade (average pairwise correlation {tc} against {sc} in ranks 51-100) and fell the most: the selling hit the market as a block, not individual projects.",
                {"tc": tc, "sc": sc},
                fell,
            ):
                pass
            elif not p.add(
                "The top 10 traded more tightly together (average pairwise correlation {tc}) than ranks 51-100 ({sc}), the mark of a market moved by one common factor.",
                {"tc": tc, "sc": sc},
                (hi,),
            ):
                p.add(
                    "Correlation in the top 10 ({tc}) is no higher than in ranks 51-100 ({sc}): coins are trading on their own drivers more than on one common factor.",
                    {"tc": tc, "sc": sc},
                    (Predicate("le", (tc, sc), "the top 10's correlation is not above ranks 51-100's"),),
                )
    vol = wd.one("weekly_btc_volatility")
    if vol is not None and vol["rv7_hourly_pct"] is not None and vol["rv30_hourly_pct"] is not None:
        t = "weekly_btc_volatility"
        a, m = (
            num(t, w, "rv7_hourly_pct", vol["rv7_hourly_pct"], "level_pct"),
            num(t, w, "rv30_hourly_pct", vol["rv30_hourly_pct"], "level_pct"),
        )
        if not p.add(
            "Volatility is rising: Bitcoin's 7-day realized volatility of {a} is above its 30-day {m}, so daily ranges are widening and position sizes should shrink with them.",
            {"a": a, "m": m},
            (
                Predicate(
                    "gt_by",
                    (a, m),
                    f"7-day volatility is more than {VOL_MARGIN:.0f} points above 30-day volatility",
                    VOL_MARGIN,
                ),
            ),
        ):
            if not p.add(
                "Volatility is calming: Bitcoin's 7-day realized volatility of {a} is below its 30-day {m}, which argues for less defensive sizing if it holds.",
                {"a": a, "m": m},
                (
                    Predicate(
                        "gt_by",
                        (m, a),
                        f"7-day volatility is more than {VOL_MARGIN:.0f} points below 30-day volatility",
                        VOL_MARGIN,
                    ),
                ),
            ):
                p.add(
                    "Volatility is in line with its recent range: Bitcoin's 7-day realized volatility is {a} against a 30-day {m}.",
                    {"a": a, "m": m},
                )
    return p


def _view_change(wd: WeekData, facts: list[Fact]) -> _Para | None:
    """What would change the view: the reverse of what the other paragraphs judged (funding's sign, open interest's
    direction against its peak, volatility against its 30-day level, a crossed level), a threshold, a horizon."""
    w = wd.week
    p = _Para("change")
    conds: list[tuple[str, dict[str, Any]]] = []
    r = wd.one("weekly_leverage")
    if r is not None and r["funding_8h_mean"] is not None:
        conds.append(
            ("funding moving back above zero" if r["funding_8h_mean"] < 0 else "funding turning negative", {})
        )
        lfl_col = "oi_change_like_for_like_pct" if "oi_change_like_for_like_pct" in r else "oi_change_pct"
        if (
            r["oi_ref_usd"] is not None
            and r["oi_vs_ref_pct"] is not None
            and r["oi_vs_ref_pct"] <= DELEVERAGING_PCT
        ):
            conds.append(
                (
                    "open interest climbing back towards its {ref} 90-day high",
                    {"ref": num("weekly_leverage", w, "oi_ref_usd", r["oi_ref_usd"], "usd")},
                )
            )
        elif (
            r[lfl_col] is not None and round(r[lfl_col], 1) > 0
        ):  # leverage rebuilding: the reverse is giving it back
            conds.append(
                (
                    "open interest giving back this week's {oc} rise",
                    {"oc": num("weekly_leverage", w, lfl_col, r[lfl_col], "pct")},
                )
            )
        elif r[lfl_col] is not None:
            conds.append(("open interest rising again", {}))
    cross = next((f for f in facts if f.key == "mcap_crossing"), None)
    if cross is not None:
        lvl = cross.sentence.parts["level"]
        back = (
            "above" if cross.numbers["direction"] == "down" else "below"
        )  # the other side of the crossed level
        conds.append(("a weekly close back " + back + " {lvl}", {"lvl": lvl}))
    vol = wd.one("weekly_btc_volatility")
    if vol is not None and vol["rv30_hourly_pct"] is not None and vol["rv7_hourly_pct"] is not None:
        m = num("weekly_btc_volatility", w, "rv30_hourly_pct", vol["rv30_hourly_pct"], "level_pct")
        gap = vol["rv7_hourly_pct"] - vol["rv30_hourly_pct"]  # the flows paragraph's judgment, reversed
        how = (
            "settling below"
            if gap > VOL_MARGIN
            else "climbing back above"
            if gap < -VOL_MARGIN
            else "breaking clearly away from"
        )
        conds.append(("Bitcoin's 7-day volatility " + how + " its 30-day {m}", {"m": m}))
    if not conds:
        return None
    parts: dict[str, Any] = {}
    texts = []
    for i, (tpl, pp) in enumerate(conds[:3]):
        texts.append(tpl.format(**{k: "{" + f"c{i}_{k}" + "}" for k in pp}))
        parts.update({f"c{i}_{k}": v for k, v in pp.items()})
    listed = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]
    p.add(
        _pick(
            w,
            "change",
            (
                "What would change this view " + _pick(w, "hz", VIEW_HORIZON) + ": " + listed + ".",
                "We would revisit this view on "
                + listed
                + "; that test comes "
                + _pick(w, "hz", VIEW_HORIZON)
                + ".",
            ),
        ),
        parts,
    )
    return p


FALLBACK_VIEW = (
    "The data this week does not point to a clear regime change; we keep our positioning unchanged until funding, "
    "open interest or cross-asset performance give a clearer signal."
)
