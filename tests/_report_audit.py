"""What a rendered report must not contain, measured on its Markdown: shared by the narrative tests (the synthetic
lake of tests/test_narrative_predicates.py and every emulator week of tests/test_every_week.py) and by the counts
script (``python -m tests._every_week``).

The prose is the report without its Data gaps and Sources sections (``WeekRun.body``); a sentence is a piece of
it between sentence ends or line breaks, longer than 30 characters, not a chart embed.
"""

from __future__ import annotations

import collections
import re

# Style faults docs/narrative.md names: a negative zero, two parentheses in a row, a rank instead of best/worst.
NEGATIVE_ZERO = re.compile(r"-0(?:\.0+)?%")
DOUBLE_PARENTHESES = re.compile(r"\)\s*\(|\(\(|\)\)")
RANKED_N_OF = re.compile(r"ranked \d+ of", re.IGNORECASE)
HIGHEST_SINCE = re.compile(r"highest since", re.IGNORECASE)
MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"


def sentences(body: str) -> list[str]:
    return [
        s.strip()
        for s in re.split(r"(?<=[.!?])\s+|\n", body)
        if len(s.strip()) > 30 and not s.strip().startswith("![")
    ]


def repeated_sentences(body: str) -> list[str]:
    """Sentences printed more than once in the report's prose."""
    return [s for s, n in collections.Counter(sentences(body)).items() if n > 1]


def style_faults(body: str) -> list[str]:
    """Every negative zero, double parenthesis and "ranked N of" in the prose, as the text around it."""
    out = []
    for pattern in (NEGATIVE_ZERO, DOUBLE_PARENTHESES, RANKED_N_OF):
        out += [body[max(0, m.start() - 40) : m.end() + 40] for m in pattern.finditer(body)]
    return out


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading ('' when the report has no such section)."""
    parts = markdown.split("\n## " + heading + "\n", 1)
    return parts[1].split("\n## ", 1)[0].strip() if len(parts) == 2 else ""


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def title(markdown: str) -> str:
    return markdown.split("\n", 1)[0].removeprefix("# ").strip()


def template_of(text: str) -> str:
    """The wording of a text without its figures: digits, signs and units in numbers masked, so two weeks' headlines
    with the same wording and other numbers have the same template."""
    text = re.sub(MONTHS + r"(?: \d{1,2})?(?:, \d{4})?", "#", text)
    return re.sub(r"[-+]?\$?\d[\d,.]*(?:[%TBMkx]|st|nd|rd|th| bp| pts)?", "#", text)


LEVEL = r"((?:about )?\$[\d.,]+T)"
LEDE_CLOSE = re.compile(r"over the week.*? (?:to|closed at) " + LEVEL)
VIEW_CLOSE = re.compile(r"(?:closing at|on the week to|^At|\. At|The close of) " + LEVEL)


def close_mismatches(markdown: str) -> list[str]:
    """Our View's statements of the week's closing market level that differ from the level the lede prints (the
    same close said as two figures)."""
    lede = markdown.split("\n## ", 1)[0]
    m = LEDE_CLOSE.search(lede)
    if m is None:
        return []
    view = section(markdown, "Our View")
    return [f"{lvl} (lede: {m.group(1)})" for lvl in VIEW_CLOSE.findall(view) if lvl != m.group(1)]
