"""Extending a generated project as its README says: a candidate model is one entry, a step one notebook and one stage."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import changed_stages, dvc, run, stages_run

pytestmark = pytest.mark.e2e


@pytest.fixture()
def project_copy(reproduced_project, tmp_path):
    copy = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, copy, symlinks=True)
    return copy


def package_dir(project: Path) -> Path:
    return next(p.parent for p in (project / "src").glob("*/modeling.py"))


def readme_snippet(project: Path, marker: str, language: str) -> str:
    """The first ``language`` code block of the generated README after ``marker``: what a user would copy."""
    text = (project / "README.md").read_text()
    after = text[text.index(marker) :]
    start = after.index(f"```{language}\n") + len(f"```{language}\n")
    return after[start : after.index("```", start)]


def test_a_candidate_model_is_one_entry_and_its_search_space(project_copy):
    modeling = package_dir(project_copy) / "modeling.py"
    modeling.write_text(modeling.read_text() + "\n\n" + readme_snippet(project_copy, "### Adding a candidate model", "python"))
    params = yaml.safe_load((project_copy / "params.yaml").read_text())
    params["modeling"]["search_space"]["extra_trees"] = {"max_depth": [8, 12], "min_samples_leaf": [5, 20]}
    params["retraining"]["challenger_models"] = ["extra_trees"]  # step 10 must build its challenger with it
    params["retraining"]["force"] = True  # the challenger is trained whatever monitoring says
    params["modeling"].update(search_iterations=1, cv_folds=2)  # the new entry is searched: one draw shows it
    (project_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # the two steps that build models from the registry; 07-09 would rerun on the new release as on any other
    result = dvc(project_copy, "repro", "--single-item", "modeling", "retraining")
    assert result.stdout.count("Running stage") == 2, result.stdout

    modeling_record = json.loads((project_copy / "reports/06_modeling/modeling.json").read_text())
    tried = {row["model"]: row for row in modeling_record["candidates"]}
    assert "extra_trees" in tried, sorted(tried)
    assert tried["extra_trees"]["params"].keys() == {"max_depth", "min_samples_leaf"}
    assert 0.5 < tried["extra_trees"]["validation_roc_auc"] <= 1
    decision = json.loads((project_copy / "reports/10_retraining/retraining_decision.json").read_text())
    assert decision["triggered"], decision
    assert decision["challenger_model"] == "extra_trees", decision


def test_an_eleventh_step_is_a_notebook_and_a_stage(project_copy):
    package = package_dir(project_copy).name
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# 11 · Audit\n\nWhat the retraining decided, for the audit log."),
            nbformat.v4.new_code_cell("auditor = 'nobody'", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                f"from {package}.notebook import show, start_step\n\n"
                "step = start_step('audit')\n"
                "decision = step.read_report('retraining', 'retraining_decision.json')\n"
                "step.write_json('audit.json', {'auditor': auditor, 'promoted': decision['promoted']})\n"
                "show(f\"Audited by {auditor}: promoted {decision['promoted']}.\")"
            ),
        ],
        # what JupyterLab writes into a new notebook: papermill needs the language
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                  "language_info": {"name": "python"}},
    )
    nbformat.write(notebook, project_copy / "notebooks" / "11_audit.ipynb")
    stages = yaml.safe_load((project_copy / "dvc.yaml").read_text())
    stages["stages"]["audit"] = yaml.safe_load(readme_snippet(project_copy, "### Adding a step", "yaml"))["stages"]["audit"]
    (project_copy / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    with open(project_copy / "params.yaml", "a") as params:
        params.write("\naudit:\n  auditor: Compliance\n")

    result = dvc(project_copy, "repro")
    assert stages_run(result.stdout) == ["audit"], result.stdout
    audit = json.loads((project_copy / "reports/11_audit/audit.json").read_text())
    decision = json.loads((project_copy / "reports/10_retraining/retraining_decision.json").read_text())
    assert audit == {"auditor": "Compliance", "promoted": decision["promoted"]}
    assert (project_copy / "reports/11_audit/11_audit.ipynb").is_file()
    run([sys.executable, "-m", f"{package}.runtime.report", "--index-only"], project_copy)
    index = (project_copy / "reports/index.html").read_text()
    assert 'id="11_audit"' in index and "your step ran: wrote audit.json" in index
    assert changed_stages(project_copy) == ""
