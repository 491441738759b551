"""The generated project as a team lives in it: task runner, notebook hygiene, CI files,
remote storage, shareable reports and JupyterLab.

Fast checks are unmarked; the ones that need a reproduced project are marked ``e2e``.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_CONTEXT, STEPS, TEMPLATE, bake, changed_stages, dvc, package_of, project_env, report, run, stages_run, step_name

e2e = pytest.mark.e2e
NAMES = [step_name(s) for s in STEPS]
CLOUD_URLS = {"s3": "s3://team-bucket/income-outreach", "gcs": "gs://team-bucket/income-outreach",
              "azure": "azure://team-container/income-outreach"}
BIN = Path(sys.executable).parent


def git(project: Path, *args: str) -> str:
    return run(["git", *args], project).stdout


# --- README ---------------------------------------------------------------------------------


def test_readme_prompt_table_matches_cookiecutter_json():
    """One row per prompt, in cookiecutter.json's order; choice rows name the default first, then the others."""
    context = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    section = (TEMPLATE / "README.md").read_text().split("\n## Prompts\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    prompts = [k for k in context if not k.startswith("_")]
    assert [name for name, _ in rows] == prompts
    defaults = dict(rows)
    for name in prompts:
        if isinstance(context[name], list):
            cell = defaults[name]
            assert cell.startswith(context[name][0]), f"README default of {name}: {cell!r}"
            assert all(option in cell for option in context[name]), f"README misses an option of {name}"


# --- Makefile -------------------------------------------------------------------------------


def test_makefile_help_lists_every_task(default_project):
    result = run(["make", "--no-print-directory", "help"], default_project)
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"setup", "sync-params", "repro", "test", "test-unit", "test-notebooks", "lint", "lab", "serve", "report", "clean"} <= listed
    assert run(["make", "--no-print-directory"], default_project).stdout == result.stdout, "help is the default goal"
    for line in result.stdout.splitlines():
        assert len(line.split(maxsplit=1)) == 2, f"task without a description: {line!r}"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("test", ["-m pytest tests -m \"not notebooks\"", "-m dvc repro", "-m pytest tests -m notebooks"]),
        ("repro", ["-m {package}.cli sync-params", "-m dvc repro"]),
        ("lint", ["-m pre_commit run --all-files"]),
        ("report", ["-m dvc repro", "-m {package}.runtime.report"]),
        ("serve", ["-m {package}.cli serve --host 127.0.0.1 --port 8000"]),
        ("lab", ["-m jupyter lab"]),
    ],
)
def test_makefile_tasks_run_the_project_tools(default_project, target, expected):
    dry = run(["make", "--no-print-directory", "-n", target, f"PYTHON={sys.executable}"], default_project).stdout
    position = -1
    for command in (c.format(package=package_of(default_project)) for c in expected):
        found = dry.find(command, position + 1)
        assert found > position, f"`make {target}` does not run {command!r} (in order):\n{dry}"
        position = found


# --- notebook hygiene -------------------------------------------------------------------------


def pre_commit(project: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pre_commit", "run", *args], project, check=check, timeout=600)


def test_pre_commit_config_is_local_only(default_project):
    config = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "hooks must not be fetched from anywhere"
    assert {"nbstripout", "sync-params", "ruff-check", "ruff-format"} <= set(hooks)
    assert hooks["sync-params"]["entry"].endswith("cli sync-params --check")
    assert "jupyter" in hooks["ruff-format"]["types_or"] and "jupyter" in hooks["ruff-check"]["types_or"]


def test_nbstripout_keeps_the_stored_notebooks_and_restores_a_saved_one(tmp_path):
    project = bake(tmp_path, ci="none")
    result = pre_commit(project, "nbstripout", "--all-files")
    assert result.returncode == 0, result.stdout
    assert git(project, "status", "--porcelain") == "", "the stored notebooks are not in stripped form"
    # What JupyterLab writes after a run: outputs, counts, full language_info, widget state.
    path = project / "notebooks" / "02_success_criteria.ipynb"
    stored = path.read_bytes()
    notebook = json.loads(stored)
    for count, cell in enumerate((c for c in notebook["cells"] if c["cell_type"] == "code"), start=1):
        cell["execution_count"] = count
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
        cell["metadata"]["execution"] = {"iopub.status.busy": "2025-01-01T00:00:00.000000Z"}
    notebook["metadata"]["language_info"].update(
        {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
         "nbconvert_exporter": "python", "pygments_lexer": "ipython3", "version": "3.11.2"})
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert pre_commit(project, "nbstripout", "--files", str(path.relative_to(project))).returncode == 1
    assert path.read_bytes() == stored, "nbstripout does not restore the stored notebook byte for byte"


def test_pre_commit_passes_on_a_fresh_project(tmp_path):
    project = bake(tmp_path, ci="none")
    result = pre_commit(project, "--all-files")
    changed = git(project, "status", "--porcelain")
    assert result.returncode == 0 and not changed, f"{result.stdout[-6000:]}\nchanged:\n{changed}"
    # a parameters cell that no longer equals params.yaml stops the commit, naming the stage and the key
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("\n  cv_folds: ", "\n  cv_folds: 7 #", 1))
    refused = pre_commit(project, "sync-params", "--files", "params.yaml")
    assert refused.returncode == 1 and "modeling: modeling.cv_folds is" in refused.stdout and ", 7 in params.yaml" in refused.stdout, refused.stdout


# --- CI files -----------------------------------------------------------------------------------


def run_scripts_parse_in_bash(scripts: list[str]) -> None:
    for script in scripts:
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert checked.returncode == 0, f"shell syntax error in:\n{script}\n{checked.stderr}"


def check_github_workflow(project: Path, remote: str) -> None:
    workflow = project / ".github" / "workflows" / "ci.yml"
    assert not (project / ".gitlab-ci.yml").exists()
    schema = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)], project)
    assert "ok" in schema.stdout
    steps = yaml.safe_load(workflow.read_text())["jobs"]["lifecycle"]["steps"]
    scripts = [s["run"] for s in steps if "run" in s]
    run_scripts_parse_in_bash(scripts)
    joined = "\n".join(scripts)
    for command in ('pip install -e ".[dev]"', "pre-commit run --all-files", 'pytest tests -m "not notebooks"',
                    "dvc repro", "pytest tests -m notebooks", "dvc metrics diff origin/main --md"):
        assert command in joined, f"the workflow does not run {command!r}"
    assert joined.index("dvc repro") < joined.index("pytest tests -m notebooks") < joined.index("dvc metrics diff")
    summary = next(s["run"] for s in steps if "dvc metrics diff" in s.get("run", ""))
    assert '>> "$GITHUB_STEP_SUMMARY"' in summary
    assert ("dvc pull" in joined) == (remote != "none"), "CI pulls from the remote (a directory: where the runner has it)"
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "metrics diff against main needs the main branch"


@pytest.mark.parametrize("remote", ["none", "local", "gcs"])
def test_gitlab_ci_is_valid(tmp_path, remote):
    url = CLOUD_URLS.get(remote, "/srv/dvc-storage" if remote == "local" else "")
    project = bake(tmp_path, ci="gitlab", remote=remote, remote_url=url)
    config_path = project / ".gitlab-ci.yml"
    assert not (project / ".github").exists()
    run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(config_path)], project)
    config = yaml.safe_load(config_path.read_text())
    job = config["lifecycle"]
    assert job["stage"] in config.get("stages", ["build", "test", "deploy"])
    for key in ("script", "after_script"):
        assert isinstance(job[key], list) and all(isinstance(line, str) for line in job[key]), key
    run_scripts_parse_in_bash(job["script"] + job["after_script"])
    script = "\n".join(job["script"])
    for command in ('pip install -e ".[dev]"', "pre-commit run --all-files", 'pytest tests -m "not notebooks"',
                    "dvc repro", "pytest tests -m notebooks"):
        assert command in script
    assert ("dvc pull" in script) == (remote != "none")
    assert any("dvc metrics diff origin/main --md" in line for line in job["after_script"])
    assert "metrics-diff.md" in job["artifacts"]["paths"] and config["variables"]["GIT_DEPTH"] == "0"


# --- remote storage (and the GitHub workflow for each) -------------------------------------------


DVC_EXTRAS = {"s3": "dvc[s3]", "gcs": "dvc[gs]", "azure": "dvc[azure]"}  # the dependency each remote needs


@pytest.mark.parametrize(("remote", "extra"), [(r, DVC_EXTRAS.get(r, "dvc")) for r in DEFAULT_CONTEXT["remote"]])
def test_remote_option_configures_dvc_and_ci(tmp_path, remote, extra):
    url = CLOUD_URLS.get(remote, "/srv/dvc-storage" if remote == "local" else "")
    project = bake(tmp_path, ci="github", remote=remote, remote_url=url)
    check_github_workflow(project, remote)
    assert f'"{extra}>=' in (project / "pyproject.toml").read_text()
    remotes = dvc(project, "remote", "list").stdout.split()
    if remote == "none":
        assert remotes == []
        return
    assert remotes[0] == "storage" and "(default)" in remotes
    expected = CLOUD_URLS.get(remote, "/srv/dvc-storage")
    assert remotes[1] == expected
    assert dvc(project, "config", "core.remote").stdout.strip() == "storage"
    saved = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert saved["remote"] == remote and saved["remote_url"] == expected


def test_local_remote_default_is_a_sibling_directory_and_holds_the_raw_data(tmp_path):
    """The default URL for `local` is relative to the project; push and a clone's pull work."""
    project = bake(tmp_path / "work", ci="none", remote="local")
    dvc(project, "push")
    storage = tmp_path / "work" / "income-outreach-dvc-storage"
    assert storage.is_dir() and any(storage.rglob("*")), "the relative remote URL does not resolve next to the project"
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(project), str(clone)], tmp_path)
    assert not (clone / "data/raw/adult.csv.gz").exists()
    # the clone sits elsewhere: point it at the same storage (a shared disk would be at the same place)
    dvc(clone, "remote", "modify", "--local", "storage", "url", str(storage))
    # no dvc.lock before the first `dvc repro`: the stages' outputs are not in the remote yet
    dvc(clone, "pull", "--allow-missing")
    assert (clone / "data/raw/adult.csv.gz").read_bytes() == (project / "data/raw/adult.csv.gz").read_bytes()


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"remote": "s3", "remote_url": "gs://bucket/x"}, "remote_url 'gs://bucket/x' is not a s3 URL"),
        ({"remote": "gcs"}, "remote_url is empty; remote 'gcs' needs one, e.g. gs://bucket/path"),
        ({"remote": "none", "remote_url": "/srv/x"}, "remote_url '/srv/x' is given but remote is 'none'"),
    ],
)
def test_bad_remote_answers_fail_cleanly(tmp_path, answers, message):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(TEMPLATE),
         *[f"{k}={v}" for k, v in answers.items()]],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and f"ERROR: {message}" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture()
def team_copy(reproduced_project, tmp_path) -> Path:
    """A copy of the reproduced project (git history and DVC cache included) to commit in."""
    copy = tmp_path / "origin" / reproduced_project.name
    shutil.copytree(reproduced_project, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("html", "index.html", "dvc_plots", "failed"))
    return copy


def tree_digest(root: Path, parts: list[str]) -> dict[str, bytes]:
    files = {}
    for part in parts:
        path = root / part
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file():
                files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


@e2e
def test_remote_push_then_clone_pull_restores_everything(team_copy, tmp_path):
    storage = tmp_path / "storage"
    dvc(team_copy, "remote", "add", "-d", "-f", "storage", str(storage))
    git(team_copy, "add", "-A")
    git(team_copy, "commit", "--quiet", "-m", "Lifecycle reproduced")
    assert git(team_copy, "status", "--porcelain") == ""
    dvc(team_copy, "push")
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(team_copy), str(clone)], tmp_path)
    parts = ["data/raw", "data/external", "data/interim", "data/processed", "data/monitored", "models", "reports"]
    assert not (clone / "models" / "model.skops").exists()  # without a remote the raw data itself is in git
    dvc(clone, "pull")
    expected = tree_digest(team_copy, parts)
    restored = tree_digest(clone, parts)
    assert sorted(restored) == sorted(expected), set(expected) ^ set(restored)
    assert all(restored[p] == expected[p] for p in expected), [p for p in expected if restored[p] != expected[p]]
    for name in NAMES:
        assert (clone / "reports" / name / f"{name}.ipynb").is_file()
    assert changed_stages(clone) == ""
    result = dvc(clone, "repro")
    assert stages_run(result.stdout) == [], result.stdout


# --- shareable reports ------------------------------------------------------------------------------


class PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.sections = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "section":
            self.sections.append((attrs.get("id"), attrs.get("class", "")))


def read_report(project: Path, stage: str, filename: str) -> dict:
    return report(project, stage, filename)


def test_report_before_any_run_lists_the_steps_as_not_run(default_project, tmp_path):
    project = tmp_path / default_project.name
    shutil.copytree(default_project, project, symlinks=True, ignore=shutil.ignore_patterns(".git", "cache"))
    run([sys.executable, "-m", f"{package_of(default_project)}.runtime.report"], project)
    page = PageParser()
    page.feed((project / "reports" / "index.html").read_text(encoding="utf-8"))
    assert page.sections == [(name, "step missing") for name in NAMES]
    assert not (project / "reports" / "html").exists() and page.images == []


@e2e
def test_make_report_renders_the_lifecycle(reproduced_project):
    project = reproduced_project
    run(["make", "--no-print-directory", "report", f"PYTHON={sys.executable}"], project, timeout=900)
    index = project / "reports" / "index.html"
    page = PageParser()
    page.feed(index.read_text(encoding="utf-8"))
    assert [s[0] for s in page.sections] == NAMES, "the index lists the ten steps in order"
    for name in NAMES:
        rendered = project / "reports" / "html" / f"{name}.html"
        assert f"html/{name}.html" in page.links
        text = rendered.read_text(encoding="utf-8")
        executed = json.loads((project / "reports" / name / f"{name}.ipynb").read_text())
        title = "".join(executed["cells"][0]["source"]).splitlines()[0].lstrip("# ").strip()
        assert title.split("·")[-1].strip() in text and 'class="jp-Notebook' in text
    figures = [src for src in page.images if src.startswith("data:image/png;base64,")]
    assert len(figures) >= 7, "each step with a figure shows it in the index"
    status = dict(page.sections)
    modeling = read_report(project, "modeling", "modeling.json")
    assert ("pass" if modeling["releasable"] else "fail") in status["06_modeling"]
    release = read_report(project, "fairness_assessment", "release_decision.json")
    assert ("pass" if release["released"] else "fail") in status["08_fairness_assessment"]
    monitoring = read_report(project, "monitoring", "monitoring_status.json")
    assert ("warn" if monitoring["retrain_recommended"] else "pass") in status["09_monitoring"]
    retraining = read_report(project, "retraining", "retraining_decision.json")
    text = index.read_text(encoding="utf-8")
    assert ("challenger promoted" in text) == retraining["promoted"]
    assert "dvc_plots/index.html" in page.links and (project / "reports" / "dvc_plots" / "index.html").is_file()
    # rendering stays outside the pipeline's outputs
    assert changed_stages(project) == ""


# --- JupyterLab, for real -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def jupyter_lab(project: Path, runtime: Path, deadline: float = 90):
    """JupyterLab headless on loopback; yields (base URL, token); stops it afterwards."""
    token, port = uuid.uuid4().hex, free_port()
    env = project_env(project) | {"JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(runtime / "config")}
    log = open(runtime / "lab.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--IdentityProvider.token={token}",
         f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
         f"--ServerApp.root_dir={project}", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            assert process.poll() is None, (runtime / "lab.log").read_text()[-4000:]
            try:
                if api(base, token, "GET", "/api/status")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() - started < deadline, "JupyterLab did not start:\n" + (runtime / "lab.log").read_text()[-4000:]
            time.sleep(0.5)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def api(base: str, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(
        base + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(payload) if payload and "json" in kind else payload.decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def execute_over_websocket(base: str, token: str, kernel_id: str, cells: list[str], timeout: float = 300):
    """Run each source on the kernel through the server's channels websocket, as JupyterLab does.

    Returns (outputs per cell in nbformat form, error outputs, language_info)."""
    import websocket  # websocket-client, a dependency of jupyter_server

    ws = websocket.create_connection(
        base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
        header=[f"Authorization: token {token}"], timeout=timeout,
    )
    session = uuid.uuid4().hex

    def send(msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "session": session, "username": "test",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": [],
        }))
        return msg_id

    def until_idle(msg_id: str, deadline: float) -> tuple[list[dict], dict | None]:
        outputs, reply, idle = [], None, False
        while not (idle and reply is not None):
            assert time.monotonic() < deadline, "a cell did not finish in time"
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if msg["channel"] == "shell":
                reply = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "stream":
                outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
            elif kind in ("display_data", "execute_result"):
                out = {"output_type": kind, "data": content["data"], "metadata": content.get("metadata", {})}
                if kind == "execute_result":
                    out["execution_count"] = content["execution_count"]
                outputs.append(out)
            elif kind == "error":
                outputs.append({"output_type": "error", "ename": content["ename"], "evalue": content["evalue"],
                                "traceback": content["traceback"]})
        return outputs, reply

    try:
        started = time.monotonic()
        _, info = until_idle(send("kernel_info_request", {}), started + 60)
        results, errors = [], []
        for source in cells:
            outputs, reply = until_idle(send("execute_request", {"code": source, "silent": False, "store_history": True,
                                                                 "allow_stdin": False, "stop_on_error": True}),
                                        started + timeout)
            results.append((reply.get("execution_count"), outputs))
            errors += [o for o in outputs if o["output_type"] == "error"]
            if reply.get("status") == "error":
                errors.append({"ename": reply.get("ename"), "evalue": reply.get("evalue")})
                break
        return results, errors, info.get("language_info", {})
    finally:
        ws.close()


@e2e
def test_jupyterlab_runs_a_notebook_through_its_server(reproduced_project, tmp_path):
    project = tmp_path / "project"
    for part in ("params.yaml", "dvc.yaml", "pyproject.toml", "notebooks", "src", "reports/01_business_case",
                 ".pre-commit-config.yaml", ".git"):
        source = reproduced_project / part
        if source.is_dir():
            shutil.copytree(source, project / part, symlinks=True)
        else:
            (project / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / part)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    path = "notebooks/02_success_criteria.ipynb"
    stored = (project / path).read_bytes()
    with jupyter_lab(project, runtime) as (base, token):
        status, page = api(base, token, "GET", "/lab")
        assert status == 200 and "JupyterLab" in page
        status, specs = api(base, token, "GET", "/api/kernelspecs")
        assert status == 200 and "python3" in specs["kernelspecs"]
        status, listing = api(base, token, "GET", "/api/contents/notebooks")
        assert status == 200 and {f"{n}.ipynb" for n in NAMES} <= {item["name"] for item in listing["content"]}
        status, model = api(base, token, "GET", f"/api/contents/{path}")
        assert status == 200 and model["type"] == "notebook"
        notebook = model["content"]
        status, session = api(base, token, "POST", "/api/sessions",
                              {"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}})
        assert status == 201, session
        code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        try:
            results, errors, language_info = execute_over_websocket(
                base, token, session["kernel"]["id"], [c["source"] for c in code_cells])
        finally:
            api(base, token, "DELETE", f"/api/sessions/{session['id']}")
        assert not errors, f"cells raised in JupyterLab: {errors}"
        assert len(results) == len(code_cells) and any(outputs for _, outputs in results)
        # Save it the way JupyterLab does after a run: outputs, counts, the kernel's language_info.
        for cell, (count, outputs) in zip(code_cells, results, strict=True):
            cell["execution_count"], cell["outputs"] = count, outputs
        notebook["metadata"]["language_info"] = language_info
        status, _ = api(base, token, "PUT", f"/api/contents/{path}", {"type": "notebook", "format": "json", "content": notebook})
        assert status == 200
    assert (project / path).read_bytes() != stored
    criteria = json.loads((project / "reports/02_success_criteria/success_criteria.json").read_text())
    assert criteria["gates"], "the notebook run in JupyterLab wrote its gates"
    # The commit hook brings the saved notebook back to the bytes DVC hashed.
    assert pre_commit(project, "nbstripout", "--files", path).returncode == 1
    assert (project / path).read_bytes() == stored
