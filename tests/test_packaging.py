"""What ships: the wheel holds the templates and the demo's samples, and they work."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from tests.helpers import assert_no_traceback

CHECKOUT = Path(__file__).parent.parent
PACKAGE = CHECKOUT / "mailbot"

pytestmark = pytest.mark.slow


def _package_files(pattern: str) -> set[str]:
    return {path.relative_to(CHECKOUT).as_posix() for path in PACKAGE.glob(pattern)}


def _can_build_in_place() -> bool:
    """Whether the venv's setuptools builds wheels (70.1+, or with ``wheel``)."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    return version >= (70, 1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources, so the checkout stays clean."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    shutil.copytree(
        PACKAGE, source / "mailbot", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
    if _can_build_in_place():
        command.append("--no-build-isolation")
    subprocess.run(
        [*command, str(source)], check=True, capture_output=True, timeout=300
    )
    [built] = out.glob("mailbot-*.whl")
    return built


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.parametrize("language", ["ca", "es"])
def test_the_wheel_holds_every_template(wheel: Path, language: str) -> None:
    templates = _package_files(f"templates/{language}/*.j2")

    assert {f"mailbot/templates/{language}/booked.j2"} <= templates
    assert set() == templates - _names(wheel)


def test_the_wheel_holds_the_demo_samples(wheel: Path) -> None:
    samples = _package_files("samples/*.eml") | _package_files("samples/*.csv")

    assert 8 <= len(samples)
    assert set() == samples - _names(wheel)


def test_the_wheel_alone_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(unpacked)}

    where = subprocess.run(
        [sys.executable, "-c", "import mailbot; print(mailbot.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-m", "mailbot.cli", "demo"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert str(unpacked / "mailbot" / "__init__.py") == where.stdout.strip()
    assert 0 == done.returncode, done.stderr
    assert_no_traceback(done)
    assert "-> booked" in done.stdout
    assert "X-Mailbot-Outcome: booked" in done.stdout
