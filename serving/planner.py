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
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import (
    DataError,
    ValidationReport,
    describe_duplicate_columns,
    duplicate_columns,
    read_table,
)
from features.outputs import (
    OutputError,
    atomic_output,
    console_text,
    excel_cells,
    neutralise_formulas,
)
from serving.predictor import (
    PLAN_COLUMNS,
    STATUS_COLD,
    STATUS_NO_PROFILE,
    UNSEEN_PLATFORM,
    Predictor,
    platforms_text,
)
from serving.report import (
    ModelIdentity,
    ReportContext,
    Summary,
    chance_text,
    reasons_as_factors,
    render_html,
)

OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".xlsx", ".html", ".htm")
MAX_LISTED = 8
# The newest post this long before the scoring time makes the data stale.
STALE_AFTER_DAYS = 60
# The platform named in a status that carries UNSEEN_PLATFORM.
UNSEEN_PLATFORM_PATTERN = "; " + re.escape(UNSEEN_PLATFORM.split("{platform}")[0]) + "([^']+)'"


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
AMOUNT_HINT = (
    "write plain digits with '.' as the decimal point (1500, "
    "1500.50), without currency signs or thousands separators"
)


def parse_money(values: pd.Series, column: str) -> tuple[pd.Series, np.ndarray, list[str]]:
    """Amounts of money as numbers: (values, empty cells, problems naming the rows).

    Separators are never guessed: "1.500,00", "2,5" and "1,500" each mean different amounts in
    different countries, so a comma anywhere is refused with how to write the number. Numbers
    typed by the file (Parquet) are taken as they are, except true/false and infinities.
    """
    problems = []
    if values.dtype.kind == "b":
        return (
            pd.Series(np.nan, index=values.index),
            values.isna().to_numpy(dtype=bool),
            [f"column '{column}': true/false values, not amounts; {AMOUNT_HINT}"],
        )
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
        shown = ", ".join(
            f"'{c}'" for c in dict.fromkeys(np.asarray(cells, dtype=object)[comma][:3])
        )
        problems.append(
            f"column '{column}', rows {_rows(comma)}: ambiguous "
            f"decimal or thousands separator ({shown}); {AMOUNT_HINT}"
        )
    bad = ~plain & ~empty & ~comma
    if bad.any():
        problems.append(f"column '{column}', rows {_rows(bad)}: not a number; {AMOUNT_HINT}")
    amount = pd.to_numeric(text.where(plain), errors="coerce").astype("float64")
    return amount, empty, problems


def conflicting_names(frame: pd.DataFrame) -> list[str]:
    """Influencers whose rows in ``frame`` (an ``influencer`` column and the values that must
    agree) differ: the same row written twice is one row, two different ones a conflict."""
    distinct = frame.drop_duplicates()["influencer"]
    return sorted(set(distinct[distinct.duplicated()].astype(str)))


def check_fees(frame: pd.DataFrame, file: str = "fees") -> Fees:
    """Validate a fee table (rows are 1-based data rows, header not counted)."""
    groups = duplicate_columns(frame.columns)
    if groups:
        raise DataError(f"{file}: {describe_duplicate_columns(groups)}")
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in ("influencer", "fee") if c not in frame]
    if missing:
        raise DataError(
            f"{file}: required column(s) {', '.join(missing)} missing; "
            "expected influencer, fee and optionally currency (columns "
            f"present: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    influencer = frame["influencer"].astype("string").str.strip()
    problems = []
    if influencer.isna().any() or (influencer == "").any():
        problems.append(
            "column 'influencer', rows "
            f"{_rows((influencer.isna() | (influencer == '')).to_numpy(dtype=bool))}: "
            "missing influencer"
        )
    fee, empty, fee_problems = parse_money(frame["fee"], "fee")
    problems += fee_problems
    negative = (fee < 0).to_numpy(dtype=bool)
    if negative.any():
        problems.append(f"column 'fee', rows {_rows(negative)}: negative fee")
    currency = (
        frame["currency"].astype("string").str.strip().str.upper()
        if "currency" in frame
        else pd.Series(pd.NA, index=frame.index, dtype="string")
    )
    currencies = sorted(set(currency.dropna()) - {""})
    if len(currencies) > 1:
        problems.append(
            f"column 'currency': several currencies ({', '.join(currencies)}); "
            "convert the fees to one currency so costs can be compared"
        )
    clean = pd.DataFrame(
        {"influencer": influencer, "fee": fee, "currency": currencies[0] if currencies else ""}
    )
    named = clean[influencer.notna() & (influencer != "")]  # missing names are reported above
    conflicting = conflicting_names(named[["influencer", "fee"]])
    if conflicting:
        problems.append(
            f"column 'influencer': different fees for the same influencer ({_listed(conflicting)})"
        )
    if problems:
        raise DataError(f"{file}: the fee table cannot be used:\n  " + "\n  ".join(problems))
    notes = []
    if empty.any():
        notes.append(
            f"{file}: no fee in rows {_rows(empty)} "
            f"({_listed(influencer[empty].tolist())}): kept, without cost per engagement"
        )
    return Fees(
        clean.drop_duplicates("influencer").reset_index(drop=True),
        currencies[0] if currencies else "",
        notes,
    )


def read_sheet(path: Path) -> pd.DataFrame:
    """A planner's table: CSV or Parquet as the contract
    reads them, or the first sheet of an .xlsx."""
    if not str(path).lower().endswith((".xlsx", ".xlsm")):
        return read_table(path)
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    _check_unpacked_size(Path(path))
    try:
        # As text, like CSV: the checks decide what parses and name the rows that do not. The
        # header is read as a row: pandas would rename a repeated name ("fee", "fee.1"). Only
        # an empty cell is missing: "NA", "null" or "None" may be someone's handle, as in CSV.
        sheet = pd.read_excel(
            path,
            sheet_name=0,
            header=None,
            dtype=str,
            engine="openpyxl",
            keep_default_na=False,
            na_values=[""],
        )
    except Exception as exc:  # openpyxl raises zip, XML and key errors for damaged files
        raise DataError(
            f"{path}: cannot be read as an Excel workbook "
            f"({type(exc).__name__}: {exc}); re-save it as .xlsx or .csv"
        ) from None
    if sheet.empty:
        raise DataError(f"{path}: the first sheet is empty (no header row)")
    header = [
        f"Unnamed: {i}" if pd.isna(name) else str(name) for i, name in enumerate(sheet.iloc[0])
    ]
    groups = duplicate_columns(header)
    if groups:
        raise DataError(f"{path}: {describe_duplicate_columns(groups)}")
    frame = sheet.iloc[1:].reset_index(drop=True)
    frame.columns = header
    if sheet.isna().to_numpy().any():  # pandas reads an error cell as empty: tell them apart
        _refuse_error_cells(Path(path), header, len(frame))
    return frame


def _refuse_error_cells(path: Path, header: list[str], n_rows: int) -> None:
    """Stop on cells that hold an Excel error (``#N/A``, ``#DIV/0!``, ``#REF!`` ...).

    pandas reads them as empty, so a failed lookup would become a "missing influencer" or a
    candidate without a fee. Typing ``#N/A`` into Excel makes the same error value, so a handle
    spelled that way must be entered as text (``'#N/A``). Rows are 1-based data rows, header
    not counted, as in every other fee and shortlist message (``n_rows`` data rows).
    """
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        # Per place: the data rows with an error there (a mask, for _rows), and the errors.
        found: dict[str, tuple[np.ndarray, set[str]]] = {}
        # Rows and cells enumerated as pandas reads them (sheet.rows, padded from column A).
        for row_number, row in enumerate(workbook.worksheets[0].rows):
            for position, cell in enumerate(row):
                if getattr(cell, "data_type", None) != "e":
                    continue
                if row_number == 0:  # no name to give: its place
                    where = f"the header, column {position + 1}"
                else:
                    name = header[position] if position < len(header) else position + 1
                    where = f"column '{name}', rows"
                rows, errors = found.setdefault(where, (np.zeros(n_rows, dtype=bool), set()))
                if row_number > 0:
                    rows[row_number - 1] = True
                errors.add(str(cell.value))
    finally:
        workbook.close()
    if not found:
        return
    problems = [
        f"{where}{' ' + _rows(rows) if rows.any() else ''}: Excel error {', '.join(sorted(errors))}"
        for where, (rows, errors) in found.items()
    ]
    raise DataError(
        f"{path}: cells hold Excel errors, not values:\n  "
        + "\n  ".join(problems)
        + "\n  fix the formulas, or type a value that looks like an error as text ('#N/A)"
    )


# An .xlsx is a zip: a fee table or shortlist unpacks to far less; a "zip bomb" to gigabytes.
MAX_WORKBOOK_UNPACKED_BYTES = 200 * 2**20


def _check_unpacked_size(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as book:
            unpacked = sum(item.file_size for item in book.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"{path}: cannot be read as an Excel workbook ({exc}); re-save it as .xlsx or .csv"
        ) from None
    if unpacked > MAX_WORKBOOK_UNPACKED_BYTES:
        raise DataError(
            f"{path}: the workbook unpacks to {unpacked / 2**20:.0f} MB, over the "
            f"{MAX_WORKBOOK_UNPACKED_BYTES // 2**20} MB a fee table or shortlist can need; "
            "save the table as CSV"
        )


def read_fees(path: Path) -> Fees:
    return check_fees(read_sheet(path), str(path))


def read_shortlist(path: Path) -> list[str]:
    """Influencer names from a table with an ``influencer`` column (one per row)."""
    frame = read_sheet(path).rename(columns=lambda c: str(c).strip().lower())
    if "influencer" not in frame:
        raise DataError(
            f"{path}: no 'influencer' column (columns present: "
            f"{', '.join(map(str, frame.columns)) or 'none'})"
        )
    names = frame["influencer"].astype("string").str.strip().dropna()
    names = names[names != ""]
    if len(names) == 0:
        raise DataError(
            f"{path}: the shortlist names no influencer (column "
            "'influencer' is empty); list one name per row"
        )
    return [str(n) for n in names.unique()]


# The planned post's format as a shortlist or ``--post-type`` may name it; reel and short are
# videos, photo an image (the model knows the three).
POST_TYPES = {
    "image": "image",
    "photo": "image",
    "video": "video",
    "reel": "video",
    "short": "video",
    "carousel": "carousel",
}
POST_TYPE_HINT = "write image, video or carousel (reel and short count as video)"
YES = frozenset({"true", "yes", "y", "1", "sponsored", "paid"})
NO = frozenset({"false", "no", "n", "0", "organic"})


def check_planned_posts(
    frame: pd.DataFrame, file: str = "shortlist", what: str = "the shortlist"
) -> pd.DataFrame | None:
    """The planned post per influencer from a shortlist's optional columns (rows are 1-based
    data rows): ``post_type``, ``sponsored`` and ``target_engagements``. An empty cell leaves
    that candidate to the command line's value, or the default (its usual format, organic, no
    target). Returns a frame indexed by influencer, or None without any such column; a value
    that cannot be read is a :class:`DataError` saying ``what`` cannot be used."""
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    present = [c for c in PLAN_COLUMNS if c in frame]
    if not present or "influencer" not in frame:
        return None
    influencer = frame["influencer"].astype("string").str.strip()
    named = (influencer.notna() & (influencer != "")).to_numpy(dtype=bool)
    out = pd.DataFrame(index=pd.Index(influencer.to_numpy(dtype=object), name="influencer"))
    problems = []

    def cells(column: str) -> pd.Series:
        text = frame[column].astype("string").str.strip()
        return text.mask(text == "")

    if "post_type" in frame:
        text = cells("post_type")
        kind = text.str.lower().map(POST_TYPES, na_action="ignore")
        bad = (text.notna() & kind.isna()).to_numpy(dtype=bool) & named
        if bad.any():
            shown = _listed(sorted(set(text[bad].astype(str))))
            problems.append(
                f"column 'post_type', rows {_rows(bad)}: not a post type ({shown}); "
                f"{POST_TYPE_HINT}"
            )
        out["post_type"] = kind.to_numpy(dtype=object)
    if "sponsored" in frame:
        text = cells("sponsored").str.lower()
        yes, no = text.isin(YES).fillna(False), text.isin(NO).fillna(False)
        bad = (text.notna() & ~yes & ~no).to_numpy(dtype=bool) & named
        if bad.any():
            shown = _listed(sorted(set(text[bad].astype(str))))
            problems.append(
                f"column 'sponsored', rows {_rows(bad)}: not yes or no ({shown}); "
                "write true/false, yes/no or 1/0, or leave it empty for organic"
            )
        stated = pd.Series(pd.NA, index=text.index, dtype="boolean")
        stated[yes.to_numpy(dtype=bool)] = True
        stated[no.to_numpy(dtype=bool)] = False
        out["sponsored"] = stated.array
    if "target_engagements" in frame:
        text = cells("target_engagements")
        value = pd.to_numeric(text.where(text.str.fullmatch(PLAIN_AMOUNT.pattern)), errors="coerce")
        ok = value.notna() & np.isfinite(value.astype("float64")) & (value > 0)
        bad = (text.notna() & ~ok).to_numpy(dtype=bool) & named
        if bad.any():
            problems.append(
                f"column 'target_engagements', rows {_rows(bad)}: not a positive number of "
                "engagements per post (plain digits, e.g. 5000)"
            )
        out["target_engagements"] = value.where(ok).to_numpy(dtype="float64")
    out = out[named]
    conflicting = conflicting_names(out.reset_index())
    if conflicting:
        problems.append(f"different planned posts for the same influencer ({_listed(conflicting)})")
    if problems:
        raise DataError(f"{file}: {what} cannot be used:\n  " + "\n  ".join(problems))
    return out[~out.index.duplicated()]


def planned_post_inputs(
    plan: pd.DataFrame | None,
    post_type: str | None = None,
    sponsored: bool | None = None,
    target_engagements: float | None = None,
) -> dict[str, Any]:
    """``post_type``, ``sponsored`` and ``target_engagements`` for :meth:`Predictor.score`: the
    shortlist's value per candidate (``plan``, by influencer; it names every candidate scored),
    and the command line's value where a cell is empty or the column is absent."""
    given = {
        "post_type": None if post_type is None else POST_TYPES[post_type.strip().lower()],
        "sponsored": sponsored,
        "target_engagements": target_engagements,
    }
    out: dict[str, Any] = {}
    for column, default in given.items():
        if plan is None or column not in plan or plan[column].isna().all():
            out[column] = default
        elif default is None:
            out[column] = plan[column]
        else:
            out[column] = plan[column].astype(object).where(plan[column].notna(), default)
    return out


def read_planned_posts(path: Path) -> pd.DataFrame | None:
    """:func:`check_planned_posts` of a shortlist file."""
    return check_planned_posts(read_sheet(path), str(path))


def read_candidates(
    fees_path: Path | None, shortlist_path: Path | None
) -> tuple[Fees | None, list[str] | None]:
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
        out["cost_per_engagement"] = np.where(
            np.isfinite(fee) & (expected > 0), fee / expected, np.nan
        )
        # Cost falls as engagements rise: the cost's 10th percentile is the fee over the
        # engagements' 90th, and its 90th over their 10th (none when that is 0 engagements).
        for cost_pct, eng_pct in (("p10", "p90"), ("p50", "p50"), ("p90", "p10")):
            column = f"engagements_{eng_pct}"
            engagements = (
                out[column].to_numpy(dtype="float64")
                if column in out
                else np.full(len(out), np.nan)
            )
            out[f"cost_per_engagement_{cost_pct}"] = np.where(
                np.isfinite(fee) & (engagements > 0), fee / engagements, np.nan
            )
    notes = list(fees.notes)
    unknown = out.loc[
        out["status"].eq(STATUS_NO_PROFILE) & out["influencer"].isin(by_name.index), "influencer"
    ].tolist()
    if unknown:
        notes.append(
            f"fees for {len(unknown)} influencer(s) without a profile: "
            f"{_listed(unknown)} (listed as '{STATUS_NO_PROFILE}', not scored)"
        )
    scored = out["status"].astype(str).str.startswith("ok")
    no_fee = out.loc[scored & ~out["influencer"].isin(by_name.index), "influencer"].tolist()
    if no_fee:
        notes.append(
            f"no fee for {len(no_fee)} scored candidate(s): "
            f"{_listed(no_fee)} (ranked after those with a fee)"
        )
    return out, notes


def add_fee_columns(table: pd.DataFrame, fees: Fees) -> pd.DataFrame:
    """:func:`apply_fees` without its notes, for scoring in parts (``engage score --engine dask``).

    Each part holds only some candidates, so notes about "the" table would be partial; the
    columns are the same as :func:`apply_fees` adds, row by row.
    """
    return apply_fees(table, fees)[0]


# --rank-by choices: (column, descending?, what the outputs call it).
RANK_BY: dict[str, tuple[str, bool, str]] = {
    "engagements": ("expected_engagements", True, "expected engagements per post (highest first)"),
    "rate": ("predicted_er", True, "predicted engagement rate (highest first)"),
    "cost": ("cost_per_engagement", False, "cost per engagement (lowest first)"),
    "p_reach": ("p_reach", True, "chance of reaching the target (highest first)"),
}


def rank(table: pd.DataFrame, by_cost: bool = False, by: str | None = None) -> pd.DataFrame:
    """Sort by ``by`` (a :data:`RANK_BY` key; default ``cost`` with fees, else ``engagements``).

    Ties are broken by expected engagements (more first); ``rank`` is 1..n for rows with a
    value, and rows without one (unscored, no fee, no target) come last without a rank.
    """
    by = by or ("cost" if by_cost else "engagements")
    column, descending, _ = RANK_BY[by]
    if column not in table:
        raise ValueError(f"cannot rank by {by}: the table has no {column} column")
    key = table[column].to_numpy(dtype="float64")
    has_value = np.isfinite(key)
    expected = np.nan_to_num(table["expected_engagements"].to_numpy(dtype="float64"), nan=-np.inf)
    primary = np.where(has_value, -key if descending else key, np.inf)
    order = np.lexsort((-expected, primary))
    out = table.iloc[order].reset_index(drop=True)
    ranked = has_value[order]
    rank = pd.array(np.where(ranked, np.cumsum(ranked), 0), dtype="Int64")
    out.insert(0, "rank", rank)  # type: ignore[arg-type]  # pandas-stubs omit extension arrays
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

    ``context.top`` keeps the first N rows in CSV and Excel (the HTML table too; its chart shows
    every scored candidate, the top N highlighted). Atomic: the file is written beside the
    target and renamed over it, so a failure (a full disk) leaves the previous file and raises
    :class:`~features.outputs.OutputError`. Text cells of CSV and Excel cannot run as formulas
    (HTML escapes everything instead).
    """
    kind = check_output_path(path)
    written = table.head(context.top) if context.top else table
    if kind == "xlsx":
        check_fits_excel(written, path)
    with atomic_output(path) as temp:
        if kind == "csv":
            # A CSV has no room for a header block: each row names the model it came from.
            neutralise_formulas(written.assign(model=context.model_label())).to_csv(
                temp, index=False
            )
        elif kind == "xlsx":
            # Built in memory: a zip writer that fails half-way (full disk) would retry writing
            # when garbage-collected and print a traceback.
            buffer = io.BytesIO()
            _write_xlsx(written, buffer, context)
            temp.write_bytes(buffer.getvalue())
        else:
            temp.write_text(render_html(table, context), encoding="utf-8")


# What one Excel sheet holds: past these Excel refuses or "repairs" (cuts) the file.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CELL_CHARS = 32_767


def check_fits_excel(table: pd.DataFrame, path: Path) -> None:
    """Refuse (exit 2, before writing) a table one Excel sheet cannot hold as it is: too many
    rows, or a text cell longer than Excel keeps. Nothing is cut to fit."""
    import errno

    if len(table) + 1 > EXCEL_MAX_ROWS:
        raise OutputError(
            errno.EFBIG,
            f"cannot write {path}: {len(table)} rows, over the {EXCEL_MAX_ROWS - 1} an Excel "
            "sheet holds; write .csv (or keep the first rows with --top)",
        )
    for column in table.columns:
        values = table[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
            continue
        lengths = values.astype("string").str.len().fillna(0).to_numpy()
        too_long = np.flatnonzero(lengths > EXCEL_MAX_CELL_CHARS)
        if len(too_long):
            raise OutputError(
                errno.EFBIG,
                f"cannot write {path}: column '{column}', row {too_long[0] + 1} holds "
                f"{int(lengths[too_long[0]])} characters, over the {EXCEL_MAX_CELL_CHARS} an "
                "Excel cell keeps; write .csv",
            )


# Plain names and number formats of the Excel sheet (machine names stay in CSV and the API).
COUNT, PERCENT, MONEY, UNIT_COST, SHARE, WHOLE, DATE = (
    "#,##0",
    "0.00%",
    "money",
    "unit cost",
    "0%",
    "0",
    "yyyy-mm-dd hh:mm",
)
EXCEL_COLUMNS: dict[str, tuple[str, str | None]] = {
    "rank": ("Rank", WHOLE),
    "influencer": ("Influencer", None),
    "expected_engagements": ("Expected engagements per post", COUNT),
    "engagements_p10": ("Engagements, low (10th percentile)", COUNT),
    "engagements_p50": ("Engagements, median", COUNT),
    "engagements_p90": ("Engagements, high (90th percentile)", COUNT),
    "target_engagements": ("Target engagements", COUNT),
    "p_reach": ("Chance of reaching the target", SHARE),
    "predicted_er": ("Predicted engagement rate", PERCENT),
    "er_low": ("Rate, low end of range", PERCENT),
    "er_high": ("Rate, high end of range", PERCENT),
    "expected_views": ("Expected views", COUNT),
    "predicted_er_per_view": ("Engagements per view", PERCENT),
    "fee": ("Fee", MONEY),
    "cost_per_engagement": ("Cost per engagement", UNIT_COST),
    "cost_per_engagement_p10": ("Cost per engagement, low (10th percentile)", UNIT_COST),
    "cost_per_engagement_p50": ("Cost per engagement, median", UNIT_COST),
    "cost_per_engagement_p90": ("Cost per engagement, high (90th percentile)", UNIT_COST),
    "currency": ("Currency", None),
    "followers": ("Followers", COUNT),
    "tier": ("Tier", None),
    "category": ("Niche", None),
    "peer_percentile": ("Peer percentile", WHOLE),
    "history_posts": ("Earlier posts used", COUNT),
    "range_note": ("Why the range is wide", None),
    "reasons": ("Reasons", None),
    "has_history": ("Has post history", None),
    "status": ("Status", None),
    "as_of": ("Scored as of (UTC)", DATE),
}
# Columns left out of Excel and HTML when no row has a value (no target, no views, no fees).
OPTIONAL_FIGURES = (
    "target_engagements",
    "p_reach",
    "expected_views",
    "predicted_er_per_view",
    "cost_per_engagement_p10",
    "cost_per_engagement_p50",
    "cost_per_engagement_p90",
)


def shown_columns(table: pd.DataFrame) -> list[str]:
    """The table's columns in the planner's order, without optional figures nobody has."""
    ordered = [c for c in EXCEL_COLUMNS if c in table] + [
        c for c in table.columns if c not in EXCEL_COLUMNS
    ]
    return [c for c in ordered if not (c in OPTIONAL_FIGURES and not table[c].notna().any())]


def _money_format(currency: str, decimals: str = "0.00") -> str:
    # Currency codes are the fee table's text: only letters reach the format string.
    code = re.sub(r"[^A-Za-z]", "", currency)[:5]
    number = f"#,##{decimals}"
    return f'{number} "{code}"' if code else number


def _write_xlsx(table: pd.DataFrame, path: Path | io.BytesIO, context: ReportContext) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    columns = shown_columns(table)
    sheet_table = table[columns].copy()
    if "as_of" in sheet_table:
        # A real date cell (Excel has no time zones: the header says UTC).
        sheet_table["as_of"] = pd.to_datetime(
            sheet_table["as_of"], utc=True, errors="coerce"
        ).dt.tz_localize(None)
    if "reasons" in sheet_table:
        sheet_table["reasons"] = [
            ("; ".join(reasons_as_factors(r)) if isinstance(r, str) else r)
            for r in sheet_table["reasons"]
        ]
    if "has_history" in sheet_table:
        sheet_table["has_history"] = sheet_table["has_history"].map({True: "yes", False: "no"})
    sheet_table.columns = [EXCEL_COLUMNS.get(c, (c, None))[0] for c in columns]
    currency = (
        str(table["currency"].dropna().iloc[0])
        if "currency" in table and table["currency"].notna().any()
        else ""
    )
    summary = context.summary
    about: list[tuple[str, object]] = [
        ("title", context.title),
        ("model", context.model_label()),
        ("how the model was chosen", context.model.resolved if context.model else ""),
        ("as of", context.as_of),
        (
            "posts in the data",
            " to ".join(_day(t) for t in context.posts_date_range)
            if context.posts_date_range
            else "none",
        ),
        ("ranked by", context.ranked_by),
    ]
    if summary is not None:
        about += [(label, value) for label, value in summary.lines()]
    about += [
        (
            "engagement rate",
            "interactions (likes + comments, plus shares "
            "and saves where present) / followers, per post",
        ),
        (
            "range",
            f"low to high end: the {100 * context.interval_level:.0f}% "
            "range the next post should fall in",
        ),
        (
            "expected engagements",
            "predicted engagement rate x followers: interactions expected on one post",
        ),
        (
            "peer percentile",
            "where the prediction falls among training posts of the same tier and niche (0-100)",
        ),
        *[("data note", n) for n in context.notes],
    ]
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        excel_cells(sheet_table).to_excel(writer, sheet_name="ranking", index=False)
        excel_cells(pd.DataFrame(about, columns=["item", "value"]).astype({"value": str})).to_excel(
            writer, sheet_name="about", index=False
        )
        if context.technical:
            excel_cells(pd.DataFrame({"data checks (technical)": context.technical})).to_excel(
                writer, sheet_name="data checks", index=False
            )
        sheet = writer.sheets["ranking"]
        bold = Font(bold=True)
        for idx, col in enumerate(columns, start=1):
            letter = get_column_letter(idx)
            header = sheet.cell(row=1, column=idx)
            header.font = bold
            sheet.column_dimensions[letter].width = (
                60
                if col in ("reasons", "status", "range_note")
                else max(10, min(30, len(str(header.value)) + 2))
            )
            fmt = EXCEL_COLUMNS.get(col, (col, None))[1]
            if fmt in (MONEY, UNIT_COST):
                # A cost per engagement is often a fraction of a cent: up to 4 decimals.
                fmt = _money_format(currency, decimals="0.00" if fmt == MONEY else "0.00##")
            if fmt:
                for cell in sheet[letter][1:]:
                    cell.number_format = fmt
        sheet.auto_filter.ref = sheet.dimensions
        sheet.freeze_panes = "C2"
        for name in ("about", "data checks"):
            if name in writer.sheets:
                for cell in writer.sheets[name][1]:
                    cell.font = bold
        writer.sheets["about"].column_dimensions["A"].width = 28
        writer.sheets["about"].column_dimensions["B"].width = 100
        if "data checks" in writer.sheets:
            writer.sheets["data checks"].column_dimensions["A"].width = 140


def _day(text: str) -> str:
    try:
        return pd.Timestamp(text).strftime("%Y-%m-%d")
    except (ValueError, TypeError):
        return str(text)


# --------------------------------------------------------------------------- summary


def simulate_total(
    p10: np.ndarray, p50: np.ndarray, p90: np.ndarray, draws: int = 4000, seed: int = 0
) -> np.ndarray:
    """Draws of the total engagements of several posts, one per candidate.

    The 10th percentile of a sum is not the sum of 10th percentiles (that would need every
    candidate to miss low at once). Each candidate's engagements are drawn from its own
    percentiles (a log-normal with separate spreads below and above the median, through the
    10th, 50th and 90th percentile), candidates independently of each other, and added up.
    Independence is an assumption: a miss shared by every candidate (a platform-wide slump)
    would widen the total's range.
    """
    z90 = 1.2815515655446004  # the standard normal's 90th percentile
    low = np.log1p(np.maximum(p10, 0.0))
    mid = np.log1p(np.maximum(p50, 0.0))
    high = np.log1p(np.maximum(p90, 0.0))
    below, above = (mid - low) / z90, (high - mid) / z90
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    for start in range(0, len(mid), 2000):  # bounded memory for long shortlists
        part = slice(start, start + 2000)
        z = rng.standard_normal((draws, len(mid[part])))
        spread = np.where(z < 0, below[part], above[part])
        total += np.expm1(mid[part] + z * spread).sum(axis=1)
    return total


def summarise(table: pd.DataFrame, interval_level: float = 0.8) -> Summary:
    """The summary block: counts, total fee, total
    expected engagements with a range, blended cost."""
    status = table["status"].astype(str)
    scored = status.str.startswith("ok").to_numpy()
    figures = table.loc[scored, ["engagements_p10", "engagements_p50", "engagements_p90"]].to_numpy(
        dtype="float64"
    )
    usable = np.isfinite(figures).all(axis=1)
    draws = simulate_total(*figures[usable].T) if usable.any() else np.zeros(1)
    tail = (1 - interval_level) / 2
    expected = table.loc[scored, "expected_engagements"].to_numpy(dtype="float64")
    fee = table["fee"].to_numpy(dtype="float64") if "fee" in table else np.full(len(table), np.nan)
    paid = scored & np.isfinite(fee)
    paid_expected = float(np.nansum(table["expected_engagements"].to_numpy(dtype="float64")[paid]))
    total_fee = float(np.nansum(fee[paid])) if "fee" in table else None
    reach = (
        table["p_reach"].to_numpy(dtype="float64")
        if "p_reach" in table
        else np.full(len(table), np.nan)
    )
    currency = (
        str(table["currency"].dropna().iloc[0])
        if "currency" in table and table["currency"].notna().any()
        else ""
    )
    return Summary(
        candidates=len(table),
        scored=int(scored.sum()),
        cold=int(status.str.startswith(STATUS_COLD).sum()),  # a note may follow
        expected_engagements=float(np.nansum(expected)),
        engagements_low=float(np.quantile(draws, tail)),
        engagements_median=float(np.median(draws)),
        engagements_high=float(np.quantile(draws, 1 - tail)),
        interval_level=interval_level,
        with_fee=int(paid.sum()) if "fee" in table else None,
        total_fee=total_fee,
        blended_cost=total_fee / paid_expected
        if total_fee is not None and paid_expected > 0
        else None,
        currency=currency,
        expected_reaching=float(np.nansum(reach[scored])) if np.isfinite(reach).any() else None,
        target=float(np.nanmax(table["target_engagements"]))
        if "target_engagements" in table and table["target_engagements"].notna().any()
        else None,
    )


# --------------------------------------------------------------------------- model and data facts


def model_identity(
    predictor: Predictor, ref: str, tracking_uri: str | None = None
) -> ModelIdentity:
    """Which model scored, in a planner's words: registered version, alias, training window.

    ``models:/name@alias`` asks the registry which version holds the alias now; a local folder
    (``latest``, ``models/<version>``) reports what training registered it as (its
    ``registry.json``), since that folder's alias may have moved since.
    """
    metadata = predictor.metadata
    window = tuple(_day(t) for t in (metadata.get("data_date_range") or ())[:2])
    identity = ModelIdentity(
        version=predictor.version, trained_on=window if len(window) == 2 else ()
    )
    text = str(ref)
    if text.startswith("models:/"):
        name, _, pin = text.removeprefix("models:/").partition("@")
        if pin:
            identity.alias = pin
        else:
            name, _, number = name.partition("/")
            identity.number = number
        identity.name = name
        try:
            from mlflow import MlflowClient

            from features.registry import resolve_tracking_uri

            client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
            found = (
                client.get_model_version_by_alias(name, pin)
                if pin
                else client.get_model_version(name, identity.number)
            )
            identity.number = str(found.version)
            if not pin:
                identity.alias = ", ".join(found.aliases)
        except Exception:  # the model loaded already; a registry hiccup must not stop the report
            pass
        identity.resolved = (
            f"{text}: the registry's "
            f"{'alias ' + pin if pin else 'version ' + identity.number} "
            f"(version {identity.number or 'unknown'})"
        )
        return identity
    registry_file = predictor.path / "registry.json"
    if registry_file.is_file():
        try:
            registry = json.loads(registry_file.read_text())
            identity.name = str(registry.get("registered_model", ""))
            identity.number = str(registry.get("model_version", ""))
            identity.alias = str(registry.get("alias", ""))
            identity.alias_when = "at registration"
        except (OSError, ValueError):
            pass
    # Only the folder's name: reports are forwarded, and the server's paths are nobody's business.
    how = (
        "the newest model training registered, by signed training time"
        if text == "latest"
        else "the model folder named"
    )
    identity.resolved = (
        f"--model {text if text == 'latest' else Path(text).name}: {how} ({predictor.path.name})"
    )
    return identity


# Optional input columns the model reads, and what leaving one out means for an estimate.
OPTIONAL_INPUTS: dict[tuple[str, str], str] = {
    ("profiles", "posts_count"): "total post count",
    ("profiles", "following"): "following count",
    ("profiles", "verified"): "verified flag",
    ("profiles", "category"): "niche (every candidate is 'other')",
    ("posts", "shares"): "not counted as engagement",
    ("posts", "saves"): "not counted as engagement",
    ("posts", "views"): "no per-view figures",
    ("posts", "media_type"): "post type (video and carousel shares unknown)",
    ("posts", "is_sponsored"): "sponsorship (every post counted as organic)",
    ("posts", "hashtags"): "hashtag signals unknown",
    ("posts", "caption"): "caption length unknown",
}


# Optional inputs whose absence changes only what the output can show (engagement counts, per-view
# figures), whatever the model was trained on; the others matter only if training had them.
OUTPUT_ONLY_INPUTS = frozenset({("posts", "shares"), ("posts", "saves"), ("posts", "views")})


def missing_optional_columns(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    trained_with: dict[str, list[str]] | None = None,
) -> list[str]:
    """Planner notes for optional columns the input leaves out that the model reads.

    ``trained_with``: the model's training input columns by table (its ``input_columns``
    metadata); a column training never had cannot move an estimate and is not named. None
    (models saved before it was recorded): every optional column is named."""
    present = {
        "profiles": {str(c).strip().lower() for c in profiles.columns},
        "posts": {str(c).strip().lower() for c in posts.columns} if posts is not None else set(),
    }
    seen = (
        None
        if trained_with is None
        else {t: {str(c).strip().lower() for c in cols} for t, cols in trained_with.items()}
    )

    def matters(table: str, column: str) -> bool:
        if seen is None or (table, column) in OUTPUT_ONLY_INPUTS:
            return True
        return column in seen.get(table, set())

    missing = [
        (table, column, what)
        for (table, column), what in OPTIONAL_INPUTS.items()
        if column not in present[table]
        and (table == "profiles" or posts is not None)
        and matters(table, column)
    ]
    if not missing:
        return []
    listed = "; ".join(f"{column} ({what})" for _, column, what in missing)
    return [
        f"Columns left out of the data: {listed}. The model "
        "reads them as unknown, which moves estimates "
        "(how far, per column, measured on the embedded data: README, 'Missing optional columns'); "
        "add them where you have them for estimates comparable with complete profiles."
    ]


def stale_data_notes(
    posts_range: tuple[str, str] | None, as_of: pd.Timestamp | None, trained_on: Sequence[str]
) -> list[str]:
    """Warnings when the newest post is long before the scoring time, or after training's data."""
    notes: list[str] = []
    if posts_range is None or as_of is None:
        return notes
    newest = pd.Timestamp(posts_range[1])
    newest = newest.tz_localize("UTC") if newest.tzinfo is None else newest
    gap = (as_of - newest).days
    if gap > STALE_AFTER_DAYS:
        notes.append(
            f"Stale data: the newest post is from {newest:%Y-%m-%d}, "
            f"{gap:,} days before the scoring time ({as_of:%Y-%m-%d}). "
            "The estimates describe these accounts as they were then; a "
            "long silence is read as the longest gap seen in training, "
            "not extrapolated. Refresh the data, or score as of then (--as-of "
            f"{(newest + pd.Timedelta(days=1)):%Y-%m-%d}) for a backtest."
        )
    if len(trained_on) == 2:
        end = pd.Timestamp(trained_on[1]).tz_localize("UTC")
        if (as_of - end).days > 2 * 365:
            notes.append(
                f"The model learned from posts up to {trained_on[1]}; engagement "
                f"habits drift, so read estimates for {as_of:%Y} with care."
            )
    return notes


def unseen_platform_notes(table: pd.DataFrame, trained: Sequence[str]) -> list[str]:
    """One warning per platform of the scored candidates that the model was not trained on
    (their status carries :data:`~serving.predictor.UNSEEN_PLATFORM`)."""
    status = table["status"].astype(str)
    platform = status.str.extract(UNSEEN_PLATFORM_PATTERN, expand=False).dropna()
    on = platforms_text(trained)
    return [
        f"{n:,} candidate{'s are' if n != 1 else ' is'} on {name}, which the model was not "
        f"trained on ({on}): forecast from their own past engagement without the model's "
        f"corrections, and the ranges are calibrated on {on}, not {name}. Retrain with {name} "
        "creators for forecasts and ranges made for them."
        for name, n in platform.value_counts(sort=False).sort_index().items()
    ]


def planner_notes(report: ValidationReport) -> tuple[list[str], list[str]]:
    """Data notes for planners (counts, no file paths or row lists) and the technical lines."""
    planner = []
    for problem in report.handled:
        what = (
            f"{problem.count:,} {problem.table} row{'s' if problem.count != 1 else ''}"
            if problem.count
            else problem.table
        )
        column = f" ({problem.column})" if problem.column else ""
        action = f": {problem.action}" if problem.action else ""
        planner.append(f"{what}{column}: {problem.message}{action}")
    technical = [p.describe() for p in report.handled]
    return planner, technical


def range_notes(table: pd.DataFrame) -> np.ndarray:
    """Why each range is as wide as it is: it is set by the account's history length and tier."""
    n = (
        table["history_posts"].to_numpy(dtype="float64")
        if "history_posts" in table
        else np.full(len(table), np.nan)
    )
    tier = table["tier"].astype("string").fillna("")
    status = table["status"].astype(str).str.startswith("ok").to_numpy()
    out = np.full(len(table), "", dtype=object)
    for i in np.flatnonzero(status):
        if not np.isfinite(n[i]) or n[i] <= 0:
            history = "no post history: the estimate rests on the profile alone"
        elif n[i] < 5:
            history = f"only {int(n[i])} earlier post{'s' if n[i] != 1 else ''}"
        elif n[i] < 15:
            history = f"{int(n[i])} earlier posts"
        else:
            history = f"{int(n[i])} earlier posts (a long record)"
        out[i] = f"{history}; {tier.iloc[i]} tier" if tier.iloc[i] else history
    return out


# Columns of console_rows read as text, aligned left; the others are figures, aligned right.
CONSOLE_TEXT_COLUMNS = frozenset({"influencer", "tier", "niche", "status"})


def console_table(table: pd.DataFrame, top: int, interval_level: float = 0.8) -> str:
    """The first ``top`` rows as an aligned plain-text table (control characters escaped)."""
    frame = console_rows(table, top, interval_level)
    if frame.empty:
        return "(no rows)"
    left = CONSOLE_TEXT_COLUMNS
    widths = {c: max(len(c), *(len(v) for v in frame[c])) for c in frame.columns}
    line = "  ".join(
        c.ljust(widths[c]) if c in left else c.rjust(widths[c]) for c in frame.columns
    ).rstrip()
    out = [line, "-" * len(line)]
    for _, r in frame.iterrows():
        out.append(
            "  ".join(
                r[c].ljust(widths[c]) if c in left else r[c].rjust(widths[c]) for c in frame.columns
            ).rstrip()
        )
    return "\n".join(out)


def console_rows(table: pd.DataFrame, top: int, interval_level: float = 0.8) -> pd.DataFrame:
    """The first ``top`` rows as the console shows them: one text cell per column, figures
    formatted, control characters escaped (no rows: an empty frame)."""
    shown = table.head(top)
    level = f"{100 * interval_level:.0f}%"
    has_fees = "cost_per_engagement" in table
    has_target = "p_reach" in table and bool(table["p_reach"].notna().any())
    has_views = "predicted_er_per_view" in table and bool(
        table["predicted_er_per_view"].notna().any()
    )

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
            f"{level} interval": f"{pct(float(r['er_low']))}-{pct(float(r['er_high']))}"
            if ok
            else "",
            "exp. eng./post": count(float(r["expected_engagements"])),
            "p10-p90": f"{count(float(r['engagements_p10']))}-{count(float(r['engagements_p90']))}"
            if ok and "engagements_p10" in r
            else "",
            "peer pct": "" if pd.isna(r["peer_percentile"]) else f"{r['peer_percentile']:.0f}",
        }
        if has_target:
            row["p_reach"] = chance_text(float(r["p_reach"]))
        if has_views:
            row["eng./view"] = pct(float(r["predicted_er_per_view"]))
        if has_fees:
            cpe = float(r["cost_per_engagement"])
            row["fee"] = "" if pd.isna(r["fee"]) else f"{r['fee']:,.0f}"
            row["cost/eng."] = f"{cpe:,.3f}" if np.isfinite(cpe) else ""
        row["status"] = "ok" if r["status"] == "ok" else console_text(r["status"])
        rows.append(row)
    return pd.DataFrame(rows)
