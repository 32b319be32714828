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

# The first code cell of every notebook; @REPO_URL@ and @REPO_REF@ come from configs/repository.yaml. A line
# starting "@G " is only in the cells of notebooks that run models (a GPU, the GPU stack), one starting "@C " only in
# those of NO_GPU (any runtime, only what they import); the prefix goes.
# SystemExit stops a cell with its one line (Jupyter shows no traceback for it).
SETUP_CELL = '''\
# Setup: find this repository for `import helpers`. On Colab/Kaggle (a notebook opened from its badge comes alone)
# clone it (a clone an earlier session left: bring it up to date), install what the notebook needs and keep run
# folders where a runtime reset leaves them.
# Every notebook starts with this cell: edit it in scripts/sync_notebooks.py, not here.
import os
import re
import subprocess
import sys
@G from importlib.metadata import distributions, packages_distributions, version
@C from importlib.util import find_spec
from pathlib import Path

use_drive = True  # Colab: clone and run folders on Google Drive, so checkpoints and workbooks survive a reset
update_clone = True  # a clone an earlier session left: fast-forward it to REPO_REF (False: keep its code as it is)
@G allow_cpu = False  # Colab/Kaggle without a GPU: True carries on (slowly) on the CPU instead of stopping
@C # This notebook only reads and writes workbooks: any runtime will do (no GPU), and no GPU stack is installed.

REPO_URL = os.environ.get("QLORA_REPO_URL", "@REPO_URL@")
REPO_REF = os.environ.get("QLORA_REPO_REF", "@REPO_REF@")  # a branch, a tag, or a full commit sha (a pin)
COLAB, KAGGLE = "COLAB_RELEASE_TAG" in os.environ, "KAGGLE_KERNEL_RUN_TYPE" in os.environ
INTERNET = "on Kaggle turn on Settings > Internet (a phone-verified account), then run all again" if KAGGLE else ""
DRIVE = Path("/content/drive")
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers").is_dir()), None)
if ROOT is None and not (COLAB or KAGGLE):
    raise SystemExit(f"No helpers/ above {Path.cwd()}: git clone {REPO_URL}, then start Jupyter inside the clone.")
@G if (COLAB or KAGGLE) and subprocess.run("nvidia-smi -L", shell=True, capture_output=True).returncode != 0:
@G     where = "Runtime > Change runtime type > T4 GPU" if COLAB else "Settings > Accelerator > GPU T4 x2"
@G     if not allow_cpu:
@G         raise SystemExit(f"No GPU: choose {where}, then run all again (or set allow_cpu = True: slow, on the CPU).")
@G     print(f"No GPU: running on the CPU, slowly (for a T4: {where}).")
if COLAB and use_drive:
    from google.colab import drive

    drive.mount(str(DRIVE))


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})


def why(proc):
    return (proc.stderr.strip().splitlines() or ["git failed"])[-1]


def update(old):
    \"\"\"Bring the clone at ROOT (at commit `old`) to REPO_REF, losing nothing: only with no local changes, only
    a fast-forward (REPO_REF a commit sha: that commit checked out). The one line to print, or None.\"\"\"
    commit = re.fullmatch(r"[0-9a-f]{40}", REPO_REF) is not None
    if old == REPO_REF:  # pinned, and at that commit: nothing to fetch
        return None
    stays = f"the clone at {ROOT} stays at {old[:7] or '(no commit)'}"
    if not update_clone:
        return f"{stays}: update_clone = False"
    if not old:
        return f"{stays}: it is not a git clone; to update: move it away, then run this cell again"
    if git("status", "--porcelain", "--untracked-files=no").stdout.strip():
        return (f"{stays}: it has local changes (git -C {ROOT} status), kept; to update: git -C {ROOT} stash, "
                f"run this cell again, then git -C {ROOT} stash pop")
    # no --depth: in a shallow clone a plain fetch brings only the commits since, which a fast-forward needs
    if not (commit and git("cat-file", "-e", REPO_REF + "^{commit}").returncode == 0):
        fetch = git("fetch", "-q", REPO_URL, REPO_REF)
        if fetch.returncode:
            then = INTERNET or "run this cell again once online"
            return f"{stays}: could not fetch {REPO_REF} from {REPO_URL} ({why(fetch)}); to update: {then}"
    new = git("rev-parse", "--verify", "-q", (REPO_REF if commit else "FETCH_HEAD") + "^{commit}").stdout.strip()
    if new == old:
        return None
    if not commit and git("merge-base", "--is-ancestor", old, new).returncode:
        return (f"{stays}: it has commits that {REPO_REF} of {REPO_URL} lacks; to update by hand: "
                f"git -C {ROOT} pull --rebase {REPO_URL} {REPO_REF}")
    move = git("checkout", "-q", "--detach", new) if commit else git("merge", "-q", "--ff-only", new)
    if move.returncode:
        return f"{stays}: git could not move it to {new[:7]} ({why(move)}); to update: git -C {ROOT} merge {new[:7]}"
    return (f"updated the clone at {ROOT} from {old[:7]} to {new[:7]} (a run begun before goes on with this code; "
            f'to keep {old[:7]}: REPO_REF = "{old}" in this cell)')


if ROOT is None:  # clone into lasting storage, or bring the clone an earlier session left there up to date
    ROOT = (DRIVE / "MyDrive" if COLAB and use_drive else Path.cwd()) / "qlora-small-llms"
    if (ROOT / "helpers").is_dir():
        line = update(git("rev-parse", "HEAD").stdout.strip() if (ROOT / ".git").exists() else "")
        if line:
            print(line)
    else:
        clone = [["git", "clone", "-q", "--depth", "1", "--branch", REPO_REF, REPO_URL, str(ROOT)]]
        if re.fullmatch(r"[0-9a-f]{40}", REPO_REF):  # a commit: git clone --branch takes branches and tags only
            at = ["git", "-C", str(ROOT)]
            clone = [["git", "init", "-q", str(ROOT)], [*at, "fetch", "-q", "--depth", "1", REPO_URL, REPO_REF],
                     [*at, "checkout", "-q", "--detach", "FETCH_HEAD"]]
        if any(subprocess.run(step).returncode for step in clone):
            raise SystemExit(f"Could not clone {REPO_URL} at {REPO_REF} (git says why above); "
                             f"{INTERNET or 'a fork: set QLORA_REPO_URL'}.")
    os.chdir(ROOT)
sys.path.insert(0, str(ROOT))
if COLAB or KAGGLE:  # run folders (checkpoints, adapters, workbooks): Drive, or the clone in /kaggle/working
    keep = DRIVE / "MyDrive" / "qlora-small-llms" if COLAB and use_drive else ROOT
    os.environ["QLORA_OUTPUT_ROOT"] = str(keep / "benchmarks")
    print(f"repository: {ROOT}\\nrun folders: {os.environ['QLORA_OUTPUT_ROOT']}")
if KAGGLE:
    print('Kaggle keeps /kaggle/working (the clone, run folders, checkpoints) for your next session only if '
          'Settings > Persistence is "Files only" or "Variables & Files" before this one ends (best effort).')


def pip_install(*args):
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", *map(str, args)]).returncode:
        raise SystemExit(f"pip install {' '.join(map(str, args))} failed (pip says why above)"
                         f"{'; ' + INTERNET if INTERNET else ''}.")


@G if (COLAB or KAGGLE) and not os.environ.get("QLORA_INSTALLED"):
@G     # As Unsloth's own Colab notebooks do: the runtime's CUDA torch stays, and so do triton and torchvision, built
@G     # for it (hence --no-deps for Unsloth); torch==<installed> makes pip fail rather than swap torch.
@G     dists = packages_distributions()
@G     before = {d: version(d) for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])}
@G     pip_install("--no-deps", "-c", ROOT / "constraints.txt", "unsloth", "unsloth_zoo", "cut_cross_entropy")
@G     pip_install("-r", ROOT / "requirements-gpu.txt", f"torch=={version('torch')}")
@G     changed = sorted(d for d, v in before.items() if version(d) != v)
@G     from packaging.requirements import Requirement  # the torch Unsloth declares (kept out of pip: --no-deps above)
@G     torch_now, unsloth = version("torch"), next(distributions(name="unsloth"), None)
@G     unsloth_needs = [Requirement(r) for r in (unsloth.requires or [] if unsloth else [])]
@G     wants = next((r.specifier for r in unsloth_needs if r.name == "torch" and not r.marker), None)
@G     if wants is not None and not wants.contains(torch_now.split("+")[0], prereleases=True):
@G         cuda = torch_now.partition("+")[2]  # the runtime's CUDA build (cu126, ...): a replacement must match it
@G         index = f" --index-url https://download.pytorch.org/whl/{cuda}" if cuda.startswith("cu") else ""
@G         print(f"Note: this runtime has torch {torch_now}; Unsloth {unsloth.version} declares torch{wants}. If "
@G               f"loading a model fails: !pip install 'torch{wants}' torchvision{index} in a new cell, restart the "
@G               "session, then run all again.")
@G     if changed:  # this kernel still runs the old versions of these
@G         raise SystemExit(f"Updated {', '.join(changed)}, already imported: restart the session "
@G                          "(Colab: Runtime > Restart session), then run all again.")
@G     os.environ["QLORA_INSTALLED"] = "1"
@C if COLAB or KAGGLE:  # what this notebook imports, which both runtimes ship; one that a runtime lacks comes at the
@C     # version the GPU notebooks install (requirements-gpu.txt), or as pip finds it
@C     lines = (ROOT / "requirements-gpu.txt").read_text().splitlines()
@C     pins = {r.split("==")[0]: r for r in lines if "==" in r and not r.startswith("#")}
@C     modules = {"pandas": "pandas", "numpy": "numpy", "openpyxl": "openpyxl", "matplotlib": "matplotlib",
@C                "scipy": "scipy", "sklearn": "scikit-learn", "statsmodels": "statsmodels", "yaml": "pyyaml"}
@C     missing = [pins.get(dist, dist) for module, dist in modules.items() if find_spec(module) is None]
@C     if missing:
@C         pip_install(*missing)'''

# notebooks that only read and write workbooks: their setup cell wants no GPU and installs no GPU stack
NO_GPU = {"compile_ratings"}


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


def setup_cell(path: Path = REPOSITORY, *, name: str = "") -> str:
    """The setup cell's text for this repository and notebooks/<name>.ipynb (a notebook that runs models if no name)."""
    url, ref, _ = repository(path)
    keep, drop = ("@C ", "@G ") if name in NO_GPU else ("@G ", "@C ")
    lines = [line.removeprefix(keep) for line in SETUP_CELL.splitlines() if not line.startswith(drop)]
    return "\n".join(lines).replace("@REPO_URL@", url).replace("@REPO_REF@", ref)


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
    code.source = setup_cell(path, name=name)
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
