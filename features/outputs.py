"""Output files and console text that cannot be half-written, run as formulas or drive a terminal.

Every file engage writes for a person (``score --out``, ``features --out``, ``--rejects``,
``--metrics-out``, plots) goes through :func:`atomic_output`: it is written to a temporary file
in the same folder, flushed to disk and renamed over the target, so a full disk, a kill or an
error while writing leaves the previous file as it was (a rename within one folder is atomic on
POSIX and Windows) and never a truncated one. A failure to write is an :class:`OutputError`
naming the file and the reason, which the CLI reports with exit status 2.

Text cells of CSV and Excel files go through :func:`neutralise_formulas` (OWASP's advice on CSV
injection): a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'`` so a spreadsheet shows it as text instead of running it. Numbers (numeric columns,
and text that is a plain number such as ``-5``) are left alone, and only written files are
changed: the Python API and REST answers carry the values as they came.

Excel sheets go through :func:`excel_cells`, which also writes the control characters XML cannot
hold escaped (``\\x1b``), as the console does.

Console text goes through :func:`console_text`: control characters (ESC, BEL, carriage return,
bidi overrides, ...) are printed escaped (``\\x1b``, ``\\u202e``), never raw.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


class OutputError(OSError):
    """An output file could not be written (the previous file, if any, is unchanged)."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, without OSError's "[Errno 28]"


@contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it is removed.

    The temporary name ends with the target's own name, so writers that choose a format or a
    compression by the file ending (``.csv.gz``) write what the target asks for. Errors while
    preparing, writing or renaming become :class:`OutputError`.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            exc.errno, f"cannot create the folder for {target}: {_reason(exc)}"
        ) from None
    if target.is_dir():
        raise OutputError(errno.EISDIR, f"cannot write {target}: it is a folder; give a file name")
    previous_mode = existing_mode(target)
    if previous_mode is not None and not previous_mode & 0o222:
        raise OutputError(errno.EACCES, read_only_message(target))
    temp = target.with_name(f".{secrets.token_hex(4)}.tmp.{target.name}")
    try:
        # Created here (exclusively, with the usual permissions) so a writer that opens it by
        # name cannot collide with another run's temporary file.
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        if previous_mode is not None:
            os.chmod(temp, previous_mode)  # a private file (0600) stays private when replaced
        yield temp
        _fsync(temp)
        os.replace(temp, target)
        _fsync_folder(target.parent)
    except OSError as exc:
        raise OutputError(
            exc.errno, f"cannot write {target}: {_reason(exc)}; {_previous(target)}"
        ) from None
    finally:
        temp.unlink(missing_ok=True)


def existing_mode(path: Path) -> int | None:
    """The permission bits of an existing regular file at ``path``, else None."""
    try:
        info = path.stat()
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


def read_only_message(path: Path) -> str:
    # Checked on the mode bits, not os.access: root may write anything, but a file someone made
    # read-only is not to be replaced, whoever runs engage.
    return (
        f"cannot write {path}: the existing file is read-only; make it writable "
        f"(chmod u+w {path}) or choose another name"
    )


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as temp:
        temp.write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_output`)."""
    write_bytes(path, text.encode("utf-8"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every platform can open a folder (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (free some space or write to another folder)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (choose a folder you can write to)"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename is not None:
        return f"a part of the path is a file, not a folder ({exc.filename})"
    return exc.strerror or str(exc)


def _previous(target: Path) -> str:
    return f"the previous {target.name} is unchanged" if target.exists() else "nothing was written"


# --------------------------------------------------------------------------- spreadsheet cells

# OWASP, CSV injection: cells starting with these are run as formulas by spreadsheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_formula_like(text: str) -> bool:
    """True for text a spreadsheet would run: starts
    with = + - @ tab or CR and is no plain number."""
    return text.startswith(FORMULA_START) and _PLAIN_NUMBER.fullmatch(text) is None


def neutral_cell(value: object) -> object:
    """``value`` with a leading ``'`` if it is formula-like text; anything else unchanged."""
    return "'" + value if isinstance(value, str) and is_formula_like(value) else value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names cannot run as formulas (CSV).

    Numeric, boolean and time columns are never touched; text columns are changed only in the
    cells that start like a formula. The input frame is not changed.
    """
    return _fix_text_cells(frame, neutral_cell, _starts_like_formula)


# Characters XML 1.0 cannot hold (openpyxl refuses them: IllegalCharacterError).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def excel_cell(value: object) -> object:
    """:func:`neutral_cell`, with the control characters
    XML cannot hold written escaped (``\\x1b``)."""
    if isinstance(value, str):
        value = _XML_ILLEGAL.sub(lambda m: _escape(m.group()), value)
    return neutral_cell(value)


def excel_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`neutralise_formulas` for an Excel sheet: control characters escaped as well."""

    def needs_fix(text: pd.Series) -> np.ndarray:
        return _starts_like_formula(text) | text.str.contains(
            _XML_ILLEGAL.pattern, regex=True
        ).fillna(False).to_numpy(dtype=bool)

    return _fix_text_cells(frame, excel_cell, needs_fix)


def _starts_like_formula(text: pd.Series) -> np.ndarray:
    return text.str.startswith(FORMULA_START).fillna(False).to_numpy(dtype=bool)


def _fix_text_cells(
    frame: pd.DataFrame,
    fix: Callable[[object], object],
    candidates: Callable[[pd.Series], np.ndarray],
) -> pd.DataFrame:
    """Apply ``fix`` to the column names and to the text cells ``candidates`` picks (vectorised)."""
    out = frame.copy(deep=False)
    out.columns = [fix(c) for c in frame.columns]
    for i, column in enumerate(frame.columns):
        values = frame.iloc[:, i]
        if isinstance(values.dtype, pd.CategoricalDtype):
            # Checked on the categories (few), written as plain text only when one needs it.
            if all(fix(c) == c for c in values.cat.categories):
                continue
            values = values.astype(object)
        elif not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
            continue
        picked = candidates(values.astype("string"))
        if not picked.any():
            continue
        cells = values.to_numpy(dtype=object, copy=True)
        cells[picked] = [fix(v) for v in cells[picked]]
        out.isetitem(i, pd.Series(cells, index=frame.index, dtype=values.dtype, name=column).array)
    return out


# --------------------------------------------------------------------------- console text

_KEEP = {"\u200d"}  # zero-width joiner: part of emoji sequences, moves no cursor


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def console_text(text: object, keep_newlines: bool = False) -> str:
    """``text`` with control and format characters escaped repr-style, for printing.

    Escapes C0/C1 controls (ESC, BEL, CR, backspace, ...), line and paragraph separators, and
    format characters such as the bidi overrides (U+202E) that reorder what a terminal shows.
    ``keep_newlines`` keeps ``\\n`` for multi-line messages.
    """
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or char in _KEEP or (keep_newlines and char == "\n"):
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(_escape(char))
        else:
            out.append(char)  # other separators (e.g. no-break space) print as spaces
    return "".join(out)
