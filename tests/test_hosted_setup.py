"""Opening a notebook where users open it: the badges and setup cell of every notebook (one source,
scripts/sync_notebooks.py + configs/repository.yaml), the setup cell run in a subprocess as Colab or Kaggle
would run it (an empty working directory, a file:// repository instead of GitHub, a fake Drive and a fake
nvidia-smi; nothing real is mounted or downloaded), the pins shared by the CPU and GPU requirements, and the
Makefile's offline targets."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import distributions, version
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import sync_notebooks  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "configs" / "repository.yaml").read_text())
SLUG = CONFIG["url"].removeprefix("https://github.com/")
SETUP = sync_notebooks.setup_cell()


# --- badges and setup cell: every notebook, one source ---------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badges_open_this_notebook_of_the_configured_repository(path):
    first = nbformat.read(path, as_version=4).cells[0]
    links = re.findall(r"\]\((https://[^)\s]+)\)", first.source)
    blob = f"{SLUG}/blob/{CONFIG['ref']}/notebooks/{path.name}"
    assert f"https://colab.research.google.com/github/{blob}" in links, "run: python scripts/sync_notebooks.py"
    assert f"https://kaggle.com/kernels/welcome?src=https://github.com/{blob}" in links
    assert first.source.count("[![Open in Colab]") == 1 and first.source.count("[![Open in Kaggle]") == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_shared_setup_cell(path):
    code = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert code.source == sync_notebooks.setup_cell(name=path.stem), "run: python scripts/sync_notebooks.py"
    assert f'"{CONFIG["url"]}"' in code.source and f'"{CONFIG["ref"]}"' in code.source
    gpu = path.stem not in sync_notebooks.NO_GPU
    assert ("nvidia-smi" in code.source) == gpu and ("unsloth" in code.source) == gpu
    assert "@G " not in code.source and "@C " not in code.source


def test_compile_ratings_needs_no_gpu_stack():
    """compile_ratings' setup cell installs no GPU stack: what its cells import loads none of it."""
    assert sync_notebooks.NO_GPU == {"compile_ratings"}
    nb = nbformat.read(ROOT / "notebooks" / "compile_ratings.ipynb", as_version=4)
    imports = [ast.unparse(node) for cell in nb.cells[2:] if cell.cell_type == "code"
               for node in ast.parse(cell.source).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    gpu = ["torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets", "unsloth"]
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in gpu) + "\n".join(imports)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QLORA_BACKEND": "transformers"})
    assert len(imports) >= 5 and proc.returncode == 0, proc.stderr


def test_sync_rewrites_only_the_badges_and_the_setup_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n\n[![Open in Colab](old)](old)\n\nWhat the study asks."),
                nbformat.v4.new_code_cell('ROOT = next(p for p in [] if (p / "helpers").is_dir())'),
                nbformat.v4.new_code_cell("x = 1")]
    for _ in range(2):  # a second sync changes nothing
        nb = sync_notebooks.sync(nb, "addition")
        assert nb.cells[0].source == f"# Title\n\n{sync_notebooks.badge_line('addition')}\n\nWhat the study asks."
        assert nb.cells[1].source == SETUP and nb.cells[2].source == "x = 1"


def test_sync_keeps_a_notebook_without_a_setup_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("import helpers")]
    with pytest.raises(sync_notebooks.RepositoryError, match="not the setup cell"):
        sync_notebooks.sync(nb, "x")
    assert nb.cells[1].source == "import helpers"


@pytest.mark.parametrize("url", ["https://github.com/a/b.git", "git@github.com:a/b", "https://gitlab.com/a/b",
                                 "https://github.com/a/b/"])
def test_a_repository_url_that_is_not_a_github_page_is_one_line(tmp_path, url):
    (tmp_path / "repository.yaml").write_text(yaml.safe_dump({"url": url, "ref": "main"}))
    with pytest.raises(sync_notebooks.RepositoryError) as err:
        sync_notebooks.badge_line("addition", tmp_path / "repository.yaml")
    assert "\n" not in str(err.value) and "https://github.com/<owner>/<name>" in str(err.value)


# --- the setup cell on a hosted runtime (subprocess) ------------------------------------------------------------

@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A git repository standing in for GitHub: helpers/ (an empty __init__, so importing helpers.config does not
    load torch), the two files the install step reads, on branch main."""
    repo = tmp_path_factory.mktemp("origin")
    (repo / "helpers").mkdir()
    (repo / "helpers" / "__init__.py").write_text("")
    for name in ["helpers/config.py", "constraints.txt", "requirements-gpu.txt"]:
        (repo / name).write_text((ROOT / name).read_text())
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-C", str(repo)]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "fixture"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo


def fake_tools(where: Path, gpu: bool) -> Path:
    """nvidia-smi that finds a T4 (or fails as on a CPU runtime), and google.colab.drive.mount that only makes
    <mount point>/MyDrive and notes where it was asked to mount."""
    (where / "bin").mkdir(parents=True)
    smi = where / "bin" / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-test)'\n" if gpu else "#!/bin/sh\nexit 9\n")
    smi.chmod(0o755)
    colab = where / "py" / "google" / "colab"  # google/ without __init__: a namespace package, as installed
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text("")
    (colab / "drive.py").write_text("from pathlib import Path\n\n\ndef mount(path):\n"
                                    "    (Path(path) / 'MyDrive').mkdir(parents=True, exist_ok=True)\n"
                                    "    (Path(path) / 'mounted_at').write_text(str(path))\n")
    return where


STATE = """
import json as _json
import helpers.config as _config
print("STATE" + _json.dumps({"cwd": os.getcwd(), "root": str(ROOT), "repo_root": str(_config.REPO_ROOT),
                             "output_root": os.environ.get("QLORA_OUTPUT_ROOT"),
                             "installed": os.environ.get("QLORA_INSTALLED")}))
"""


def run_setup(tmp_path, cwd, *, hosted=None, gpu=True, env=None, replace=None, prologue="", pythonpath=(),
              name=""):
    """Run the setup cell of notebooks/<name>.ipynb (a GPU notebook's if no name; with `replace` applied to its
    text) in a fresh Python in `cwd`; returns (the completed process, the state it ended in or None)."""
    cell = sync_notebooks.setup_cell(name=name)
    for old, new in (replace or {}).items():
        assert cell.count(old) == 1, old
        cell = cell.replace(old, new)
    tools = fake_tools(tmp_path / f"tools-{len(list(tmp_path.glob('tools-*')))}", gpu)
    script = tools / "cell.py"
    script.write_text(prologue + cell + "\n" + STATE)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("QLORA_", "PIP_", "COLAB_", "KAGGLE_")) and k not in ("PYTHONPATH", "HF_HUB_OFFLINE")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full_env = {**base, "HOME": str(home), "PATH": f"{tools / 'bin'}:{os.environ['PATH']}",
                "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(tools / "py")]),
                "QLORA_INSTALLED": "1", **({hosted: "1"} if hosted else {}), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(script)], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120)
    state = next((json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("STATE")), None)
    return proc, state


def repo_env(origin):
    return {"QLORA_REPO_URL": f"file://{origin}", "QLORA_REPO_REF": "main"}


OFFLINE = "http://127.0.0.1:9/qlora-small-llms"  # nothing listens there: git fails as with no network


def git_out(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(repo, path, text, message="change"):
    """Write `path` in `repo` and commit it; returns the new commit."""
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-C", str(repo)]
    for args in (["add", path], ["commit", "-q", "-m", message]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return git_out(repo, "rev-parse", "HEAD")


@pytest.fixture
def moving(tmp_path, origin):
    """A copy of `origin` that a test may commit to (GitHub moving on after a session)."""
    return Path(shutil.copytree(origin, tmp_path / "moving-origin"))


def clone_lines(proc):
    """What the setup cell said about a clone an earlier session left."""
    return [line for line in proc.stdout.splitlines() if "the clone at" in line]


def test_inside_a_clone_and_not_hosted_it_only_finds_the_repository(tmp_path, origin):
    cwd = origin / "notebooks"  # where Jupyter and papermill (helpers.run_notebook) start a notebook
    proc, state = run_setup(tmp_path, cwd, gpu=False, env={"QLORA_INSTALLED": None})
    assert proc.returncode == 0, proc.stderr
    assert state["cwd"] == str(cwd) and state["repo_root"] == str(origin)
    assert state["output_root"] is None and state["installed"] is None and proc.stdout.startswith("STATE")


def test_outside_a_clone_and_not_hosted_it_says_what_to_do(tmp_path):
    proc, state = run_setup(tmp_path, tmp_path / "somewhere")
    assert proc.returncode == 1 and state is None
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"git clone {CONFIG['url']}" in proc.stderr and "start Jupyter inside the clone" in proc.stderr


@pytest.mark.parametrize("hosted, hint", [("COLAB_RELEASE_TAG", "Runtime > Change runtime type > T4 GPU"),
                                          ("KAGGLE_KERNEL_RUN_TYPE", "Settings > Accelerator > GPU T4 x2")])
def test_hosted_without_a_gpu_says_how_to_get_a_t4(tmp_path, origin, hosted, hint):
    cwd = tmp_path / "content"
    proc, state = run_setup(tmp_path, cwd, hosted=hosted, gpu=False, env=repo_env(origin))
    assert proc.returncode == 1 and state is None
    assert proc.stderr.strip().count("\n") == 0 and hint in proc.stderr, proc.stderr
    assert not any(cwd.iterdir()), "nothing is cloned before the runtime has a GPU"


def test_colab_clones_onto_drive_and_a_reset_runtime_finds_the_same_clone(tmp_path, origin):
    drive = tmp_path / "drive"
    args = dict(hosted="COLAB_RELEASE_TAG", env=repo_env(origin), replace={'"/content/drive"': f'"{drive}"'})
    proc, state = run_setup(tmp_path, tmp_path / "content", **args)
    clone = drive / "MyDrive" / "qlora-small-llms"
    assert proc.returncode == 0, proc.stderr
    assert (drive / "mounted_at").read_text() == str(drive)
    assert state["cwd"] == state["root"] == state["repo_root"] == str(clone)
    assert (clone / "helpers" / "config.py").is_file()
    assert state["output_root"] == str(clone / "benchmarks")
    # a runtime reset: a new empty /content, Drive as it was (with a run folder in it); GitHub as it was
    (clone / "benchmarks" / "addition").mkdir(parents=True)
    head = git_out(clone, "rev-parse", "HEAD")
    proc, state = run_setup(tmp_path, tmp_path / "content-after-reset", **args)
    assert proc.returncode == 0, proc.stderr
    assert state["root"] == str(clone) and (clone / "benchmarks" / "addition").is_dir()
    assert git_out(clone, "rev-parse", "HEAD") == head and clone_lines(proc) == [], "up to date: nothing to say"


def reset_and_move_on(tmp_path, moving, hosted="COLAB_RELEASE_TAG", env=None):
    """A first session clones (onto a fake Drive on Colab) and writes a run folder, then GitHub moves on; returns
    (the clone, the commit it was at, the commit GitHub is at, run_setup's arguments for the next session)."""
    drive = tmp_path / "drive"
    args = dict(hosted=hosted, env={**repo_env(moving), **(env or {})}, replace={'"/content/drive"': f'"{drive}"'})
    proc, state = run_setup(tmp_path, tmp_path / "session-1", **args)
    assert proc.returncode == 0, proc.stderr
    clone = Path(state["root"])
    (clone / "benchmarks" / "addition").mkdir(parents=True)
    (clone / "benchmarks" / "addition" / "checkpoint").write_text("step 40")
    old = git_out(clone, "rev-parse", "HEAD")
    new = commit(moving, "helpers/added_since.py", "NEW = 1\n")
    return clone, old, new, args


def where(tmp_path, clone, args, session):
    """Where session `session` starts: Colab a new empty /content, Kaggle /kaggle/working as it was."""
    return clone.parent if args["hosted"].startswith("KAGGLE") else tmp_path / f"session-{session}"


@pytest.mark.parametrize("hosted", ["COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"])
def test_a_clone_an_earlier_session_left_is_fast_forwarded_when_github_moves_on(tmp_path, moving, hosted):
    clone, old, new, args = reset_and_move_on(tmp_path, moving, hosted)
    assert git_out(clone, "rev-parse", "--is-shallow-repository") == "true"
    proc, state = run_setup(tmp_path, where(tmp_path, clone, args, 2), **args)
    assert proc.returncode == 0, proc.stderr
    assert clone_lines(proc) == [f"updated the clone at {clone} from {old[:7]} to {new[:7]} (a run begun before goes "
                                 f'on with this code; to keep {old[:7]}: REPO_REF = "{old}" in this cell)']
    assert state["root"] == str(clone) and git_out(clone, "rev-parse", "HEAD") == new
    assert (clone / "helpers" / "added_since.py").is_file() and not git_out(clone, "status", "--porcelain", "-uno")
    assert (clone / "benchmarks" / "addition" / "checkpoint").read_text() == "step 40", "run folders stay"
    assert git_out(clone, "rev-parse", "--is-shallow-repository") == "true", "only the new commits came"
    # the next session: nothing new, nothing said
    proc, _ = run_setup(tmp_path, where(tmp_path, clone, args, 3), **args)
    assert proc.returncode == 0 and clone_lines(proc) == [], proc.stdout


def test_a_clone_with_local_changes_stays_as_it_is_with_one_line(tmp_path, moving):
    clone, old, new, args = reset_and_move_on(tmp_path, moving)
    edited = (clone / "helpers" / "config.py").read_text() + "# my edit\n"
    (clone / "helpers" / "config.py").write_text(edited)
    proc, state = run_setup(tmp_path, tmp_path / "session-2", **args)
    assert proc.returncode == 0, proc.stderr
    [line] = clone_lines(proc)
    assert line.startswith(f"the clone at {clone} stays at {old[:7]}: it has local changes") and "stash" in line
    assert git_out(clone, "rev-parse", "HEAD") == old and state["root"] == str(clone)
    assert (clone / "helpers" / "config.py").read_text() == edited, "never discarded"
    assert not (clone / "helpers" / "added_since.py").exists()


def test_a_clone_with_its_own_commits_stays_as_it_is_with_one_line(tmp_path, moving):
    clone, old, new, args = reset_and_move_on(tmp_path, moving)
    mine = commit(clone, "notes.md", "mine\n")
    proc, _ = run_setup(tmp_path, tmp_path / "session-2", **args)
    assert proc.returncode == 0, proc.stderr
    [line] = clone_lines(proc)
    assert line.startswith(f"the clone at {clone} stays at {mine[:7]}: it has commits that main of ")
    assert f"git -C {clone} pull --rebase" in line and git_out(clone, "rev-parse", "HEAD") == mine


@pytest.mark.parametrize("hosted, then", [("COLAB_RELEASE_TAG", "run this cell again once online"),
                                          ("KAGGLE_KERNEL_RUN_TYPE", "on Kaggle turn on Settings > Internet")])
def test_an_offline_clone_stays_as_it_is_with_one_line(tmp_path, moving, hosted, then):
    clone, old, new, args = reset_and_move_on(tmp_path, moving, hosted)
    args["env"]["QLORA_REPO_URL"] = OFFLINE
    proc, state = run_setup(tmp_path, where(tmp_path, clone, args, 2), **args)
    assert proc.returncode == 0, proc.stderr
    [line] = clone_lines(proc)
    assert line.startswith(f"the clone at {clone} stays at {old[:7]}: could not fetch main from {OFFLINE} (")
    assert f"; to update: {then}" in line and git_out(clone, "rev-parse", "HEAD") == old
    assert state["root"] == str(clone)


def test_update_clone_false_keeps_the_clone_as_it_is(tmp_path, moving):
    clone, old, new, args = reset_and_move_on(tmp_path, moving)
    args["replace"]["update_clone = True"] = "update_clone = False"
    proc, _ = run_setup(tmp_path, tmp_path / "session-2", **args)
    assert proc.returncode == 0, proc.stderr
    assert clone_lines(proc) == [f"the clone at {clone} stays at {old[:7]}: update_clone = False"]
    assert git_out(clone, "rev-parse", "HEAD") == old


def test_a_commit_in_qlora_repo_ref_pins_the_clone(tmp_path, moving):
    """A researcher finishing a run keeps the code it began with: a full commit sha is cloned as such, never
    updated, not even fetched (offline is fine), and a clone updated past it goes back to it."""
    pin = git_out(moving, "rev-parse", "HEAD")
    clone, old, new, args = reset_and_move_on(tmp_path, moving, env={"QLORA_REPO_REF": pin})
    assert old == pin and git_out(clone, "status", "--porcelain", "-uno") == ""
    args["env"]["QLORA_REPO_URL"] = OFFLINE
    proc, _ = run_setup(tmp_path, tmp_path / "session-2", **args)
    assert proc.returncode == 0 and clone_lines(proc) == [], proc.stdout + proc.stderr
    assert git_out(clone, "rev-parse", "HEAD") == pin
    # without the pin it comes up to date; with it again it goes back (a commit it has: no network needed)
    proc, _ = run_setup(tmp_path, tmp_path / "session-3", **{**args, "env": repo_env(moving)})
    assert proc.returncode == 0 and git_out(clone, "rev-parse", "HEAD") == new, proc.stderr
    proc, _ = run_setup(tmp_path, tmp_path / "session-4", **args)
    assert proc.returncode == 0, proc.stderr
    assert clone_lines(proc) == [f"updated the clone at {clone} from {new[:7]} to {pin[:7]} (a run begun before goes "
                                 f'on with this code; to keep {new[:7]}: REPO_REF = "{new}" in this cell)']
    assert git_out(clone, "rev-parse", "HEAD") == pin and (clone / "benchmarks" / "addition").is_dir()


def test_kaggle_clones_into_its_working_directory(tmp_path, origin):
    working = tmp_path / "kaggle" / "working"
    proc, state = run_setup(tmp_path, working, hosted="KAGGLE_KERNEL_RUN_TYPE", env=repo_env(origin))
    assert proc.returncode == 0, proc.stderr
    assert state["cwd"] == state["repo_root"] == str(working / "qlora-small-llms")
    assert state["output_root"] == str(working / "qlora-small-llms" / "benchmarks")


@pytest.mark.parametrize("hosted", ["KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG"])
def test_kaggle_says_its_working_directory_lasts_only_with_persistence_on(tmp_path, origin, hosted):
    proc, _ = run_setup(tmp_path, tmp_path / "working", hosted=hosted, env=repo_env(origin),
                        replace={"use_drive = True": "use_drive = False"})
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stdout.splitlines() if "Persistence" in line]
    if hosted == "COLAB_RELEASE_TAG":
        assert said == []
    else:
        assert said == ['Kaggle keeps /kaggle/working (the clone, run folders, checkpoints) for your next session only '
                        'if Settings > Persistence is "Files only" or "Variables & Files" before this one ends (best '
                        'effort).']


@pytest.mark.parametrize("hosted", ["COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"])
def test_compile_ratings_runs_on_a_runtime_without_a_gpu_and_installs_no_gpu_stack(tmp_path, origin, hosted):
    site, env = install_env(tmp_path)
    proc, state = run_setup(tmp_path, tmp_path / "working", hosted=hosted, gpu=False, name="compile_ratings",
                            env={**repo_env(origin), **env}, replace={"use_drive = True": "use_drive = False"})
    assert proc.returncode == 0, proc.stderr
    assert "GPU" not in proc.stdout + proc.stderr
    assert state["repo_root"] == str(tmp_path / "working" / "qlora-small-llms")
    assert state["installed"] is None and not list(distributions(path=[str(site)])), "nothing installed"
    # a package the runtime lacks comes at the pin the GPU notebooks install
    proc, state = run_setup(tmp_path, tmp_path / "working", hosted=hosted, gpu=False, name="compile_ratings",
                            env={**repo_env(origin), **env}, replace={"use_drive = True": "use_drive = False"},
                            prologue="import sys\nsys.modules['statsmodels'] = None  # not installed\n")
    assert proc.returncode == 0, proc.stderr
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions(path=[str(site)])}
    assert installed == {"statsmodels": pins(ROOT / "requirements-gpu.txt")["statsmodels"]}


def test_colab_without_drive_and_without_gpu_runs_on_the_cpu_when_allowed(tmp_path, origin):
    replace = {"use_drive = True": "use_drive = False", "allow_cpu = False": "allow_cpu = True"}
    proc, state = run_setup(tmp_path, tmp_path / "content", hosted="COLAB_RELEASE_TAG", gpu=False,
                            env=repo_env(origin), replace=replace)
    assert proc.returncode == 0, proc.stderr
    assert "No GPU: running on the CPU" in proc.stdout and "T4 GPU" in proc.stdout
    assert state["repo_root"] == str(tmp_path / "content" / "qlora-small-llms")


@pytest.mark.parametrize("hosted, then", [
    ("KAGGLE_KERNEL_RUN_TYPE", "on Kaggle turn on Settings > Internet (a phone-verified account), then run all again."),
    ("COLAB_RELEASE_TAG", "a fork: set QLORA_REPO_URL.")])
def test_a_repository_that_cannot_be_cloned_is_one_line(tmp_path, hosted, then):
    env = {"QLORA_REPO_URL": OFFLINE, "QLORA_REPO_REF": "main"}
    proc, state = run_setup(tmp_path, tmp_path / "working", hosted=hosted, env=env,
                            replace={"use_drive = True": "use_drive = False"})
    assert proc.returncode == 1 and state is None
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"Could not clone {OFFLINE} at main (git says why above); {then}"


# --- the install step, offline: metadata-only wheels, installed into a target folder (never into this venv) ---

def stub_wheel(folder: Path, name: str, ver: str, requires: tuple[str, ...] = ()) -> None:
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{ver}"  # a wheel's file name has no '-' inside its fields
    dist = f"{stem}.dist-info"
    declared = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n{declared}")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")


def named(path: Path) -> dict[str, Requirement]:
    """{canonical name: requirement} of a requirements/constraints file (options and comments left out)."""
    reqs = [Requirement(line.split("#")[0]) for line in path.read_text().splitlines()
            if line.split("#")[0].strip() and not line.startswith("-")]
    return {canonicalize_name(r.name): r for r in reqs}


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of the exact pins in a requirements/constraints file."""
    return {name: str(r.specifier).removeprefix("==") for name, r in named(path).items()}


# what the setup cell installs with --no-deps (pins from constraints.txt)
NO_DEPS = re.findall(r'"([\w-]+)"', re.search(r'pip_install\("--no-deps", "-c", [^,]+, ([^)]*)\)', SETUP).group(1))


# the torch that unsloth 2026.10.9 (constraints.txt) declares in its metadata, which --no-deps leaves unchecked
UNSLOTH_TORCH = "torch<2.15.0,>=2.4.0"


def install_env(tmp_path, torch: str | None = None):
    """pip as the install step runs it, but offline: stub wheels of every pinned GPU package (unsloth declaring
    its torch) and of the runtime's torch (this one's, or `torch`)."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    constraints = pins(ROOT / "constraints.txt")
    for name in [*pins(ROOT / "requirements-gpu.txt"), *NO_DEPS]:
        stub_wheel(wheels, name, constraints[canonicalize_name(name)],
                   requires=(UNSLOTH_TORCH,) if name == "unsloth" else ())
    stub_wheel(wheels, "torch", torch or version("torch"))
    return site, {"QLORA_INSTALLED": None, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
                  "PIP_FIND_LINKS": str(wheels), "PIP_TARGET": str(site), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_install_step_installs_the_pinned_gpu_stack_beside_the_runtimes_torch(tmp_path, origin):
    site, env = install_env(tmp_path)
    proc, state = run_setup(tmp_path, tmp_path / "working", hosted="KAGGLE_KERNEL_RUN_TYPE",
                            env={**repo_env(origin), **env})
    assert proc.returncode == 0, proc.stderr
    assert state["installed"] == "1"
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions(path=[str(site)])}
    constraints = pins(ROOT / "constraints.txt")
    wanted = [*pins(ROOT / "requirements-gpu.txt"), *map(canonicalize_name, NO_DEPS)]
    assert {"unsloth", "unsloth-zoo", "cut-cross-entropy", "transformers", "trl", "peft"} <= set(wanted)
    assert installed.pop("torch") == version("torch"), "torch is held at the version the runtime has"
    assert installed == {n: constraints[n] for n in wanted}


def runtime_torch(tmp_path, ver: str) -> Path:
    """A folder holding only the metadata of the runtime's own torch at `ver` (as Colab ships it)."""
    dist = tmp_path / "runtime" / f"torch-{ver}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {ver}\n")
    return dist.parent


@pytest.mark.parametrize("runtime, note", [
    ("2.15.0+cu128", "Note: this runtime has torch 2.15.0+cu128; Unsloth 2026.10.9 declares torch<2.15.0,>=2.4.0. "
                     "If loading a model fails: !pip install 'torch<2.15.0,>=2.4.0' torchvision --index-url "
                     "https://download.pytorch.org/whl/cu128 in a new cell, restart the session, then run all again."),
    ("2.3.1", "Note: this runtime has torch 2.3.1; Unsloth 2026.10.9 declares torch<2.15.0,>=2.4.0. If loading a "
              "model fails: !pip install 'torch<2.15.0,>=2.4.0' torchvision in a new cell, restart the session, "
              "then run all again."),
    ("2.14.1+cu126", None)])
def test_a_runtime_torch_unsloth_does_not_declare_gets_one_line_with_the_fix(tmp_path, origin, runtime, note):
    """Colab/Kaggle may ship a torch newer than the pinned Unsloth declares: the cell keeps it (Unsloth's own
    notebooks do; --no-deps) and says in one line what to run if loading then fails, from the runtime's CUDA
    build's index."""
    site, env = install_env(tmp_path, torch=runtime)
    proc, state = run_setup(tmp_path, tmp_path / "working", hosted="COLAB_RELEASE_TAG",
                            env={**repo_env(origin), **env}, pythonpath=[site, runtime_torch(tmp_path, runtime)])
    assert proc.returncode == 0 and state["installed"] == "1", proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("Note: this runtime has torch")]
    assert notes == ([note] if note else [])
    assert {d.metadata["Name"]: d.version for d in distributions(path=[str(site)])}["torch"] == runtime  # kept


def test_install_that_replaces_an_imported_package_asks_for_a_restart(tmp_path, origin):
    site, env = install_env(tmp_path)
    old = tmp_path / "old_site"  # an older unsloth the kernel already imported, behind where pip installs
    (old / "unsloth").mkdir(parents=True)
    (old / "unsloth" / "__init__.py").write_text("")
    (old / "unsloth-2026.1.1.dist-info").mkdir()
    (old / "unsloth-2026.1.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: unsloth\n"
                                                                 "Version: 2026.1.1\n")
    (old / "unsloth-2026.1.1.dist-info" / "RECORD").write_text("unsloth/__init__.py,,\n")
    proc, state = run_setup(tmp_path, tmp_path / "working", hosted="KAGGLE_KERNEL_RUN_TYPE",
                            env={**repo_env(origin), **env}, prologue="import unsloth  # noqa\n",
                            pythonpath=[site, old])
    assert proc.returncode == 1 and state is None, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Updated unsloth, already imported: restart the session")


# --- pins: one constraints file for the CPU and the GPU path ---------------------------------------------------

def test_every_package_is_pinned_once_in_constraints_and_nowhere_differently():
    lines = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    names = [canonicalize_name(Requirement(line).name) for line in lines if line]
    assert len(names) == len(set(names)), "a package pinned twice in constraints.txt"
    constraints = pins(ROOT / "constraints.txt")
    assert all(re.fullmatch(r"[\w.+]+", v) for v in constraints.values()), "constraints.txt: name==version only"

    cpu, gpu = named(ROOT / "requirements.txt"), named(ROOT / "requirements-gpu.txt")
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text().splitlines()
    assert all(not r.specifier for r in cpu.values()), "requirements.txt: names only, versions in constraints.txt"
    for name in [*cpu, *gpu, *map(canonicalize_name, NO_DEPS)]:
        assert name in constraints, f"{name} is not pinned in constraints.txt"
    # requirements-gpu.txt writes its pins out (see its header): each the same as constraints.txt
    assert {n: str(r.specifier) for n, r in gpu.items()} == {n: f"=={constraints[n]}" for n in gpu}
    # any other pin in the repository's install files agrees too
    for path in ["requirements-dev.txt", "Makefile", "scripts/sync_notebooks.py"]:
        for name, ver in re.findall(r"([A-Za-z][\w.-]*)==([\w.+]+)", (ROOT / path).read_text()):
            if canonicalize_name(name) in constraints:
                assert constraints[canonicalize_name(name)] == ver, f"{path}: {name}=={ver}"


def test_the_gpu_install_never_names_torch_or_what_is_built_for_it():
    gpu = named(ROOT / "requirements-gpu.txt")
    assert not {"torch", "torchvision", "torchaudio", "triton", "xformers"} & set(gpu)
    options = [line for line in (ROOT / "requirements-gpu.txt").read_text().splitlines() if line.startswith("-")]
    assert not options, "no -c constraints.txt here: it pins torch (and the CPU stack) for the CPU path"


# --- Makefile: only demo and test are offline ------------------------------------------------------------------

def test_only_demo_and_test_run_offline(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than the requirements: install is up to date, nothing runs
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    seen = {}
    for target in ["demo", "test", "sweep"]:
        probe = f"{sys.executable} -c 'import os; print(\"OFFLINE=\" + str(os.environ.get(\"HF_HUB_OFFLINE\")))'"
        proc = subprocess.run(["make", "-s", "-C", str(ROOT), target, f"VENV={venv}", f"PY={probe}"], env=env,
                              capture_output=True, text=True, timeout=60)
        seen[target] = {line for line in proc.stdout.splitlines() if line.startswith("OFFLINE=")}
    assert seen == {"demo": {"OFFLINE=1"}, "test": {"OFFLINE=1"}, "sweep": {"OFFLINE=None"}}


def test_run_folders_and_workbooks_follow_the_setup_cells_output_root(tmp_path, monkeypatch):
    """On Colab/Kaggle the setup cell sets QLORA_OUTPUT_ROOT (Drive, /kaggle/working): relative output
    paths go beside it, inputs stay in the repository."""
    from helpers.benchmark import workbook_path
    from helpers.config import REPO_ROOT, repo_path
    from helpers.runs import run_folder
    from helpers.studies import study_config

    monkeypatch.setenv("QLORA_OUTPUT_ROOT", str(tmp_path / "keep" / "benchmarks"))
    train = study_config("train_math", {"model": "smollm2-135m"})
    assert run_folder("train_math", train).parent == tmp_path / "keep" / "benchmarks" / "train_math"
    bench = study_config("benchmark", {"model": "smollm2-135m", "task": "math", "stages": ["base"]})
    assert workbook_path(bench) == tmp_path / "keep" / "benchmark_data" / "smollm2-135m-math.xlsx"
    assert repo_path("questions/math.yaml") == REPO_ROOT / "questions" / "math.yaml"
    monkeypatch.delenv("QLORA_OUTPUT_ROOT")
    assert run_folder("train_math", train).parent == REPO_ROOT / "benchmarks" / "train_math"
