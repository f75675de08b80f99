"""What ``engage score`` does around the predictor: fees, ranking, output files and a console table.

Fees are a table ``influencer, fee[, currency]``. Cost per engagement = fee / expected
engagements per post. Problems a planner can fix are reported, never dropped: a fee for an
influencer without a profile gets a ``no profile`` row carrying the fee, and a candidate
without a fee is ranked after those with one. Problems that make the numbers meaningless (a fee
that is not a number, a negative fee, two different fees for one influencer, several
currencies) stop with :class:`~features.contract.DataError` naming the rows.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import DataError, describe_duplicate_columns, duplicate_columns, read_table
from features.outputs import atomic_output, console_text, excel_cells, neutralise_formulas
from serving.predictor import STATUS_NO_PROFILE
from serving.report import ReportContext, render_html

OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".xlsx", ".html", ".htm")
MAX_LISTED = 8


@dataclass
class Fees:
    """A checked fee table: one row per influencer, ``fee`` as a number or NaN when missing."""

    table: pd.DataFrame
    currency: str
    notes: list[str] = field(default_factory=list)


def _listed(values: list[str]) -> str:
    more = f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else ""
    return ", ".join(values[:MAX_LISTED]) + more


def _rows(mask: np.ndarray) -> str:
    rows = (np.flatnonzero(mask) + 1).tolist()
    more = f" (first {MAX_LISTED} of {len(rows)})" if len(rows) > MAX_LISTED else ""
    return ", ".join(str(r) for r in rows[:MAX_LISTED]) + more


# A money amount as the fee table must write it: plain digits, "." as the decimal point.
PLAIN_AMOUNT = re.compile(r"[+-]?\d+(?:\.\d+)?")
AMOUNT_HINT = "write plain digits with '.' as the decimal point (1500, 1500.50), without currency signs or thousands separators"


def parse_money(values: pd.Series, column: str) -> tuple[pd.Series, np.ndarray, list[str]]:
    """Amounts of money as numbers: (values, empty cells, problems naming the rows).

    Separators are never guessed: "1.500,00", "2,5" and "1,500" each mean different amounts in
    different countries, so a comma anywhere is refused with how to write the number. Numbers
    typed by the file (Parquet) are taken as they are, except true/false and infinities.
    """
    problems = []
    if values.dtype.kind == "b":
        return pd.Series(np.nan, index=values.index), values.isna().to_numpy(dtype=bool), [f"column '{column}': true/false values, not amounts; {AMOUNT_HINT}"]
    if values.dtype.kind in "fiu":
        amount = values.astype("float64")
        empty = amount.isna().to_numpy(dtype=bool)
        infinite = np.isinf(amount.to_numpy())
        if infinite.any():
            problems.append(f"column '{column}', rows {_rows(infinite)}: infinite amount")
        return amount.where(~infinite), empty, problems
    text = values.astype("string").str.strip()
    empty = (text.isna() | (text == "")).to_numpy(dtype=bool)
    cells = text.fillna("").tolist()
    plain = np.array([bool(PLAIN_AMOUNT.fullmatch(c)) for c in cells], dtype=bool)
    comma = np.array(["," in c for c in cells], dtype=bool) & ~empty
    if comma.any():
        shown = ", ".join(f"'{c}'" for c in dict.fromkeys(np.asarray(cells, dtype=object)[comma][:3]))
        problems.append(f"column '{column}', rows {_rows(comma)}: ambiguous decimal or thousands separator ({shown}); {AMOUNT_HINT}")
    bad = ~plain & ~empty & ~comma
    if bad.any():
        problems.append(f"column '{column}', rows {_rows(bad)}: not a number; {AMOUNT_HINT}")
    amount = pd.to_numeric(text.where(plain), errors="coerce").astype("float64")
    return amount, empty, problems


def check_fees(frame: pd.DataFrame, file: str = "fees") -> Fees:
    """Validate a fee table (rows are 1-based data rows, header not counted)."""
    groups = duplicate_columns(frame.columns)
    if groups:
        raise DataError(f"{file}: {describe_duplicate_columns(groups)}")
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in ("influencer", "fee") if c not in frame]
    if missing:
        raise DataError(f"{file}: required column(s) {', '.join(missing)} missing; expected influencer, fee and optionally currency (columns present: {', '.join(map(str, frame.columns)) or 'none'})")
    influencer = frame["influencer"].astype("string").str.strip()
    problems = []
    if influencer.isna().any() or (influencer == "").any():
        problems.append(f"column 'influencer', rows {_rows((influencer.isna() | (influencer == '')).to_numpy(dtype=bool))}: missing influencer")
    fee, empty, fee_problems = parse_money(frame["fee"], "fee")
    problems += fee_problems
    negative = (fee < 0).to_numpy(dtype=bool)
    if negative.any():
        problems.append(f"column 'fee', rows {_rows(negative)}: negative fee")
    currency = frame["currency"].astype("string").str.strip().str.upper() if "currency" in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
    currencies = sorted(set(currency.dropna()) - {""})
    if len(currencies) > 1:
        problems.append(f"column 'currency': several currencies ({', '.join(currencies)}); convert the fees to one currency so costs can be compared")
    clean = pd.DataFrame({"influencer": influencer, "fee": fee, "currency": currencies[0] if currencies else ""})
    conflicting = clean.drop_duplicates(["influencer", "fee"])["influencer"]
    conflicting = conflicting[conflicting.duplicated()]
    if len(conflicting):
        problems.append(f"column 'influencer': different fees for the same influencer ({_listed(sorted(set(conflicting)))})")
    if problems:
        raise DataError(f"{file}: the fee table cannot be used:\n  " + "\n  ".join(problems))
    notes = []
    if empty.any():
        notes.append(f"{file}: no fee in rows {_rows(empty)} ({_listed(influencer[empty].tolist())}): kept, without cost per engagement")
    return Fees(clean.drop_duplicates("influencer").reset_index(drop=True), currencies[0] if currencies else "", notes)


def read_fees(path: Path) -> Fees:
    return check_fees(read_table(path), str(path))


def read_shortlist(path: Path) -> list[str]:
    """Influencer names from a table with an ``influencer`` column (one per row)."""
    frame = read_table(path).rename(columns=lambda c: str(c).strip().lower())
    if "influencer" not in frame:
        raise DataError(f"{path}: no 'influencer' column (columns present: {', '.join(map(str, frame.columns)) or 'none'})")
    names = frame["influencer"].astype("string").str.strip().dropna()
    names = names[names != ""]
    if len(names) == 0:
        raise DataError(f"{path}: the shortlist names no influencer (column 'influencer' is empty); list one name per row")
    return [str(n) for n in names.unique()]


def read_candidates(fees_path: Path | None, shortlist_path: Path | None) -> tuple[Fees | None, list[str] | None]:
    """The fee table and the names to score (``engage score --fees/--shortlist``, both engines).

    Without a shortlist the fee table names the candidates; with neither, None scores everyone.
    """
    fees = read_fees(fees_path) if fees_path else None
    shortlist = read_shortlist(shortlist_path) if shortlist_path else None
    if shortlist is None and fees is not None:
        shortlist = fees.table["influencer"].tolist()
    return fees, shortlist


def apply_fees(table: pd.DataFrame, fees: Fees) -> tuple[pd.DataFrame, list[str]]:
    """Add ``fee``, ``currency`` and ``cost_per_engagement``; returns the table and notes."""
    out = table.copy()
    by_name = fees.table.set_index("influencer")
    out["fee"] = out["influencer"].map(by_name["fee"]).astype("float64")
    out["currency"] = fees.currency
    expected = out["expected_engagements"].to_numpy(dtype="float64")
    fee = out["fee"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cost_per_engagement"] = np.where(np.isfinite(fee) & (expected > 0), fee / expected, np.nan)
    notes = list(fees.notes)
    unknown = out.loc[out["status"].eq(STATUS_NO_PROFILE) & out["influencer"].isin(by_name.index), "influencer"].tolist()
    if unknown:
        notes.append(f"fees for {len(unknown)} influencer(s) without a profile: {_listed(unknown)} (listed as '{STATUS_NO_PROFILE}', not scored)")
    scored = out["status"].astype(str).str.startswith("ok")
    no_fee = out.loc[scored & ~out["influencer"].isin(by_name.index), "influencer"].tolist()
    if no_fee:
        notes.append(f"no fee for {len(no_fee)} scored candidate(s): {_listed(no_fee)} (ranked after those with a fee)")
    return out, notes


def add_fee_columns(table: pd.DataFrame, fees: Fees) -> pd.DataFrame:
    """:func:`apply_fees` without its notes, for scoring in parts (``engage score --engine dask``).

    Each part holds only some candidates, so notes about "the" table would be partial; the
    columns are the same as :func:`apply_fees` adds, row by row.
    """
    return apply_fees(table, fees)[0]


def rank(table: pd.DataFrame, by_cost: bool = False) -> pd.DataFrame:
    """Sort: scored candidates by expected engagements (descending), or by cost per engagement
    (ascending) when fees are given; ``rank`` 1..n for rows with a value, unscored rows last."""
    if by_cost:
        key = table["cost_per_engagement"].to_numpy(dtype="float64")
        order = np.lexsort((-np.nan_to_num(table["expected_engagements"].to_numpy(dtype="float64"), nan=-np.inf), np.where(np.isfinite(key), key, np.inf)))
        has_value = np.isfinite(key)
    else:
        key = table["expected_engagements"].to_numpy(dtype="float64")
        order = np.argsort(np.where(np.isfinite(key), -key, np.inf), kind="stable")
        has_value = np.isfinite(key)
    out = table.iloc[order].reset_index(drop=True)
    ranked = has_value[order]
    out.insert(0, "rank", pd.array(np.where(ranked, np.cumsum(ranked), 0), dtype="Int64"))
    out.loc[~ranked, "rank"] = pd.NA
    return out


def check_output_path(path: Path) -> str:
    """The output kind from the file ending; raises ValueError for anything else."""
    name = Path(path).name.lower()
    for suffix in OUTPUT_SUFFIXES:
        if name.endswith(suffix):
            return "html" if suffix == ".htm" else suffix.lstrip(".").replace(".gz", "")
    raise ValueError(f"{path}: unknown output type; use .csv, .csv.gz, .xlsx or .html")


def write_output(table: pd.DataFrame, path: Path, context: ReportContext) -> None:
    """Write the ranked table as CSV, Excel or the HTML report, by the file ending.

    Atomic: the file is written beside the target and renamed over it, so a failure (a full
    disk) leaves the previous file and raises :class:`~features.outputs.OutputError`. Text cells
    of CSV and Excel cannot run as formulas (HTML escapes everything instead).
    """
    kind = check_output_path(path)
    with atomic_output(path) as temp:
        if kind == "csv":
            neutralise_formulas(table).to_csv(temp, index=False)
        elif kind == "xlsx":
            # Built in memory: a zip writer that fails half-way (full disk) would retry writing
            # when garbage-collected and print a traceback.
            buffer = io.BytesIO()
            _write_xlsx(table, buffer, context)
            temp.write_bytes(buffer.getvalue())
        else:
            temp.write_text(render_html(table, context), encoding="utf-8")


def _write_xlsx(table: pd.DataFrame, path: Path | io.BytesIO, context: ReportContext) -> None:
    about = [
        ("title", context.title),
        ("as of", context.as_of),
        ("posts in the data", " to ".join(context.posts_date_range) if context.posts_date_range else "none"),
        ("model", context.model_version),
        ("ranked by", context.ranked_by),
        ("engagement rate", "interactions (likes + comments, plus shares and saves where present) / followers, per post"),
        ("interval", f"er_low to er_high: {100 * context.interval_level:.0f}% prediction interval for the next post"),
        ("expected_engagements", "predicted_er x followers: interactions expected on one post"),
        ("peer_percentile", "where the prediction falls among training posts of the same tier and niche (0-100)"),
        *[("note", n) for n in context.notes],
    ]
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        excel_cells(table).to_excel(writer, sheet_name="ranking", index=False)
        excel_cells(pd.DataFrame(about, columns=["item", "value"])).to_excel(writer, sheet_name="about", index=False)
        sheet = writer.sheets["ranking"]
        percent = {"predicted_er", "er_low", "er_high"}
        for idx, col in enumerate(table.columns, start=1):
            letter = sheet.cell(row=1, column=idx).column_letter
            sheet.column_dimensions[letter].width = 60 if col == "reasons" else max(10, min(28, len(str(col)) + 4))
            if col in percent:
                for cell in sheet[letter][1:]:
                    cell.number_format = "0.00%"
        sheet.freeze_panes = "B2"
        writer.sheets["about"].column_dimensions["B"].width = 100


def console_table(table: pd.DataFrame, top: int, interval_level: float = 0.8) -> str:
    """The first ``top`` rows as an aligned plain-text table (control characters escaped)."""
    shown = table.head(top)
    level = f"{100 * interval_level:.0f}%"
    has_fees = "cost_per_engagement" in table

    def pct(v: float) -> str:
        return f"{100 * v:.2f}%" if np.isfinite(v) else ""

    def count(v: float) -> str:
        return f"{v:,.0f}" if np.isfinite(v) else ""

    rows = []
    for _, r in shown.iterrows():
        ok = str(r["status"]).startswith("ok")
        row = {
            "rank": "" if pd.isna(r["rank"]) else str(int(r["rank"])),
            "influencer": console_text(r["influencer"]),
            "tier": "" if pd.isna(r["tier"]) else console_text(r["tier"]),
            "niche": "" if pd.isna(r["category"]) else console_text(r["category"]),
            "followers": count(float(r["followers"])),
            "predicted ER": pct(float(r["predicted_er"])),
            f"{level} interval": f"{pct(float(r['er_low']))}-{pct(float(r['er_high']))}" if ok else "",
            "exp. eng./post": count(float(r["expected_engagements"])),
            "peer pct": "" if pd.isna(r["peer_percentile"]) else f"{r['peer_percentile']:.0f}",
        }
        if has_fees:
            cpe = float(r["cost_per_engagement"])
            row["fee"] = "" if pd.isna(r["fee"]) else f"{r['fee']:,.0f}"
            row["cost/eng."] = f"{cpe:,.3f}" if np.isfinite(cpe) else ""
        row["status"] = "ok" if r["status"] == "ok" else console_text(r["status"])
        rows.append(row)
    if not rows:
        return "(no rows)"
    frame = pd.DataFrame(rows)
    left = {"influencer", "tier", "niche", "status"}
    widths = {c: max(len(c), *(len(v) for v in frame[c])) for c in frame.columns}
    line = "  ".join(c.ljust(widths[c]) if c in left else c.rjust(widths[c]) for c in frame.columns).rstrip()
    out = [line, "-" * len(line)]
    for _, r in frame.iterrows():
        out.append("  ".join(r[c].ljust(widths[c]) if c in left else r[c].rjust(widths[c]) for c in frame.columns).rstrip())
    return "\n".join(out)
