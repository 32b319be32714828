"""Teacher-written MMLU questions (the "generalist to specialist" study, MMLU part): the teacher
backend, its requests N at a time, the prompts it is sent, the parser of its replies and the
multistage filter.

Method 1 (generative): the teacher writes questions per subject, each a bit harder than the last
and different from the earlier ones. Method 2 (targeted): for each evaluation question the teacher
gets right and the student wrong, the teacher writes a new question on the same knowledge. The
filter keeps well-formed, new, on-topic items the teacher solves again with the same answer.

    >>> teacher = make_teacher(cfg)                     # cached; cfg.teacher_concurrency requests at a time
    >>> candidates = generate_candidates(teacher, cfg)
    >>> records, counts = filter_items(candidates, teacher=teacher, embed=embed, references=questions, cfg=cfg)
    >>> kept_items(records)
    >>> method1 = method1_data(teacher, embed, questions, cfg, run_dir)   # the above, kept in data/method1.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers.backends import (
    AuthenticationFailed,
    BackendError,
    OpenAIChatBackend,
)
from helpers.config import ConfigError, config_hash, output_path
from helpers.tasks.mmlu_data import (
    LETTERS,
    Question,
    extract_letter,
    format_options,
    normalise,
    study_prompt,
    subject_name,
)

# ------------------------------------------------------------------------ the teacher, N at a time


class _Throttle:
    """The pool's shared brake: at most `limit` requests in flight. A rate limit (HTTP 429) pauses
    every worker until its Retry-After (or the backoff) has passed and halves the limit; each reply
    that arrives raises it again by one, up to the concurrency asked for. Otherwise eight workers
    that were told to wait would retry together and be told again."""

    def __init__(self, concurrency: int):
        self.concurrency = self.limit = concurrency
        self.in_flight = 0
        self.resume_at = 0.0
        self._cond = threading.Condition()

    def acquire(self, stop: threading.Event) -> bool:
        """A slot for one request; False (no slot) once `stop` is set."""
        with self._cond:
            while not stop.is_set():
                pause = self.resume_at - time.monotonic()
                if pause <= 0 and self.in_flight < self.limit:
                    self.in_flight += 1
                    return True
                self._cond.wait(timeout=min(pause, 0.05) if pause > 0 else 0.05)  # polls `stop`
            return False

    def release(self, *, replied: bool = False, pause: float | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            if pause is not None:
                self.resume_at = max(self.resume_at, time.monotonic() + pause)
                self.limit = max(1, self.limit // 2)
            elif replied and self.limit < self.concurrency:
                self.limit += 1
            self._cond.notify_all()


class _Batch:
    """One chat_many call's shared state: why it stopped (the first refused key, or too many failures)."""

    def __init__(self, size: int):
        self.size = size
        self.failed = 0
        self.stop = threading.Event()
        self.reason: BackendError | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.bar = None

    def halt(self, reason: BackendError) -> None:
        """Send nothing more: queued requests and retries return `reason` (the first one given)."""
        self.reason = self.reason or reason
        self.stop.set()


class PooledChatBackend(OpenAIChatBackend):
    """An OpenAI-compatible backend (helpers.backends) that sends up to `concurrency` requests at once
    from a thread pool, with a progress bar. Replies come back in the order asked and are cached as
    each arrives, so the results and the cache are those of one request at a time.

    Every guarantee of the one-at-a-time client holds for the pool: a refused key (HTTP 401/403)
    stops the pool at once (requests already on the wire finish, no other is sent, no retry); more
    than half of a batch failing stops it too; an exception in the caller stops the pool; redirects
    are refused and the key is never shown. HTTP 429 pauses the whole pool (see `_Throttle`) for its
    Retry-After, capped at `max_backoff`, or the exponential backoff; `rate_limited` counts them."""

    def __init__(self, *, concurrency: int = 8, progress: bool = True, **kw):
        super().__init__(**kw)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"teacher concurrency must be an integer >= 1 (requests at a time), got {concurrency!r}")
        self.concurrency = concurrency
        self.progress = progress
        self.rate_limited = 0
        self._throttle = _Throttle(concurrency)
        self._lock = threading.Lock()  # counters and cache writes from the workers
        self._batch: _Batch | None = None

    def __repr__(self) -> str:  # no key in here, ever
        return (f"PooledChatBackend(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})")

    def counters(self) -> dict:
        return {**super().counters(), "rate_limited": self.rate_limited}

    def chat_many(self, conversations, max_tokens: int = 256, temperature: float = 0.0, errors: str = "none"):
        try:
            return super().chat_many(conversations, max_tokens=max_tokens, temperature=temperature, errors=errors)
        finally:  # the caller stopped (an error, a too-many-failures stop, Ctrl-C): queued requests are not sent
            batch, self._batch = self._batch, None
            if batch is not None:
                batch.halt(BackendError("not sent: the batch was stopped"))
                if batch.pool is not None:
                    batch.pool.shutdown(wait=False, cancel_futures=True)  # in-flight requests finish, cached
                if batch.bar is not None:
                    batch.bar.close()

    def _cache_put(self, key, messages, max_tokens, temperature, reply) -> None:
        with self._lock:  # one temporary file name per process: writes of one key must not interleave
            super()._cache_put(key, messages, max_tokens, temperature, reply)

    def _complete_many(self, conversations, max_tokens, temperature):
        from tqdm.auto import tqdm

        self._headers()  # a missing key stops the run before anything is sent
        batch = self._batch = _Batch(len(conversations))
        bar = batch.bar = tqdm(total=len(conversations), desc=f"teacher {self.model}", unit="req",
                               disable=not self.progress)

        def task(messages):
            result = self._complete_pooled(messages, max_tokens, temperature, batch)
            if isinstance(result, BackendError):
                with self._lock:
                    batch.failed += 1
                    if isinstance(result, AuthenticationFailed):
                        batch.halt(result)  # every other request would be refused too
                    elif batch.failed >= self.min_failures and batch.failed > self.failure_limit * batch.size:
                        batch.halt(BackendError(f"not sent: more than {self.failure_limit:.0%} of the batch failed"))
            else:  # cached as it arrives: a run stopped half-way keeps every reply it paid for
                self._cache_put(self.cache_key(messages, max_tokens, temperature), messages, max_tokens,
                                temperature, result)
            bar.update()
            return result

        pool = batch.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="teacher")
        try:
            futures = [pool.submit(task, messages) for messages in conversations]
            for future in futures:
                yield future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()

    def _complete_pooled(self, messages, max_tokens, temperature, batch: _Batch) -> str | BackendError:
        """One request with its retries, through the pool's throttle (helpers.backends' `_complete`
        with a shared pause instead of each worker's own sleep on 429)."""
        body = self._body(messages, max_tokens, temperature)
        last = None
        for attempt in range(self.max_retries + 1):
            if not self._throttle.acquire(batch.stop):
                return batch.reason or BackendError("not sent: the batch was stopped")
            replied, pause, sleep = False, None, None
            try:
                done, last, wait, status = self._send(body, attempt)
                replied = isinstance(done, str)
                if done is not None:
                    return done
                delay = min(wait if wait is not None else self.backoff * 2 ** attempt, self.max_backoff)
                if status == 429:
                    pause = delay
                    with self._lock:
                        self.rate_limited += 1
                else:
                    sleep = delay
            finally:
                # a rate limit slows the whole pool; other failures wait on their own, out of the pool's slots
                self._throttle.release(replied=replied, pause=pause)
            if attempt < self.max_retries:
                with self._lock:
                    self.retries += 1
                if sleep:
                    time.sleep(sleep)
        return last


def make_teacher(cfg, *, loaded=None):
    """The teacher backend of `cfg`; its replies are cached under teacher_cache_dir (default:
    <output_root>/mmlu_teacher/teacher_cache, shared by every run, so no request is paid twice).
    An endpoint is asked `teacher_concurrency` requests at a time (PooledChatBackend). A local
    teacher that is the student model reuses `loaded` (the vanilla student in memory)."""
    from helpers.backends import make_backend

    cache = Path(cfg.teacher_cache_dir or Path(cfg.output_root) / "mmlu_teacher" / "teacher_cache").expanduser()
    cache = output_path(cache)
    if cfg.teacher_backend == "openai":
        return PooledChatBackend(base_url=cfg.teacher_base_url, model=cfg.teacher_model,
                                 api_key_env=cfg.teacher_api_key_env, cache_dir=cache, timeout=cfg.teacher_timeout,
                                 max_retries=cfg.teacher_max_retries, concurrency=cfg.teacher_concurrency)
    same = loaded if cfg.teacher_model == cfg.model else None
    return make_backend("local", model=cfg.teacher_model, cache_dir=cache, load_in_4bit=cfg.load_in_4bit,
                        batch_size=cfg.eval_batch_size, seed=cfg.seed, loaded=same)


def teacher_record(cfg, teacher) -> dict:
    """What the run records about the teacher: never the key, only the variable's name."""
    record = {"backend": cfg.teacher_backend, "model": cfg.teacher_model, "counters": teacher.counters()}
    if cfg.teacher_backend == "openai":
        record |= {"base_url": cfg.teacher_base_url, "api_key_env": cfg.teacher_api_key_env}
    return record


# ------------------------------------------------------------------------ what the teacher is asked

# Worked examples of the reply format, shown to the teacher as earlier turns (few-shot). They are of
# other subjects than any default, and the duplicate filter treats them as seen: copies are dropped.
FORMAT_EXAMPLES = [
    ("high school biology", "an introductory", Question(
        "high_school_biology", "Which gas do plants take in from the air for photosynthesis?",
        ["Oxygen", "Carbon dioxide", "Nitrogen", "Helium"], 1, "example-1")),
    ("world history", "an introductory", Question(
        "world_history", "Which ancient civilization built the pyramids of Giza?",
        ["The Romans", "The Vikings", "The Aztecs", "The Egyptians"], 3, "example-2")),
]
TARGETED_EXAMPLE = Question(
    "high_school_biology", "What do plants absorb from the air to make sugar by photosynthesis?",
    ["Carbon dioxide", "Argon", "Hydrogen", "Ozone"], 0, "example-3")
LEVELS = ["an introductory", "an intermediate", "a harder", "an advanced", "an expert-level"]


def format_item(q: Question) -> str:
    """The reply format the teacher is asked for (and the parser reads)."""
    return f"Question: {q.question}\n{format_options(q.choices)}\nAnswer: {q.letter}"


def _ask_for_question(subject: str, level: str, avoid=(), number: str = "") -> str:
    text = (f"Write {level} multiple choice question about {subject}{number}, with four options A-D, exactly one of "
            "them correct, and the correct letter.")
    if avoid:
        text += " Ask about something else than these earlier questions:\n" + "\n".join(f"- {a}" for a in avoid)
    return text


def generation_messages(subject: str, index: int, n: int, earlier: list[str], *, avoid_last: int = 5) -> list:
    """The request for question `index` of `n` about `subject`: the complexity level rises with the
    index, the latest earlier questions are named so the next one is about something else."""
    level = LEVELS[min(len(LEVELS) - 1, index * len(LEVELS) // max(1, n))]
    messages = [{"role": "system", "content": f"You are an expert in {subject_name(subject)} who writes exam "
                 "questions. Reply with the question in the format of your earlier replies and nothing else."}]
    for example_subject, example_level, example in FORMAT_EXAMPLES:
        messages += [{"role": "user", "content": _ask_for_question(example_subject, example_level)},
                     {"role": "assistant", "content": format_item(example)}]
    # "(question i of n)" makes every request distinct: otherwise a round whose earlier replies did
    # not parse would repeat the previous request, and the cache would repeat its reply
    messages.append({"role": "user", "content": _ask_for_question(subject_name(subject), level,
                                                                   earlier[-avoid_last:] if avoid_last else (),
                                                                   f" (question {index + 1} of {n})")})
    return messages


def targeted_messages(q: Question) -> list:
    """Method 2: the teacher sees an evaluation question with its answer and writes a new one."""
    def ask(source: Question) -> str:
        return (f"Here is a multiple choice question about {subject_name(source.subject)} with its correct answer:"
                f"\n\n{format_item(source)}\n\nWrite ONE new multiple choice question that tests the same knowledge "
                "in different words, with new options A-D, exactly one correct, in the same format.")
    return [{"role": "system", "content": f"You are an expert in {subject_name(q.subject)} who writes exam questions."},
            {"role": "user", "content": ask(FORMAT_EXAMPLES[0][2])},
            {"role": "assistant", "content": format_item(TARGETED_EXAMPLE)},
            {"role": "user", "content": ask(q)}]


_QUESTION = re.compile(r"(?:^|[\s*])Question(?:\*\*)?\s*:\s*(.+)$", re.IGNORECASE)  # may follow "Sure! "
_OPTION = re.compile(r"^\s*\(?([A-Z])\s*[).:]\s*(.*)$")
_ANSWER = re.compile(r"^\s*(?:\*\*)?(?:Correct\s+)?Answer(?:\*\*)?\s*[:.]\s*(.*)$", re.IGNORECASE)


def parse_item(reply: str, subject: str) -> tuple[str, Question | None]:
    """(stage, item): "ok" and the item, or the first format check it fails:
    "unparsed" (no question, options and answer line), "not_four_options" (other than exactly A-D,
    or an empty or repeated option), "bad_answer_letter" (not one of A-D)."""
    question, options, answer = None, [], None
    for line in (reply or "").splitlines():
        if answer is not None:
            break
        if question is None:
            match = _QUESTION.search(line)
            if match:
                question = match.group(1).strip()
            continue
        option, cue = _OPTION.match(line), _ANSWER.match(line)
        if cue:
            answer = cue.group(1).strip()
        elif option:
            options.append((option.group(1), option.group(2).strip()))
        elif line.strip() and not options:
            question += " " + line.strip()  # a question over several lines
    if not question or len(options) < 2 or answer is None:
        return "unparsed", None
    texts = [normalise(text) for _, text in options]
    if [letter for letter, _ in options] != list(LETTERS) or not all(texts) or len(set(texts)) != 4:
        return "not_four_options", None
    # "C", "(C)", "C. <the text of option C>"; not "E", "C or D", "1"
    match = re.fullmatch(r"\(?([A-Z])\)?(?:[.):]?\s*(.*))?", answer.strip().rstrip("."))
    if not match or match.group(1) not in LETTERS:
        return "bad_answer_letter", None
    rest = normalise(match.group(2) or "")
    if rest and rest != texts[LETTERS.index(match.group(1))]:
        return "bad_answer_letter", None
    return "ok", Question(subject, question, [text for _, text in options], LETTERS.index(match.group(1)))


def item_text(q: Question) -> str:
    return normalise(q.question + " " + " ".join(q.choices))


STAGES = ["no_reply", "unparsed", "not_four_options", "bad_answer_letter", "duplicate_text",
          "duplicate_embedding", "off_domain", "inconsistent"]


def relevance_messages(q: Question) -> list:
    """The teacher judges whether an item is about its subject; two worked turns show the reply format."""
    def ask(item: Question, subject: str) -> dict:
        return {"role": "user", "content": f"Is the following multiple choice question about {subject}? "
                f"Reply with yes or no only.\n\n{format_item(item)}"}
    biology, history = FORMAT_EXAMPLES[0][2], FORMAT_EXAMPLES[1][2]
    return [ask(biology, "high school biology"), {"role": "assistant", "content": "yes"},
            ask(history, "high school biology"), {"role": "assistant", "content": "no"},
            ask(q, subject_name(q.subject))]


def filter_items(candidates: list[dict], *, teacher, embed, references: list[Question], cfg) -> tuple[list, dict]:
    """The multistage quality filter. `candidates`: {"subject", "reply", ...} as the teacher wrote them
    (reply None: the request failed). Stages in order, each counted: format (parse, exactly four
    options, one valid letter), near-duplicates by normalised text (rapidfuzz ratio) and by embedding
    cosine against everything kept so far, the format examples and the evaluation questions
    (`references`), domain relevance (the teacher judges), consistency (the teacher answers the
    item again and must pick its stated letter). Returns (records, counts): every candidate with
    the stage that removed it, or "kept" and its item."""
    import torch
    from rapidfuzz import fuzz, process

    records = []
    for c in candidates:
        stage, item = ("no_reply", None) if c["reply"] is None else parse_item(c["reply"], c["subject"])
        records.append({**c, "stage": stage, "item": item})

    seen_texts = [item_text(q) for q in references] + [item_text(e) for _, _, e in FORMAT_EXAMPLES]
    for r in records:
        if r["stage"] != "ok":
            continue
        text = item_text(r["item"])
        if process.extractOne(text, seen_texts, scorer=fuzz.ratio, score_cutoff=cfg.dedup_text_threshold):
            r["stage"] = "duplicate_text"
        else:
            seen_texts.append(text)

    alive = [r for r in records if r["stage"] == "ok"]
    if alive:
        ref_vectors = embed([item_text(q) for q in references] + [item_text(e) for _, _, e in FORMAT_EXAMPLES])
        vectors = embed([item_text(r["item"]) for r in alive])
        # Centre on the references' mean: a causal LM's mean-pooled states all point one way (anisotropy).
        centre = ref_vectors.mean(0, keepdim=True)
        ref_vectors = torch.nn.functional.normalize(ref_vectors - centre, dim=1)
        vectors = torch.nn.functional.normalize(vectors - centre, dim=1)
        kept_vectors = ref_vectors
        for r, v in zip(alive, vectors):
            similarity = float((kept_vectors @ v).max()) if len(kept_vectors) else -1.0
            r["max_cosine"] = round(similarity, 4)
            if similarity >= cfg.dedup_embedding_threshold:
                r["stage"] = "duplicate_embedding"
            else:
                kept_vectors = torch.cat([kept_vectors, v[None]])

    alive = [r for r in records if r["stage"] == "ok"]
    if cfg.check_relevance and alive:
        replies = teacher.chat_many([relevance_messages(r["item"]) for r in alive], max_tokens=4, temperature=0.0)
        for r, reply in zip(alive, replies):
            r["relevance_reply"] = reply
            if not normalise(reply or "").startswith("yes"):  # "no", unreadable or no reply: not confirmed
                r["stage"] = "off_domain"

    alive = [r for r in records if r["stage"] == "ok"]
    if cfg.check_consistency and alive:
        replies = teacher.chat_many([[{"role": "user", "content": study_prompt(r["item"])}] for r in alive],
                                    max_tokens=cfg.max_new_tokens, temperature=0.0)
        for r, reply in zip(alive, replies):
            r["resolve_reply"] = reply
            if extract_letter(reply or "", r["item"].choices) != r["item"].letter:
                r["stage"] = "inconsistent"

    for r in records:
        if r["stage"] == "ok":
            r["stage"] = "kept"
    counts = {"generated": len(records), **{s: sum(r["stage"] == s for r in records) for s in STAGES},
              "kept": sum(r["stage"] == "kept" for r in records)}
    return records, counts


def generate_candidates(teacher, cfg) -> list[dict]:
    """Method 1: `n_generate` teacher replies per subject, in rounds (one request per subject and
    round, so a local teacher answers a batch); each request names the latest earlier questions."""
    earlier = {s: [] for s in cfg.subjects}
    candidates = []
    for index in range(cfg.n_generate):
        requests = [generation_messages(s, index, cfg.n_generate, earlier[s]) for s in cfg.subjects]
        replies = teacher.chat_many(requests, max_tokens=cfg.teacher_max_tokens,
                                    temperature=cfg.generation_temperature)
        for subject, reply in zip(cfg.subjects, replies):
            stage, item = parse_item(reply, subject) if reply is not None else ("no_reply", None)
            if item is not None:
                earlier[subject].append(item.question[:150])
            candidates.append({"method": "generative", "subject": subject, "index": index, "reply": reply})
    return candidates


def targeted_questions(questions: list[Question], teacher_eval: dict, student_eval: dict, cfg) -> list[Question]:
    """Method 2's targets: the evaluation questions the teacher answered right and the student wrong (by
    the student's scoring `cfg.targeted_by`: its generated letter, or the letter log-likelihood)."""
    key = "generated_letter" if cfg.targeted_by == "generate" else "loglik_letter"
    return [q for q, t, s in zip(questions, teacher_eval["items"], student_eval["items"])
            if t["generated_letter"] == q.letter and s[key] != q.letter]


def targeted_candidates(teacher, questions: list[Question], teacher_eval: dict, student_eval: dict,
                        cfg) -> tuple[list[dict], list[str]]:
    """Method 2: one new question for each of its targets (targeted_questions). Returns (candidates, ids of
    the source questions)."""
    targets = targeted_questions(questions, teacher_eval, student_eval, cfg)
    replies = teacher.chat_many([targeted_messages(q) for q in targets], max_tokens=cfg.teacher_max_tokens,
                                temperature=cfg.generation_temperature)
    candidates = [{"method": "targeted", "subject": q.subject, "source_id": q.id, "reply": r}
                  for q, r in zip(targets, replies)]
    return candidates, [q.id for q in targets]


def kept_items(records: list[dict], subject: str | None = None) -> list[Question]:
    return [r["item"] for r in records if r["stage"] == "kept" and (subject is None or r["subject"] == subject)]


def stage_counts_by_subject(records: list[dict], subjects: list[str]) -> dict:
    out = {}
    for subject in subjects:
        mine = [r for r in records if r["subject"] == subject]
        out[subject] = {"generated": len(mine), **{s: sum(r["stage"] == s for r in mine) for s in STAGES},
                        "kept": sum(r["stage"] == "kept" for r in mine)}
    return out


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in records:
            row = {k: v for k, v in r.items() if k != "item"}
            if r.get("item") is not None:
                row["item"] = dataclasses.asdict(r["item"])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# ------------------------------------------------------------------------ each method's data, kept

def _timed(timer, name: str):
    return timer(name) if timer else contextlib.nullcontext()


def kept_data(path: Path, identity: dict, compute) -> dict:
    """compute()'s {"records": [...], "counts": {...}, ...}, computed once per `identity` and kept at `path`
    (helpers.runs.kept_result), its records' items read back as Questions and listed one record a line
    beside it (<path>.jsonl, rewritten from the kept data). Why: a teacher request that failed is not
    cached, so generating again would ask it again and change the kept items, while the students trained
    on the first data are reused; kept, a re-run of the same settings trains and reports on one data set."""
    from helpers.runs import kept_result

    path = Path(path)
    data = kept_result(path, identity, compute)
    data["records"] = [{**r, "item": Question(**r["item"]) if r.get("item") else None} for r in data["records"]]
    write_records(path.with_suffix(".jsonl"), data["records"])
    return data


def method1_data(teacher, embed, questions: list[Question], cfg, run_dir, *, timer=None) -> dict:
    """Method 1's filtered data, {"records", "counts"} (generate_candidates, filter_items), kept in
    run_dir/data/method1.json for these settings (kept_data): a re-run asks the teacher nothing. Delete it to
    generate again (a request that failed included); train_sft then trains its students again."""
    def compute():
        with _timed(timer, "method1_generate"):
            candidates = generate_candidates(teacher, cfg)
        with _timed(timer, "method1_filter"):
            records, counts = filter_items(candidates, teacher=teacher, embed=embed, references=questions, cfg=cfg)
        return {"records": records, "counts": counts}
    identity = {"data": "method1", "settings": config_hash(cfg)}
    return kept_data(Path(run_dir) / "data" / "method1.json", identity, compute)


def method2_data(teacher, embed, questions: list[Question], teacher_eval: dict, student_eval: dict, cfg, run_dir, *,
                 timer=None) -> dict:
    """Method 2's filtered data, {"records", "counts", "target_ids"} (targeted_candidates, filter_items), kept
    in run_dir/data/method2.json for these settings and these targets (kept_data): other targets (an
    evaluation computed again) are asked for again."""
    def compute():
        with _timed(timer, "method2_generate"):
            candidates, target_ids = targeted_candidates(teacher, questions, teacher_eval, student_eval, cfg)
        with _timed(timer, "method2_filter"):
            records, counts = filter_items(candidates, teacher=teacher, embed=embed, references=questions, cfg=cfg)
        return {"records": records, "counts": counts, "target_ids": target_ids}
    targets = [q.id for q in targeted_questions(questions, teacher_eval, student_eval, cfg)]
    identity = {"data": "method2", "settings": config_hash(cfg), "targets": targets}
    return kept_data(Path(run_dir) / "data" / "method2.json", identity, compute)
