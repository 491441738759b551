"""The generated project's CI passes on its first push: a fresh `git clone` of the generated
repository (only what was committed), then every `run:` step of its GitHub workflow, in order,
read from the YAML, as a hosted runner would run them.

`uses:` steps need GitHub itself: the clone stands for actions/checkout, and for
actions/setup-python a virtual environment of this interpreter, which the workflow's own
Install step then installs the project into. That environment sees this venv's packages (a
.pth file), so the install resolves the dependencies from here instead of downloading them
again; the project itself is installed as the step says. Cloud remotes are not exercised:
a runner reaches them with the repository's secrets, which a test does not have.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from conftest import bake, changed_stages, dvc, pipeline_results, project_env, run, stages_run

e2e = pytest.mark.e2e
# The expressions the generated workflows use in `if:` (anything else fails the test, so a new
# one is added here deliberately rather than read wrongly).
STEP_OUTPUT_IF = re.compile(r"^steps\.(?P<step>[\w-]+)\.outputs\.(?P<name>\w+) == '(?P<value>[^']*)'$")


def runner_python(root: Path) -> Path:
    """What actions/setup-python gives: a Python with pip on PATH (here seeing this venv's packages,
    with their commands, as if the Install step had installed them into it)."""
    venv = root / "runner-python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "template-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for data in ("share", "etc"):  # data files the packages installed (nbconvert's templates, jupyter's config)
        if (Path(sys.prefix) / data).is_dir():
            (venv / data).symlink_to(Path(sys.prefix) / data)
    here = Path(sys.executable).parent
    for command in here.iterdir():
        target = venv / "bin" / command.name
        if command.is_file() and not command.is_symlink() and not target.exists():
            first, _, rest = command.read_bytes().partition(b"\n")
            interpreter = Path(first[2:].decode(errors="replace").strip() or "/")
            if first.startswith(b"#!") and interpreter.name.startswith("python") and interpreter.parent.resolve() == here.resolve():
                target.write_bytes(f"#!{venv / 'bin' / 'python'}\n".encode() + rest)
                target.chmod(0o755)
    return venv / "bin"


def should_run(condition: str | None, failed: bool, outputs: dict[str, dict[str, str]]) -> bool:
    if condition is None:
        return not failed
    condition = condition.strip()
    if condition == "always()":
        return True
    match = STEP_OUTPUT_IF.match(condition)
    assert match, f"the test does not know how a runner reads `if: {condition}`"
    return not failed and outputs.get(match["step"], {}).get(match["name"]) == match["value"]


def read_outputs(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


# The generated notebook tests run the ten notebooks on a small sample, then nbval re-executes the
# stored notebooks. Five of those take as long as their `dvc repro` stage (about four minutes
# together) and are proven to rerun to the same bytes by tests/test_reproducible.py; the workflow's
# own step runs here with pytest's PYTEST_ADDOPTS narrowing nbval to the five cheap ones.
CHEAP_NOTEBOOKS = ["business_case", "success_criteria", "data_selection", "data_pipeline", "monitoring"]
NARROW_NOTEBOOK_TESTS = {"PYTEST_ADDOPTS": "-rA -k '" + " or ".join(["small_sample", *CHEAP_NOTEBOOKS]) + "'"}


# The generated unit tests (three minutes) run in tests/test_pipeline.py on this Python and in
# tests/test_python_versions.py after a fresh install of the newest one, as the README says; the
# workflow's step is the same command, so no test here runs it again.
UNIT_TESTS = ("Unit tests",)
# Steps whose outcome does not depend on the DVC remote: the first-push test runs them, the remote tests skip them.
FIRST_PUSH_COVERS = ("Lint (nbstripout, ruff)",)


def run_github_workflow(
    clone: Path, work: Path, skip: tuple[str, ...] = (), extra_env: dict[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """Each step of the lifecycle job in order; returns {step name: (outcome, output)}, fails on a failure.

    ``skip`` names steps another test covers (outcome "skipped by the test"); ``extra_env`` is added
    to every step's environment."""
    steps = yaml.safe_load((clone / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["lifecycle"]["steps"]
    python_bin = runner_python(work)
    env = project_env(clone)
    env.pop("PYTHONPATH")  # the runner has only what the Install step installs
    env.update(PATH=f"{python_bin}:{env['PATH']}", VIRTUAL_ENV=str(python_bin.parent), CI="true",
               GITHUB_ACTIONS="true", RUNNER_TEMP=str(work), GITHUB_STEP_SUMMARY=str(work / "summary.md"))
    env.update(extra_env or {})
    outcomes, outputs, failed = {}, {}, None
    for number, step in enumerate(steps, start=1):
        name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
        if "uses" in step:
            outcomes[name] = ("uses: stood in for", "")
            continue
        if name in skip:
            outcomes[name] = ("skipped by the test", "")
            continue
        if not should_run(step.get("if"), failed is not None, outputs):
            outcomes[name] = ("skipped", "")
            continue
        output_file = work / f"output-{number}"
        output_file.touch()
        script = work / f"step-{number}.sh"
        script.write_text(step["run"])
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=clone,
                                env={**env, "GITHUB_OUTPUT": str(output_file)}, capture_output=True, text=True,
                                timeout=1800)
        if "id" in step:
            outputs[step["id"]] = read_outputs(output_file)
        outcomes[name] = ("passed" if result.returncode == 0 else "failed", result.stdout + result.stderr)
        if result.returncode != 0 and failed is None:
            failed = f"step '{name}' failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert failed is None, failed
    return outcomes


def readme_block(project: Path, heading: str) -> str:
    """The first bash block of the generated README after ``heading``: what a user would copy."""
    text = (project / "README.md").read_text()
    after = text[text.index(heading):]
    start = after.index("```bash\n") + len("```bash\n")
    return after[start:after.index("```", start)]


def fresh_clone(project: Path, clone: Path) -> Path:
    run(["git", "clone", "--quiet", str(project), str(clone)], project.parent)
    return clone


@e2e
def test_first_push_passes_without_a_remote(tmp_path, request):
    """Default answers (remote none): the raw data is committed, so the whole workflow passes; its
    notebook tests (small sample, then nbval; see NARROW_NOTEBOOK_TESTS) leave the project as dvc made it,
    and every result is byte for byte the shared reproduced project's: the same bytes wherever the chain runs."""
    project = bake(tmp_path / "bake")
    clone = fresh_clone(project, tmp_path / "runner" / project.name)
    assert (clone / "data/raw/adult.csv.gz").is_file(), "the raw data is not in git"
    steps = yaml.safe_load((clone / ".github/workflows/ci.yml").read_text())["jobs"]["lifecycle"]["steps"]
    unit = next(step["run"] for step in steps if step.get("name") == "Unit tests")
    assert unit.startswith('pytest tests -m "not notebooks"'), unit  # what the tests named at UNIT_TESTS run
    outcomes = run_github_workflow(clone, tmp_path, skip=UNIT_TESTS, extra_env=NARROW_NOTEBOOK_TESTS)
    assert outcomes["Reproduce the lifecycle"][0] == outcomes["Notebook tests"][0] == "passed", outcomes
    notebook_tests = outcomes["Notebook tests"][1]
    summary = [line for line in notebook_tests.splitlines() if " passed" in line][-1]
    assert "6 passed" in summary and "skipped" not in summary and "failed" not in summary, notebook_tests[-3000:]
    ran = {line.split("[")[-1].rstrip("]") for line in notebook_tests.splitlines()
           if line.startswith("PASSED") and "nbval[" in line}
    assert ran == set(CHEAP_NOTEBOOKS), notebook_tests[-3000:]
    assert changed_stages(clone) == ""
    # asked for only now: the fixture waits for the shared chain, which ran meanwhile on the other worker
    elsewhere, here = pipeline_results(request.getfixturevalue("reproduced_project")), pipeline_results(clone)
    assert here.keys() == elsewhere.keys(), sorted(set(here) ^ set(elsewhere))
    changed = [path for path in here if here[path] != elsewhere[path]]
    assert not changed, f"a fresh clone's chain wrote {len(changed)} files otherwise: {changed[:10]}"
    summary = (tmp_path / "summary.md").read_text()
    assert "## Metrics against main" in summary
    # the default run simulates a lasting drift: retraining is recommended, and no webhook is configured
    assert "- Retraining recommended: **yes**" in summary and "- Alert: not sent: " in summary, summary


@e2e
def test_local_remote_out_of_reach_skips_the_lifecycle_and_says_so(tmp_path):
    """remote local on a hosted runner: the directory is not there. The steps that need the data
    are skipped with a warning that names the directory (lint and unit tests are the same as on
    the first push, and run there)."""
    project = bake(tmp_path / "bake", remote="local")
    clone = fresh_clone(project, tmp_path / "runner" / project.name)
    outcomes = run_github_workflow(clone, tmp_path, skip=(*UNIT_TESTS, *FIRST_PUSH_COVERS))
    assert outcomes["Install"][0] == "passed" and outcomes["Reproduce the lifecycle"][0] == "skipped", outcomes
    for step in ("Notebook tests", "Monitoring verdict and alert (step 09)", "Render the reports (reports/index.html)"):
        assert outcomes[step][0] == "skipped", outcomes
    summary = (tmp_path / "summary.md").read_text()
    assert str(tmp_path / "runner" / f"{project.name}-dvc-storage") in summary, summary


@e2e
def test_local_remote_within_reach_pulls_and_passes(tmp_path, reproduced_project):
    """remote local where the runner has the directory (a self-hosted runner that mounts it): the
    team pushed its results as the README says, the workflow pulls them and reproduces nothing."""
    project = bake(tmp_path / "bake", remote="local")
    # the team's reproduced lifecycle: the reproduced default project's results (same template,
    # same answers but the remote), committed and pushed to the project's remote
    shutil.copy2(reproduced_project / "dvc.lock", project / "dvc.lock")
    for tables in ("reports/metrics", "reports/plots"):  # the outputs DVC leaves to git
        shutil.copytree(reproduced_project / tables, project / tables)
    shutil.copytree(reproduced_project / ".dvc" / "cache", project / ".dvc" / "cache", dirs_exist_ok=True)
    share = readme_block(project, "## Sharing results")  # git add ... && git commit ...; dvc push
    run(["bash", "-e", "-c", share], project, env={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    storage = tmp_path / "bake" / f"{project.name}-dvc-storage"
    clone = fresh_clone(project, tmp_path / "runner" / project.name)
    shutil.copytree(storage, tmp_path / "runner" / storage.name)  # the runner's mount of the same storage
    # here the question is what the pull restores
    outcomes = run_github_workflow(clone, tmp_path, skip=(*UNIT_TESTS, *FIRST_PUSH_COVERS, "Notebook tests"))
    repro = outcomes["Reproduce the lifecycle"]
    assert repro[0] == "passed" and stages_run(repro[1]) == [], repro
    assert changed_stages(clone) == ""


@pytest.mark.parametrize("reachable", [False, True])
def test_gitlab_local_remote_pulls_where_the_runner_has_it(tmp_path, reachable):
    """The GitLab job's lines before `dvc repro`, from the remote check on, as one script (as GitLab
    runs them) in a fresh clone: without the directory the job ends passed with a warning
    (the allowed exit code), with it the raw data is pulled."""
    project = bake(tmp_path / "bake", ci="gitlab", remote="local")
    dvc(project, "push")
    storage = tmp_path / "bake" / f"{project.name}-dvc-storage"
    clone = fresh_clone(project, tmp_path / "runner" / project.name)
    if reachable:
        shutil.copytree(storage, tmp_path / "runner" / storage.name)
    job = yaml.safe_load((clone / ".gitlab-ci.yml").read_text())["lifecycle"]
    script = job["script"]
    start = next(i for i, line in enumerate(script) if "remote.storage.url" in line)
    lines = script[start:script.index("dvc repro")]
    result = subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=clone, env=project_env(clone),
                            capture_output=True, text=True)
    if reachable:
        assert result.returncode == 0, result.stderr
        assert (clone / "data/raw/adult.csv.gz").read_bytes() == (project / "data/raw/adult.csv.gz").read_bytes()
    else:
        assert result.returncode in job["allow_failure"]["exit_codes"], (result.returncode, result.stdout, result.stderr)
        assert f"DVC remote {tmp_path / 'runner' / storage.name} is a directory this runner does not have" in result.stdout
        assert not (clone / "data/raw/adult.csv.gz").exists()
