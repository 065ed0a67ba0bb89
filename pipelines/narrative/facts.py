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

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from pipelines.narrative.data import WeekData
from pipelines.narrative.format import FORMATS
from pipelines.narrative.pieces import Num, Phrase, Txt, join

INDEX_LABELS: dict[str, str] = {
    "l2": "Layer 2 (L2)",
    "gaming": "Gaming",
    "depin": "Decentralized IoT (DePIN)",
    "ai": "Artificial Intelligence (AI)",
    "defi": "DeFi",
    "meme": "Memecoins",
    "core_l1": "Core Layer 1s (Core L1s)",
    "top30": "Top-30 index (GMCI-30-like)",
    "mid_caps": "Mid caps (ranks 11-50)",
    "small_caps": "Small caps (ranks 51-100)",
}
SECTORS = ("l2", "gaming", "depin", "ai", "defi", "meme", "core_l1")
ASSET_LABELS: dict[str, str] = {
    "crypto": "Crypto (total market cap)",
    "btc": "Bitcoin",
    "eth": "Ether",
    "sp500": "S&P 500",
    "nasdaq": "Nasdaq Composite",
    "gold": "Gold",
    "treasuries": "US Treasuries (10Y price proxy)",
    "dollar": "US dollar (broad index)",
    "yen": "Japanese yen",
}
DELEVERAGING_PCT = -20.0  # open interest this far below its reference peak is "deleveraged"
RESILIENT_SPOT_PCT = -10.0  # spot volume falling less than this is "resilient"
MIN_SINCE_WEEKS = 4  # "lowest since" is only news when the earlier week is at least this far back


@dataclass(frozen=True)
class Fact:
    key: str
    priority: int
    sentence: Phrase
    headline: Phrase | None = None
    numbers: dict[str, Any] = field(default_factory=dict, hash=False)

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
        }


def num(table: str, week: str, column: str, value: Any, format: str, where: dict | None = None, kind: str = "value") -> Num:
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
    ch = num(t, w, change_col, s[change_col], "updown_pct")
    end = num(t, w, "total_mcap_end_usd", s["total_mcap_end_usd"], "usd")
    start = num(t, w, "total_mcap_start_usd", s["total_mcap_start_usd"], "usd")
    if change_col == "total_mcap_change_pct" or round(s["total_mcap_change_pct"], 1) == round(s[change_col], 1):
        sent = Phrase("Total crypto market cap was {ch} over the week, from {start} to {end}.", {"ch": ch, "start": start, "end": end})
    else:
        # the coins priced at the open and at the close differ enough to move the total: say what is compared
        parts = {"ch": ch, "end": end, "n": num(t, w, "coins_common", s["coins_common"], "int"),
                 "a": num(t, w, "coins_start", s["coins_start"], "int"), "b": num(t, w, "coins_end", s["coins_end"], "int")}
        sent = Phrase("Total crypto market cap was {ch} over the week across the {n} coins with a market cap at both "
                      "ends ({a} at the open, {b} at the close); the total closed at {end}.", parts)
        gaps.append("Market cap coverage changed: not every coin had a market cap at both the open and the close, so "
                    "the weekly change compares the coins present at both ends, not the totals.")
    headline = Phrase("Crypto Market Cap {ch} to {end}", {"ch": ch, "end": end})
    facts = [Fact("mcap_change", 50, sent, headline, {"change_pct": s[change_col]})]
    majors = [
        Phrase(label + " {r}", {"r": num(t, w, col, s[col], "pct")})
        for col, label in (("btc_return_pct", "Bitcoin returned"), ("eth_return_pct", "Ether"))
        if s[col] is not None
    ]
    if majors:
        facts.append(Fact("mcap_majors", 48, Phrase("{m} on the week.", {"m": join(majors)}), None, {"btc": s["btc_return_pct"], "eth": s["eth_return_pct"]}))
    else:
        gaps.append("Bitcoin and Ether weekly returns: missing at the open or the close.")
    return facts


def _mcap_change_col(s: dict) -> str:
    """The like-for-like change when the row has it (rows written before it existed: the change of the totals)."""
    return "total_mcap_change_like_for_like_pct" if "total_mcap_change_like_for_like_pct" in s else "total_mcap_change_pct"


# A level last seen on this side within this many days is a return, not a "first time since".
RECENT_CROSSING_DAYS = 35


def mcap_crossing(wd: WeekData, gaps: list[str]) -> list[Fact]:
    rows = wd.rows("weekly_mcap_crossings")
    if rows is None or rows.height == 0:
        return []
    # The crossing that still holds at the close: per level the last crossing; then the level furthest moved.
    last = rows.sort(["level_usd", "crossed_on"]).group_by("level_usd", maintain_order=True).last()
    down = last.filter(pl.col("direction") == "down").sort("level_usd")
    up = last.filter(pl.col("direction") == "up").sort("level_usd", descending=True)
    pick = down if down.height else up
    if not pick.height:
        return []
    r = pick.row(0, named=True)
    t, w, where = "weekly_mcap_crossings", wd.week, {"level_usd": r["level_usd"], "crossed_on": r["crossed_on"].isoformat()}
    level = num(t, w, "level_usd", r["level_usd"], "usd_level", where)
    side = "below" if r["direction"] == "down" else "above"
    parts: dict[str, Any] = {"level": level}
    since_day = r["last_other_side_day"]
    if since_day is not None and (r["crossed_on"] - since_day).days <= RECENT_CROSSING_DAYS:
        # back where it was a few weeks ago: true but no news, so no "first time since" and no headline
        sent = Phrase("The total market cap closed back " + side + " {level}.", parts)
        return [Fact("mcap_crossing", 55, sent, None, dict(r))]
    if since_day is not None:
        parts["since"] = num(t, w, "last_other_side_day", since_day, "month_year", where)
        tail = " for the first time since {since}"
    else:
        tail = " for the first time in the available history"
    sent = Phrase("The total market cap closed " + side + " {level}" + tail + ".", parts)
    verb = "Falls Below" if side == "below" else "Climbs Above"
    return [Fact("mcap_crossing", 100, sent, Phrase("Crypto " + verb + " {level}", {"level": level}), dict(r))]


def crypto_rank(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_crypto_rank")
    if r is None or r["crypto_rank"] is None or r["is_worst"] is None:
        rows = wd.rows("weekly_crypto_rank")
        if rows is not None and rows.height:  # an empty partition: missing inputs, named with the source gaps
            gaps.append("Cross-asset rank: crypto had no return this week, so it is not ranked.")
        return []
    t, w = "weekly_crypto_rank", wd.week
    n = num(t, w, "assets_ranked", r["assets_ranked"], "int")
    if r["is_worst"] and r["worst_streak_weeks"] >= 2:
        k = num(t, w, "worst_streak_weeks", r["worst_streak_weeks"], "ordinal")
        return [
            Fact(
                "crypto_worst_streak",
                90,
                Phrase("Crypto was the worst-performing major asset class for the {k} consecutive week (of {n} ranked).", {"k": k, "n": n}),
                Phrase("Worst Major Asset Class for the {k} Straight Week", {"k": k}),
                dict(r),
            )
        ]
    if r["is_worst"]:
        return [
            Fact(
                "crypto_worst",
                70,
                Phrase("Crypto was the worst-performing of {n} major asset classes this week.", {"n": n}),
                Phrase("Crypto Trails Every Major Asset Class", {}),
                dict(r),
            )
        ]
    rank = num(t, w, "crypto_rank", r["crypto_rank"], "int")
    pri = 60 if r["crypto_rank"] == 1 else 20
    return [Fact("crypto_rank", pri, Phrase("Crypto ranked {rank} of {n} major asset classes this week.", {"rank": rank, "n": n}), None, dict(r))]


def mcap_extreme(wd: WeekData, gaps: list[str]) -> list[Fact]:
    cur = wd.one("weekly_total_market_cap")
    if cur is None or cur["mcap_close_usd"] is None:
        return []
    h = wd.hist("weekly_total_market_cap").filter(
        (pl.col("week_start") < wd.week_date) & pl.col("mcap_close_usd").is_not_null()
    )
    if h.height == 0:  # first week of history: nothing to compare with
        return []
    t, w, v = "weekly_total_market_cap", wd.week, cur["mcap_close_usd"]
    out = []
    for kind, op, word, pri in (("last_le", pl.col("mcap_close_usd") <= v, "lowest", 60), ("last_ge", pl.col("mcap_close_usd") >= v, "highest", 55)):
        earlier = h.filter(op)
        if earlier.height == 0:
            continue
        since = earlier["week_start"].max()
        if (wd.week_date - since).days < 7 * MIN_SINCE_WEEKS:
            continue
        close = num(t, w, "mcap_close_usd", v, "usd")
        s = num(t, w, "mcap_close_usd", since, "long_date", kind=kind)
        out.append(
            Fact(
                f"mcap_{word}_since",
                pri,
                Phrase("At {close}, the week's close was the " + word + " weekly close since the week of {since}.", {"close": close, "since": s}),
                None,
                {"mcap_close_usd": v, "since_week": since},
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
    ann = num(t, w, "funding_annualized_mean", r["funding_annualized_mean"], "ann_pct") if r["funding_annualized_mean"] is not None else None
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
        if cur < 0 <= prev["funding_8h_mean"]:
            facts.append(Fact("funding_turned_negative", 85, Phrase(base + ", turning negative after {prev} the week before.", parts), Phrase("Funding Turns Negative", {}), {"funding": cur, "prev": prev["funding_8h_mean"]}))
        elif cur > 0 >= prev["funding_8h_mean"]:
            facts.append(Fact("funding_turned_positive", 80, Phrase(base + ", turning positive after {prev} the week before.", parts), Phrase("Funding Turns Positive", {}), {"funding": cur, "prev": prev["funding_8h_mean"]}))
        elif cur < 0:
            streak = _neg_streak(wd, t, "funding_8h_mean")
            parts["k"] = num(t, w, "funding_8h_mean", streak, "ordinal", kind="neg_streak")
            facts.append(Fact("funding_negative_streak", 70, Phrase(base + ", negative for the {k} consecutive week.", parts), None, {"funding": cur, "streak": streak}))
        else:
            facts.append(Fact("funding_level", 30, Phrase(base + " (the week before: {prev}).", parts), None, {"funding": cur}))
    else:
        facts.append(Fact("funding_level", 30, Phrase(base + ".", parts), None, {"funding": cur}))
    # Daily negative-funding facts from the leverage table itself.
    if r["first_negative_day"] is not None:
        d = {"day": num(t, w, "first_negative_day", r["first_negative_day"], "day_month")}
        if r["first_negative_since"] is not None:
            d["since"] = num(t, w, "first_negative_since", r["first_negative_since"], "day_month")
            tpl = "Daily funding first turned negative on {day}, the first negative day since {since}."
        else:
            tpl = "Daily funding turned negative on {day}, the first negative day in the available history."
        facts.append(Fact("funding_first_negative_day", 62, Phrase(tpl, d), None, {"day": r["first_negative_day"]}))
    if r["longest_negative_run_days"] >= 2 and r["longest_negative_run_since"] is not None:
        facts.append(
            Fact(
                "funding_longest_negative_run",
                64,
                Phrase(
                    "The run of negative daily funding reached {n} days, the longest since {since}.",
                    {"n": num(t, w, "longest_negative_run_days", r["longest_negative_run_days"], "int"), "since": num(t, w, "longest_negative_run_since", r["longest_negative_run_since"], "day_month")},
                ),
                None,
                {"days": r["longest_negative_run_days"]},
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
        return [Fact("oi_weekly_change", 32, Phrase("Open interest changed {c} on the week.", {"c": c}), None, {"oi_change_pct": r["oi_change_pct"]})]
    lfl = r["oi_change_like_for_like_pct"]
    if lfl is None:
        gaps.append("Open interest: no venue had a reading at both the open and the close, so no weekly change is reported.")
        return []
    parts: dict[str, Any] = {"c": num(t, w, "oi_change_like_for_like_pct", lfl, "pct")}
    numbers = {"oi_change_like_for_like_pct": lfl, "oi_change_pct": r["oi_change_pct"]}
    if not r.get("coverage_changed"):
        return [Fact("oi_weekly_change", 32, Phrase("Open interest changed {c} on the week.", parts), None, numbers)]
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
            "Open interest coverage changed: " + "; ".join(notes) + ". The weekly change compares "
            + _and(common) + " at both ends, not the totals."
        )
    else:
        parts |= {
            "n": num(t, w, "oi_series_common", r["oi_series_common"], "int"),
            "o": num(t, w, "oi_series_open", r["oi_series_open"], "int"),
            "k": num(t, w, "oi_series_close", r["oi_series_close"], "int"),
        }
        tpl = "Open interest changed {c} on the week over the {n} venue-symbol series present at both ends ({o} at the open, {k} at the close)"
        gaps.append("Open interest coverage changed: some symbols had a reading at only one end of the week; the "
                    "weekly change compares the series present at both ends, not the totals.")
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
        parts = {"oi": oi, "ref": num(t, w, "oi_ref_usd", r["oi_ref_usd"], "usd"), "day": num(t, w, "oi_ref_day", r["oi_ref_day"], "day_month"), "pct": num(t, w, "oi_vs_ref_pct", r["oi_vs_ref_pct"], "below_above_pct")}
        tpl = "Total perpetual open interest stands at {oi}, {pct} the {ref} reference peak of {day}."
        left_out = _venue_labels(r.get("oi_ref_missing"))
        if left_out:
            parts["left"] = Txt(_and(left_out))
            tpl = ("Total perpetual open interest stands at {oi}; over the series with a reading on both days it is {pct} "
                   "the {ref} reference peak of {day} ({left} series without a reading on that day are left out).")
        delev = r["oi_vs_ref_pct"] <= DELEVERAGING_PCT
        facts.append(
            Fact(
                "oi_deleveraging" if delev else "oi_vs_peak",
                75 if delev else 35,
                Phrase(tpl, parts),
                Phrase("Leverage Resets", {}) if delev else None,
                {"oi_vs_ref_pct": r["oi_vs_ref_pct"]},
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
    resilient = False
    if r["spot_change_pct"] is not None:
        parts["c"] = num(t, w, "spot_change_pct", r["spot_change_pct"], "pct")
        tpl += " ({c} on the week before)"
        s = wd.one("weekly_market_summary")
        fell = s is not None and s[_mcap_change_col(s)] is not None and s[_mcap_change_col(s)] < 0
        resilient = r["spot_change_pct"] >= RESILIENT_SPOT_PCT and fell
    facts = [Fact("spot_resilient" if resilient else "spot_volume", 55 if resilient else 30, Phrase(tpl + (", holding up while prices fell." if resilient else "."), parts), None, {"spot_change_pct": r["spot_change_pct"]})]
    if r["perp_to_spot"] is not None:
        pp: dict[str, Any] = {"r": num(t, w, "perp_to_spot", r["perp_to_spot"], "ratio")}
        tpl = "Perp volume was {r} spot volume"
        if r["perp_to_spot_prev"] is not None:
            pp["p"] = num(t, w, "perp_to_spot_prev", r["perp_to_spot_prev"], "ratio")
            tpl += " (the week before: {p})"
        facts.append(Fact("perp_to_spot", 28, Phrase(tpl + ".", pp), None, {"perp_to_spot": r["perp_to_spot"]}))
    return facts


def leverage_skew(wd: WeekData, gaps: list[str]) -> list[Fact]:
    r = wd.one("weekly_leverage")
    if r is None or r["leverage_skew"] is None:
        return []
    t, w = "weekly_leverage", wd.week
    word = {"short": "towards shorts (funding below zero)", "long": "towards longs (funding above the neutral rate)", "neutral": "neutral"}[r["leverage_skew"]]
    parts: dict[str, Any] = {}
    tpl = "Leverage is skewed " + word
    if r["long_short_ratio_mean"] is not None:
        parts["ls"] = num(t, w, "long_short_ratio_mean", r["long_short_ratio_mean"], "fixed2")
        tpl += "; the long/short account ratio averaged {ls}"
    return [Fact("leverage_skew_" + r["leverage_skew"], 40 if r["leverage_skew"] == "short" else 25, Phrase(tpl + ".", parts), None, {"skew": r["leverage_skew"]})]


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
        gaps.append("Correlation: not enough overlapping daily returns to compare the 1-10 and 51-100 buckets.")
    else:
        p = {
            "tc": num(t, w, "avg_pairwise_corr", top["avg_pairwise_corr"], "corr", {"bucket": "1-10"}),
            "tr": num(t, w, "ew_return_pct", top["ew_return_pct"], "pct", {"bucket": "1-10"}),
            "sc": num(t, w, "avg_pairwise_corr", small["avg_pairwise_corr"], "corr", {"bucket": "51-100"}),
            "sr": num(t, w, "ew_return_pct", small["ew_return_pct"], "pct", {"bucket": "51-100"}),
        }
        if top["avg_pairwise_corr"] > small["avg_pairwise_corr"] and top["ew_return_pct"] < small["ew_return_pct"]:
            facts.append(Fact("corr_concentrated_top", 60, Phrase("Correlation is concentrated in the top 10 (average pairwise {tc}), which also did worst ({tr}); ranks 51-100 averaged {sc} and {sr}.", p), None, {"top": top["avg_pairwise_corr"], "small": small["avg_pairwise_corr"]}))
        else:
            facts.append(Fact("corr_buckets", 30, Phrase("Average pairwise correlation was {tc} in the top 10 ({tr}) and {sc} in ranks 51-100 ({sr}).", p), None, {"top": top["avg_pairwise_corr"], "small": small["avg_pairwise_corr"]}))
    if small["decoupling"] and small["avg_corr_to_btc_change"] is not None:
        facts.append(Fact("small_caps_decoupling", 58, Phrase("Ranks 51-100 show early signs of decoupling: their correlation to BTC moved {c} against the previous weeks' average.", {"c": num(t, w, "avg_corr_to_btc_change", small["avg_corr_to_btc_change"], "corr_change", {"bucket": "51-100"})}), None, {"change": small["avg_corr_to_btc_change"]}))
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
    if r["rv7_highest_since"] is not None:
        p["since"] = num(t, w, "rv7_highest_since", r["rv7_highest_since"], "day_month")
        return [Fact("btc_rv_highest_since", 65, Phrase(tpl + ", the highest since {since}.", p), Phrase("Bitcoin Volatility Highest Since {since}", {"since": p["since"]}), {"rv7": r["rv7_hourly_pct"]})]
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
    for key, val, word, pri in (("worst_sector", sec["_r"].min(), "weakest", 45), ("best_sector", sec["_r"].max(), "strongest", 35)):
        tied = sec.filter(pl.col("_r") == val).sort("index")
        names = [r["index"] for r in tied.iter_rows(named=True)]
        labels = " and ".join(INDEX_LABELS.get(n, n) for n in names)
        verb = "were the " + word + " sectors" if len(names) > 1 else "was the " + word + " sector"
        first = tied.row(0, named=True)
        r = num(t, w, "return_pct", first["return_pct"], "pct", {"index": first["index"]})
        facts.append(Fact(key, pri, Phrase(labels.replace("{", "(").replace("}", ")") + " " + verb + " ({r}).", {"r": r}), None, {"indices": names, "return_pct": first["return_pct"]}))
    return facts


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
            out.append(Fact(f"top_{kind}", pri, Phrase("{name} ({sym}) was the " + word + " performer of the top 100 ({r}).", {"name": Txt(r["name"]), "sym": Txt(r["symbol"].upper()), "r": num(t, w, "return_pct", r["return_pct"], "pct", {"kind": kind, "position": "1"})}), None, {"coin_id": r["coin_id"]}))
    return out


FACT_FUNCTIONS = (mcap_crossing, crypto_rank, mcap_change, mcap_extreme, funding, open_interest, spot_volume, leverage_skew, correlation, btc_volatility, sector_extremes, top_mover)


def derive_facts(wd: WeekData) -> tuple[list[Fact], list[str]]:
    """Every fact the week supports, ranked (priority, then key), and the data gaps met on the way."""
    gaps: list[str] = []
    facts: list[Fact] = []
    for fn in FACT_FUNCTIONS:
        facts.extend(fn(wd, gaps))
    facts.sort(key=lambda f: (-f.priority, f.key))
    return facts, gaps


# ---- Our View: rule-based synthesis --------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    key: str
    requires: frozenset[str]  # fact keys that must all be present
    any_of: frozenset[str]  # at least one of these must be present (empty: no condition)
    text: str  # trusted wording


RULES: tuple[Rule, ...] = (
    Rule(
        "consolidation",
        frozenset({"oi_deleveraging", "spot_resilient"}),
        frozenset({"funding_turned_negative", "funding_negative_streak", "leverage_skew_short"}),
        "Leverage has been flushed out: open interest is well below its peak, funding is negative and spot volume "
        "held up. With positioning this clean, forced selling has less fuel, and the market has the conditions to "
        "consolidate once macro pressure eases.",
    ),
    Rule(
        "macro_derisking",
        frozenset(),
        frozenset({"crypto_worst", "crypto_worst_streak"}),
        "Crypto traded as a high-beta macro asset this week: it lagged every other major asset class, so the "
        "macro backdrop remains the driver to watch.",
    ),
    Rule(
        "majors_as_one_trade",
        frozenset({"corr_concentrated_top"}),
        frozenset(),
        "The largest coins moved together and fell the most, while smaller caps relied more on their own "
        "drivers: selling was macro-driven rather than a judgment on individual projects.",
    ),
    Rule(
        "leverage_rebuilding",
        frozenset({"funding_turned_positive"}),
        frozenset(),
        "Funding turned positive again: leverage is rebuilding, which supports the move but raises the risk of a "
        "long squeeze if momentum fades.",
    ),
    Rule(
        "volatility_elevated",
        frozenset({"btc_rv_highest_since"}),
        frozenset(),
        "Bitcoin volatility is at a multi-week high: position sizes should reflect wider daily ranges.",
    ),
)
FALLBACK_VIEW = (
    "The data this week does not point to a clear regime change; we keep our positioning unchanged until funding, "
    "open interest or cross-asset performance give a clearer signal."
)


def our_view(facts: list[Fact]) -> list[str]:
    """Apply ``RULES`` in order to the keys of the week's facts; the fallback when none fires."""
    keys = {f.key for f in facts}
    out = [r.text for r in RULES if r.requires <= keys and (not r.any_of or r.any_of & keys)]
    return out or [FALLBACK_VIEW]
