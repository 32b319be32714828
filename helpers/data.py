"""Dataset records from the hub, from the project-written offline copies, or from a user's file.

    >>> rows = load_records(HubData("openai/gsm8k", "gsm8k_test_sample.jsonl", ("question", "answer"),
    ...                             config="main", split="test"), source="local", n=10)

source: "hub" (the study's dataset; needs internet), "local" (benchmark_data/data/<local_file>,
written for this project in the hub schema), or a path: a .jsonl/.json/.csv/.parquet file, or a
folder holding files named like the local copies.

A failed load ends in one ConfigError line that keeps its cause and says what to do: a gated
dataset, an unknown id, no network, a loading-script repository, a missing column, or a bad row of
a file (named by file and line/row). A file's values are checked against the types of the
project-written copy: numbers where text is expected become text, digits where a number is expected
become numbers, an empty required cell is an error.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError

DATA_DIR = REPO_ROOT / "benchmark_data" / "data"
FILE_KINDS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclasses.dataclass(frozen=True)
class HubData:
    hub_id: str | None          # None: not on the hub under a stable id (a local file is needed)
    local_file: str             # the project-written copy in benchmark_data/data/
    columns: tuple              # the columns the study reads
    config: str | None = None   # hub dataset config (e.g. "main" for GSM8K)
    split: str = "train"
    revision: str | None = None  # hub branch; "refs/convert/parquet": the hub's parquet copy of a script repo


def _local_path(data: HubData, source: str) -> Path:
    if source == "local":
        return DATA_DIR / data.local_file
    path = Path(source).expanduser()
    return path / data.local_file if path.is_dir() else path


def _hub_error(data: HubData, err: Exception, param: str) -> ConfigError:
    """One line for a failed hub load, from the exceptions of datasets 4.8 / huggingface_hub 1.x.
    datasets re-raises most hub errors as DatasetNotFoundError / ConnectionError `from None` (load.py,
    dataset_module_factory), so the cause is in the class and the message, not in __cause__."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    hub_id = data.hub_id
    offline = f"use {param}='local' (benchmark_data/data/{data.local_file}) or a path to your own copy"
    text = " ".join(str(err).split())
    if isinstance(err, GatedRepoError) or (isinstance(err, DatasetNotFoundError) and "gated" in text):
        return ConfigError(f"{hub_id} is gated: accept the licence at https://huggingface.co/datasets/{hub_id} "
                           f"and set HF_TOKEN to a token of that account, or {offline}")
    if isinstance(err, DatasetNotFoundError) and "Revision" in text:
        return ConfigError(f"{hub_id} has no revision '{data.revision}' on the hub ({text})")
    if isinstance(err, (RepositoryNotFoundError, DatasetNotFoundError)):
        return ConfigError(f"no dataset {hub_id} on the hub: check the spelling, or {offline}")
    if isinstance(err, (ConnectionError, LocalEntryNotFoundError)):  # also HF_HUB_OFFLINE=1
        return ConfigError(f"cannot reach the hub for {hub_id} ({text}): {offline}")
    script = re.search(r"Dataset scripts are no longer supported, but found (\S+)", text)
    if script:
        return ConfigError(f"{hub_id} is a loading-script repository ({script.group(1)}), which datasets 4 does not "
                           "run: load its parquet conversion (HubData revision='refs/convert/parquet'), or "
                           f"{offline}")
    if isinstance(err, ValueError) and ("BuilderConfig" in text or "Unknown split" in text):
        return ConfigError(f"{hub_id}: {text}")  # names the missing config/split and lists the existing ones
    return ConfigError(f"could not load {hub_id} from the hub: {type(err).__name__}: {text[:300]}; or {offline}")


def _load_hub(data: HubData, n: int, param: str):
    from datasets import load_dataset

    if data.hub_id is None:
        raise ConfigError(f"{data.local_file.split('_sample')[0]} has no hub copy to load: set {param} to "
                          f"'local' or to a folder/file in the schema of benchmark_data/data/{data.local_file}")
    split = data.split if n <= 0 else f"{data.split}[:{n}]"
    try:
        return load_dataset(data.hub_id, data.config, split=split, revision=data.revision)
    except Exception as err:  # every hub failure becomes one line that keeps its cause and says what to do
        raise _hub_error(data, err, param) from None


def _json_error(path: Path) -> str | None:
    """Where a .json/.jsonl file stops being JSON (line number and the parser's reason), or None."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        json.loads(text)
        return None
    except json.JSONDecodeError as whole:
        if text.lstrip().startswith("["):  # one JSON array: the parser knows the line
            return f"line {whole.lineno}: {whole.msg}"
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                return f"line {number}: {err.msg} (a truncated or broken line?)"
    return None


def _load_file(data: HubData, source: str, param: str):
    import csv

    from datasets import Features, Value, load_dataset

    path = _local_path(data, source)
    if not path.is_file():
        raise ConfigError(f"{param} '{source}' is neither 'hub', 'local' nor an existing file "
                          f"(or a folder holding {data.local_file})")
    kind = FILE_KINDS.get(path.suffix)
    if kind is None:
        raise ConfigError(f"{path.name}: use a .jsonl, .json, .csv or .parquet file")
    options = {}
    if kind == "csv":  # every column as text: "48" stays "48" (not 48, nor 48.0 beside an empty cell)
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        options["features"] = Features({name: Value("string") for name in header})
    try:
        return path, load_dataset(kind, data_files=str(path), split="train", **options)
    except Exception as err:  # the reader's error, with the line where it can be found
        where = _json_error(path) if kind == "json" else None
        cause = where or " ".join(str(err.__cause__ or err).split())[:300]
        raise ConfigError(f"{path.name} could not be read as {path.suffix[1:].upper()}: {cause}") from None


def _reference_row(data: HubData) -> tuple[dict, set]:
    """The first row of the project-written copy (the hub schema's types) and the columns that may be
    empty there (e.g. Alpaca's `input`)."""
    path = DATA_DIR / data.local_file
    if not path.is_file():
        return {}, set()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[0], {k for r in rows for k, v in r.items() if v in ("", None)}


def _row_name(path: Path, index: int) -> str:
    """'file line N' (JSON lines: the line in the file), 'file row N' (CSV: the header is row 1),
    else 'file record N'."""
    if path.suffix == ".jsonl":
        lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
        return f"{path.name} line {lines[index] if index < len(lines) else index + 1}"
    if path.suffix == ".csv":
        return f"{path.name} row {index + 2} (the header is row 1)"
    return f"{path.name} record {index + 1}"


def _conform(rows: list[dict], data: HubData, path: Path) -> list[dict]:
    """The study's columns in the types of the project-written copy, or a ConfigError naming the row."""
    reference, may_be_empty = _reference_row(data)
    for index, row in enumerate(rows):
        for column in data.columns:
            want, value = type(reference.get(column, "")), row[column]
            if value is None or (value == "" and want is not str):
                if column in may_be_empty:
                    row[column] = "" if want is str else value
                    continue
                raise ConfigError(f"{_row_name(path, index)}: {column} is empty")
            if want is str and isinstance(value, (int, float)) and not isinstance(value, bool):
                # a numeric answer is the text of that number (a JSON column of 48 and 2.5 arrives as floats)
                row[column] = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            elif want is int and isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
                row[column] = int(value)
            elif want is float and isinstance(value, int) and not isinstance(value, bool):
                row[column] = float(value)
            elif not isinstance(row[column], want):
                hint = ": a CSV cell cannot hold a list, use .jsonl/.json/.parquet" if want is list else ""
                raise ConfigError(f"{_row_name(path, index)}: {column} should be {want.__name__}, got "
                                  f"{str(value)[:40]!r}{hint}")
    return rows


def load_records(data: HubData, *, source: str, n: int, param: str = "dataset_source") -> list[dict]:
    """The first `n` records (n <= 0: all) as dicts; `param` names the parameter in error messages."""
    if source == "hub":
        records, path = _load_hub(data, n, param), None
        name = data.hub_id + (f" ({data.config})" if data.config else "")
    else:
        path, records = _load_file(data, source, param)
        if n > 0:
            records = records.select(range(min(n, len(records))))
        name = path.name
    missing = [c for c in data.columns if c not in records.column_names]
    if missing:
        raise ConfigError(f"{name} lacks column(s) {', '.join(missing)}; it has {', '.join(records.column_names)}")
    if len(records) == 0:
        raise ConfigError(f"the data from {param}='{source}' ({data.local_file}) is empty")
    rows = [dict(r) for r in records]
    return rows if path is None else _conform(rows, data, path)
