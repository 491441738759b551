"""Fast checks of generated projects: files, rendering, notebooks, pipeline graph, bad answers."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException, OutputDirExistsException

from conftest import DEFAULT_CONTEXT, STEPS, TEMPLATE, bake, dvc, load_yaml, run

NOTEBOOKS = [f"notebooks/{i:02d}_{s}.ipynb" for i, s in enumerate(STEPS, start=1)]


def project_files(project: Path) -> set[str]:
    tracked = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout
    return set(tracked.split())


def expected_files(package: str = "income_outreach", ci: str = "github") -> set[str]:
    files = {
        ".cookiecutter.json", ".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore", ".pre-commit-config.yaml",
        "LICENSE", "Makefile",
        "README.md", "dvc.yaml", "params.yaml", "pyproject.toml", "readiness_checklist.yaml",
        "data/README.md", "data/production/.gitkeep",
        # without a remote (the default) the embedded data is in git, so that a fresh clone has it
        "data/raw/adult.csv.gz", "data/external/adult_test.csv.gz",
        *NOTEBOOKS,
    }
    template_src = TEMPLATE / "{{cookiecutter.project_slug}}" / "src" / "{{cookiecutter.package_name}}"
    files |= {f"src/{package}/{p.relative_to(template_src).as_posix()}" for p in template_src.rglob("*.py")}
    template_tests = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests"
    files |= {f"tests/{p.relative_to(template_tests).as_posix()}" for p in template_tests.rglob("*.py")}
    ci_files = {"github": {".github/workflows/ci.yml"}, "gitlab": {".gitlab-ci.yml"}, "none": set()}
    return files | ci_files[ci]


def test_default_project_file_set(default_project):
    assert default_project.name == "income-outreach"
    assert project_files(default_project) == expected_files()
    # the raw data is in the work tree
    assert (default_project / "data/raw/adult.csv.gz").stat().st_size > 100_000


def test_nothing_left_unrendered(default_project):
    for path in default_project.rglob("*"):
        rel = path.relative_to(default_project).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".dvc/cache/")) and path.suffix != ".gz":
            text = path.read_text(errors="ignore")
            if rel.startswith(".github/"):
                text = re.sub(r"\$\{\{[^}]*\}\}", "", text)  # GitHub Actions expressions are meant to stay
            assert "{{" not in text and "{%" not in text, f"unrendered Jinja in {path}"
            assert not re.search(r"cookiecutter\.(?!json)[a-z_]+", text), f"template variable left in {path}"


def test_answers_saved_for_replay(default_project):
    saved = json.loads((default_project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert saved["project_name"] == DEFAULT_CONTEXT["project_name"]
    assert saved["package_name"] == "income_outreach"
    assert "_output_dir" not in saved


def test_initial_commit_and_clean_tree(default_project):
    log = subprocess.run(["git", "log", "--oneline"], cwd=default_project, capture_output=True, text=True, check=True).stdout
    assert len(log.strip().splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=default_project, capture_output=True, text=True, check=True).stdout
    assert status == ""


def parameters_cell(notebook: dict) -> dict:
    cells = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one parameters cell"
    names = {}
    for node in ast.parse("".join(cells[0]["source"])).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds assignments only"
        names[node.targets[0].id] = ast.literal_eval(node.value)
    return names


def test_notebooks_are_clean_and_parameters_match_params_yaml(default_project):
    params = load_yaml(default_project / "params.yaml")
    stages = load_yaml(default_project / "dvc.yaml")["stages"]
    for stage, path in zip(STEPS, NOTEBOOKS):
        notebook = json.loads((default_project / path).read_text())
        assert notebook["metadata"]["kernelspec"]["name"] == "python3"
        assert set(notebook["metadata"]) == {"kernelspec", "language_info"}
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path} is stored with outputs"
        assert notebook["cells"][0]["cell_type"] == "markdown" and notebook["cells"][0]["source"][0].startswith("# ")
        assert notebook["cells"][-1]["cell_type"] == "markdown" or "Summary" in "".join(notebook["cells"][-2]["source"])
        expected = {}
        for entry in stages[stage]["params"]:
            if not isinstance(entry, str):
                continue  # tracked by DVC, not injected (step 04 reads step 05's split parameters itself)
            section, _, key = entry.partition(".")
            expected.update({key: params[section][key]} if key else params[section])
        assert parameters_cell(notebook) == expected, f"{path}: parameters cell differs from params.yaml"


def test_dvc_stages_form_the_chain(default_project):
    stages = load_yaml(default_project / "dvc.yaml")["stages"]
    # the steps in order, and the prediction log's snapshot feeding step 09 and nothing before it:
    # taken when asked (`make monitor` forces it), never "always changed", so that a second
    # `dvc repro` does nothing and `dvc status` can be clean
    snapshot = stages.pop("production_log")
    assert tuple(stages) == STEPS
    assert "always_changed" not in snapshot and "live snapshot" in snapshot["cmd"] and "deps" not in snapshot
    assert snapshot["params"] == ["monitoring.window", "monitoring.windows", "serving.prediction_log"]
    assert snapshot["outs"] == ["data/production_log"] and "data/production_log" in stages["monitoring"]["deps"]
    produced: dict[str, str] = {}
    for position, (name, stage) in enumerate(stages.items()):
        assert f"run_step {name}" in stage["cmd"]
        assert any(p == name or str(p).startswith(f"{name}") for p in stage["params"]), f"{name} does not track its params section"
        if position:
            owners = {owner for d in stage["deps"] for out, owner in produced.items() if d == out or d.startswith(out + "/")}
            assert owners, f"stage {name} depends on no output of an earlier stage"
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                produced[next(iter(out)) if isinstance(out, dict) else out] = name
    dag = dvc(default_project, "dag", "--md")
    assert "business_case" in dag.stdout and "retraining" in dag.stdout


def test_metrics_and_plots_declared(default_project):
    stages = load_yaml(default_project / "dvc.yaml")["stages"]
    metrics = [next(iter(m)) for s in stages.values() for m in s.get("metrics", [])]
    plots = [next(iter(p)) for s in stages.values() for p in s.get("plots", [])]
    assert "reports/metrics/modeling.json" in metrics
    assert "reports/plots/roc.csv" in plots and "reports/plots/selection_rate.csv" in plots


@pytest.mark.parametrize("license_name", DEFAULT_CONTEXT["license"])
def test_license_options(tmp_path, license_name):
    project = bake(tmp_path, license=license_name, ci="none")
    text = (project / "LICENSE").read_text()
    first = {"MIT": "MIT License", "BSD-3-Clause": "BSD 3-Clause License", "Apache-2.0": "Apache License",
             "Proprietary": "All rights reserved"}[license_name]
    assert first in text and DEFAULT_CONTEXT["author_name"] in text
    pyproject = (project / "pyproject.toml").read_text()
    assert (f'license = "{license_name}"' in pyproject) == (license_name != "Proprietary")
    assert project_files(project) == expected_files(ci="none")


@pytest.mark.parametrize("version", DEFAULT_CONTEXT["python_version"])
def test_python_version_option(tmp_path, version):
    project = bake(tmp_path, python_version=version, project_name="Churn Radar")
    assert project.name == "churn-radar"
    assert f'requires-python = ">={version}"' in (project / "pyproject.toml").read_text()
    assert project_files(project) == expected_files(package="churn_radar")
    run([sys.executable, "-c", "import churn_radar.cli, churn_radar.runtime.run_step"], project)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_slug": "has space"}, "project_slug 'has space' is not a valid directory name"),
        ({"package_name": "bad-name"}, "package_name 'bad-name' is not a valid Python package name"),
        ({"package_name": "import"}, "package_name 'import' is a Python keyword"),
        ({"author_email": "nobody"}, "author_email 'nobody' is not an e-mail address"),
        ({"project_name": 'Say "hello"'}, "project_name 'Say \"hello\"' contains a quote"),
        ({"description": "two\nlines"}, "description 'two\\nlines' contains a newline"),
    ],
)
def test_bad_answers_fail_cleanly(tmp_path, answers, message):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE),
         *[f"{k}={v}" for k, v in answers.items()]],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert f"ERROR: {message}" in result.stderr
    assert list(tmp_path.iterdir()) == [], "a failed generation left files behind"


@pytest.mark.parametrize(("key", "value"), [("license", "WTFPL"), ("python_version", "2.7"), ("ci", "jenkins")])
def test_bad_choices_are_refused_by_cookiecutter(tmp_path, key, value):
    """Choice answers outside the list never reach the hooks: cookiecutter refuses them, naming the variable."""
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE), f"{key}={value}"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert f"{value} provided for choice variable {key}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_is_refused(tmp_path):
    bake(tmp_path)
    with pytest.raises(OutputDirExistsException):
        bake(tmp_path)


def test_notebooks_are_built_from_their_sources():
    result = subprocess.run([sys.executable, str(TEMPLATE / "scripts" / "build_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dev_requirements_satisfy_generated_dependencies(default_project):
    """requirements-dev.txt (CI) pins versions inside the generated pyproject's ranges."""
    import tomllib

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((default_project / "pyproject.toml").read_text())
    declared = [Requirement(r) for r in pyproject["project"]["dependencies"] + pyproject["project"]["optional-dependencies"]["dev"]]
    pins = {}
    for line in (TEMPLATE / "requirements-dev.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version.strip()
    for req in declared:
        name = req.name.lower()
        assert name in pins, f"{name} is a dependency of the generated project but not pinned in requirements-dev.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {req.specifier}"


def test_every_import_is_a_declared_dependency(default_project):
    """Third-party modules the package and notebooks import are all declared in pyproject.toml."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = tomllib.loads((default_project / "pyproject.toml").read_text())
    declared = {canonicalize_name(Requirement(r).name) for r in pyproject["project"]["dependencies"]}
    sources = [p.read_text() for p in (default_project / "src").rglob("*.py")]
    for path in NOTEBOOKS:
        notebook = json.loads((default_project / path).read_text())
        sources += ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    modules = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(modules - set(sys.stdlib_module_names) - {"income_outreach", "IPython"}):
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert owners & declared, f"module {module!r} (from {owners or 'nowhere'}) is not a declared dependency"


STEP_FILE_RE = re.compile(r"""step\.(?:read_report\("(?P<stage>\w+)", "(?P<file>[^"]+)"\)|path\(f?["'](?P<path>[^"'{]+))""")


def test_every_file_a_notebook_touches_is_a_declared_dependency_or_output(default_project):
    """A file a step reads but dvc.yaml does not list is a stale result waiting to happen."""
    stages = load_yaml(default_project / "dvc.yaml")["stages"]
    report_dirs = {name: f"reports/{i:02d}_{name}" for i, name in enumerate(STEPS, start=1)}
    found, problems = 0, []
    for number, name in enumerate(STEPS, start=1):
        stage = stages[name]
        declared = [d for d in stage["deps"]] + [
            next(iter(o)) if isinstance(o, dict) else o for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])
        ]
        notebook = json.loads((default_project / NOTEBOOKS[number - 1]).read_text())
        code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
        touched = set()
        for match in STEP_FILE_RE.finditer(code):
            if match["stage"]:
                touched.add(f"{report_dirs[match['stage']]}/{match['file']}")
            else:
                touched.add(match["path"].rstrip("/"))
        found += len(touched)
        undeclared = sorted(p for p in touched if not any(p == d or p.startswith(d.rstrip("/") + "/") or d.startswith(p + "/") for d in declared))
        problems += [f"stage {name} reads or writes {path} without declaring it in dvc.yaml" for path in undeclared]
    assert not problems, "\n".join(problems)
    assert found >= 20, "too few file accesses found: the pattern is out of date"


def test_the_readme_layout_names_every_module_with_the_ownership_its_first_line_states(default_project):
    """A newcomer finds which files are theirs from the README; the module says the same in its first line."""
    readme = (default_project / "README.md").read_text()
    layout = readme[readme.index("## Layout") : readme.index("## Extending")].splitlines()
    package = next(p.parent for p in (default_project / "src").glob("*/modeling.py"))
    for module in sorted(package.glob("*.py")):
        if module.name == "__init__.py":
            continue
        line = next((line for line in layout if re.search(rf"(^|[ ,]){re.escape(module.name)}\b", line)), None)
        assert line, f"{module.name} is not in the README's layout"
        owner = next(o for o in ("adapt freely", "adapt with care", "machinery") if line.rstrip().endswith(o))
        first = ast.get_docstring(ast.parse(module.read_text())).splitlines()[0]
        assert owner in first.lower(), f"{module.name}: the README says {owner!r}, its first line: {first!r}"
