"""The documents' pointers into the tests: a renamed or deleted test leaves no dead pin behind."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "PERFORMANCE.md", *sorted((ROOT / "docs").glob("*.md"))]
PIN = re.compile(r"(tests/[\w/]+\.py)?::(\w+)")


def pins(text: str):
    """(file, test name) of each `tests/x.py::name`; a bare `::name` on the same line is in the last named file."""
    for line in text.splitlines():
        current = None
        for match in PIN.finditer(line):
            current = match.group(1) or current
            if current:
                yield current, match.group(2)


def test_pins_parse_the_short_form():
    line = "`tests/test_a.py::test_one`, `::test_two`; tests/test_b.py::test_three"
    assert list(pins(line)) == [("tests/test_a.py", "test_one"), ("tests/test_a.py", "test_two"),
                                ("tests/test_b.py", "test_three")]


def test_every_test_the_documents_name_exists():
    dead, seen = [], 0
    for doc in DOCS:
        for file, name in pins(doc.read_text(encoding="utf-8")):
            seen += 1
            path = ROOT / file
            source = path.read_text(encoding="utf-8") if path.exists() else ""
            if not re.search(rf"^\s*(async )?def {name}\(", source, re.M):
                dead.append(f"{doc.name}: {file}::{name}")
    assert seen > 20, "the documents name hardly any test: the pattern no longer matches them"
    assert not dead, "tests named in the documents that do not exist: " + "; ".join(dead)
