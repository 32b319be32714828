"""pyproject.toml names the dependencies, constraints.txt pins them (one source of versions), and the
requirements files (for `pip install -r`) name the same packages; the console scripts run once installed."""

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SELF = PROJECT["name"]


def canonical(name: str) -> str:
    """PEP 503: pip treats unsloth_zoo, Unsloth-Zoo and unsloth.zoo as one name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip()).group(0))


def requirement_lines(path: Path):
    """The requirement lines of a requirements/constraints file (no comments, no -r/-c options)."""
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            yield line


def names(path: Path) -> set:
    return {requirement_name(line) for line in requirement_lines(path)}


def declared(*groups: str) -> set:
    """The names in pyproject's dependencies ("base") and extras, without the package itself ([dev] takes [eval])."""
    lists = [PROJECT["dependencies"] if g == "base" else PROJECT["optional-dependencies"][g] for g in groups]
    return {requirement_name(r) for reqs in lists for r in reqs} - {canonical(SELF)}


PINS = {requirement_name(line): line for line in requirement_lines(ROOT / "constraints.txt")}


def test_every_dependency_is_named_without_a_version_and_pinned_in_constraints():
    every = [*PROJECT["dependencies"], *(r for reqs in PROJECT["optional-dependencies"].values() for r in reqs)]
    versioned = [r for r in every if re.search(r"[<>=!~;@ ]", r)]
    assert not versioned, f"pyproject.toml names packages only; versions go to constraints.txt: {versioned}"
    unpinned = sorted(n for n in declared("base", *PROJECT["optional-dependencies"]) if "==" not in PINS.get(n, ""))
    assert not unpinned, f"add to constraints.txt: {', '.join(f'{n}==<version>' for n in unpinned)}"


def test_requirements_files_name_what_pyproject_declares():
    assert names(ROOT / "requirements.txt") == declared("base", "eval")
    assert names(ROOT / "requirements-dev.txt") == declared("dev") - declared("eval")
    assert names(ROOT / "requirements-gpu.txt") == declared("gpu")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text()


@pytest.mark.slow  # pip builds and installs the package: about 15 s
def test_console_scripts_run_after_an_editable_install(tmp_path):
    """`pip install -e .` into a scratch venv that sees this one's packages (never into this venv): the
    scripts pyproject declares exist and answer --help."""
    scripts = PROJECT["scripts"]
    assert {"qlora-run", "qlora-sweep"} <= set(scripts)
    source = tmp_path / "src"  # a copy, so the build's egg-info never lands in the repository
    for name in ("helpers", "configs", "notebooks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                              "--no-build-isolation", "--no-index", "-e", source], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    for script in scripts:
        done = subprocess.run([venv / "bin" / script, "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith(f"usage: {script} ")


def make_install_lines(tmp_path, *args) -> list[str]:
    done = subprocess.run(["make", "-n", "-C", str(ROOT), "install", f"VENV={tmp_path / 'venv'}", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if " pip install " in line]


def test_make_install_takes_the_cpu_torch_first_then_the_package_with_the_pins(tmp_path):
    lines = make_install_lines(tmp_path)
    torch = next(i for i, line in enumerate(lines) if line.endswith(" torch"))
    package = next(i for i, line in enumerate(lines) if '-e ".[dev]"' in line)
    assert torch < package, "torch first: the package's install then keeps it instead of taking PyPI's CUDA torch"
    assert "--index-url https://download.pytorch.org/whl/cpu" in lines[torch] and "--no-deps" in lines[torch]
    assert all("-c constraints.txt" in line for line in lines if "--upgrade pip" not in line)
    assert "--index-url" not in make_install_lines(tmp_path, "TORCH_INDEX=")[torch]  # pip's own index
