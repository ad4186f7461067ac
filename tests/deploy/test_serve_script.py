"""`scripts/serve` installs only when it has to, so a second start needs no package index.

The real install would fetch from the package index: instead the script runs in a copy of the
project with a fake `python3` first on the PATH, which logs each call and builds a fake .venv
(its `receiver` prints the arguments it got). The decision itself is also checked alone, by
sourcing the script, which then only defines its functions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "serve"

# Stands in for both `python3` and `.venv/bin/python`: logs the call, imitates the effect.
FAKE_PYTHON = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$*" in
    "-m venv "*) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
    "-m pip install -q .")
        printf '#!/bin/sh\\necho "receiver $*"\\n' > .venv/bin/receiver
        chmod +x .venv/bin/receiver ;;
    "-c import receiver") [ -x .venv/bin/receiver ] || exit 1 ;;
esac
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the script looks at: itself, pyproject.toml, the package, migrations."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, root / "scripts" / "serve")
    shutil.copy2(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "receiver", root / "receiver")
    shutil.copytree(ROOT / "migrations", root / "migrations")
    return root


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return bin_dir


def serve(project: Path, fake_bin: Path, calls: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "CALLS": str(calls)}
    calls.write_text("")
    return subprocess.run(
        ["bash", str(project / "scripts" / "serve"), "--port", "9999"],
        cwd="/",  # the script finds the project from its own path
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def decide(project: Path) -> str:
    result = subprocess.run(
        ["bash", "-c", "source scripts/serve && install_decision"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_a_second_start_does_not_install_again(
    project: Path, fake_bin: Path, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"

    first = serve(project, fake_bin, calls)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "receiver serve --port 9999\n"
    assert "python -m pip install -q ." in calls.read_text().splitlines()

    second = serve(project, fake_bin, calls)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "receiver serve --port 9999\n"
    assert calls.read_text().splitlines() == ["python -c import receiver"]  # no pip, no venv
    for start in (first, second):  # how to call the command, every time
        assert "The receiver command: .venv/bin/receiver" in start.stderr

    (project / "receiver" / "new_module.py").write_text("X = 1\n")  # e.g. after `git pull`
    third = serve(project, fake_bin, calls)
    assert third.returncode == 0, third.stderr
    assert "python -m pip install -q ." in calls.read_text().splitlines()


def test_the_decision(project: Path) -> None:
    venv = project / ".venv" / "bin"

    assert decide(project) == "install"  # no .venv
    venv.mkdir(parents=True)
    for name in ("python", "receiver"):
        (venv / name).write_text("#!/bin/sh\nexit 0\n")
        (venv / name).chmod(0o755)
    assert decide(project) == "install"  # no stamp: an install of unknown origin
    subprocess.run(
        ["bash", "-c", 'source scripts/serve && write_stamp "$(project_hash)"'],
        cwd=project,
        check=True,
        timeout=30,
    )
    assert decide(project) == "skip"

    cache = project / "receiver" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    (project / "README.md").write_text("docs only\n")
    assert decide(project) == "skip"  # neither changes the installed code

    original = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(original + "\n# a new dependency\n")
    assert decide(project) == "install"
    (project / "pyproject.toml").write_text(original)
    assert decide(project) == "skip"

    (project / "migrations" / "999_new.sql").write_text("SELECT 1;\n")
    assert decide(project) == "install"
    (project / "migrations" / "999_new.sql").unlink()

    (venv / "python").write_text("#!/bin/sh\nexit 1\n")  # the system Python changed under it
    assert decide(project) == "install"
