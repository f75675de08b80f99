"""A self-contained HTML report of a ranked shortlist: what a planner would forward.

One file, no external resources: inline CSS and the chart as an inline base64 PNG (matplotlib,
Agg backend), so it opens in any browser or mail client without tools or network.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# More rows than this make neither a readable table nor a readable chart; the full ranking is
# in CSV/XLSX output.
MAX_REPORT_ROWS = 300
LABELLED_POINTS = 10


@dataclass
class ModelIdentity:
    """Which model scored: its signed folder version, registry name and number, alias, window."""

    version: str = ""
    name: str = ""
    number: str = ""
    alias: str = ""
    alias_when: str = ""  # "at registration" when read from the folder, not asked of the registry
    trained_on: Sequence[str] = ()
    resolved: str = ""

    def label(self) -> str:
        """``engagement v3 @champion (20261201T..., trained on posts 2012-08-20 to 2019-05-15)``."""
        head = (
            f"{self.name} v{self.number}" if self.name and self.number else (self.name or "model")
        )
        if self.alias:
            head += f" @{self.alias}" + (f" ({self.alias_when})" if self.alias_when else "")
        facts = [self.version] if self.version else []
        if len(self.trained_on) == 2:
            facts.append(f"trained on posts {self.trained_on[0]} to {self.trained_on[1]}")
        return f"{head} ({', '.join(facts)})" if facts else head


@dataclass
class Summary:
    """The block above the table (see :func:`serving.planner.summarise`)."""

    candidates: int
    scored: int
    cold: int
    expected_engagements: float
    engagements_low: float
    engagements_high: float
    engagements_median: float = float("nan")  # of the simulated total: the "most likely" total
    interval_level: float = 0.8
    with_fee: int | None = None
    total_fee: float | None = None
    blended_cost: float | None = None
    currency: str = ""
    expected_reaching: float | None = None
    target: float | None = None

    def lines(self) -> list[tuple[str, str]]:
        level = f"{100 * self.interval_level:.0f}%"
        out = [
            (
                "candidates",
                f"{self.candidates:,} ({self.scored:,} scored, "
                f"{self.cold:,} of them without post history)",
            ),
            (
                "total engagements, one post each",
                f"{self.engagements_median:,.0f} ({level} range "
                f"{self.engagements_low:,.0f} to {self.engagements_high:,.0f}; the "
                f"candidates' own forecasts add up to {self.expected_engagements:,.0f})",
            ),
        ]
        if self.total_fee is not None:
            out.append(
                (
                    "total fee",
                    f"{_money(self.total_fee, self.currency)} "
                    f"for {self.with_fee:,} candidates with a fee",
                )
            )
            out.append(
                (
                    "blended cost per engagement",
                    _money(self.blended_cost, self.currency)
                    if self.blended_cost is not None
                    else "none",
                )
            )
        if self.expected_reaching is not None and self.target is not None:
            out.append(
                (
                    "expected to reach the target",
                    f"{self.expected_reaching:,.1f} of {self.scored:,} "
                    f"reach {self.target:,.0f} engagements",
                )
            )
        return out


@dataclass
class ReportContext:
    """Facts printed around the table."""

    title: str = "Influencer shortlist: predicted engagement"
    model_version: str = ""
    model_data_range: Sequence[str] = ()
    posts_date_range: Sequence[str] | None = None
    as_of: str = ""
    interval_level: float = 0.8
    ranked_by: str = "expected engagements per post"
    measured_coverage: float | None = (
        None  # share of held-out posts inside the interval, from training
    )
    notes: list[str] = field(default_factory=list)  # for planners: counts, no paths
    generated: str = ""
    model: ModelIdentity | None = None
    top: int | None = None  # rows kept in the output (None: all)
    summary: Summary | None = None
    technical: list[str] = field(default_factory=list)  # validation lines with files and rows
    warnings: list[str] = field(default_factory=list)  # shown above everything (stale data)

    def model_label(self) -> str:
        if self.model is not None:
            return self.model.label()
        return self.model_version


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{100 * value:.{digits}f}%"


def _count(value: Any) -> str:
    if value is None or not np.isfinite(value):
        return ""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _tick_count(value: float) -> str:
    """Axis labels: 2k, 50k, 1M (no trailing .0)."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _money(value: Any, currency: str = "") -> str:
    if value is None or not np.isfinite(value):
        return ""
    # A cost per engagement is often a fraction of a cent: three significant digits below 1.
    text = f"{value:.3g}" if value < 1 else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{text} {currency}".strip()


def _date(text: str | None) -> str:
    if not text:
        return "unknown"
    try:
        return pd.Timestamp(text).strftime("%Y-%m-%d")
    except (ValueError, TypeError):
        return str(text)


def chart_png(
    table: pd.DataFrame,
    interval_level: float = 0.8,
    highlight: int = LABELLED_POINTS,
    size: tuple[float, float] = (10, 5.2),
) -> bytes | None:
    """Predicted ER against followers: the top ``highlight`` ranks with their range and rank
    number, every other scored candidate as a faded dot (readable with hundreds); PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    er = table["predicted_er"].to_numpy(dtype="float64")
    followers = table["followers"].to_numpy(dtype="float64")
    scored = table[np.isfinite(er) & (er > 0) & (followers > 0)]
    if scored.empty:
        return None
    rank = (
        pd.to_numeric(scored["rank"], errors="coerce").to_numpy(dtype="float64")
        if "rank" in scored
        else np.full(len(scored), np.nan)
    )
    top = np.isfinite(rank) & (rank <= highlight)
    history = (
        scored["has_history"].astype(bool).to_numpy()
        if "has_history" in scored
        else np.ones(len(scored), dtype=bool)
    )
    x = scored["followers"].to_numpy(dtype="float64")
    y = scored["predicted_er"].to_numpy(dtype="float64")
    lows = scored["er_low"].to_numpy(dtype="float64")
    positive = lows[np.isfinite(lows) & (lows > 0)]
    # A log axis cannot show 0: lower ends of 0 are drawn at the bottom of the axis.
    floor = float(positive.min()) / 2 if len(positive) else float(y.min()) / 10
    low = np.maximum(np.minimum(lows, y), floor)
    high = np.maximum(scored["er_high"].to_numpy(dtype="float64"), y)

    fig, ax = plt.subplots(figsize=size, dpi=110)
    rest = ~top
    if rest.any():
        ax.scatter(
            x[rest & history],
            y[rest & history],
            s=14,
            color="#9aa3ad",
            alpha=0.45,
            linewidths=0,
            label=f"other candidates ({int(rest.sum())})",
        )
        ax.scatter(
            x[rest & ~history],
            y[rest & ~history],
            s=14,
            facecolors="none",
            edgecolors="#9aa3ad",
            alpha=0.6,
            linewidths=0.8,
        )
    if top.any():
        colour = "#1f5fbf"
        for with_history in (True, False):
            pick = top & (history == with_history)
            if pick.any():
                ax.errorbar(
                    x[pick],
                    y[pick],
                    yerr=[(y - low)[pick], (high - y)[pick]],
                    fmt="o",
                    ms=7,
                    capsize=3,
                    elinewidth=1.2,
                    color=colour,
                    markerfacecolor=colour if with_history else "white",
                    zorder=3,
                    label=f"top {int(top.sum())}, with their {100 * interval_level:.0f}% range"
                    if with_history or not (top & history).any()
                    else None,
                )
        for xi, yi, ri in zip(x[top], y[top], rank[top], strict=True):
            ax.annotate(
                str(int(ri)),
                (xi, yi),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=9,
                color="#102a55",
                weight="bold",
                zorder=4,
            )
    if not history.all():
        ax.scatter(
            [], [], s=30, facecolors="white", edgecolors="#555", label="hollow: no post history"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, label in (
        (ax.yaxis, lambda v, _: f"{100 * v:.3g}%"),
        (ax.xaxis, lambda v, _: _tick_count(v)),
    ):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(label))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("followers (log scale)")
    ax.set_ylabel("predicted engagement rate per post (log scale)")
    ax.set_title(
        "Engagement rate against audience size; numbers = rank"
        if size[0] < 7
        else "Predicted engagement rate against audience size; numbers = rank",
        fontsize=11,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="best", framealpha=0.9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


CSS = """
* { box-sizing: border-box; }
body {
  font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  margin: 24px 32px; color: #1d1d1f;
}
h1 { font-size: 22px; margin: 0 0 4px 0; }
h2 { font-size: 16px; margin: 24px 0 8px 0; }
.facts { color: #555; font-size: 13px; margin: 0 0 6px 0; }
.facts span { margin-right: 18px; display: inline-block; }
.cards {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 10px;
  margin: 14px 0; max-width: 1100px;
}
.card { border: 1px solid #dde2e8; border-radius: 6px; padding: 10px 12px; background: #fbfcfd; }
.card .label { font-size: 12px; color: #666; }
.card .value { font-size: 20px; font-weight: 600; margin-top: 2px; }
.card .sub { font-size: 12px; color: #555; margin-top: 2px; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
.scroll { overflow-x: auto; }
th {
  background: #f0f2f5; text-align: left; padding: 6px 8px; border-bottom: 2px solid #c9ced6;
  vertical-align: bottom; cursor: pointer; user-select: none;
}
th::after { content: " \\2195"; color: #aab; font-size: 10px; }
th.asc::after { content: " \\25B2"; color: #446; }
th.desc::after { content: " \\25BC"; color: #446; }
td { padding: 5px 8px; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
th.num { text-align: right; }
td.num { text-align: right; white-space: nowrap; }
td.reasons { font-size: 11.5px; color: #444; min-width: 240px; }
td.status, td.why { min-width: 120px; font-size: 12px; }
tr:nth-child(even) td { background: #fafbfc; }
tr.unscored td { color: #8a8f98; font-style: italic; }
.note {
  background: #f7f9fc; border-left: 4px solid #6b8fd6; padding: 10px 14px; font-size: 13px;
  line-height: 1.45; max-width: 980px;
}
.note li { margin: 3px 0; }
.warn { background: #fff8e6; border-left-color: #e0a800; }
img.chart { width: 100%; max-width: 1000px; height: auto; border: 1px solid #e4e7eb; }
.small { color: #666; font-size: 12px; }
.st { font-size: 12px; white-space: normal; }
.short { display: none; }
@media (max-width: 700px) {
  body { margin: 12px 10px; }
  h1 { font-size: 19px; }
  .card .value { font-size: 17px; }
  .cards { grid-template-columns: 1fr 1fr; }
  table { font-size: 12px; }
  th, td { padding: 5px 5px; }
  .opt, td .small, .long, .cur { display: none; }
  .short { display: inline; }
  th { font-size: 11px; }
  th::after { content: none; }
  th, td { padding: 5px 3px; }
  td.who { overflow-wrap: anywhere; max-width: 96px; }
}
"""

# Sorts the ranking by a click on a header (numbers by their data-v value, text alphabetically;
# empty cells last either way). Inline, so the report stays one file.
SORT_SCRIPT = """
document.querySelectorAll("table.ranking th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], asc = !th.classList.contains("asc");
    th.parentNode.querySelectorAll("th").forEach(function (h) {
      h.classList.remove("asc", "desc");
    });
    th.classList.add(asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
      if (x === "" || x === null) return (y === "" || y === null) ? 0 : 1;
      if (y === "" || y === null) return -1;
      var nx = Number(x), ny = Number(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _factor(match: re.Match[str]) -> str:
    """A reason's log-ER contribution as the factor it multiplies the estimate by."""
    return f"(x{math.exp(float(match.group(1))):.2f})"


def reasons_as_factors(text: str) -> list[str]:
    """Reasons with each log-ER contribution written as
    a factor: ``... (+0.42)`` -> ``... (x1.52)``."""
    return [
        re.sub(r"\(([+-]\d+(?:\.\d+)?)\)$", _factor, part) for part in str(text).split("; ") if part
    ]


def _reasons_html(text: str) -> str:
    return "<br>".join(html.escape(p) for p in reasons_as_factors(text))


def _finite(value: Any) -> bool:
    try:
        return value is not None and not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _v(value: Any) -> str:
    """A sort key for data-v: numbers as plain text, missing as empty."""
    return f"{float(value):.10g}" if _finite(value) else ""


# Headers as phones show them (the long ones would push the fee and cost off the screen).
SHORT_HEADERS = {
    "Rank": "#",
    "Expected engagements / post (range)": "Exp. eng.",
    "Chance of reaching the target": "Reach",
    "Cost per engagement (range)": "Cost / eng.",
}


def _header(text: str) -> str:
    short = SHORT_HEADERS.get(text) or ("ER" if text.startswith("Predicted ER") else None)
    if short is None:
        return html.escape(text)
    return (
        f'<span class="long">{html.escape(text)}</span><span '
        f'class="short">{html.escape(short)}</span>'
    )


def chance_text(p: float) -> str:
    """A probability as a planner reads it: a forecast that is only very likely is ">99%",
    never "100%" (nor "0%" for one that is only very unlikely); empty when unknown."""
    if not np.isfinite(p):
        return ""
    rounded = round(100 * p)
    return ">99%" if rounded >= 100 else "<1%" if rounded <= 0 else f"{rounded}%"


def _chance(value: Any) -> str:
    """A probability as a planner reads it: no "100%" or "0%" for a forecast that is only likely."""
    return html.escape(chance_text(float(value))) if _finite(value) else ""


def _money_html(value: Any, currency: str) -> str:
    """Money with its currency, which phones leave out (the summary names it)."""
    text = _money(value, "")
    return (
        f'{html.escape(text)}<span class="cur"> {html.escape(currency)}</span>'
        if text and currency
        else html.escape(text)
    )


def render_html(
    table: pd.DataFrame, context: ReportContext, max_rows: int = MAX_REPORT_ROWS
) -> str:
    """The report as one HTML string (table ranked already; see :func:`serving.planner.rank`).

    The table holds the first ``context.top`` rows (at most ``max_rows``); the chart shows every
    scored candidate, the top ones highlighted.
    """
    esc = html.escape
    limit = min(context.top or max_rows, max_rows)
    shown = table.head(limit)
    has_fees = "cost_per_engagement" in table
    has_target = "p_reach" in table and table["p_reach"].notna().any()
    has_views = "predicted_er_per_view" in table and table["predicted_er_per_view"].notna().any()
    has_cost_range = has_fees and "cost_per_engagement_p10" in table
    level = f"{100 * context.interval_level:.0f}%"

    facts = [
        f"<span><b>As of:</b> {esc(context.as_of)}</span>",
        f"<span><b>Data:</b> posts {esc(_date(context.posts_date_range[0]))} "
        f"to {esc(_date(context.posts_date_range[1]))}</span>"
        if context.posts_date_range
        else "<span><b>Data:</b> no posts (profile-only estimates)</span>",
        f"<span><b>Ranked by:</b> {esc(context.ranked_by)}</span>",
    ]
    model_facts = f"<b>Model:</b> {esc(context.model_label())}"
    if context.model is None and len(context.model_data_range) == 2:
        model_facts += (
            f", trained on posts {esc(_date(context.model_data_range[0]))} "
            f"to {esc(_date(context.model_data_range[1]))}"
        )
    if context.model is not None and context.model.resolved:
        model_facts += f"<br><span class=small>chosen as {esc(context.model.resolved)}</span>"
    if context.generated:
        model_facts += f"<br><span class=small>report generated {esc(context.generated)}</span>"

    cards = ""
    if context.summary is not None:
        s = context.summary
        items = [
            (
                "Candidates scored",
                f"{s.scored:,}",
                f"of {s.candidates:,} listed; {s.cold:,} without post history",
            ),
            (
                "Total engagements, one post each",
                f"{s.engagements_median:,.0f}",
                f"{level} range {s.engagements_low:,.0f} to {s.engagements_high:,.0f}; "
                f"the forecasts add up to {s.expected_engagements:,.0f}",
            ),
        ]
        if s.total_fee is not None:
            items.append(
                (
                    "Total fee",
                    esc(_money(s.total_fee, s.currency)),
                    f"{s.with_fee:,} candidates with a fee",
                )
            )
            items.append(
                (
                    "Blended cost per engagement",
                    esc(_money(s.blended_cost, s.currency))
                    if s.blended_cost is not None
                    else "none",
                    "total fee / their expected engagements",
                )
            )
        if s.expected_reaching is not None and s.target is not None:
            items.append(
                (
                    f"Expected to reach {s.target:,.0f}",
                    f"{s.expected_reaching:,.1f}",
                    f"of {s.scored:,} candidates (sum of their chances)",
                )
            )
        cards = (
            '<div class="cards">'
            + "".join(
                f'<div class="card"><div class="label">{esc(a)}</div><div '
                f'class="value">{b}</div><div class="sub">{esc(c)}</div></div>'
                for a, b, c in items
            )
            + "</div>"
        )
        if context.top and context.top < len(table):
            cards += (
                f'<p class="small">The summary covers the top {context.top} by '
                f"{esc(context.ranked_by)}; {len(table) - context.top:,} more candidates "
                "were scored and are left out of this report (see the chart).</p>"
            )

    # (header, numeric?, shown on phones?)
    columns: list[tuple[str, bool, bool]] = [
        ("Rank", True, True),
        ("Influencer", False, True),
        ("Expected engagements / post (range)", True, True),
    ]
    if has_target:
        columns.append(("Chance of reaching the target", True, True))
    columns.append((f"Predicted ER ({level} range)", True, True))
    if has_views:
        columns.append(("Engagements per view", True, False))
    if has_fees:
        columns += [("Fee", True, True), ("Cost per engagement (range)", True, True)]
    # No status column: unscored rows say why in the
    # engagements cell, cold starts in the range note.
    columns += [
        ("Followers", True, False),
        ("Tier, niche", False, False),
        ("Peer percentile", True, False),
        ("Why the range is this wide", False, False),
        ("Reasons", False, False),
    ]
    head = "".join(
        f'<th class="{"num" if num else ""}{"" if phone else " opt"}">{_header(h)}</th>'
        for h, num, phone in columns
    )
    optional = {h for h, _, phone in columns if not phone}

    body = []
    for _, row in shown.iterrows():
        ok = str(row["status"]).startswith("ok")
        currency = (
            str(row.get("currency") or "") if has_fees and pd.notna(row.get("currency")) else ""
        )
        rank = row.get("rank")
        rank_text = str(int(rank)) if rank is not None and _finite(rank) else ""
        expected = row["expected_engagements"]
        if ok:
            expected_html = (
                f"{_count(expected)} <span class=small>({_count(row.get('engagements_p10'))} "
                f"to {_count(row.get('engagements_p90'))})</span>"
            )
        else:
            expected_html = f"<span class=st>{esc(str(row['status']))}</span>"
        cells: list[tuple[str, str, str, str]] = [  # (header, class, data-v, html)
            ("Rank", "num", _v(rank), rank_text),
            ("Influencer", "who", esc(str(row["influencer"])), esc(str(row["influencer"]))),
            (
                "Expected engagements / post (range)",
                "num",
                _v(expected if ok else None),
                expected_html,
            ),
        ]
        if has_target:
            reach = row.get("p_reach")
            cells.append(("Chance of reaching the target", "num", _v(reach), _chance(reach)))
        er = (
            f"{_pct(row['predicted_er'], 2)} <span "
            f"class=small>({_pct(row['er_low'])} to {_pct(row['er_high'])})</span>"
            if ok
            else ""
        )
        cells.append(
            (f"Predicted ER ({level} range)", "num", _v(row["predicted_er"] if ok else None), er)
        )
        if has_views:
            per_view = row.get("predicted_er_per_view")
            cells.append(
                (
                    "Engagements per view",
                    "num",
                    _v(per_view),
                    _pct(per_view, 2) if _finite(per_view) else "",
                )
            )
        if has_fees:
            cost = row.get("cost_per_engagement")
            cost_html = _money_html(cost, currency)
            if has_cost_range and _finite(cost):
                high = row.get("cost_per_engagement_p90")
                cost_html += (
                    f" <span class=small>({esc(_money(row.get('cost_per_engagement_p10'), ''))} "
                    "to "
                    f"{esc(_money(high, '')) if _finite(high) else 'no upper bound'})</span>"
                )
            cells += [
                ("Fee", "num", _v(row.get("fee")), _money_html(row.get("fee"), currency)),
                ("Cost per engagement (range)", "num", _v(cost), cost_html),
            ]
        tier = esc(str(row["tier"])) if pd.notna(row["tier"]) else ""
        niche = esc(str(row["category"])) if pd.notna(row["category"]) else ""
        percentile = row["peer_percentile"] if ok else None
        why = (
            esc(str(row.get("range_note") or "")) if ok and pd.notna(row.get("range_note")) else ""
        )
        cells += [
            ("Followers", "num", _v(row["followers"]), _count(row["followers"])),
            (
                "Tier, niche",
                "",
                f"{tier} {niche}".strip(),
                ", ".join(t for t in (tier, niche) if t),
            ),
            (
                "Peer percentile",
                "num",
                _v(percentile),
                f"{float(percentile):.0f}"
                if percentile is not None and _finite(percentile)
                else "",
            ),
            ("Why the range is this wide", "why", why, why),
            ("Reasons", "reasons", "", _reasons_html(row["reasons"]) if ok else ""),
        ]
        tds = "".join(
            f'<td class="{cls}{" opt" if h in optional else ""}" data-v="{v}">{content}</td>'
            for h, cls, v, content in cells
        )
        body.append(f'<tr class="{"" if ok else "unscored"}">{tds}</tr>')
    truncated = ""
    if len(table) > len(shown):
        why_cut = (
            f"the top {len(shown)}"
            if context.top and len(shown) == context.top
            else f"the first {len(shown)}"
        )
        truncated = (
            f'<p class="small">Showing {why_cut} of {len(table):,} rows; '
            "the CSV or Excel output (without --top) has all of them.</p>"
        )

    highlight = min(context.top or LABELLED_POINTS, LABELLED_POINTS * 3)
    png = chart_png(table, context.interval_level, highlight=highlight)
    chart = '<p class="small">No scored candidates to chart.</p>'
    if png:
        # A taller, narrower drawing for phones, so its labels stay legible when scaled down.
        phone = chart_png(table, context.interval_level, highlight=highlight, size=(5.2, 5.6))
        chart = (
            '<picture><source media="(max-width: 700px)" '
            f'srcset="data:image/png;base64,{base64.b64encode(phone or png).decode("ascii")}">'
            '<img class="chart" alt="Predicted engagement rate against '
            'followers, top candidates highlighted" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></picture>'
        )

    warnings = "".join(f"<p>{esc(w)}</p>" for w in context.warnings)
    warnings_html = f'<div class="note warn">{warnings}</div>' if warnings else ""
    notes = "".join(f"<li>{esc(n)}</li>" for n in context.notes)
    notes_html = f'<h2>Data notes</h2><div class="note"><ul>{notes}</ul></div>' if notes else ""
    measured = ""
    if context.measured_coverage is not None and np.isfinite(context.measured_coverage):
        measured = (
            " (in the model's cross-validation on held-out influencers, "
            f"{100 * context.measured_coverage:.0f}% of actual next posts fell inside)"
        )
    how_items = [
        "<li><b>Expected engagements / post</b>: the interactions (likes + comments, plus shares "
        "and saves where the data has them) the candidate's <b>next post</b> is expected to get; "
        "in brackets its 10th to 90th percentile: 8 posts in 10 should land in that range.</li>",
        "<li><b>Chance of reaching the target</b>: the probability that the post gets at least "
        "the target number of engagements, from the same calibrated forecast.</li>"
        if has_target
        else "",
        "<li><b>Engagement rate (ER)</b> = interactions / followers for one post, with its "
        f"{level} range{measured}.</li>",
        "<li><b>Engagements per view</b>: interactions over the views the candidate's posts "
        "usually get (platforms that report views).</li>"
        if has_views
        else "",
        "<li><b>Why a range is wide</b>: the range is learned from how far forecasts missed for "
        "similar accounts: same platform, tier, and length of post history (none, 1-4, 5-14, "
        "15 or more earlier posts). Few or no earlier posts means a wide range; the point "
        "estimate alone hides that.</li>",
        "<li><b>Peer percentile</b>: where the predicted ER falls among past posts of accounts "
        "of the same tier and niche (50 = typical for the peer group, 90 = higher than 9 in "
        "10).</li>",
        "<li><b>Reasons</b>: the three signals that moved this estimate most, with the factor "
        "each multiplies it by (x1.50 raises it by half, x0.50 halves it).</li>",
        "<li><b>Cost per engagement</b> = fee / expected engagements; in brackets the cost if "
        "the post lands at its 90th and at its 10th percentile of engagements. Lower is "
        "better.</li>"
        if has_fees
        else "",
        "<li><b>Total engagements</b>: the middle of the total and its range come from drawing "
        "each candidate's post from its own forecast, candidates independently, and adding them "
        "up: the range is not the sum of the candidates' ranges (all missing low at once is "
        "unlikely). It sits above the sum of the single forecasts, because a post far above its "
        "forecast lifts a total more than one below it lowers it. A miss shared by everyone (a "
        "platform-wide slump) would make the range wider.</li>",
        "<li>Click a column header to sort the table by it.</li>",
    ]
    # One item a line; an item left out keeps its (empty) line.
    how = "\n<ul>\n" + "\n".join(how_items) + "\n</ul>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(context.title)}</title><style>{CSS}</style></head>
<body>
<h1>{esc(context.title)}</h1>
{warnings_html}
<p class="facts">{"".join(facts)}</p>
<p class="facts">{model_facts}</p>
{cards}
<h2>Where the candidates stand</h2>
{chart}
<h2>Ranking</h2>
<div class="scroll"><table class="ranking"><thead><tr>{head}</tr></thead><tbody>
{"".join(body)}
</tbody></table></div>
{truncated}
<h2>How to read this</h2>
<div class="note">{how}</div>
{notes_html}
<script>{SORT_SCRIPT}</script>
</body></html>
"""
