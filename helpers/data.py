"""Dataset records from the hub, from the project-written offline copies, or from a user's file.

    >>> rows = load_records(HubData("openai/gsm8k", "gsm8k_test_sample.jsonl", ("question", "answer"),
    ...                             config="main", split="test"), source="local", n=10)

source: "hub" (the study's dataset; needs internet), "local" (benchmark_data/data/<local_file>,
written for this project in the hub schema), or a path: a .jsonl/.json/.csv/.parquet file, or a
folder holding files named like the local copies.
"""

from __future__ import annotations

import dataclasses
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


def _local_path(data: HubData, source: str) -> Path:
    if source == "local":
        return DATA_DIR / data.local_file
    path = Path(source).expanduser()
    return path / data.local_file if path.is_dir() else path


def load_records(data: HubData, *, source: str, n: int, param: str = "dataset_source") -> list[dict]:
    """The first `n` records (n <= 0: all) as dicts; `param` names the parameter in error messages."""
    from datasets import load_dataset

    if source == "hub":
        if data.hub_id is None:
            raise ConfigError(f"{data.local_file.split('_sample')[0]} has no hub copy to load: set {param} to "
                              f"'local' or to a folder/file in the schema of benchmark_data/data/{data.local_file}")
        split = data.split if n <= 0 else f"{data.split}[:{n}]"
        try:
            records = load_dataset(data.hub_id, data.config, split=split)
        except Exception as err:  # offline, gated, renamed: all end the same way for the user
            raise ConfigError(
                f"could not load '{data.hub_id}' from the hub ({type(err).__name__}); without internet use "
                f"{param}='local' (benchmark_data/data/{data.local_file}) or a path to your own copy"
            ) from None
    else:
        path = _local_path(data, source)
        if not path.is_file():
            raise ConfigError(f"{param} '{source}' is neither 'hub', 'local' nor an existing file "
                              f"(or a folder holding {data.local_file})")
        kind = FILE_KINDS.get(path.suffix)
        if kind is None:
            raise ConfigError(f"{path.name}: use a .jsonl, .json, .csv or .parquet file")
        records = load_dataset(kind, data_files=str(path), split="train")
        if n > 0:
            records = records.select(range(min(n, len(records))))
    missing = [c for c in data.columns if c not in records.column_names]
    if missing:
        raise ConfigError(f"{data.local_file.split('_sample')[0]} data lacks column(s) {', '.join(missing)}; "
                          f"it has {', '.join(records.column_names)}")
    if len(records) == 0:
        raise ConfigError(f"the data from {param}='{source}' ({data.local_file}) is empty")
    return [dict(r) for r in records]
