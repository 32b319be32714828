"""Rewrite the first two cells' shared parts of notebooks from one source: the "Open in Colab" / "Open in Kaggle"
badges (a line under the title in the first, markdown cell) and the setup cell (the first code cell).

    python scripts/sync_notebooks.py                   # every notebook under notebooks/
    python scripts/sync_notebooks.py addition benchmark
    python scripts/sync_notebooks.py --check           # exit 1 naming the notebooks that are out of date

Both come from configs/repository.yaml (the repository URL and ref, kept there only) and SETUP_CELL below.
Nothing else in a notebook changes; tests/test_hosted_setup.py checks every notebook against this file.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
REPOSITORY = ROOT / "configs" / "repository.yaml"
BADGE_MARK = "[![Open in Colab]"  # a first-cell line starting with this is the badge line (replaced on a sync)
SETUP_MARK = '(p / "helpers").is_dir()'  # what every setup cell, old or new, contains: a cell without it is kept

# The first code cell of every notebook; @REPO_URL@ and @REPO_REF@ come from configs/repository.yaml.
# SystemExit stops a cell with its one line (Jupyter shows no traceback for it).
SETUP_CELL = '''\
# Setup: find this repository for `import helpers`. On Colab/Kaggle (a notebook opened from its badge comes alone)
# clone it, install the GPU stack and keep run folders where a runtime reset leaves them.
# Every notebook starts with this cell: edit it in scripts/sync_notebooks.py, not here.
import os
import subprocess
import sys
from importlib.metadata import packages_distributions, version
from pathlib import Path

use_drive = True  # Colab: clone and run folders on Google Drive, so checkpoints and workbooks survive a reset
allow_cpu = False  # Colab/Kaggle without a GPU: True carries on (slowly) on the CPU instead of stopping

REPO_URL = os.environ.get("QLORA_REPO_URL", "@REPO_URL@")
REPO_REF = os.environ.get("QLORA_REPO_REF", "@REPO_REF@")
COLAB, KAGGLE = "COLAB_RELEASE_TAG" in os.environ, "KAGGLE_KERNEL_RUN_TYPE" in os.environ
DRIVE = Path("/content/drive")
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers").is_dir()), None)
if ROOT is None and not (COLAB or KAGGLE):
    raise SystemExit(f"No helpers/ above {Path.cwd()}: git clone {REPO_URL}, then start Jupyter inside the clone.")
if (COLAB or KAGGLE) and subprocess.run("nvidia-smi -L", shell=True, capture_output=True).returncode != 0:
    where = "Runtime > Change runtime type > T4 GPU" if COLAB else "Settings > Accelerator > GPU T4 x2"
    if not allow_cpu:
        raise SystemExit(f"No GPU: choose {where}, then run all again (or set allow_cpu = True: slow, on the CPU).")
    print(f"No GPU: running on the CPU, slowly (for a T4: {where}).")
if COLAB and use_drive:
    from google.colab import drive

    drive.mount(str(DRIVE))
if ROOT is None:  # clone into lasting storage; a clone kept on Drive by an earlier session is used as it is
    ROOT = (DRIVE / "MyDrive" if COLAB and use_drive else Path.cwd()) / "qlora-small-llms"
    clone = ["git", "clone", "-q", "--depth", "1", "--branch", REPO_REF, REPO_URL, str(ROOT)]
    if not (ROOT / "helpers").is_dir() and subprocess.run(clone).returncode:
        raise SystemExit(f"Could not clone {REPO_URL} at {REPO_REF} (git says why above); a fork: set QLORA_REPO_URL.")
    os.chdir(ROOT)
sys.path.insert(0, str(ROOT))
if COLAB or KAGGLE:  # run folders (checkpoints, adapters, workbooks): Drive, or the clone in /kaggle/working
    keep = DRIVE / "MyDrive" / "qlora-small-llms" if COLAB and use_drive else ROOT
    os.environ["QLORA_OUTPUT_ROOT"] = str(keep / "benchmarks")
    print(f"repository: {ROOT}\\nrun folders: {os.environ['QLORA_OUTPUT_ROOT']}")


def pip_install(*args):
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", *map(str, args)]).returncode:
        raise SystemExit(f"pip install {' '.join(map(str, args))} failed (pip says why above).")


if (COLAB or KAGGLE) and not os.environ.get("QLORA_INSTALLED"):
    # As Unsloth's own Colab notebooks do: the runtime's CUDA torch stays, and so do triton and torchvision, built
    # for it (hence --no-deps for Unsloth); torch==<installed> makes pip fail rather than swap torch.
    dists = packages_distributions()
    before = {d: version(d) for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])}
    pip_install("--no-deps", "-c", ROOT / "constraints.txt", "unsloth", "unsloth_zoo", "cut_cross_entropy")
    pip_install("-r", ROOT / "requirements-gpu.txt", f"torch=={version('torch')}")
    changed = sorted(d for d, v in before.items() if version(d) != v)
    if changed:  # this kernel still runs the old versions of these
        raise SystemExit(f"Updated {', '.join(changed)}, already imported: restart the session "
                         "(Colab: Runtime > Restart session), then run all again.")
    os.environ["QLORA_INSTALLED"] = "1"'''


class RepositoryError(ValueError):
    """configs/repository.yaml is not usable; the message is one line that says what to fix."""


def repository(path: Path = REPOSITORY) -> tuple[str, str, str]:
    """(url, ref, "owner/name") from configs/repository.yaml."""
    data = yaml.safe_load(path.read_text()) or {}
    url, ref = str(data.get("url", "")), str(data.get("ref", ""))
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)", url)
    if not match or url.endswith(".git"):
        raise RepositoryError(f"{path.name}: url must be https://github.com/<owner>/<name> (no .git, no slash at the "
                              f"end), got {url!r}")
    if not re.fullmatch(r"[\w./-]+", ref) or ref.startswith("-"):
        raise RepositoryError(f"{path.name}: ref must be a branch or tag name, got {ref!r}")
    return url, ref, match.group(1)


def badge_line(name: str, path: Path = REPOSITORY) -> str:
    """The markdown line of badges for notebooks/<name>.ipynb."""
    _, ref, slug = repository(path)
    blob = f"github/{slug}/blob/{ref}/notebooks/{name}.ipynb"
    colab = f"https://colab.research.google.com/{blob}"
    kaggle = f"https://kaggle.com/kernels/welcome?src=https://github.com/{slug}/blob/{ref}/notebooks/{name}.ipynb"
    return (f"{BADGE_MARK}(https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})")


def setup_cell(path: Path = REPOSITORY) -> str:
    """The setup cell's text for this repository."""
    url, ref, _ = repository(path)
    return SETUP_CELL.replace("@REPO_URL@", url).replace("@REPO_REF@", ref)


def with_badges(markdown: str, name: str, path: Path = REPOSITORY) -> str:
    """The first cell's text with one badge line right under its title (any older badge line dropped)."""
    lines = [line for line in markdown.splitlines() if not line.startswith(BADGE_MARK)]
    title, rest = lines[0], lines[1:]
    while rest and not rest[0].strip():  # the blank lines between title and badges, rebuilt below
        rest.pop(0)
    return "\n".join([title, "", badge_line(name, path), *([""] + rest if rest else [])])


def sync(nb: nbformat.NotebookNode, name: str, path: Path = REPOSITORY) -> nbformat.NotebookNode:
    """Badges into the first (markdown) cell, the setup cell as the first code cell; everything else as it was."""
    first, code = nb.cells[0], next((c for c in nb.cells if c.cell_type == "code"), None)
    if first.cell_type != "markdown" or not first.source.startswith("# "):
        raise RepositoryError(f"{name}.ipynb: the first cell must be the markdown title ('# ...')")
    if code is None or SETUP_MARK not in code.source:
        raise RepositoryError(f"{name}.ipynb: its first code cell is not the setup cell (no {SETUP_MARK})")
    first.source = with_badges(first.source, name, path)
    code.source = setup_cell(path)
    return nb


def notebook_paths(names: list[str]) -> list[Path]:
    """notebooks/<name>.ipynb for each name (a name, a file name or a path); all notebooks if none."""
    if not names:
        return sorted(NOTEBOOKS.glob("*.ipynb"))
    paths = [NOTEBOOKS / f"{Path(n).stem}.ipynb" for n in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        known = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
        raise RepositoryError(f"no notebook {', '.join(missing)} in notebooks/; known: {known}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: every notebook)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    try:
        stale = []
        for nb_path in notebook_paths(args.names):
            nb = nbformat.read(nb_path, as_version=4)
            before = nbformat.writes(nb)
            if nbformat.writes(sync(nb, nb_path.stem)) == before:
                continue
            stale.append(nb_path.name)
            if not args.check:
                nbformat.write(nb, nb_path)
                print("synced", nb_path.relative_to(ROOT))
    except RepositoryError as e:
        print(e, file=sys.stderr)
        return 2
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} (run: python scripts/sync_notebooks.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
