"""rlsd installed from its wheel, as a user without the repository has it: the shipped recipes and evaluation data
come with the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import REPO
from rlsd_cli.recipes import read_recipe


def _purelib(python) -> str:
    return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_wheel_install_lists_and_shows_the_recipes_and_reads_the_embedded_data(tmp_path):
    # Built from a copy of what the wheel is made of: setuptools builds in the source tree (build/, *.egg-info).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for name in ("rlsd_cli", "recipes"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(wheels), str(source)], check=True, capture_output=True, cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
                    *map(str, wheels.glob("rlsd-*.whl"))], check=True, capture_output=True)
    # The dependencies come from the tests' environment, after the new venv's own packages; its .pth files (our
    # editable install among them) are not read from there, so rlsd_cli is the wheel's.
    (Path(_purelib(python)) / "tests-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def rlsd(*args):
        result = subprocess.run([str(venv / "bin" / "rlsd"), *args], capture_output=True, text=True, cwd=outside,
                                env={"PATH": "/usr/bin:/bin", "RLSD_HOME": str(tmp_path / "home"), "COLUMNS": "200"})
        assert result.returncode == 0, result.stderr
        return result.stdout

    where = subprocess.run([str(python), "-c", "import rlsd_cli; print(rlsd_cli.__file__)"], capture_output=True, text=True,
                           cwd=outside, check=True).stdout
    assert where.startswith(str(venv))
    listed = rlsd("recipes", "list")
    shipped = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
    assert shipped and all(name in listed for name in shipped)
    shown = rlsd("recipes", "show", "cpu-sft")
    assert all(key in shown for key, _, _ in read_recipe(REPO / "recipes" / "cpu-sft.yaml"))
    # Scoring given responses needs no model: only the embedded GSM8K copy.
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"index": 1, "response": "Answer: 18"}\n')
    assert '"accuracy": 1.0' in rlsd("eval", "gsm8k", "--responses", str(responses), "--json")
