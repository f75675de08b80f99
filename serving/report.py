"""A self-contained HTML report of a ranked shortlist: what a planner would forward.

One file, no external resources: inline CSS and the chart as an inline base64 PNG (matplotlib,
Agg backend), so it opens in any browser or mail client without tools or network.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from serving.predictor import STATUS_COLD

# More rows than this make neither a readable table nor a readable chart; the full ranking is
# in CSV/XLSX output.
MAX_REPORT_ROWS = 300
LABELLED_POINTS = 10


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
    measured_coverage: float | None = None  # share of held-out posts inside the interval, from training
    notes: list[str] = field(default_factory=list)
    generated: str = ""


def _pct(value: float, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{100 * value:.{digits}f}%"


def _count(value: float) -> str:
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


def _money(value: float, currency: str = "") -> str:
    if value is None or not np.isfinite(value):
        return ""
    text = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{text} {currency}".strip()


def _date(text: str | None) -> str:
    if not text:
        return "unknown"
    try:
        return pd.Timestamp(text).strftime("%Y-%m-%d")
    except (ValueError, TypeError):
        return str(text)


def chart_png(table: pd.DataFrame, interval_level: float = 0.8) -> bytes | None:
    """Predicted ER with its interval (error bars) against followers, niches coloured; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    scored = table[np.isfinite(table["predicted_er"].to_numpy(dtype="float64")) & (table["followers"].to_numpy(dtype="float64") > 0)]
    if scored.empty:
        return None
    lows = scored["er_low"].to_numpy(dtype="float64")
    positive = lows[np.isfinite(lows) & (lows > 0)]
    # A log axis cannot show 0: lower bounds of 0 are drawn at the bottom of the axis.
    floor = float(positive.min()) / 2 if len(positive) else float(scored["predicted_er"].min()) / 10
    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    colours = plt.get_cmap("tab10")
    for i, (niche, group) in enumerate(scored.groupby(scored["category"].astype(str), sort=True)):
        y = np.maximum(group["predicted_er"].to_numpy(dtype="float64"), floor)
        low = np.minimum(group["er_low"].to_numpy(dtype="float64"), y)
        high = np.maximum(group["er_high"].to_numpy(dtype="float64"), y)
        low = np.maximum(low, floor)
        history = group["has_history"].astype(bool).to_numpy() if "has_history" in group else np.ones(len(group), dtype=bool)
        for with_history in (True, False):
            pick = history == with_history
            if not pick.any():
                continue
            ax.errorbar(
                group["followers"].to_numpy(dtype="float64")[pick],
                y[pick],
                yerr=[(y - low)[pick], (high - y)[pick]],
                fmt="o",
                ms=6,
                capsize=2,
                elinewidth=1,
                alpha=0.85,
                color=colours(i % 10),
                markerfacecolor=colours(i % 10) if with_history else "white",
                label=niche if with_history or not history.any() else None,
            )
    if "has_history" in scored and not scored["has_history"].astype(bool).all():
        ax.plot([], [], "o", color="#555", markerfacecolor="white", label="hollow: no post history")
    handles, labels = ax.get_legend_handles_labels()
    # Niches first, the marker note last (matplotlib lists plain lines before error bars).
    order = sorted(range(len(labels)), key=lambda k: labels[k].startswith("hollow"))
    if "rank" in scored:
        top = scored[pd.to_numeric(scored["rank"], errors="coerce") <= LABELLED_POINTS]
        for _, row in top.iterrows():
            ax.annotate(str(int(row["rank"])), (row["followers"], row["predicted_er"]), textcoords="offset points", xytext=(5, 4), fontsize=8, color="#222")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, label in ((ax.yaxis, lambda v, _: f"{100 * v:.3g}%"), (ax.xaxis, lambda v, _: _tick_count(v))):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(label))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("followers (log scale)")
    ax.set_ylabel("predicted engagement rate per post (log scale)")
    ax.set_title(f"Predicted engagement rate with its {100 * interval_level:.0f}% interval; numbers = rank", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend([handles[k] for k in order], [labels[k] for k in order], title="niche", fontsize=8, title_fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 24px 32px; color: #1d1d1f; }
h1 { font-size: 22px; margin: 0 0 4px 0; }
h2 { font-size: 16px; margin: 24px 0 8px 0; }
.facts { color: #555; font-size: 13px; margin: 0 0 12px 0; }
.facts span { margin-right: 18px; white-space: nowrap; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
.scroll { overflow-x: auto; }
th { background: #f0f2f5; text-align: left; padding: 6px 8px; border-bottom: 2px solid #c9ced6; vertical-align: bottom; }
td { padding: 5px 8px; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
th.num { text-align: right; }
td.num { text-align: right; white-space: nowrap; }
td.reasons { font-size: 11.5px; color: #444; min-width: 250px; }
td.status { min-width: 130px; font-size: 12px; }
tr:nth-child(even) td { background: #fafbfc; }
tr.unscored td { color: #8a8f98; font-style: italic; }
.note { background: #f7f9fc; border-left: 4px solid #6b8fd6; padding: 10px 14px; font-size: 13px; line-height: 1.45; max-width: 980px; }
.note li { margin: 3px 0; }
.warn { background: #fff8e6; border-left-color: #e0a800; }
img.chart { max-width: 100%; height: auto; border: 1px solid #e4e7eb; }
.small { color: #777; font-size: 12px; }
"""


def render_html(table: pd.DataFrame, context: ReportContext, max_rows: int = MAX_REPORT_ROWS) -> str:
    """The report as one HTML string (table ranked already; see :func:`serving.planner.rank`)."""
    esc = html.escape
    shown = table.head(max_rows)
    has_fees = "cost_per_engagement" in table
    level = f"{100 * context.interval_level:.0f}%"
    scored = table["status"].astype(str).str.startswith("ok")
    n_cold = int((table["status"] == STATUS_COLD).sum())

    facts = [
        f"<span><b>As of:</b> {esc(context.as_of)}</span>",
        f"<span><b>Data:</b> posts {esc(_date(context.posts_date_range[0]))} to {esc(_date(context.posts_date_range[1]))}</span>" if context.posts_date_range else "<span><b>Data:</b> no posts (profile-only estimates)</span>",
        f"<span><b>Candidates:</b> {len(table)} ({int(scored.sum())} scored, {n_cold} without post history, {int((~scored).sum())} not scored)</span>",
        f"<span><b>Ranked by:</b> {esc(context.ranked_by)}</span>",
    ]
    model_facts = f"Model {esc(context.model_version)}"
    if len(context.model_data_range) == 2:
        model_facts += f", trained on posts {esc(_date(context.model_data_range[0]))} to {esc(_date(context.model_data_range[1]))}"
    if context.generated:
        model_facts += f"; report generated {esc(context.generated)}"

    headers = ["Rank", "Influencer", "Tier", "Niche", "Followers", f"Predicted ER ({level} interval)", "Expected engagements / post", "Peer percentile", "Reasons (contribution to log ER)"]
    numeric = {"Rank", "Followers", f"Predicted ER ({level} interval)", "Expected engagements / post", "Peer percentile", "Fee", "Cost per engagement"}
    if has_fees:
        headers += ["Fee", "Cost per engagement"]
    headers.append("Status")
    head = "".join(f'<th class="num">{esc(h)}</th>' if h in numeric else f"<th>{esc(h)}</th>" for h in headers)

    body = []
    for _, row in shown.iterrows():
        ok = str(row["status"]).startswith("ok")
        rank = row.get("rank")
        rank_text = "" if rank is None or (isinstance(rank, float) and math.isnan(rank)) or pd.isna(rank) else str(int(rank))
        er = f"{_pct(row['predicted_er'], 2)} <span class=small>({_pct(row['er_low'])} to {_pct(row['er_high'])})</span>" if ok else ""
        reasons = "<br>".join(esc(part) for part in str(row["reasons"]).split("; ")) if ok else ""
        percentile = "" if not ok or pd.isna(row["peer_percentile"]) else f"{row['peer_percentile']:.0f}"
        cells = [
            f'<td class="num">{rank_text}</td>',
            f"<td>{esc(str(row['influencer']))}</td>",
            f"<td>{esc(str(row['tier'])) if pd.notna(row['tier']) else ''}</td>",
            f"<td>{esc(str(row['category'])) if pd.notna(row['category']) else ''}</td>",
            f'<td class="num">{_count(row["followers"])}</td>',
            f'<td class="num">{er}</td>',
            f'<td class="num">{_count(row["expected_engagements"]) if ok else ""}</td>',
            f'<td class="num">{percentile}</td>',
            f'<td class="reasons">{reasons}</td>',
        ]
        if has_fees:
            currency = str(row.get("currency") or "") if pd.notna(row.get("currency")) else ""
            cells.append(f'<td class="num">{_money(row.get("fee"), currency)}</td>')
            cells.append(f'<td class="num">{_money(row.get("cost_per_engagement"), currency)}</td>')
        cells.append(f'<td class="status">{esc(str(row["status"]))}</td>')
        body.append(f'<tr class="{"" if ok else "unscored"}">' + "".join(cells) + "</tr>")
    truncated = f'<p class="small">Showing the first {len(shown)} of {len(table)} rows; the CSV or Excel output has all of them.</p>' if len(table) > len(shown) else ""

    png = chart_png(shown, context.interval_level)
    chart = f'<img class="chart" alt="Predicted engagement rate against followers" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">' if png else '<p class="small">No scored candidates to chart.</p>'

    notes = "".join(f"<li>{esc(n)}</li>" for n in context.notes)
    notes_html = f'<h2>Data notes</h2><div class="note warn"><ul>{notes}</ul></div>' if notes else ""
    measured = ""
    if context.measured_coverage is not None and np.isfinite(context.measured_coverage):
        measured = f" (in the model's cross-validation on held-out influencers, {100 * context.measured_coverage:.0f}% of actual next posts fell inside)"
    how = f"""
<ul>
<li><b>Engagement rate (ER)</b> = interactions / followers for one post, where interactions are likes + comments (plus shares and saves where the data has them). The prediction is for the candidate's <b>next post</b>.</li>
<li><b>The interval</b> is {"an" if level.startswith(("8", "11", "18")) else "a"} {level} prediction interval: the range the next post's ER should fall in {level[:-1]} times out of 100{measured}. Wide intervals mean an uncertain forecast (little or no post history); the point estimate alone hides that.</li>
<li><b>Expected engagements / post</b> = predicted ER &times; followers: the interactions one post is expected to get.</li>
<li><b>Peer percentile</b>: where the predicted ER falls among past posts of influencers of the same tier and niche in the training data (50 = typical for the peer group, 90 = higher than 9 in 10).</li>
<li><b>Reasons</b>: the three signals that moved this prediction most, with their size in log ER (+0.69 about doubles the rate, &minus;0.69 about halves it).</li>
{"<li><b>Cost per engagement</b> = fee / expected engagements per post; lower is better.</li>" if has_fees else ""}
<li>Candidates <b>without post history</b> get a profile-only estimate with a wider interval; candidates with zero followers or no profile are listed but not scored.</li>
</ul>"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(context.title)}</title><style>{CSS}</style></head>
<body>
<h1>{esc(context.title)}</h1>
<p class="facts">{"".join(facts)}</p>
<p class="small">{model_facts}</p>
<h2>Ranking</h2>
<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>
{"".join(body)}
</tbody></table></div>
{truncated}
<h2>Predicted engagement rate against audience size</h2>
{chart}
<h2>How to read this</h2>
<div class="note">{how}</div>
{notes_html}
</body></html>
"""
