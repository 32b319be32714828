"""Compile the rating workbooks of benchmark_data/ into one summary.

A workbook is <model>-<task>.xlsx (sheet = task) as benchmark.ipynb writes it; a second reviewer
works on a copy named <model>-<task>--<reviewer>.xlsx. Whose rating a cell is: in such a copy, the
reviewer its file name says (a reviewer cell naming someone else is noted); in the main workbook,
the row's reviewer cell. Only current rows count (superseded rows keep their ratings in the file but
rated an answer that has since changed). An empty rating cell is missing, never zero. One
reviewer's rating of one item counts once, however many files hold it.

Whatever cannot be counted as it stands is reported, never dropped or changed in silence: each
`Problem` names the file, sheet and cell or row, what is wrong and what was done (left out, or
counted with a note), and ends up in the summary workbook's "problems" sheet and on screen.

    >>> problems = []
    >>> ratings = read_ratings("benchmark_data", problems)   # one row per rating cell
    >>> summary = summarize(ratings)                  # model x task x stage: n, mean, 95% CI, auto score
    >>> agree = agreement(ratings)                    # items rated by two or more reviewers
    >>> write_summary(summary, agree, "benchmark_data/summary", problems)
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import warnings
from pathlib import Path

import pandas as pd
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from helpers.plots import plot_rating_bars
from helpers.stats import reviewer_kappa, t_interval
from helpers.textsafe import csv_safe_frame, put_cell
from helpers.workbook import META_SHEET, header_key, read_workbook_meta

TASK_SHEETS = ("math", "bio")
COLUMNS = ["model", "task", "stage", "item", "reviewer", "rating", "excluded", "auto_score", "file", "cell"]
PROBLEM_COLUMNS = ["kind", "file", "sheet", "cell", "what", "action"]

# Names file managers and browsers give a copy of `name.xlsx` (reviewers copy the workbook that way
# instead of naming it <name>--<reviewer>.xlsx). Model slugs hold no spaces, so none of these
# patterns can eat part of a model name.
_OS_COPY = [
    re.compile(r"^Copy (?:\(\d+\) )?of (?P<name>.+)$"),                      # Windows XP, Google Drive
    re.compile(r"^(?P<name>.+?) - Copy(?: \(\d+\))?$"),                      # Windows Explorer
    re.compile(r"^(?P<name>.+?) ?\(\d+\)$"),                                 # downloads, OneDrive
    re.compile(r"^(?P<name>.+?) copy(?: \d+)?$"),                            # macOS Finder
    re.compile(r"^(?P<name>.+?) \((?:another |\d+(?:st|nd|rd|th) )?copy\)$"),  # GNOME Files
]
# What can follow the last "--" as a reviewer's name: a person's name or initials, not the rest of
# a model name (that would be "...-<task>") nor a bare number.
_REVIEWER = re.compile(r"[^\W\d_][\w .'-]{0,39}")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing compile_ratings could not count as it stands. kind: "problem" (left out) or
    "note" (counted, but the workbook should be fixed)."""

    file: str
    sheet: str
    cell: str  # a cell ("F7"), rows ("rows 3, 9") or "" for the whole sheet or file
    what: str
    action: str
    kind: str = "problem"

    def line(self) -> str:
        place = "!".join(filter(None, [self.sheet, self.cell]))
        return f"{self.kind}: {self.file}{f' [{place}]' if place else ''}: {self.what} -> {self.action}"


def problems_frame(problems) -> pd.DataFrame:
    return pd.DataFrame([dataclasses.asdict(p) for p in problems], columns=PROBLEM_COLUMNS)


def _undecorate(stem: str) -> tuple[str, bool]:
    """(`stem` without an operating system's copy decoration, whether it had one)."""
    plain = stem
    while True:
        match = next((m for p in _OS_COPY if (m := p.match(plain))), None)
        if match is None:
            return plain, plain != stem
        plain = match["name"].strip()


def _parse_name(stem: str, task: str | None = None) -> tuple[str, str, str | None] | None:
    """(model, task, reviewer) from <model>-<task>[--<reviewer>], or None when the name says neither.
    A model name may hold "--" (a local folder's name): only the LAST "--" can start a reviewer's name."""
    for t in [task] if task else TASK_SHEETS:
        if stem.endswith(f"-{t}") and len(stem) > len(t) + 1:
            return stem[: -len(t) - 1], t, None
        head, sep, tail = stem.rpartition("--")
        if (sep and head.endswith(f"-{t}") and len(head) > len(t) + 1 and _REVIEWER.fullmatch(tail)
                and not tail.endswith(tuple(f"-{x}" for x in TASK_SHEETS))):
            return head[: -len(t) - 1], t, tail
    return None


@dataclasses.dataclass
class _Book:
    path: Path
    meta: dict
    sheetnames: list
    tables: dict  # task sheet -> its rows (values), header first
    model: str = ""  # as the summary shows it
    name_model: str = ""  # as the file name says it
    task: str | None = None
    reviewer: str | None = None
    copy: bool = False  # a reviewer's copy: its answers are checked against the main workbook's
    os_copy_of: str | None = None  # the file an operating system's "name (1).xlsx" is a copy of

    @property
    def name(self) -> str:
        return self.path.name


def _load(path: Path, found: list) -> _Book | None:
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            tables = {s: list(wb[s].iter_rows(values_only=True)) for s in wb.sheetnames if s in TASK_SHEETS}
            return _Book(path, read_workbook_meta(wb), list(wb.sheetnames), tables)
        finally:
            wb.close()
    except Exception as err:  # noqa: BLE001 - any unreadable file (corrupt, half-synced, not a workbook) is
        # reported by name and skipped: one bad reviewer copy must not stop the summary of all the others
        found.append(Problem(path.name, "", "", f"cannot be read ({type(err).__name__}: {err})".replace("\n", " "),
                             "file skipped; replace it with a good copy"))
        return None


def _identify(book: _Book, found: list) -> bool:
    """Sets model, task, reviewer, copy from the about sheet and the file name; False: skip the file."""
    stem, os_copy = _undecorate(book.path.stem)
    meta_task = book.meta.get("task") if book.meta.get("task") in TASK_SHEETS else None
    parsed = _parse_name(stem, meta_task) or _parse_name(stem)
    named = parsed is not None
    visible = [s for s in book.sheetnames if s != META_SHEET]
    if parsed is None and meta_task is None:
        tasks = [s for s in TASK_SHEETS if s in book.tables]
        if len(tasks) != 1:
            found.append(Problem(book.name, "", "", "the file name does not end in -math or -bio and "
                                 f"there is no single math/bio sheet (sheets: {', '.join(visible)})", "file skipped"))
            return False
        parsed = (stem, tasks[0], None)
        found.append(Problem(book.name, "", "", f"the file name does not end in -{tasks[0]} (or -{tasks[0]}--"
                             f"<reviewer>): read as model '{stem}'", f"counted; rename it {stem}-{tasks[0]}.xlsx",
                             "note"))
    book.name_model, name_task, book.reviewer = parsed or (stem, meta_task, None)
    book.task = meta_task or name_task
    if meta_task and name_task != meta_task:
        found.append(Problem(book.name, "", "", f"the file name says task '{name_task}', its about sheet "
                             f"'{meta_task}'", f"read as {meta_task}", "note"))
    if parsed is None:
        found.append(Problem(book.name, "", "", f"the file name does not follow <model>-{meta_task}[--<reviewer>]"
                             ".xlsx", "counted as the main workbook of the model its about sheet names", "note"))
    book.model = str(book.meta.get("model") or book.name_model)
    book.copy = os_copy or book.reviewer is not None
    book.os_copy_of = f"{stem}{book.path.suffix}" if os_copy else None
    if named and not book.meta and "--" in book.name_model:
        reviewer = f", reviewer '{book.reviewer}'" if book.reviewer else ""
        found.append(Problem(book.name, "", "", f"'--' (which starts a reviewer's name) is part of the model name: "
                             f"read as model '{book.name_model}'{reviewer}",
                             "counted; re-run benchmark (it records the model in the workbook) or rename", "note"))
    if book.task not in book.tables:
        found.append(Problem(book.name, "", "", f"no sheet named {book.task}; sheets: {', '.join(visible)}",
                             f"file skipped; rename its rating sheet back to {book.task}"))
        return False
    return True


def _status(value) -> str:
    """current / superseded / unknown: the status column as update_rating_workbook writes it."""
    text = "" if value is None else str(value).strip()
    if not text or text.startswith(("current", "updated")):
        return "current"
    return "superseded" if text.startswith("superseded") else "unknown"


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _rating(value) -> tuple[float | None, str | None, str]:
    """(rating to count or None, what is odd about the cell or None, "note"/"problem")."""
    if _blank(value):
        return None, None, ""
    if isinstance(value, bool):  # before int: True is an int to Python, and would count as 1
        return None, f"{str(value).upper()} is not a rating", "problem"
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            return None, f"text {value!r} is not a rating 1-5", "problem"
        if 1 <= number <= 5:
            return float(number), f"rating typed as text {value!r}", "note"
        return None, f"text {value!r} is out of range 1-5", "problem"
    if isinstance(value, (int, float)):
        if not float(value).is_integer():
            return None, f"{value} is not a whole number 1-5", "problem"
        if not 1 <= value <= 5:
            return None, f"{value} is out of range 1-5", "problem"
        return float(value), None, ""
    return None, f"{type(value).__name__} {value!r} is not a rating", "problem"


def _text(value) -> str:
    # Excel may store line ends as \r\n; the comparison is about the answer, not its line ends
    return "" if value is None else str(value).replace("\r\n", "\n").strip()


_FIXED = ("id", "status", "reviewer", "comment")
_STAGED = ("rating_", "answer_", "score_")


def _header(book: _Book, rows: list, found: list) -> list:
    """The header row with each name as the workbook writes it. A header retyped another way that
    helpers.workbook reads as the same name ('Rating_base', 'rating base': see `header_key`) is read
    as that name, with a note; a second column of one name, or a rating_/answer_ header of no stage
    the sheet has, is reported and not read (its place holds a non-text marker)."""
    header = [h.strip() if isinstance(h, str) else h for h in rows[0]]
    stages = {h[len(p):] for h in header if isinstance(h, str) for p in ("rating_", "answer_") if h.startswith(p)}
    known = {header_key(n): n for n in [*_FIXED, *(p + s for s in sorted(stages) for p in _STAGED)]}
    out, where = [], {}
    for j, name in enumerate(header):
        cell = f"{get_column_letter(j + 1)}1"
        canon = name
        if isinstance(name, str) and name not in known.values():
            key = header_key(name)
            canon = known.get(key, name)
            if canon != name and canon not in where:
                found.append(Problem(book.name, book.task, cell, f"header '{name}' is not spelt as the workbook "
                                     f"writes it", f"read as {canon}; rename the header back to {canon}", "note"))
            elif canon == name and key.startswith(("rating_", "answer_")) and any(
                    not _blank(r[j]) for r in rows[1:] if j < len(r)):
                found.append(Problem(book.name, book.task, cell, f"header '{name}' reads as {key}, but the sheet has "
                                     f"no {'answer' if key.startswith('rating_') else 'rating'} column of that stage",
                                     "column not read; rename the header back to the rating_<stage> or "
                                     "answer_<stage> it was written as"))
                canon = ("not read", j)
        if isinstance(canon, str) and canon in where:
            found.append(Problem(book.name, book.task, cell, f"header '{name}' is a second {canon} column (the "
                                 f"first is {where[canon]})", f"column not read; merge it into {where[canon]} or "
                                 "rename it"))
            canon = ("not read", j)
        if isinstance(canon, str) and (canon in _FIXED[:3] or canon.startswith(_STAGED)):  # the columns read
            where[canon] = cell
        out.append(canon)
    return out


def _current_rows(book: _Book, found: list) -> tuple[list, list, dict] | None:
    """(header, [(row number, row dict)] of the current rows, {id: answers by stage}) of the book's
    task sheet; ids with more than one current row are reported and left out."""
    rows = book.tables[book.task]
    if not rows:
        found.append(Problem(book.name, book.task, "", "the sheet is empty", "sheet skipped"))
        return None
    header = _header(book, rows, found)
    if "id" not in header:
        found.append(Problem(book.name, book.task, "1", "no 'id' column in the header row", "sheet skipped"))
        return None
    stages = [h.removeprefix("rating_") for h in header if isinstance(h, str) and h.startswith("rating_")]
    current, seen = [], {}
    for number, values in enumerate(rows[1:], start=2):
        row = dict(zip(header, values))
        if row.get("id") is None:
            if any(not _blank(row.get(f"rating_{s}")) for s in stages):
                found.append(Problem(book.name, book.task, f"row {number}", "ratings in a row without an id",
                                     "not counted; fill in the id"))
            continue
        status = _status(row.get("status"))
        if status == "unknown":
            found.append(Problem(book.name, book.task, f"row {number}", f"status {row['status']!r} is not one "
                                 "benchmark writes (current..., updated..., superseded...)", "row not counted"))
        if status == "current":
            current.append((number, row))
            seen.setdefault(str(row["id"]), []).append(number)
    twice = {item: numbers for item, numbers in seen.items() if len(numbers) > 1}
    for item, numbers in twice.items():
        why = "and no status column to tell which is current" if "status" not in header else "all marked current"
        found.append(Problem(book.name, book.task, "rows " + ", ".join(map(str, numbers)),
                             f"id {item} appears {len(numbers)} times, {why}", "none of its ratings counted"))
    answers = {str(row["id"]): {s: _text(row.get(f"answer_{s}")) for s in stages}
               for _, row in current if str(row["id"]) not in twice}
    return header, current, {**answers, **dict.fromkeys(twice)}


def _records(book: _Book, found: list, main: _Book | None, main_answers: dict | None) -> tuple[list, dict | None]:
    """(one record per rating cell of the book's current rows, {id: answers by stage} or None if the
    sheet could not be read). With `main_answers`, a rating counts only if its answer is main's current one."""
    read = _current_rows(book, found)
    if read is None:
        return [], None
    header, current, own_answers = read
    stages = [h.removeprefix("rating_") for h in header if isinstance(h, str) and h.startswith("rating_")]
    if not stages:
        found.append(Problem(book.name, book.task, "1", "no rating_<stage> columns in the header row", "sheet skipped"))
        return [], own_answers
    # A <model>-<task>--<reviewer> copy holds that reviewer's ratings, whatever its reviewer cells say
    # (a copy of a filled workbook still shows the first reviewer's name); elsewhere the cell names them.
    fallback = book.reviewer or (f"unknown ({book.name})" if book.copy else "unnamed")
    records, others = [], {}
    for number, row in current:
        item = str(row["id"])
        typed = None if _blank(row.get("reviewer")) else str(row["reviewer"])
        reviewer = book.reviewer or typed or fallback
        if (book.reviewer and typed and typed.strip().casefold() != book.reviewer.strip().casefold()
                and any(not _blank(row.get(f"rating_{s}")) for s in stages)):
            others.setdefault(typed, []).append(f"{get_column_letter(header.index('reviewer') + 1)}{number}")
        for stage in stages:
            cell = f"{get_column_letter(header.index(f'rating_{stage}') + 1)}{number}"
            value = row.get(f"rating_{stage}")
            rating, odd, kind = _rating(value)
            if odd:
                action = f"counted as {rating:g}; type it as a number" if rating is not None else "not counted"
                found.append(Problem(book.name, book.task, cell, odd, action, kind))
            if rating is not None and own_answers.get(item) is None:
                rating = None  # a duplicated id, reported above
            if rating is not None and main_answers is not None:
                if item not in main_answers:
                    what = f"id {item} is not a current item of {main.name}"
                elif main_answers[item] is None:
                    what = f"{main.name} holds id {item} more than once; cannot tell which answer was rated"
                elif own_answers[item].get(stage) != main_answers[item].get(stage):
                    what = f"rated answer_{stage} differs from the current answer in {main.name} (stale copy)"
                else:
                    what = None
                if what:
                    found.append(Problem(book.name, book.task, cell, what, "not counted; rate it again in a new copy"))
                    rating = None
            records.append({
                "model": book.model, "task": book.task, "stage": stage, "item": item,
                "reviewer": reviewer, "rating": float("nan") if rating is None else rating,
                "excluded": rating is None and not _blank(value),
                # auto scores come from the main workbook: a copy's may belong to an older answer
                "auto_score": None if main_answers is not None else row.get(f"score_{stage}"),
                "file": book.name, "cell": cell,
            })
    for typed, where in others.items():
        found.append(Problem(book.name, book.task, _cell_list(where), f"reviewer cells say '{typed}', the file name "
                             f"says '{book.reviewer}'", f"counted as {book.reviewer}'s (a --<reviewer> copy is that "
                             "reviewer's); clear or correct the reviewer cells", "note"))
    return records, own_answers


def _cell_list(cells) -> str:
    """'E2:E4, E7, F2' from cells like E2, E3, E4, E7, F2: runs of rows within a column as ranges."""
    parsed = sorted({(re.match(r"[A-Z]+", c)[0], int(re.search(r"\d+$", c)[0])) for c in cells},
                    key=lambda x: (len(x[0]), x))
    runs = []
    for (letter, number) in parsed:
        if runs and runs[-1][0] == letter and runs[-1][2] == number - 1:
            runs[-1][2] = number
        else:
            runs.append([letter, number, number])
    return ", ".join(f"{a}{lo}" if lo == hi else f"{a}{lo}:{a}{hi}" for a, lo, hi in runs)


_KEY = ["model", "task", "stage", "item", "reviewer"]


def _one_rating_each(table: pd.DataFrame, found: list) -> pd.DataFrame:
    """`table` with one counted rating per model, task, stage, item and reviewer. A reviewer's rating
    found again (the same workbook saved twice, "m-math (1).xlsx", or a copy under their own name) is
    counted once: the first, with a note at the others. Ratings of one key that differ are a
    conflict, and as with an id current twice none of them is counted (a problem at each file).
    What is not counted gets rating NaN and excluded True."""
    given = table[table["rating"].notna()]
    repeated = given[given.duplicated(_KEY, keep=False)]
    if repeated.empty:
        return table
    table = table.copy()
    notes: dict = {}  # (kind, file, task, reviewer, other files) -> cells
    for _, group in repeated.groupby(_KEY, sort=False):
        files = list(dict.fromkeys(group["file"]))
        if group["rating"].nunique() == 1:
            drop = group.index[1:]
            for i in drop:
                notes.setdefault(("note", group.at[i, "file"], group.at[i, "task"], group.at[i, "reviewer"],
                                  files[0]), []).append(group.at[i, "cell"])
        else:
            drop = group.index
            for i in drop:
                other = ", ".join(f for f in files if f != group.at[i, "file"])
                notes.setdefault(("problem", group.at[i, "file"], group.at[i, "task"], group.at[i, "reviewer"],
                                  other), []).append(group.at[i, "cell"])
        table.loc[drop, "rating"] = float("nan")
        table.loc[drop, "excluded"] = True
    for (kind, file, task, reviewer, other), cells in notes.items():
        if kind == "note":
            found.append(Problem(file, task, _cell_list(cells), f"the same ratings by '{reviewer}' of the same "
                                 f"items are in {other} (the same workbook saved twice?)",
                                 f"counted once, from {other}; delete the duplicate file", "note"))
        else:
            found.append(Problem(file, task, _cell_list(cells), f"'{reviewer}' rated these items differently in "
                                 f"{other}", "none of the differing ratings counted; keep one rating per item and "
                                 "reviewer (delete the stale copy, or correct one), then re-run"))
    return table


def _workbook_files(folder: Path, problems: list) -> list[Path]:
    # Excel on Windows may save NAME.XLSX; lock files (~$) and half-written saves (.tmp.) are not workbooks
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xlsx"
                   and not p.name.startswith(("~$", ".")) and ".tmp." not in p.name)
    # A merge that met a reviewer saving twice is written beside the workbook (helpers/workbook.py):
    # it repeats the workbook's ratings, so counting it would count them twice.
    for path in [p for p in files if ".merged-" in p.name]:
        problems.append(Problem(path.name, "", "", "a merge written beside its workbook while a reviewer was saving",
                                "not counted: move its new rows into the workbook or delete it, then re-run"))
    return [p for p in files if ".merged-" not in p.name]


def read_ratings(folder, problems: list | None = None) -> pd.DataFrame:
    """Long table, one row per rating cell of a current row: model, task, stage, item, reviewer,
    rating (NaN if unrated or not counted), excluded (a rating was given but not counted), auto_score,
    file, cell. What cannot be counted as it stands is appended to `problems` (a list of `Problem`);
    without a list, each becomes a warning. The reviewer is the file name's in a --<reviewer> copy,
    else the row's reviewer cell; a rating repeated for one model, task, stage, item and reviewer is
    counted once, and ratings of such a key that differ none (see `_one_rating_each`)."""
    found: list[Problem] = []
    books = [b for b in (_load(p, found) for p in _workbook_files(Path(folder), found)) if b and _identify(b, found)]

    # The same display name for two different models (two local folders called "ckpt") would merge them
    by_name: dict = {}
    for book in books:
        by_name.setdefault(book.model, set()).add(book.meta.get("model_id") or book.name_model)
    for book in books:
        key = book.meta.get("model_id") or book.name_model
        if len(by_name[book.model]) > 1 and key != book.model:
            label = f"{book.model} ({key})"
            found.append(Problem(book.name, "", "", f"model name '{book.model}' is shared by "
                                 f"{len(by_name[book.model])} models (model_id differs)", f"shown as '{label}'",
                                 "note"))
            book.model = label

    groups: dict = {}
    for book in books:  # a workbook and its reviewers' copies share <model>-<task> in their names
        groups.setdefault((book.name_model, book.task), []).append(book)
    records = []
    for (name_model, task), group in sorted(groups.items()):
        mains = [b for b in group if not b.copy]
        main = mains[0] if mains else None
        for extra in mains[1:]:
            found.append(Problem(extra.name, "", "", f"a second main workbook for {name_model}-{task} "
                                 f"(the first is {main.name})", f"counted as a reviewer copy of {main.name}",
                                 "note"))
            extra.copy = True
        main_answers = None
        if main:
            main_records, main_answers = _records(main, found, None, None)
            records += main_records
        for book in [b for b in group if b.copy]:
            answers, against = main_answers, main
            if main is None or main_answers is None:
                found.append(Problem(book.name, "", "", f"no readable main workbook {name_model}-{task}.xlsx to "
                                     "check its answers against", "counted as it stands", "note"))
                answers, against = None, None
            elif book.meta.get("model_id") and main.meta.get("model_id") and \
                    book.meta["model_id"] != main.meta["model_id"]:
                found.append(Problem(book.name, "", "", f"its model_id {book.meta['model_id']!r} differs from "
                                     f"{main.name}'s {main.meta['model_id']!r}: not a copy of it",
                                     f"counted as model '{book.model}' without checking its answers", "note"))
                answers, against = None, None
            else:
                book.model = main.model
            if book.os_copy_of:
                # named by the operating system, not <model>-<task>--<reviewer>: whose ratings are these?
                same = " with the same model_id" if against and book.meta.get("model_id") else ""
                if book.reviewer:
                    what, action = "", f"counted as {book.reviewer}'s; delete it if it duplicates {book.os_copy_of}"
                else:
                    what = "; its reviewer is unknown unless the reviewer column is filled"
                    action = f"counted as a reviewer copy; rename it {Path(book.os_copy_of).stem}--<reviewer>.xlsx"
                found.append(Problem(book.name, "", "", f"an operating system's copy of {book.os_copy_of}{same}{what}",
                                     action, "note"))
            records += _records(book, found, against, answers)[0]

    table = _one_rating_each(pd.DataFrame.from_records(records, columns=COLUMNS).astype({"excluded": bool}), found)
    if problems is None:
        for problem in found:
            warnings.warn(problem.line(), stacklevel=2)
    else:
        problems.extend(found)
    return table


def summarize(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per model x task x stage: items, ratings (counted), rated_items, missing, excluded (given but
    not counted), mean rating with a 95% t-interval (ci95 is its half-width), reviewers, mean
    automatic score (over items, not ratings).

    The item is the unit: each rated item's ratings are averaged first, and mean_rating and its
    Student's t interval are over those item means (n = rated_items, not ratings), so a second
    reviewer narrows the interval only as far as it makes each item's mean surer, not by doubling n.
    One reviewer's rating of one item counts once (see read_ratings: a repeat is counted once, ratings
    of one item and reviewer that differ are not counted); a table not from read_ratings is checked
    the same way here, with a warning for each repeat."""
    found: list[Problem] = []
    ratings = _one_rating_each(ratings, found)
    for problem in found:
        warnings.warn(problem.line(), stacklevel=2)
    rows = []
    for (model, task, stage), group in ratings.groupby(["model", "task", "stage"], sort=True):
        given = group["rating"].dropna()
        per_item = given.groupby(group.loc[given.index, "item"]).mean()
        mean, low, high = t_interval(per_item.tolist())  # a mean of a few 1-5 ratings: Student's t, not 1.96
        half = (high - low) / 2
        scored = group.assign(auto_score=pd.to_numeric(group["auto_score"], errors="coerce"))
        auto = scored.dropna(subset=["auto_score"]).drop_duplicates("item")["auto_score"]
        excluded = group["excluded"].astype(bool)
        rows.append({"model": model, "task": task, "stage": stage, "items": group["item"].nunique(),
                     "ratings": len(given), "rated_items": len(per_item),
                     "missing": int((group["rating"].isna() & ~excluded).sum()), "excluded": int(excluded.sum()),
                     "mean_rating": mean, "ci95": half, "ci_low": low, "ci_high": high,
                     "reviewers": group.loc[group["rating"].notna(), "reviewer"].nunique(),
                     "auto_score": auto.mean() if len(auto) else float("nan")})
    return pd.DataFrame(rows)


def agreement(ratings: pd.DataFrame) -> pd.DataFrame:
    """Between reviewers, per model x task x stage, over items with two or more ratings: pairs
    compared, exact agreement, agreement within one point, mean absolute difference, and Cohen's
    kappa with quadratic weights (mean over reviewer pairs; nan where it is undefined)."""
    rows = []
    given = ratings.dropna(subset=["rating"])
    for key, group in given.groupby(["model", "task", "stage"], sort=True):
        diffs = []
        for _, item in group.groupby("item"):
            scores = item.drop_duplicates("reviewer")["rating"].tolist()
            diffs += [abs(a - b) for a, b in itertools.combinations(scores, 2)]
        if diffs:
            rows.append({**dict(zip(["model", "task", "stage"], key)), "pairs": len(diffs),
                         "exact": sum(d == 0 for d in diffs) / len(diffs),
                         "within_1": sum(d <= 1 for d in diffs) / len(diffs),
                         "mean_abs_diff": sum(diffs) / len(diffs),
                         # 1 vs 5 is a worse disagreement than 4 vs 5: quadratic weights (helpers/stats.py)
                         "kappa_quadratic": reviewer_kappa(group)["kappa"]})
    return pd.DataFrame(rows, columns=["model", "task", "stage", "pairs", "exact", "within_1", "mean_abs_diff",
                                       "kappa_quadratic"])


def _write_sheet(ws, frame: pd.DataFrame) -> None:
    # cell by cell through put_cell: model and stage names come from file names and headers, and
    # pandas' own writer would store "=cmd" as a live formula
    for j, name in enumerate(frame.columns, start=1):
        put_cell(ws.cell(row=1, column=j), str(name))
        ws.cell(row=1, column=j).font = Font(bold=True)
    for i, values in enumerate(frame.itertuples(index=False), start=2):
        for j, value in enumerate(values, start=1):
            put_cell(ws.cell(row=i, column=j), None if pd.isna(value) else value.item() if hasattr(value, "item")
                     else value)


def write_summary(summary: pd.DataFrame, agree: pd.DataFrame, out_dir, problems=()) -> dict:
    """ratings_summary.xlsx (sheets summary, agreement, problems), ratings_summary.csv, ratings_summary.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"workbook": out / "ratings_summary.xlsx", "csv": out / "ratings_summary.csv",
             "figure": out / "ratings_summary.png"}
    wb = Workbook()
    wb.active.title = "summary"
    _write_sheet(wb.active, summary)
    _write_sheet(wb.create_sheet("agreement"), agree)
    _write_sheet(wb.create_sheet("problems"), problems_frame(problems))
    wb.save(files["workbook"])
    # pandas 3 keeps text in "str" columns, which csv_safe_frame (it looks at object columns) would pass over
    text = summary.select_dtypes(include=["object", "string"]).columns
    csv_safe_frame(summary.astype(dict.fromkeys(text, object))).to_csv(files["csv"], index=False)
    if len(summary) and summary["ratings"].sum():
        plot_rating_bars(summary, files["figure"])
    else:
        files.pop("figure")
    return {k: str(v) for k, v in files.items()}
