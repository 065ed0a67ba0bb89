"""The pieces a sentence is made of: sourced numbers, untrusted API text, and trusted templates.

* ``Num`` is a number (or date) printed in the report. It keeps the raw value, the text it prints as (through
  a named format of ``format.FORMATS``), and where it came from: table, partition, column, the key of its row,
  and how it is derived (``kind``). The claim check re-derives it from that description with its own query.
* ``Txt`` is a string that came from an API (a coin name, a symbol): escaped for Markdown and for HTML.
* ``Phrase`` is a trusted template (written in this code) with ``{placeholders}`` filled by pieces. In HTML the
  template is escaped and each number becomes ``<span class="num" data-source="table/partition#column">``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from pipelines.narrative.format import fmt

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&])")

# How a claim is derived from its table (see claims.py for the query of each):
#   value      the column of the one row of (table, week, where)
#   count      the number of rows of (table, week, where)
#   last_le    the latest earlier week whose column is <= this week's (a "lowest since")
#   last_ge    the latest earlier week whose column is >= this week's (a "highest since")
#   neg_streak consecutive weeks, ending with this one, whose column is < 0
#   hist_max   the highest value of the column over the weeks up to this one (a peak)
#   hist_max_week  the latest week holding that highest value
KINDS = ("value", "count", "last_le", "last_ge", "neg_streak", "hist_max", "hist_max_week")


def md_escape(text: str) -> str:
    """Make untrusted text inert in Markdown (and in the HTML a Markdown viewer produces)."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True)
class Num:
    value: Any
    format: str
    table: str
    partition: str
    column: str
    where: tuple[tuple[str, str], ...] = ()
    kind: str = "value"

    @property
    def text(self) -> str:
        return fmt(self.format, self.value)

    @property
    def source(self) -> str:
        key = "".join(f"[{k}={v}]" for k, v in self.where)
        suffix = "" if self.kind == "value" else f"({self.kind})"
        return f"{self.table}/week={self.partition}#{self.column}{key}{suffix}"

    def md(self) -> str:
        return self.text

    def html(self) -> Markup:
        return Markup('<span class="num" data-source="{}" title="{}">{}</span>').format(
            self.source, self.source, self.text
        )

    def claim(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "format": self.format,
            "table": self.table,
            "partition": self.partition,
            "column": self.column,
            "where": dict(self.where),
            "kind": self.kind,
            "source": self.source,
        }


@dataclass(frozen=True)
class Txt:
    """A string from an API: never trusted."""

    value: str

    def md(self) -> str:
        return md_escape(self.value)

    def html(self) -> Markup:
        return escape(self.value)


@dataclass(frozen=True)
class Phrase:
    template: str  # trusted: written in this code base, never built from data
    parts: dict[str, Any] = field(default_factory=dict)

    def md(self) -> str:
        return self.template.format(**{k: _md(v) for k, v in self.parts.items()})

    def html(self) -> Markup:
        return Markup(escape(self.template)).format(**{k: _html(v) for k, v in self.parts.items()})

    def nums(self) -> list[Num]:
        """The numbers the text prints: only parts whose placeholder is in the template (a part the template does
        not use is not printed, so it is no claim)."""
        used = {name for _, name, _, _ in string.Formatter().parse(self.template) if name}
        out: list[Num] = []
        for k, v in self.parts.items():
            if k not in used:
                continue
            if isinstance(v, Num):
                out.append(v)
            elif isinstance(v, Phrase):
                out.extend(v.nums())
        return out

    def __hash__(self) -> int:  # frozen dataclass with a dict field
        return hash((self.template, tuple(sorted((k, repr(v)) for k, v in self.parts.items()))))


def _md(v: Any) -> str:
    if isinstance(v, Num | Txt | Phrase):
        return v.md()
    raise TypeError(f"a phrase part must be Num, Txt or Phrase, not {type(v).__name__}")


def _html(v: Any) -> Markup:
    if isinstance(v, Num | Txt | Phrase):
        return v.html()
    raise TypeError(f"a phrase part must be Num, Txt or Phrase, not {type(v).__name__}")


def join(phrases: list[Phrase], sep: str = ", ", last: str = " and ") -> Phrase:
    """One phrase listing several: 'a, b and c'."""
    if not phrases:
        return Phrase("")
    names = [f"p{i}" for i in range(len(phrases))]
    if len(phrases) == 1:
        tpl = "{p0}"
    else:
        tpl = sep.join("{" + n + "}" for n in names[:-1]) + last + "{" + names[-1] + "}"
    return Phrase(tpl, dict(zip(names, phrases, strict=True)))
