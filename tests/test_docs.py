"""README.md and docs/ as a newcomer meets them: a short front door, a page per notebook, every table generated from
the committed results, every link resolving, every test they cite existing, and "What's where" matching the tree."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

from bertbench.docs_tables import BLOCKS, generated, page_block

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(path.stem for path in (ROOT / "notebooks").glob("*.py"))
TOPIC_PAGES = ("benchmarks", "traps", "scale-out", "results-schema", "data", "configuration")
# tracked files that "What's where" may cover by naming their folder (data and result files, test modules)
COVERED_BY_FOLDER = ("outputs/", "bench/results/", "lib/bertbench/data/splits/", "lib/bertbench/references/",
                     "tests/data/", "tests/experiments/", "docs/")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in out.splitlines() if (ROOT / name).exists()]


def test_readme_is_a_short_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the detail belongs in docs/"
    for command in ("make glue", "make test", "make lab"):
        assert any(command in line for line in lines), command


def test_docs_has_a_page_per_notebook_and_the_topic_pages():
    missing = [f"docs/{name}.md" for name in (*NOTEBOOKS, *TOPIC_PAGES) if not (ROOT / "docs" / f"{name}.md").is_file()]
    assert not missing, f"missing pages: {missing}"


def test_every_notebook_has_its_engine_named_after_it():
    """notebooks/NN_name.py runs bertbench.experiments.name (a module or a subpackage)."""
    for name in NOTEBOOKS:
        engine = name.split("_", 1)[1]
        importlib.import_module(f"bertbench.experiments.{engine}")


def test_no_module_is_longer_than_about_600_lines():
    long = {str(path.relative_to(ROOT)): count for path in (ROOT / "lib").rglob("*.py")
            if (count := len(path.read_text().splitlines())) > 600}
    assert not long, f"split these by concern: {long}"


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_table_in_readme_and_docs_is_the_one_generated_from_outputs(name):
    block = BLOCKS[name]
    if block.source and not (ROOT / "outputs" / block.source).is_file():
        pytest.skip(f"no committed {block.source} yet")
    page = (ROOT / block.page).read_text()
    assert page_block(page, name) == generated(name, ROOT / "outputs"), \
        f"{block.page}'s {name} table differs from outputs/: regenerate with `python -m bertbench.docs_tables --update`"


def test_every_relative_link_resolves():
    broken = []
    for page in _pages():
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_every_test_cited_in_readme_and_docs_exists():
    text = "\n".join(page.read_text() for page in _pages())
    defined = set(re.findall(r"^def (test_\w+)", "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py")),
                             flags=re.M))
    cited = {name for name in re.findall(r"\b(test_\w+)\b(?!\.py)", text) if not name.endswith("_")}
    assert cited and cited <= defined, f"docs cite unknown tests: {sorted(cited - defined)}"
    files = set(re.findall(r"\b((?:[\w-]+/)*test_\w+\.py)\b", text))
    assert all((ROOT / "tests" / name).is_file() or (ROOT / name).is_file() for name in files), \
        [name for name in files if not (ROOT / "tests" / name).is_file() and not (ROOT / name).is_file()]


def test_whats_where_names_every_file_in_the_tree():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## What's where"):]
    section = section[:section.find("\n## ", 4)] if "\n## " in section[4:] else section
    missing = []
    for name in _tracked():
        if name.startswith(COVERED_BY_FOLDER) and any(folder in section for folder in COVERED_BY_FOLDER
                                                        if name.startswith(folder)):
            continue
        path = Path(name)
        parents = [Path(*path.parts[i:-1]).as_posix() + "/" for i in range(len(path.parts) - 1)]
        named = name in section or (f"`{path.name}`" in section or f"{path.name}" in section) and (
            len(path.parts) == 1 or any(parent in section for parent in parents))
        if not named:
            missing.append(name)
    assert not missing, f"README's What's where does not mention: {missing}"


def test_notebook_03_s_time_is_given_per_make_target_that_wrote_its_rows():
    from bertbench.docs_tables import _glue_command

    assert _glue_command("minilm", '{"lr": 5e-05}') == "make glue-cpu-3seeds"
    assert _glue_command("minilm", '{"lr": 1e-04, "lr_grid": [2e-05, 5e-05, 0.0001]}') == "make glue-reference"
    assert _glue_command("mlm-roberta-preln-mini-cpu", '{"lr": 5e-05}') == "make glue-pretrained"
    assert _glue_command("mlm-roberta-preln-mini-cpu", '{"lr_grid": [2e-05]}') == "make glue-reference-pretrained"


def test_published_rows_stand_beside_the_chosen_rate_only():
    """docs/03's table of published dev numbers takes bertbench's cell from the rate a finished sweep chose (never a
    sweep point, never a sweep still under way) and each published cell from references/glue_published.csv, saying
    which metric a single-metric cell is."""
    import pandas as pd
    from support import sweep_run as run

    from bertbench.docs_tables import glue_published_markdown

    rows = run("mrpc", 2e-5, 0.99, 0.70) + run("mrpc", 5e-5, 0.98, 0.75) + run("mrpc", 1e-4, 0.81, 0.80)
    rows += run("rte", 2e-5, 0.52, 0.54)
    lines = glue_published_markdown(pd.DataFrame(rows)).splitlines()
    assert "| mrpc | 81.0 (1) | 88.9 | 88.0 | 87.5 |" in lines  # the chosen rate, not the better sweep points
    assert "| rte | – | 68.8 | 66.7 | 59.9 |" in lines  # 1 of 3 rates run: nothing chosen yet
    assert any(line.startswith("- ELECTRA-Small") and "mrpc accuracy" in line for line in lines)
    no_grid = run("mrpc", 1e-4, 0.81, 0.80, grid=())
    assert glue_published_markdown(pd.DataFrame(no_grid)) == ""  # a study without a sweep has no such table
    # a second reference study (another model) is a second column of the same table, with its own line under it
    other = [{**row, "model": "own", "run_id": "own-" + row["run_id"]}
             for row in run("mrpc", 2e-5, 0.60, 0.65) + run("mrpc", 5e-5, 0.62, 0.60) + run("mrpc", 1e-4, 0.64, 0.61)]
    lines = glue_published_markdown(pd.DataFrame(rows + other)).splitlines()
    assert sum(line.startswith("| task |") for line in lines) == 1
    assert "| task | bertbench `m` | bertbench `own` | MiniLM-L6-H384 (v1, uncased) |" in lines[2]
    assert "| mrpc | 81.0 (1) | 60.0 (1) | 88.9 | 88.0 | 87.5 |" in lines  # own: 2e-5 chosen on held-out
    assert "| rte | – | – | 68.8 | 66.7 | 59.9 |" in lines
    assert sum(line.startswith(("- bertbench `m`:", "- bertbench `own`:")) for line in lines) == 2


def test_two_checkpoints_of_one_pretraining_name_are_two_tables_each_named_by_its_weights():
    """`make pretrain` run twice: the GLUE rows of both checkpoints carry model `mlm-...` and differ only in the
    weights' fingerprint (the config's `checkpoint`), so docs/03 shows two tables, each titled with its fingerprint."""
    import json

    import pandas as pd
    from support import sweep_run as run

    from bertbench.docs_tables import glue_studies

    rows = []
    for fingerprint in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        for row in run("sst2", 1e-4, 0.6, 0.6):
            config = {**json.loads(row["config"]), "checkpoint": fingerprint}
            rows.append({**row, "run_id": f"{row['run_id']}-{fingerprint}", "config": json.dumps(config)})
    titles = [title for title, _ in glue_studies(pd.DataFrame(rows))]
    assert len(titles) == 2 and all(f"(weights `{f * 12}`" in t for f, t in zip("ab", titles, strict=True))
    assert "weights" not in glue_studies(pd.DataFrame(run("sst2", 1e-4, 0.6, 0.6)))[0][0]  # the packaged model's


def test_a_glue_table_says_its_harmonic_mean_is_undefined_where_a_task_scores_zero():
    """CoLA's MCC is 0 for a model that predicts one class: the harmonic mean has no value, and the table says why
    instead of printing nan."""
    import pandas as pd
    from support import glue_run

    from bertbench.docs_tables import glue_markdown

    config = '{"lr": 0.0001}'
    rows = glue_run("m", "cola", 0, 0.0, config=config) + glue_run("m", "sst2", 0, 0.8, config=config)
    text = glue_markdown(pd.DataFrame(rows))
    assert "harmonic undefined (a task score ≤ 0)" in text and "nan" not in text
    assert "harmonic 0.8000" in glue_markdown(pd.DataFrame(glue_run("m", "sst2", 0, 0.8, config=config)))
