"""A local server that speaks the Hugging Face Hub's HTTP API, for the tests: the real
huggingface_hub / datasets / transformers clients load from it with HF_ENDPOINT=<server.url>.

    >>> with HubServer(study_dataset_repos()) as server:          # 127.0.0.1, a free port
    ...     os.environ["HF_ENDPOINT"] = server.url                  # (set before importing datasets)
    ...     load_dataset("openai/gsm8k", "main", split="test")

It answers what the clients call (seen in huggingface_hub 1.33's hf_api.py / file_download.py /
hf_file_system.py and datasets 4.8's load.py, and in `server.requests` while the tests ran):

    GET  /api/{models,datasets}/<id>[/revision/<rev>]       repo info (sha, siblings, gated)
    GET  /api/{models,datasets}/<id>/tree/<rev>[/<path>]    folder listing (?recursive=)
    POST /api/{models,datasets}/<id>/paths-info/<rev>       info on the form's `paths`
    HEAD/GET [/datasets]/<id>/resolve/<rev>/<file>          the file, with X-Repo-Commit, ETag,
                                                            X-Linked-Etag/-Size (LFS files), Range

and fails the way the hub does: an unknown id 404 `X-Error-Code: RepoNotFound`; a file of a gated
repository 401 (no token) or 403 (a token without access) `X-Error-Code: GatedRepo`; an unknown
revision 404 `RevisionNotFound`; an unknown file 404 `EntryNotFound`. Revisions are branch names
("main", "refs/convert/parquet" - the dataset viewer's parquet conversion) or their commit sha.

The repositories hold project-written content (benchmark_data/data/) in the real repositories'
layouts: see `study_dataset_repos` for each layout and where it was read. Nothing is written to
disk: the files live in memory. olah (PyPI, a hub mirror) was weighed and not used: it needs
fastapi, uvicorn, GitPython, peewee and a git repository per mirrored repo, and fakes no gated repo.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DATA_DIR = Path(__file__).resolve().parents[1] / "benchmark_data" / "data"
LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".json.gz")  # stored with git-lfs on the hub
MAX_BODY = 64 * 1024  # a paths-info form; anything larger is refused
DATE = "2024-01-01T00:00:00.000Z"


@dataclasses.dataclass
class HubRepo:
    """One repository: `revisions` maps a branch name to {path: content}."""

    repo_id: str
    revisions: dict
    repo_type: str = "dataset"  # or "model"
    gated: bool = False
    card_data: dict = dataclasses.field(default_factory=dict)

    def sha(self, revision: str) -> str:
        digest = hashlib.sha1(f"{self.repo_type}/{self.repo_id}@{revision}".encode())
        for path, content in sorted(self.revisions[revision].items()):
            digest.update(path.encode() + hashlib.sha1(content).digest())
        return digest.hexdigest()

    def resolve(self, revision: str) -> str | None:
        """The branch name a revision (name or commit sha) stands for, or None."""
        if revision in self.revisions:
            return revision
        return next((name for name in self.revisions if self.sha(name) == revision), None)


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _entry(path: str, files: dict) -> dict:
    """The tree / paths-info entry of a file or folder, as the hub writes it."""
    if path in files:
        content = files[path]
        entry = {"type": "file", "oid": _git_blob_sha(content), "size": len(content), "path": path}
        if path.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
        return entry
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


def _children(files: dict, folder: str, recursive: bool) -> list[str] | None:
    """Paths under `folder` (files and folders); None when the folder does not exist."""
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    found = set()
    for path in files:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix):].split("/")
        for depth in range(1, len(parts) + 1 if recursive else 2):
            found.add(prefix + "/".join(parts[:depth]))
    return sorted(found) if found or not prefix else None


class HubServer:
    """Threaded HTTP server on 127.0.0.1 (a free port); `requests` logs (method, path, status), the last
    5000; `served` counts every request, so `since(mark)` gives those of one notebook run."""

    def __init__(self, repos=(), *, timeout: float = 30.0):
        self.repos = {(r.repo_type, r.repo_id): r for r in repos}
        self.requests: collections.deque = collections.deque(maxlen=5000)
        self.served = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect (every reply has a length)

            def setup(self):
                self.timeout = timeout  # an idle keep-alive connection ends its thread
                super().setup()

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._reply(413, b"request body too large")
                body = self.rfile.read(length).decode()
                self._serve(head=False, form=parse_qs(body))

            def _serve(self, head: bool, form=None):
                try:
                    status, headers, body = server.route(self.command, self.path, self.headers, form)
                except Exception as err:  # a bug here must show in the test, not hang the client
                    status, headers, body = 500, {}, f"{type(err).__name__}: {err}".encode()
                server.requests.append((self.command, self.path, status))
                server.served += 1
                if status == 200 and "Range" in self.headers and self.command == "GET":
                    status, headers, body = _ranged(self.headers["Range"], headers, body)
                self._reply(status, body, headers, head)

            def _reply(self, status, body, headers=None, head=False):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> HubServer:
        return self.__enter__()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def since(self, mark: int) -> list[tuple[str, str, int]]:
        """The requests logged after `served` was `mark` (a session's tests share one server)."""
        return list(self.requests)[len(self.requests) - min(self.served - mark, len(self.requests)):]

    def add(self, repo: HubRepo) -> None:
        self.repos[(repo.repo_type, repo.repo_id)] = repo

    # ------------------------------------------------------------------------------------ routes

    def route(self, method: str, raw_path: str, headers, form) -> tuple[int, dict, bytes]:
        url = urlsplit(raw_path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")  # still %-encoded: a revision may hold "/" as %2F
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets"):
            repo_type, repo_id, rest = parts[1][:-1], "/".join(parts[2:4]), parts[4:]
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                return _error(404, "RepoNotFound", "Repository not found")
            if not rest or rest[0] == "revision":
                return self._info(repo, unquote("/".join(rest[1:])) or "main")
            if rest[0] in ("tree", "paths-info") and len(rest) >= 2:
                revision, path = unquote(rest[1]), unquote("/".join(rest[2:]))
                return self._listing(repo, rest[0], revision, path, query, form or {})
            return _error(404, None, f"no route {url.path}")
        repo_type = "dataset" if parts[0] == "datasets" else "model"
        parts = parts[1:] if parts[0] == "datasets" else parts
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self.repos.get((repo_type, "/".join(parts[:2])))
            if repo is None:
                return _error(404, "RepoNotFound", "Repository not found")
            rest = [unquote(p) for p in parts[3:]]
            # a revision is one %-encoded segment, or a ref such as refs/convert/parquet written out
            width = 3 if rest[0] == "refs" and len(rest) > 3 else 1
            return self._file(repo, "/".join(rest[:width]), "/".join(rest[width:]), headers)
        return _error(404, None, f"no route {url.path}")

    def _info(self, repo: HubRepo, revision: str):
        branch = repo.resolve(revision)
        if branch is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.revisions[branch]
        info = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": repo.sha(branch), "lastModified": DATE,
                "createdAt": DATE, "private": False, "gated": "auto" if repo.gated else False, "disabled": False,
                "downloads": 0, "likes": 0, "tags": [], "cardData": repo.card_data,
                "siblings": [{"rfilename": p} for p in sorted(files)], "usedStorage": sum(map(len, files.values()))}
        if repo.repo_type == "model":
            info.update(modelId=repo.repo_id, library_name="transformers", pipeline_tag="text-generation")
        return _json(info, {"X-Repo-Commit": repo.sha(branch)})

    def _listing(self, repo: HubRepo, kind: str, revision: str, path: str, query: dict, form: dict):
        branch = repo.resolve(revision)
        if branch is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.revisions[branch]
        if kind == "paths-info":
            wanted = [p.strip("/") for p in form.get("paths", [])]
            known = [p for p in wanted if p in files or _children(files, p, False)]
            return _json([_entry(p, files) for p in known])
        if path.strip("/") in files:
            return _error(404, "EntryNotFound", f"{path} is a file, not a folder")
        paths = _children(files, path, recursive=query.get("recursive", ["false"])[0].lower() == "true")
        if paths is None:
            return _error(404, "EntryNotFound", f"{path} does not exist on \"{branch}\"")
        return _json([_entry(p, files) for p in paths])

    def _file(self, repo: HubRepo, revision: str, path: str, headers):
        branch = repo.resolve(revision)
        if branch is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if repo.gated:  # the hub's wording (seen in huggingface_hub issues): no token 401, no access 403
            kind = f"{repo.repo_type} {repo.repo_id}"
            if headers.get("Authorization"):
                return _error(403, "GatedRepo", f"Access to {kind} is restricted and you are not in the authorized "
                              f"list. Visit https://huggingface.co/{repo.repo_id} to ask for access.")
            return _error(401, "GatedRepo", f"Access to {kind} is restricted. You must have access to it and be "
                          "authenticated to access it. Please log in.")
        commit = {"X-Repo-Commit": repo.sha(branch)}
        files = repo.revisions[branch]
        if path not in files:
            return _error(404, "EntryNotFound", f"{path} does not exist on \"{branch}\"", commit)
        content = files[path]
        entry = _entry(path, files)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        out = {**commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if "lfs" in entry:
            out.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(content))})
        return 200, out, content


def _json(obj, headers=None):
    return 200, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()


def _error(status: int, code: str | None, message: str, headers=None):
    out = {"Content-Type": "application/json", "X-Error-Message": message, **(headers or {})}
    if code:
        out["X-Error-Code"] = code
    return status, out, json.dumps({"error": message}).encode()


def _ranged(spec: str, headers: dict, body: bytes):
    """206 for `bytes=a-b` / `bytes=a-` / `bytes=-n`, 416 past the end (HfFileSystem reads in ranges)."""
    first, _, last = spec.removeprefix("bytes=").partition("-")
    start = len(body) - int(last) if first == "" else int(first)
    end = len(body) - 1 if first == "" or last == "" else min(int(last), len(body) - 1)
    if start >= len(body) or start < 0:
        return 416, {"Content-Range": f"bytes */{len(body)}"}, b""
    return 206, {**headers, "Content-Range": f"bytes {start}-{end}/{len(body)}"}, body[start:end + 1]


def fetched(requests, fragment: str) -> bool:
    """Whether a GET of a path holding `fragment` was answered with content; `requests`: a HubServer
    (all it logged) or a list of (method, path, status), such as `server.since(mark)`."""
    log = requests.requests if isinstance(requests, HubServer) else requests
    return any(method == "GET" and fragment in path and status in (200, 206) for method, path, status in log)


def point_at(monkeypatch, url: str, home: Path) -> None:
    """Make this process and its subprocesses use the hub at `url` with caches under `home`, online,
    without a token. huggingface_hub and datasets read HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE once, at
    import: their module constants are patched too (names from huggingface_hub/constants.py and
    datasets/config.py); transformers reads huggingface_hub's at call time."""
    import datasets.config
    import huggingface_hub.constants as hub

    hub_cache, datasets_cache = home / "hub", home / "datasets"
    for name, value in {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(hub_cache),
                        "HF_DATASETS_CACHE": str(datasets_cache), "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    resolve = url + "/{repo_id}/resolve/{revision}/{filename}"
    for name, value in {"ENDPOINT": url, "HUGGINGFACE_CO_URL_TEMPLATE": resolve, "HF_HUB_OFFLINE": False,
                        "HF_HOME": str(home), "HF_HUB_CACHE": str(hub_cache),
                        "HF_TOKEN_PATH": str(home / "token"),
                        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens")}.items():
        monkeypatch.setattr(hub, name, value)
    for name, value in {"HF_ENDPOINT": url, "HUB_DATASETS_URL": url + "/datasets/{repo_id}/resolve/{revision}/{path}",
                        "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False, "HF_CACHE_HOME": str(home),
                        "HF_DATASETS_CACHE": datasets_cache, "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
                        "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
                        "HF_MODULES_CACHE": home / "modules"}.items():
        monkeypatch.setattr(datasets.config, name, value)


# -------------------------------------------------------------------------------- repositories

def read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA_DIR / name).read_text().splitlines() if line.strip()]


def mmlu_rows() -> list[dict]:
    """The MMLU rows served as cais/mmlu: the forgetting study's CS copy, then mmlu_teacher's fixture."""
    return read_jsonl("mmlu_cs_sample.jsonl") + read_jsonl("mmlu_fixture.jsonl")


def parquet_bytes(rows: list[dict], features=None) -> bytes:
    """Parquet as push_to_hub / the parquet converter write it (datasets' features in the schema)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    buffer = io.BytesIO()
    pq.write_table(Dataset.from_list(rows, features=features).data.table, buffer)
    return buffer.getvalue()


def card(configs: list[dict] | None = None, infos: list[dict] | None = None, body: str = "") -> bytes:
    """A dataset card: YAML `configs` (config_name, data_files split/path) and `dataset_info`."""
    import yaml

    meta = {k: v for k, v in (("dataset_info", infos), ("configs", configs)) if v}
    head = f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n" if meta else ""
    return (head + body + "\n").encode()


def _split_configs(config: str, splits, folder: str | None = None) -> dict:
    folder = config if folder is None else folder
    return {"config_name": config, "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in splits]}


GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def study_dataset_repos() -> list[HubRepo]:
    """Every dataset the studies load from the hub, in its real repository's layout (file names,
    configs, splits, formats). Layouts read from the hub's file pages (huggingface.co/datasets/<id>/tree/...,
    as stored in this project's search index) and lm-eval 0.4.13's task yamls; contents are the
    project-written copies in benchmark_data/data/."""
    from datasets import ClassLabel, Features, Sequence, Value

    repos = []
    # microsoft/orca-math-word-problems-200k: README.md + data/train-00000-of-00001.parquet (push_to_hub)
    orca = read_jsonl("orca_math_sample.jsonl")
    repos.append(HubRepo("microsoft/orca-math-word-problems-200k", {"main": {
        ".gitattributes": GITATTRIBUTES,
        "README.md": card([_split_configs("default", ["train"], "data")]),
        "data/train-00000-of-00001.parquet": parquet_bytes(orca)}}))
    # bio-nlp-umass/bioinstruct: one JSON file at the root, biomed_instruct_25k.json, no configs
    bio = read_jsonl("bioinstruct_sample.jsonl")
    repos.append(HubRepo("bio-nlp-umass/bioinstruct", {"main": {
        ".gitattributes": GITATTRIBUTES, "README.md": card(body="# BioInstruct"),
        "biomed_instruct_25k.json": json.dumps(bio, indent=1).encode()}}))
    # openai/gsm8k: configs main and socratic, <config>/{train,test}-00000-of-00001.parquet
    gsm8k = {"train": read_jsonl("gsm8k_train_sample.jsonl"), "test": read_jsonl("gsm8k_test_sample.jsonl")}
    files = {".gitattributes": GITATTRIBUTES,
             "README.md": card([_split_configs(c, ["train", "test"]) for c in ("main", "socratic")])}
    for config in ("main", "socratic"):
        files.update({f"{config}/{s}-00000-of-00001.parquet": parquet_bytes(rows) for s, rows in gsm8k.items()})
    repos.append(HubRepo("openai/gsm8k", {"main": files}))
    # cais/mmlu: one config per subject plus "all", <config>/{test,validation,dev}-00000-of-00001.parquet,
    # answer a ClassLabel A-D (lm-eval's mmlu/default/_default_template_yaml: test_split test, fewshot dev)
    mmlu_features = Features({"question": Value("string"), "subject": Value("string"),
                              "choices": Sequence(Value("string")), "answer": ClassLabel(names=list("ABCD"))})
    rows = mmlu_rows()
    subjects = sorted({r["subject"] for r in rows})
    files, configs = {".gitattributes": GITATTRIBUTES}, []
    for subject in [*subjects, "all"]:
        mine = [r for r in rows if subject in ("all", r["subject"])]
        for split, part in (("test", mine), ("validation", mine[:1]), ("dev", mine[:5])):
            files[f"{subject}/{split}-00000-of-00001.parquet"] = parquet_bytes(part, mmlu_features)
        configs.append(_split_configs(subject, ["test", "validation", "dev"]))
    files["README.md"] = card(configs)
    repos.append(HubRepo("cais/mmlu", {"main": files}))
    # tatsu-lab/alpaca: data/train-00000-of-00001-a09b74b3ef9c3b56.parquet
    repos.append(HubRepo("tatsu-lab/alpaca", {"main": {
        ".gitattributes": GITATTRIBUTES, "README.md": card([_split_configs("default", ["train"], "data")]),
        "data/train-00000-of-00001-a09b74b3ef9c3b56.parquet": parquet_bytes(read_jsonl("alpaca_sample.jsonl"))}}))
    # lavita/ChatDoctor-HealthCareMagic-100k: data/train-00000-of-00001-5e7cb295b9cff0bf.parquet
    repos.append(HubRepo("lavita/ChatDoctor-HealthCareMagic-100k", {"main": {
        ".gitattributes": GITATTRIBUTES, "README.md": card([_split_configs("default", ["train"], "data")]),
        "data/train-00000-of-00001-5e7cb295b9cff0bf.parquet":
            parquet_bytes(read_jsonl("healthcaremagic_sample.jsonl"))}}))
    repos.append(hellaswag_repo())
    return repos


HELLASWAG_SCRIPT = b'''"""HellaSwag (the hub's loading script; datasets 4.x refuses to run it)."""
import datasets

_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/"


class Hellaswag(datasets.GeneratorBasedBuilder):
    VERSION = datasets.Version("0.1.0")
'''


def hellaswag_repo() -> HubRepo:
    """Rowan/hellaswag as it is: a script repository on main (hellaswag.py, dataset_infos.json,
    README.md) and the dataset viewer's conversion on refs/convert/parquet,
    default/{train,validation,test}/0000.parquet. The test split has no labels ("")."""
    from datasets import Features, Sequence, Value

    features = Features({"ind": Value("int32"), "activity_label": Value("string"), "ctx_a": Value("string"),
                         "ctx_b": Value("string"), "ctx": Value("string"), "endings": Sequence(Value("string")),
                         "source_id": Value("string"), "split": Value("string"), "split_type": Value("string"),
                         "label": Value("string")})
    rows = read_jsonl("hellaswag_sample.jsonl")
    splits = {"train": [{**r, "split": "train"} for r in rows], "validation": rows,
              "test": [{**r, "split": "test", "label": ""} for r in rows]}
    infos = {"default": {"features": features.to_dict(),
                         "splits": {s: {"name": s, "num_examples": len(r)} for s, r in splits.items()}}}
    main = {".gitattributes": GITATTRIBUTES, "README.md": card(body="# Dataset Card for \"hellaswag\""),
            "dataset_infos.json": json.dumps(infos).encode(), "hellaswag.py": HELLASWAG_SCRIPT}
    parquet = {".gitattributes": GITATTRIBUTES,
               **{f"default/{s}/0000.parquet": parquet_bytes(r, features) for s, r in splits.items()}}
    return HubRepo("Rowan/hellaswag", {"main": main, "refs/convert/parquet": parquet})


def folder_repo(repo_id: str, folder: Path, repo_type: str = "model", gated: bool = False) -> HubRepo:
    """A repository holding every file of a local folder (e.g. a save_pretrained checkpoint)."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return HubRepo(repo_id, {"main": {".gitattributes": GITATTRIBUTES, **files}}, repo_type=repo_type, gated=gated)



def error_repos(study_repos: list[HubRepo]) -> list[HubRepo]:
    """Repositories that fail the way real ones do: a gated dataset (GSM8K's files behind a licence)
    and a dataset whose columns are not the study's (Orca-Math renamed)."""
    gsm8k = next(r for r in study_repos if r.repo_id == "openai/gsm8k")
    renamed = [{"problem": r["question"], "solution": r["answer"]} for r in read_jsonl("orca_math_sample.jsonl")]
    return [HubRepo("project-tests/gated-gsm8k", gsm8k.revisions, gated=True),
            HubRepo("project-tests/renamed-orca", {"main": {
                "README.md": card([_split_configs("default", ["train"], "data")]),
                "data/train-00000-of-00001.parquet": parquet_bytes(renamed)}})]


# A study architecture (scripts/make_random_checkpoint.ARCHITECTURES: the public config.json numbers)
# shrunk to 2 layers of width 64: random weights, the real model's code paths, seconds on a CPU.
SHRINK = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16)


def tiny_model_repo(repo_id: str, arch: str, tokenizer_dir: Path, out: Path) -> HubRepo:
    """A random-weight checkpoint of `arch` saved 4-bit (NF4, double quant), as the unsloth *-bnb-4bit
    repositories are, with the embedded tokenizer carrying `arch`'s chat template and begin/end tokens
    (make_random_checkpoint.arch_tokenizer)."""
    import sys

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_random_checkpoint import ARCHITECTURES, arch_tokenizer

    tokenizer = arch_tokenizer(arch, str(tokenizer_dir))
    numbers = {**ARCHITECTURES[arch], **SHRINK}
    config = AutoConfig.for_model(numbers.pop("model_type"), vocab_size=len(tokenizer),
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, **numbers)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out / "dense")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(out / "dense", quantization_config=quant, device_map={"": "cpu"})
    model.save_pretrained(out / "repo")
    tokenizer.save_pretrained(out / "repo")
    return folder_repo(repo_id, out / "repo")
