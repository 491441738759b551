"""The lifecycle as one shareable report: ``python -m {{ cookiecutter.package_name }}.runtime.report`` (``make report``).

Renders each step's executed notebook (``reports/NN_stage/NN_stage.ipynb``, written by
``dvc repro``) to ``reports/html/NN_stage.html`` with nbconvert, and writes
``reports/index.html``: the ten steps in order, each with its key figure, its gate
status read from the step's JSON record, and a link to the full notebook.

The index embeds its figures, so ``reports/index.html`` together with ``reports/html/``
is all a reader needs (zip them, or publish them as CI artifacts). Both live outside
the pipeline's outputs, so rendering never makes ``dvc status`` dirty. A step that has
not run yet is listed as such; nothing here fails because a step is missing.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..project import find_project_root, step_name, steps, write_text
from . import skip_iri_format_checker

PROJECT_NAME = "{{ cookiecutter.project_name }}"
HTML_DIR = "html"
# The figure that best tells each step's story (the first PNG, or the notebook's last
# image, stands in when a step has none of these).
KEY_FIGURES = {
    "business_case": "baseline_cost.png",
    "data_selection": "column_usefulness.png",
    "data_bias_plan": "remediation_tradeoff.png",
    "data_pipeline": "split_group_mix.png",
    "modeling": "roc_pr.png",
    "fairness_assessment": "mitigation_tradeoff.png",
    "monitoring": "monitoring_over_time.png",
}
PASS, FAIL, WARN, INFO, MISSING = "pass", "fail", "warn", "info", "missing"


@dataclass
class StepSummary:
    stage: str
    title: str
    ran: bool
    status: str = MISSING
    headline: str = "not run yet: `dvc repro`"
    details: list[str] = field(default_factory=list)
    figure: str | None = None  # data: URI
    page: str | None = None  # relative link to the rendered notebook
    name: str = ""  # NN_stage: the notebook's and the report directory's name


# --- what each step's record says -------------------------------------------------------


def _json(out: Path, filename: str) -> dict[str, Any]:
    path = out / filename
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _gate_details(record: dict[str, Any]) -> list[str]:
    """'gate: value rule (passed)' lines from a record's ``gates`` table, if it has one."""
    lines = []
    for gate in record.get("gates") or []:
        if not isinstance(gate, dict) or "passed" not in gate:
            continue
        mark = "passed" if gate["passed"] else "FAILED"
        name = gate.get("gate") or gate.get("name") or gate.get("metric") or "gate"
        value = _num(gate.get("value")) if "value" in gate else ""
        lines.append(f"{name}: {value} {gate.get('rule', '')} ({mark})".replace("  ", " "))
    return lines


def _decision(
    record: dict[str, Any], key: str, yes: tuple[str, str], no: tuple[str, str]
) -> tuple[str, str, list[str]]:
    """Status and headline from a boolean decision and its reasons."""
    if key not in record:
        return MISSING, f"no `{key}` in the step's record", []
    status, headline = yes if record[key] else no
    reasons = [str(r) for r in record.get("reasons") or []]
    return status, headline, reasons


def _business_case(out: Path):
    c = _json(out, "charter.json")
    return (
        INFO,
        (
            f"baseline expected cost {_num(c.get('baseline_expected_cost'))} per decision; "
            f"prevalence {_num(c.get('prevalence'), '.1%')}"
        ),
        [str(c["decision"])] if c.get("decision") else [],
    )


def _success_criteria(out: Path):
    s = _json(out, "success_criteria.json")
    gates = s.get("gates") or []
    names = [g.get("name", "?") for g in gates if isinstance(g, dict)]
    return INFO, f"{_plural(len(gates), 'gate')} set for the later steps", names


def _data_selection(out: Path):
    s = _json(out, "dataset_spec.json")
    features = len(s.get("numeric_features") or []) + len(s.get("categorical_features") or [])
    excluded = s.get("excluded_columns") or {}
    return (
        INFO,
        f"{_plural(features, 'feature')} selected, {_plural(len(excluded), 'column')} excluded",
        [f"{column}: {why}" for column, why in excluded.items()],
    )


def _data_bias_plan(out: Path):
    p = _json(out, "bias_plan.json")
    return (
        INFO,
        (
            f"remediation: {p.get('remediation', '?')} (parity gap {_num(p.get('parity_gap_before'))}"
            f" -> {_num(p.get('parity_gap_after'))})"
        ),
        [],
    )


def _data_pipeline(out: Path):
    p = _json(out, "data_pipeline.json")
    splits = p.get("splits") or {}
    rows = " / ".join(f"{int(splits[s]['rows']):,}" for s in ("train", "validation", "test") if s in splits)
    violations = p.get("schema_violations") or []
    status = FAIL if violations else PASS
    return (
        status,
        f"schema violations: {len(violations)}; train / validation / test rows: {rows or '?'}",
        [str(v) for v in violations],
    )


def _gated(out: Path, filename: str, key: str, passed: str, failed: str, detail: Callable[[dict], str]) -> tuple:
    """A step whose record says yes or no (``key``) after its gates: the verdict, ``detail`` and the gate lines."""
    record = _json(out, filename)
    status, headline, reasons = _decision(record, key, (PASS, passed), (FAIL, failed))
    return status, headline + detail(record), reasons + _gate_details(record)


def _modeling(out: Path):
    def detail(m: dict) -> str:
        return (
            f": {m['model']}, test ROC AUC {_num((m.get('test_metrics') or {}).get('roc_auc'))}"
            if m.get("model")
            else ""
        )

    return _gated(out, "modeling.json", "releasable", "releasable", "not releasable", detail)


def _deployment(out: Path):
    return _gated(out, "deployment.json", "deployed", "deployed", "not deployed", lambda d: "")


def _fairness_assessment(out: Path):
    def detail(r: dict) -> str:
        return f" (mitigation: {r['mitigation']})" if r.get("mitigation") else ""

    return _gated(out, "release_decision.json", "released", "released", "not released", detail)


def _monitoring(out: Path):
    m = _json(out, "monitoring_status.json")
    return _decision(m, "retrain_recommended", (WARN, "retraining recommended"), (PASS, "healthy: no alert"))


def _retraining(out: Path):
    d = _json(out, "retraining_decision.json")
    status, headline, reasons = _decision(d, "promoted", (PASS, "challenger promoted"), (INFO, "champion kept"))
    if "triggered" in d and not d["triggered"]:
        headline = "not triggered: champion kept"
    return status, headline, reasons


SUMMARIES: dict[str, Callable[[Path], tuple[str, str, list[str]]]] = {
    "business_case": _business_case,
    "success_criteria": _success_criteria,
    "data_selection": _data_selection,
    "data_bias_plan": _data_bias_plan,
    "data_pipeline": _data_pipeline,
    "modeling": _modeling,
    "deployment": _deployment,
    "fairness_assessment": _fairness_assessment,
    "monitoring": _monitoring,
    "retraining": _retraining,
}


def _added_step(out: Path) -> tuple[str, str, list[str]]:
    """A step the team added: no verdict of ours to read, so it says what it wrote."""
    written = sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix != ".ipynb")
    return INFO, "your step ran" + (f": wrote {', '.join(written)}" if written else ""), []


# --- figures, titles and rendering -------------------------------------------------------


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def key_figure(stage: str, out: Path, notebook: dict[str, Any] | None) -> str | None:
    """The step's key figure as a data: URI (a file of the report, else the notebook's last image)."""
    preferred = out / KEY_FIGURES.get(stage, "")
    candidates = [preferred] if preferred.is_file() and preferred.suffix == ".png" else sorted(out.glob("*.png"))
    if candidates:
        return _data_uri(candidates[0].read_bytes())
    images = [
        o["data"]["image/png"]
        for c in (notebook or {}).get("cells", [])
        for o in c.get("outputs", [])
        if isinstance(o.get("data"), dict) and "image/png" in o["data"]
    ]
    if images:
        payload = images[-1]
        payload = "".join(payload) if isinstance(payload, list) else payload
        return "data:image/png;base64," + payload.replace("\n", "")
    return None


def notebook_title(notebook: dict[str, Any] | None, stage: str) -> str:
    """The first Markdown heading of the notebook ('# 06 · Modeling'), else the stage name."""
    for cell in (notebook or {}).get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            for line in source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return f"{step_name(stage)[:2]} · {stage.replace('_', ' ').capitalize()}"


def render_notebook(executed: Path, target: Path, exclude_input: bool = False) -> Path:
    """One executed notebook as a standalone HTML page (images embedded)."""
    skip_iri_format_checker()
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=exclude_input)
    body, _ = exporter.from_filename(str(executed))
    return _shareable(write_text(target, body))


def _shareable(path: Path) -> Path:
    """Readable by others as the umask allows (files written atomically start private)."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    return path


def summarize(root: Path, stage: str, render: bool = True, exclude_input: bool = False) -> StepSummary:
    name = step_name(stage, root)
    out = root / "reports" / name
    executed = out / f"{name}.ipynb"
    notebook = None
    if executed.is_file():
        notebook = json.loads(executed.read_text(encoding="utf-8"))
    source = root / "notebooks" / f"{name}.ipynb"
    if notebook is None and source.is_file():
        title = notebook_title(json.loads(source.read_text(encoding="utf-8")), stage)
    else:
        title = notebook_title(notebook, stage)
    summary = StepSummary(stage=stage, title=title, ran=notebook is not None, name=name)
    if notebook is None:
        return summary
    status, headline, details = SUMMARIES.get(stage, _added_step)(out)
    errors = [o for c in notebook.get("cells", []) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        status, headline = FAIL, f"the notebook raised {errors[0].get('ename', 'an error')}"
    summary.status, summary.headline, summary.details = status, headline, details
    summary.figure = key_figure(stage, out, notebook)
    page = root / "reports" / HTML_DIR / f"{name}.html"
    if render:
        render_notebook(executed, page, exclude_input)
    if page.is_file():
        summary.page = f"{HTML_DIR}/{name}.html"
    return summary


def metrics_rows(root: Path) -> list[tuple[str, str, str]]:
    """(file, metric, value) of reports/metrics/*.json, flattened, for the index's table."""
    rows = []
    for path in sorted((root / "reports" / "metrics").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        stack = [("", data)]
        while stack:
            prefix, value = stack.pop(0)
            if isinstance(value, dict):
                stack[:0] = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()]
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                rows.append((path.stem, prefix, str(value)))
            else:
                rows.append((path.stem, prefix, _num(value, ".4g")))
    return rows


# --- the index page ------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5rem; color: #1f2328; background: #fafafa; }
h1 { margin-bottom: .2rem; } .sub { color: #57606a; margin-top: 0; }
.flow { display: flex; flex-wrap: wrap; gap: .3rem; margin: 1rem 0 1.5rem; padding: 0; list-style: none; }
.flow li { padding: .25rem .6rem; border-radius: 1rem; font-size: .85rem; }
.flow a { color: inherit; text-decoration: none; }
.step { display: grid; grid-template-columns: 1fr 360px; gap: 1rem; background: #fff; border: 1px solid #d0d7de;
        border-left-width: 6px; border-radius: 6px; padding: 1rem 1.2rem; margin-bottom: 1rem; }
.step h2 { margin: 0 0 .4rem; font-size: 1.2rem; } .step img { max-width: 100%; border: 1px solid #eee; }
.badge, .flow li { background: #eaeef2; } .badge { display: inline-block; padding: .1rem .55rem; border-radius: 1rem;
        font-size: .8rem; font-weight: 600; text-transform: uppercase; margin-right: .5rem; }
.pass { border-left-color: #1a7f37; } .pass .badge, li.pass { background: #dafbe1; color: #116329; }
.fail { border-left-color: #cf222e; } .fail .badge, li.fail { background: #ffebe9; color: #a40e26; }
.warn { border-left-color: #bf8700; } .warn .badge, li.warn { background: #fff8c5; color: #7d4e00; }
.info { border-left-color: #0969da; } .info .badge, li.info { background: #ddf4ff; color: #0550ae; }
.missing { border-left-color: #8c959f; opacity: .75; }
.details { font-size: .9rem; color: #424a53; margin: .5rem 0 0; padding-left: 1.1rem; }
.nofig { color: #8c959f; font-style: italic; align-self: center; text-align: center; }
table { border-collapse: collapse; font-size: .85rem; background: #fff; }
td, th { border: 1px solid #d0d7de; padding: .2rem .5rem; text-align: left; } td.num { text-align: right; }
@media (max-width: 800px) { .step { grid-template-columns: 1fr; } }
"""


def index_html(
    summaries: list[StepSummary], metrics: list[tuple[str, str, str]], extra_links: list[tuple[str, str]]
) -> str:
    esc = html.escape
    flow = "".join(f'<li class="{s.status}"><a href="#{esc(s.name)}">{esc(s.title)}</a></li>' for s in summaries)
    cards = []
    for s in summaries:
        details = "".join(f"<li>{esc(d)}</li>" for d in s.details[:12])
        link = f'<p><a href="{esc(s.page)}">Open the executed notebook</a></p>' if s.page else ""
        figure = (
            f'<a href="{esc(s.page or "#")}"><img src="{s.figure}" alt="key figure of {esc(s.title)}"></a>'
            if s.figure
            else '<div class="nofig">no figure</div>'
        )
        cards.append(
            f'<section class="step {s.status}" id="{esc(s.name)}"><div>'
            f"<h2>{esc(s.title)}</h2>"
            f'<p><span class="badge">{esc(s.status)}</span>{esc(s.headline)}</p>'
            f"{f'<ul class=details>{details}</ul>' if details else ''}{link}</div>{figure}</section>"
        )
    rows = "".join(f'<tr><td>{esc(f)}</td><td>{esc(k)}</td><td class="num">{esc(v)}</td></tr>' for f, k, v in metrics)
    table = (
        f"<h2>Metrics</h2><p class=sub>reports/metrics/*.json, as <code>dvc metrics show</code> reads them.</p>"
        f"<table><tr><th>file</th><th>metric</th><th>value</th></tr>{rows}</table>"
        if rows
        else ""
    )
    links = "".join(f'<li><a href="{esc(href)}">{esc(text)}</a></li>' for href, text in extra_links)
    ran = sum(s.ran for s in summaries)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(PROJECT_NAME)}: ML lifecycle report</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(PROJECT_NAME)}</h1>"
        f'<p class="sub">The machine-learning lifecycle in ten steps ({ran} of {len(summaries)} run). '
        "Each step links to its executed notebook; the badge is the gate or decision it recorded.</p>"
        f'<ol class="flow">{flow}</ol>{"".join(cards)}{table}'
        f"{f'<h2>More</h2><ul>{links}</ul>' if links else ''}"
        "</body></html>\n"
    )


def build(root: Path | None = None, render: bool = True, exclude_input: bool = False) -> Path:
    """Render every executed notebook and write reports/index.html; returns its path."""
    root = root or find_project_root()
    summaries = [summarize(root, stage, render=render, exclude_input=exclude_input) for stage in steps(root)]
    extra = []
    if (root / "reports" / "dvc_plots" / "index.html").is_file():
        extra.append(("dvc_plots/index.html", "DVC plots (dvc plots show)"))
    readiness = root / "reports" / "readiness.json"
    if readiness.is_file():  # written by `make readiness` after the tests
        score = json.loads(readiness.read_text(encoding="utf-8"))
        sections = ", ".join(f"{name} {points:g}" for name, points in score["sections"].items())
        extra.append(("readiness.md", f"ML Test Score {score['final_score']:g} ({sections})"))
    return _shareable(write_text(root / "reports" / "index.html", index_html(summaries, metrics_rows(root), extra)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-input", action="store_true", help="leave the code cells out of the HTML pages")
    parser.add_argument(
        "--index-only", action="store_true", help="write reports/index.html without rendering the notebooks"
    )
    args = parser.parse_args(argv)
    root = find_project_root()
    index = build(root, render=not args.index_only, exclude_input=args.no_input)
    print(f"{index.relative_to(root)}: open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
