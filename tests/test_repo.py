"""Repository hygiene the project promises: no generated notebooks or weights in git, no unsafe loading."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.splitlines()


def test_no_ipynb_checkpoints_or_caches_are_tracked():
    bad = [f for f in _tracked() if f.endswith((".ipynb", ".safetensors", ".bin", ".pt", ".pth", ".ckpt"))
           or "__pycache__" in f or f.startswith("runs/")]
    assert not bad, f"generated files in git: {bad}"


def test_no_unsafe_loading_or_code_execution_in_the_package_and_notebooks():
    pattern = re.compile(r"trust_remote_code\s*=\s*True|weights_only\s*=\s*False|pickle\.load"
                         r"|(?<![.\w])eval\(|(?<![.\w])exec\(")
    offenders = []
    for path in list((ROOT / "lib").rglob("*.py")) + list((ROOT / "notebooks").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_trust_remote_code_is_off_by_default():
    import bertbench as bb

    assert bb.GlueConfig.from_env(environ={}).trust_remote_code is False


def test_committed_outputs_are_real_runs_not_tiny():
    from bertbench.results import load_results

    for csv in sorted((ROOT / "outputs").glob("*.csv")):
        frame = load_results(csv)
        assert "tiny" not in set(frame["preset"]), f"{csv.name} holds tiny-preset rows (tests must not write there)"
