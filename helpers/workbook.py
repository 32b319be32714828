"""Rating workbooks for human reviewers (openpyxl).

One row per item: the given columns (prompt, reference, answers, automatic scores) and empty
rating columns that accept only whole numbers 1-5. All text goes through `helpers.textsafe`, so
text that a spreadsheet would run as a formula is stored as text and control characters a
worksheet cannot hold become U+FFFD (one odd model answer never stops a workbook from being written).

    >>> write_rating_workbook("out.xlsx", rows, text_columns=["prompt", "reference", "answer_base"],
    ...                       rating_columns=["rating_base"], meta={"model": "smollm2-135m", "task": "math"})
    >>> read_workbook_meta("out.xlsx")
    {'model': 'smollm2-135m', 'task': 'math'}

`update_rating_workbook` re-runs onto a workbook that reviewers have already filled: it never
changes or removes a rating, reviewer or comment cell, and it stops with one line naming the file
and cell rather than guess at an edit it cannot interpret (see its docstring for the rules).
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import hashlib
import io
import json
import os
import re
import stat
import warnings
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from helpers.config import ConfigError
from helpers.textsafe import put_cell, sheet_text

try:
    import fcntl
except ImportError:  # Windows: no flock; there a workbook has one writer (no Ray workers)
    fcntl = None

RUBRIC = [
    ("5", "Correct and complete; nothing to fix."),
    ("4", "Correct, with a minor slip or omission that does not change the answer."),
    ("3", "Partly correct: the right idea with a real error, or an incomplete answer."),
    ("2", "Mostly wrong, but contains something relevant."),
    ("1", "Wrong, irrelevant, empty or unreadable."),
]
META_SHEET = "about"  # hidden key/value sheet: what the workbook rates (model, model_id, task, question_set)
_LAYOUT_KEY = "_layout"  # the merge's own record in META_SHEET (columns it wrote); not part of the meta
_WIDE = 60
_NARROW = 14
STATUS = "status"
CURRENT = "current"
SUPERSEDED = "superseded"


def _save_atomically(wb, path: Path, *, expect=..., fallback: Path | None = None) -> Path | None:
    """Save next to `path`, then rename: a crash mid-save never leaves a half-written workbook in
    place of a good one (a reviewer's scores live in it).

    With `expect` (what `_fingerprint(path)` gave when the workbook was read), `path` is replaced
    only if it still matches: a reviewer who saved in the meantime keeps their save. Then the merge
    goes to `fallback` instead, or nowhere (None). Returns the path written, or None."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.xlsx")
    try:
        wb.save(tmp)
        target = path
        if expect is not ... and _fingerprint(path) != expect:  # checked as late as possible
            if fallback is None:
                return None
            target = fallback
        tmp.replace(target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def merge_lock(path: Path):
    """Hold the workbook's sidecar lock (`.<name>.lock` beside it) while reading, merging and replacing
    it: two benchmark runs of one model and task (sweep workers, on one host or several sharing the
    folder; Linux's NFS client maps flock to a lock the server keeps) merge one after the other, and
    neither loses the other's answers. The fingerprint check in `_save_atomically` guards against a
    reviewer's program, which takes no such lock.

    The holder deletes the lock file before letting go, so nothing is left beside the workbook; a
    waiter that then gets the lock of the deleted file sees the path gone or another file there, and
    takes the lock again (the usual lock-and-unlink loop)."""
    if fcntl is None:
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            now = os.stat(lock)
        except FileNotFoundError:  # unlinked by the holder we waited for
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)


def _fingerprint(path: Path, data: bytes | None = None):
    """(mtime_ns, size, sha256) of the file, or None if there is none. The hash catches a save within
    the file system's time resolution that kept the size."""
    try:
        st = path.stat()
        if data is None:
            data = path.read_bytes()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest()


def _rating_rule(cells: str) -> DataValidation:
    rule = DataValidation(type="whole", operator="between", formula1="1", formula2="5", allow_blank=True,
                          showErrorMessage=True, errorTitle="Rating", error="Enter a whole number from 1 to 5.")
    rule.add(cells)
    return rule


def _build_workbook(rows: list[dict], *, text_columns, rating_columns, score_columns=(), reviewer_column="reviewer",
                    extra_columns=(), title: str = "ratings", instructions: str = "") -> Workbook:
    columns = ["id", *text_columns, *score_columns, *rating_columns] + ([reviewer_column] if reviewer_column else [])
    columns += list(extra_columns)
    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    for j, name in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=j)
        put_cell(cell, name)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for i, row in enumerate(rows, start=2):
        for j, name in enumerate(columns, start=1):
            cell = ws.cell(row=i, column=j)
            put_cell(cell, i - 1 if name == "id" and "id" not in row else row.get(name))
            if name in text_columns:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    last = max(len(rows) + 1, 2)
    for name in rating_columns:
        letter = get_column_letter(columns.index(name) + 1)
        ws.add_data_validation(_rating_rule(f"{letter}2:{letter}{last}"))
    for j, name in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = _WIDE if name in text_columns else _NARROW
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{last}"

    info = wb.create_sheet("instructions")
    info.column_dimensions["A"].width = 10
    info.column_dimensions["B"].width = 90
    info["A1"] = "How to rate"
    info["A1"].font = Font(bold=True)
    put_cell(info["B1"], instructions or "Score each answer in its rating column, 1 (worst) to 5 (best). Leave a "
                                         "cell empty if you did not rate it: empty means missing, never zero.")
    info["B1"].alignment = Alignment(wrap_text=True)
    for r, (score, meaning) in enumerate(RUBRIC, start=3):
        info.cell(row=r, column=1, value=score)
        info.cell(row=r, column=2, value=meaning)
    return wb


def _clean_meta(meta: dict | None) -> dict:
    out = {}
    for key, value in (meta or {}).items():
        if not isinstance(key, str) or not key.strip() or key.startswith("_"):
            raise ConfigError(f"workbook meta key {key!r}: use a non-empty name that does not start with '_'")
        out[key] = value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
    return out


def _write_about(wb, meta: dict, layout: dict | None = None) -> None:
    """(Re)write the hidden META_SHEET: header key, value; one row per meta entry, then the layout."""
    if META_SHEET in wb.sheetnames:
        ws = wb[META_SHEET]
        ws.delete_rows(1, ws.max_row)
    else:
        ws = wb.create_sheet(META_SHEET)
    ws.sheet_state = "hidden"  # what the workbook rates, not something to rate
    if wb.active.title == META_SHEET:  # a spreadsheet refuses a hidden active sheet
        wb.active = 0
    entries = [("key", "value"), *meta.items()] + ([(_LAYOUT_KEY, json.dumps(layout))] if layout else [])
    for r, (key, value) in enumerate(entries, start=1):
        put_cell(ws.cell(row=r, column=1), key)
        put_cell(ws.cell(row=r, column=2), value)
    ws.column_dimensions["A"].width = _NARROW
    ws.column_dimensions["B"].width = _WIDE


def _read_about(wb, path) -> tuple[dict, dict | None]:
    """(meta, layout) from META_SHEET; ({}, None) for a workbook written before it existed."""
    if META_SHEET not in wb.sheetnames:
        return {}, None
    meta, layout = {}, None
    for key_cell, value_cell in wb[META_SHEET].iter_rows(min_row=2, max_col=2):
        if key_cell.value is None:
            continue
        if key_cell.value != _LAYOUT_KEY:
            meta[str(key_cell.value)] = value_cell.value
            continue
        try:
            layout = json.loads(value_cell.value)
            ok = (isinstance(layout["sheet"], str) and all(isinstance(c, str) for c in layout["columns"])
                  and all(isinstance(k, str) and isinstance(v, str) for k, v in layout["ratings"].items()))
        except Exception:
            ok = False
        if not ok:
            raise ConfigError(f"{path}: {META_SHEET}!{value_cell.coordinate} (hidden sheet) was edited and is not "
                              "the column record the merge wrote; restore it (undo, or a backup), then re-run"
                              ) from None
    return meta, layout


def read_workbook_meta(path_or_workbook) -> dict:
    """What a rating workbook rates ({"model", "model_id", "task", "question_set"}, as the writer passed
    them); {} for a workbook without the META_SHEET (written before it existed)."""
    if isinstance(path_or_workbook, Workbook):
        return _meta_rows(path_or_workbook)
    wb = load_workbook(path_or_workbook, read_only=True)
    try:
        return _meta_rows(wb)
    finally:
        wb.close()


def _meta_rows(wb) -> dict:
    if META_SHEET not in wb.sheetnames:
        return {}
    return {str(key): value for key, value in wb[META_SHEET].iter_rows(min_row=2, max_col=2, values_only=True)
            if key is not None and key != _LAYOUT_KEY}


def write_rating_workbook(path, rows: list[dict], *, text_columns: list[str], rating_columns: list[str],
                          score_columns: list[str] = (), reviewer_column: str | None = "reviewer",
                          extra_columns: list[str] = (), title: str = "ratings", instructions: str = "",
                          meta: dict | None = None) -> Path:
    """Write `rows` to `path` (an .xlsx) with validated rating columns and an instructions sheet;
    `meta` (what the workbook rates) goes into the hidden META_SHEET (see `read_workbook_meta`)."""
    path = Path(path)
    meta = _clean_meta(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = _build_workbook(rows, text_columns=text_columns, rating_columns=rating_columns, score_columns=score_columns,
                         reviewer_column=reviewer_column, extra_columns=extra_columns, title=title,
                         instructions=instructions)
    if meta:
        _write_about(wb, meta)
    _save_atomically(wb, path)
    return path


def _refuse_unsafe(path: Path) -> None:
    """One line instead of a merge that a spreadsheet program holding the file would undo on its next
    save, or a rename that would go around a read-only flag."""
    for lock in (path.with_name(f"~${path.name}"), path.with_name(f".~lock.{path.name}#")):  # Excel, LibreOffice
        if lock.exists():
            raise ConfigError(f"{path} is open in a spreadsheet program (lock file {lock.name}): close {path.name} "
                              f"in your spreadsheet program, then re-run (if it is not open, delete {lock.name})")
    if path.exists():
        mode = path.stat().st_mode
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
            raise ConfigError(f"{path} is read-only: make it writable, then re-run (nothing was changed)")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"{path.parent} is read-only: the merged workbook cannot be saved next to {path.name}")


def _load(path: Path):
    """(workbook, fingerprint) from one read of the bytes, so the fingerprint is of what was merged.
    Formulas are loaded as formulas (data_only=False), so that a rating typed as one can be refused."""
    try:
        data = path.read_bytes()
        fingerprint = _fingerprint(path, data)
        return load_workbook(io.BytesIO(data)), fingerprint
    except Exception as err:  # BadZipFile, a broken XML part, a half-written save, ...
        reason = (str(err).splitlines() or [""])[0]
        raise ConfigError(f"{path} cannot be read as an .xlsx workbook ({type(err).__name__}: {reason}); if a "
                          "program was saving it just now, re-run; otherwise restore it from a backup or move it "
                          "away (nothing was written)") from None


def update_rating_workbook(path, rows: list[dict], *, answers: dict[str, str], text_columns: list[str],
                           score_columns: list[str] = (), title: str = "ratings", instructions: str = "",
                           meta: dict | None = None) -> dict:
    """Merge `rows` (each with an "id") into the workbook at `path`, keeping every human entry.

    `answers` maps each answer column to its rating column ({"answer_epoch1": "rating_epoch1", ...}),
    for the stages of this run; the workbook may hold others (a run of a subset of the stages).
    Each item is matched by id with its current row (status "current…" or "updated…"):
      - new id: a new row;
      - an answer cell that was empty (a stage benchmarked for the first time) while its rating is
        empty: filled in place; an empty answer that was rated counts as a changed rated answer (below);
      - an answer that changed while its rating is empty: replaced in place, flagged in `status`;
      - an answer that changed while its rating is filled: that row stays as it was, marked
        superseded; a new current row gets the new answers, and everything else of the old row
        that still holds is carried over: the other answers of this run that did not change, the
        answers and automatic scores of the stages not in this run, and their ratings (with the
        reviewer's name). Only the ratings (and `score_<stage>`) of the changed answers start empty.
    Rating, reviewer and comment cells are never changed or removed. The file is edited in place
    (other sheets, formatting, added columns, sorting survive) and replaced atomically.

    Refused with one line (ConfigError), nothing written: the workbook is open in Excel or
    LibreOffice (their lock file is beside it), read-only, or unreadable; its `meta` has another
    `model_id` or `task`; or a reviewer made an edit the merge cannot interpret: the rating sheet
    renamed, a header the merge needs renamed, cleared, removed or duplicated, merged cells in a column
    the merge reads or writes (all but `comment`), a formula in a column the merge reads (a rating typed
    as `=4` would lose its value when the file is re-saved), a status it did not write, an id cleared on
    a rated row or current twice.

    If the file changes between the read and the replace (a reviewer saved it), the merge is
    discarded and done again on the new file; if it changes again, the file is left alone and the
    merge is written beside it as `<stem>.merged-<timestamp>.xlsx` (key "merged_copy" and a warning).
    Returns counts: {"added", "filled", "updated", "superseded", "unchanged"}.
    """
    path = Path(path)
    title = title[:31]
    meta = _clean_meta(meta)
    rows = [{k: sheet_text(v) for k, v in row.items()} for row in rows]  # before comparing with the workbook
    seen = set()
    for i, row in enumerate(rows):
        if "id" not in row or str(row["id"]) in seen:
            raise ConfigError(f"row {i} has {'id ' + repr(row['id']) + ' twice' if 'id' in row else 'no id'}: "
                              "each item needs one unique id")
        seen.add(str(row["id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_unsafe(path)  # before the lock: a read-only folder gets its one line, not an OSError
    with merge_lock(path):
        return _merge_and_save(path, rows, answers=answers, text_columns=text_columns, score_columns=score_columns,
                               title=title, instructions=instructions, meta=meta)


def _merge_and_save(path: Path, rows, *, answers, text_columns, score_columns, title, instructions, meta) -> dict:
    """The read-merge-replace of update_rating_workbook, under its merge_lock."""
    for attempt in (1, 2):
        _refuse_unsafe(path)
        if path.exists():
            wb, fingerprint = _load(path)
            counts = _merge(wb, path, rows, answers=answers, text_columns=text_columns, score_columns=score_columns,
                            title=title, meta=meta)
        else:
            fingerprint = None
            wb = _build_workbook([{**row, STATUS: CURRENT} for row in rows], text_columns=[*text_columns, *answers],
                                 score_columns=[*score_columns], rating_columns=list(answers.values()),
                                 extra_columns=["comment", STATUS], title=title, instructions=instructions)
            columns = ["id", *text_columns, *answers, *score_columns, *answers.values(), "reviewer", "comment", STATUS]
            _write_about(wb, meta, {"sheet": title, "columns": columns, "ratings": _ratings_map(answers)})
            counts = dict.fromkeys(("added", "filled", "updated", "superseded", "unchanged"), 0)
            counts["added"] = len(rows)
        # A reviewer's save between our read and our replace would be lost: then merge once more
        # onto their save; if it changes again, someone is working in it, so leave it alone.
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        fallback = path.with_name(f"{path.stem}.merged-{stamp}{path.suffix}") if attempt == 2 else None
        written = _save_atomically(wb, path, expect=fingerprint, fallback=fallback)
        if written == path:
            return counts
        if written is not None:
            warnings.warn(f"{path} was saved by someone else during the merge, twice: it is left as it is and the "
                          f"merge is in {written.name}; close {path.name} everywhere, then re-run", stacklevel=3)
            return {**counts, "merged_copy": str(written)}
    raise AssertionError("unreachable")


def _ratings_map(answers: dict[str, str]) -> dict[str, str]:
    return {rating: answer for answer, rating in answers.items()}


def header_key(name) -> str:
    """How a header reads to a person: 'Rating base', 'rating-base' and 'rating_base' are one name.
    The merge refuses a known header retyped so; helpers.ratings reads it as the known name."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip().casefold())


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _same(stored, new) -> bool:
    """Whether an answer cell still holds `new`. A spreadsheet program may save line ends as CR LF;
    that is the same answer, and calling it changed would supersede the row and un-count its rating."""
    if isinstance(stored, str) and isinstance(new, str):
        return stored.replace("\r\n", "\n") == new.replace("\r\n", "\n")
    return stored == new


def _merge(wb, path: Path, rows: list[dict], *, answers: dict[str, str], text_columns, score_columns, title: str,
           meta: dict) -> dict:
    """Merge `rows` into the loaded workbook `wb` (see update_rating_workbook); returns the counts."""
    old_meta, layout = _read_about(wb, path)
    for key in ("model_id", "task"):
        old, new = old_meta.get(key), meta.get(key)
        if not _blank(old) and not _blank(new) and str(old) != str(new):
            raise ConfigError(f"{path} holds ratings for {key} '{old}', not '{new}': use another workbook folder "
                              f"or file for '{new}', or move the file away, then re-run")
    if title not in wb.sheetnames:
        raise ConfigError(f"{path} has no sheet '{title}' (it has {', '.join(wb.sheetnames)}): "
                          "rename the sheet back, or move the file away to start a new workbook")
    ws = wb[title]
    if layout is not None and layout["sheet"] != title:
        layout = None  # a record of another sheet says nothing about this one

    # Which columns the merge knows: what it wrote before (the record in META_SHEET), what this run
    # needs, and, for a workbook from before the record, the answer_X/rating_X pairs its header shows.
    header = {c.column: c for c in ws[1]}
    names = {col: c.value for col, c in header.items() if not _blank(c.value)}
    recorded = list(layout["columns"]) if layout else []
    ratings = dict(layout["ratings"]) if layout else {}
    ratings |= {f"rating_{str(n)[7:]}": n for n in names.values()
                if str(n).startswith("answer_") and f"rating_{str(n)[7:]}" in names.values()}
    ratings |= _ratings_map(answers)
    needed = ["id", *text_columns, *answers, *score_columns, *answers.values(), "reviewer", "comment", STATUS]
    known = list(dict.fromkeys([*recorded, *needed, *ratings, *ratings.values(),
                                *(f"score_{a[7:]}" for a in ratings.values() if a.startswith("answer_"))]))
    where = f"{path}: {title}!"

    col = {}
    for c, name in names.items():
        if name in col and name in known:
            raise ConfigError(f"{where}{header[c].coordinate}: header '{name}' is also in "
                              f"{header[col[name]].coordinate}; rename or remove one of them, then re-run")
        col.setdefault(name, c)
    by_norm = {header_key(k): k for k in known}
    for c, name in names.items():  # a known name spelt another way: the reviewer renamed a header
        if name not in known and header_key(name) in by_norm:
            raise ConfigError(f"{where}{header[c].coordinate}: header '{name}' is not one this workbook was written "
                              f"with; rename it back to '{by_norm[header_key(name)]}', then re-run")
    # A column the merge wrote is gone (renamed, header cleared, deleted). Without the record (a workbook
    # from before it), what shows it: an unnamed column with values under it, answers without their
    # rating column (the merge always writes both), rows without an id column.
    emptied = [c for c in header if c not in names and any(not _blank(ws.cell(row=r, column=c).value)
                                                           for r in range(2, ws.max_row + 1))]
    if layout:
        gone = [k for k in recorded if k not in col]
    else:
        gone = [k for k in needed if k not in col] if emptied else ["id"] if "id" not in col and ws.max_row > 1 else []
        gone += [rating for answer, rating in answers.items() if rating not in col and answer in col
                 and any(not _blank(ws.cell(row=r, column=col[answer]).value) for r in range(2, ws.max_row + 1))]
    if gone:
        lost = gone[0]
        strangers = [c for c, name in names.items() if name not in known]
        guess = difflib.get_close_matches(header_key(lost), [header_key(names[c]) for c in strangers], n=1,
                                          cutoff=0.6)
        renamed = [c for c in strangers if header_key(names[c]) in guess]
        if renamed:
            raise ConfigError(f"{where}{header[renamed[0]].coordinate}: header '{names[renamed[0]]}' is not one this "
                              f"workbook was written with (it has no column '{lost}'); rename it back to '{lost}', "
                              "then re-run")
        if emptied:
            raise ConfigError(f"{where}{header[emptied[0]].coordinate}: header is empty but there are values under it "
                              f"(the merge misses column {', '.join(repr(k) for k in gone)}); type the column's name "
                              "back, then re-run")
        others = ", ".join(f"{title}!{header[c].coordinate} '{names[c]}'" for c in strangers)
        raise ConfigError(f"{path}: sheet '{title}' has no column '{lost}', which this workbook was written with "
                          f"(renamed{' to one of ' + others if others else ''} or deleted?); restore it (rename it "
                          "back, undo, or a backup), then re-run")

    # Merged cells: only the first cell of a merged range holds a value and the others cannot be written
    # (openpyxl's MergedCell), and one rating shown over two rows reads as a rating of one of them only.
    # The merge reads or writes every column it knows but `comment`, so a merged range there stops it.
    touched = {col[name] for name in known if name in col and name != "comment"}
    for rng in sorted(ws.merged_cells.ranges, key=lambda m: (m.min_col, m.min_row)):
        if any(rng.min_col <= c <= rng.max_col for c in touched):
            over = ", ".join(f"'{names[c]}'" for c in sorted(touched) if rng.min_col <= c <= rng.max_col)
            raise ConfigError(f"{where}{rng.coord}: merged cells in column {over}; unmerge them (keep each row's "
                              "own value), then re-run (nothing was written)")

    for name in needed:
        if name not in col:  # e.g. a stage benchmarked for the first time
            col[name] = ws.max_column + 1
            cell = ws.cell(row=1, column=col[name])
            put_cell(cell, name)
            cell.font = Font(bold=True)
            ws.column_dimensions[get_column_letter(col[name])].width = _WIDE if name in answers else _NARROW
    merged = [k for k in known if k in col]  # the merge's columns in this sheet, to record and to check
    rating_cols = [r for r in ratings if r in col]

    def cell(r, name):
        return ws.cell(row=r, column=col[name])

    def get(r, name):
        return cell(r, name).value

    # Refuse what cannot be read back: a formula loses its value when openpyxl re-saves the file
    # (it keeps no cached result), so a rating typed as "=4" would become a missing rating. A comment
    # is only shown, never read: a spreadsheet program recomputes it.
    current = {}
    for r in range(2, ws.max_row + 1):
        for name in merged:
            if name != "comment" and cell(r, name).data_type == "f":
                formula = getattr(get(r, name), "text", get(r, name))  # an array formula is an object
                raise ConfigError(f"{where}{cell(r, name).coordinate}: '{name}' holds the formula {formula}; "
                                  "type its value instead (a formula's result is lost when the file is re-saved), "
                                  "then re-run")
        if _blank(get(r, "id")):
            rated = [n for n in rating_cols if not _blank(get(r, n))]
            if rated:
                raise ConfigError(f"{where}{cell(r, 'id').coordinate}: no id on a row rated in '{rated[0]}'; "
                                  "type the id back, then re-run")
            continue
        status = get(r, STATUS)
        if not _blank(status) and not str(status).startswith((CURRENT, "updated", SUPERSEDED)):
            raise ConfigError(f"{where}{cell(r, STATUS).coordinate}: status '{status}' is not one the merge writes "
                              f"(current…, updated…, superseded…); put it back, then re-run")
        if _blank(status) or not str(status).startswith(SUPERSEDED):
            key = str(get(r, "id"))
            if key in current:
                raise ConfigError(f"{where}{cell(r, 'id').coordinate}: id '{key}' is current in rows {current[key]} "
                                  f"and {r}; mark one '{SUPERSEDED}' or delete it, then re-run")
            current[key] = r

    def put_row(r, row, status):
        for name in ["id", *text_columns, *score_columns, *answers]:
            if name in row:
                put_cell(cell(r, name), row[name])
                if name != "id" and name not in score_columns:
                    cell(r, name).alignment = Alignment(wrap_text=True, vertical="top")
        put_cell(cell(r, STATUS), status)

    counts = dict.fromkeys(("added", "filled", "updated", "superseded", "unchanged"), 0)
    stamp = datetime.date.today().isoformat()
    for row in rows:
        r = current.get(str(row["id"]))
        if r is None:
            put_row(ws.max_row + 1, row, CURRENT)
            counts["added"] += 1
            continue
        changed = [a for a in answers if a in row and not _blank(get(r, a)) and not _same(get(r, a), row[a])]
        filled = [a for a in answers if a in row and _blank(get(r, a)) and not _blank(row[a])]
        # an empty answer that was rated (1: "empty") is a rated answer: its rating must not pass to the new one
        changed += [a for a in filled if not _blank(get(r, answers[a]))]
        filled = [a for a in filled if a not in changed]
        rated = [a for a in changed if not _blank(get(r, answers[a]))]
        if rated:
            new = ws.max_row + 1
            stale = {answers[a] for a in changed} | {f"score_{a[7:]}" for a in changed if a.startswith("answer_")}
            for name in merged:  # the old row's answers, scores and ratings, but those of what changed
                if name not in (STATUS, "comment", "reviewer") and name not in stale:
                    put_cell(cell(new, name), get(r, name))  # text stays text, even if it starts with "="
            put_row(new, row, f"{CURRENT} (replaces row {r})")
            if any(not _blank(get(new, n)) for n in rating_cols):
                put_cell(cell(new, "reviewer"), get(r, "reviewer"))
            put_cell(cell(r, STATUS), f"{SUPERSEDED} {stamp} by row {new}: {', '.join(rated)} changed")
            current[str(row["id"])] = new
            counts["superseded"] += 1
        elif changed or filled:
            put_row(r, row, f"updated {stamp}: {', '.join(changed)} changed" if changed else get(r, STATUS) or CURRENT)
            counts["updated" if changed else "filled"] += 1
        else:
            counts["unchanged"] += 1

    last = ws.max_row
    rating_letters = {get_column_letter(col[name]) for name in rating_cols}
    for rule in list(ws.data_validations.dataValidation):  # stretch the 1-5 rules over all rows
        letters = {str(rng).split(":")[0].rstrip("0123456789") for rng in rule.sqref.ranges}
        if letters <= rating_letters:
            ws.data_validations.dataValidation.remove(rule)
    for letter in sorted(rating_letters):
        ws.add_data_validation(_rating_rule(f"{letter}2:{letter}{last}"))
    ws.auto_filter.ref = f"A1:{get_column_letter(ws.max_column)}{last}"
    _write_about(wb, {**old_meta, **meta}, {"sheet": title, "columns": merged,
                                            "ratings": {k: v for k, v in ratings.items() if k in col}})
    return counts
