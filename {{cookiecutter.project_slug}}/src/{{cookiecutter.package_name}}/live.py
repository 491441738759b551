"""Live traffic for step 09: the prediction log's snapshot, its windows, the online figures, the alert. Adapt with care: the ``production_log`` stage and step 09 rely on it.

How the log enters the DVC graph: the log is a database (SQLite by default, PostgreSQL for a
team) that DVC cannot hash, and it changes between runs without any file of the project
changing. So the ``production_log`` stage reads it when asked (``make monitor``: ``dvc repro
--force --single-item production_log``, then ``dvc repro``) and writes :data:`SNAPSHOT_DIR`, the
latest ``monitoring.windows`` windows of the log; a plain ``dvc repro`` keeps the snapshot it has,
so that a second run does nothing and ``dvc status`` can be clean. Step 09 depends on that
snapshot, not on the database: it reruns exactly when those windows gained decisions or
outcomes (the snapshot's bytes changed), does nothing otherwise, and a clone reproduces it from
the snapshot DVC cached, without access to the database.

Step 09 then monitors the log's windows (:func:`log_batches`) when the snapshot holds
decisions, judging the decisions that were served (their logged score and decision, whichever
model made them), and compares the online figures of the windows with outcomes against step
06's offline figures (:func:`online_vs_offline`). :func:`alert` posts the verdict to a webhook.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import prediction_log
from .config import Monitoring, Serving
from .project import find_project_root, load_params, read_json, report_dir, write_json

if TYPE_CHECKING:
    from .monitoring import Batches

SNAPSHOT_DIR = "data/production_log"
DECISIONS = "decisions.parquet"
SUMMARY = "log.json"
ALERT_ENV = "{{ cookiecutter.package_name | upper }}_ALERT_WEBHOOK"
MUTED: str | None = None  # why no alert leaves this process: set for an exploration (notebook.start_step)
ALERT_TIMEOUT_S = 10
PERIODS = {"day": pd.Timedelta(days=1), "week": pd.Timedelta(weeks=1)}


# ------------------------------------------------------------------ the snapshot (the DVC stage)


def log_url(root: Path, serving: Serving) -> str | None:
    """The log's URL, or None when it is the default SQLite file and nothing has been logged yet."""
    url = prediction_log.resolve_url(serving.prediction_log, root)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    return url


def shown_log(url: str | None, root: Path) -> str:
    """The log as the snapshot names it: a SQLite file relative to the project, a URL without its password."""
    if url is None:
        return "none yet"
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else path.name
    return prediction_log.shown_url(url)


def window_starts(times: pd.Series, window: str) -> pd.Series:
    """The start of the day or the (Monday-first) week each UTC time falls in."""
    day = times.dt.floor("D")
    return day if window == "day" else day - pd.to_timedelta(day.dt.day_of_week, unit="D")


def recent_decisions(url: str, cfg: Monitoring) -> pd.DataFrame:
    """The decisions of the latest ``cfg.windows`` windows of the log, oldest first."""
    if isinstance(cfg.window, int):
        return prediction_log.read_latest(url, cfg.window * cfg.windows)
    last = prediction_log.read_latest(url, 1)
    if last.empty:
        return last
    latest_start = window_starts(last["logged_at"], cfg.window).iloc[0]
    return prediction_log.read_window(url, latest_start - (cfg.windows - 1) * PERIODS[cfg.window])


def snapshot(root: Path) -> dict[str, Any]:
    """Write :data:`SNAPSHOT_DIR` from the log (replaced whole, never half-written); returns its summary."""
    params = load_params(root)
    serving, cfg = Serving.from_params(params), Monitoring.from_params(params)
    url = log_url(root, serving)
    frame = recent_decisions(url, cfg) if url else pd.DataFrame(columns=list(prediction_log.LOG_COLUMNS))
    frame = frame.drop(columns=["id", "ids"], errors="ignore")  # row ids differ between databases of the same log
    summary = {
        "log": shown_log(url, root),
        "window": cfg.window,
        "windows": cfg.windows,
        "decisions": len(frame),
        "with_outcome": int(frame["outcome"].notna().sum()) if len(frame) else 0,
    }
    target = root / SNAPSHOT_DIR
    staging = target.with_name(target.name + ".writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    frame.to_parquet(staging / DECISIONS, index=False)
    write_json(staging / SUMMARY, summary)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return summary


# ------------------------------------------------------------------ step 09: the log's windows


def read_snapshot(root: Path) -> pd.DataFrame:
    """The decisions of the snapshot (empty when nothing was logged)."""
    path = root / SNAPSHOT_DIR / DECISIONS
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def windows(decisions: pd.DataFrame, cfg: Monitoring) -> list[tuple[str, pd.DataFrame]]:
    """The decisions cut into windows, oldest first: whole days or weeks, or runs of ``cfg.window`` rows
    counted back from the latest (the oldest window of rows may be shorter)."""
    if decisions.empty:
        return []
    if isinstance(cfg.window, int):
        ends = list(range(len(decisions), 0, -cfg.window))[: cfg.windows]
        cuts = [(max(end - cfg.window, 0), end) for end in reversed(ends)]
        return [(f"rows_{start + 1:06d}-{end:06d}", decisions.iloc[start:end]) for start, end in cuts]
    starts = window_starts(pd.to_datetime(decisions["logged_at"], utc=True), cfg.window)
    label = "{:%Y-%m-%d}" if cfg.window == "day" else "week_of_{:%Y-%m-%d}"
    return [(label.format(start), rows) for start, rows in decisions.groupby(starts, sort=True)]


def as_batch(rows: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A window as a monitoring batch (the logged records, the outcome as the 0/1 target where it
    arrived) and the decisions served on it (``score``, ``decision``)."""
    logged = set(prediction_log.LOG_COLUMNS) | {"ids"}
    fields = [c for c in rows.columns if c not in logged]
    batch = rows[fields].rename(columns=lambda c: c.removesuffix("_record")).reset_index(drop=True)
    batch[target] = rows["outcome_positive"].astype("Float64").astype(float).to_numpy()
    served = rows[["score", "decision"]].reset_index(drop=True)
    return batch, served


def log_batches(root: Path, spec: Mapping[str, Any], cfg: Monitoring) -> Batches | None:
    """The snapshot's windows as step 09's batches, or None when the log has no decisions."""
    from .monitoring import Batches

    decisions = read_snapshot(root)
    cut = windows(decisions, cfg)
    if not cut:
        return None
    batches, served = [], {}
    for name, rows in cut:
        batch, served[name] = as_batch(rows, spec["target"])
        versions = ", ".join(sorted(rows["model_version"].unique()))
        labelled = int(rows["outcome"].notna().sum())
        batches.append((name, batch, f"served by {versions}; {labelled:,} of {len(rows):,} with outcome"))
    size = f"{cfg.window:,} decisions" if isinstance(cfg.window, int) else f"one {cfg.window}"
    origin = (
        f"the prediction log: {len(decisions):,} decisions in the latest {len(cut)} windows of {size} "
        f"(`monitoring.window`), {int(decisions['outcome'].notna().sum()):,} of them with an outcome"
    )
    newest = pd.to_datetime(decisions["logged_at"], utc=True).max()
    return Batches(batches, origin, [], served, source="prediction log", newest=newest)


def online_vs_offline(report: pd.DataFrame, offline: Mapping[str, float]) -> pd.DataFrame:
    """Per window with outcomes: the served decisions' ROC AUC and expected cost beside step 06's test figures."""
    if "roc_auc" not in report:
        return pd.DataFrame()
    rows = report.dropna(subset=["roc_auc"])
    table = pd.DataFrame(
        {
            "window": rows["batch"],
            "online_roc_auc": rows["roc_auc"],
            "offline_roc_auc": offline["roc_auc"],
            "online_expected_cost": rows["expected_cost"],
            "offline_expected_cost": offline["expected_cost"],
        }
    )
    table["roc_auc_change"] = table["online_roc_auc"] - table["offline_roc_auc"]
    table["expected_cost_change"] = table["online_expected_cost"] - table["offline_expected_cost"]
    return table.reset_index(drop=True)


# ------------------------------------------------------------------ alerts


def alert_due(status: Mapping[str, Any], live: bool) -> bool:
    """An alert is due when retraining is recommended, or when any gate failed on live data."""
    return bool(status["retrain_recommended"] or (live and status["reasons"]))


def alert(
    status: Mapping[str, Any], live: bool, project: str, env: Mapping[str, str] = os.environ
) -> dict[str, Any] | None:
    """POST the verdict as JSON to the webhook in :data:`ALERT_ENV` when an alert is due.

    Returns what happened (None when no alert was due); the webhook's URL is never written
    (it often holds a token). A webhook that fails is reported, not raised: the monitoring
    verdict stands, and the report and the CI summary say the alert did not leave.
    """
    if not alert_due(status, live):
        return None
    body = {
        "project": project,
        "step": "monitoring",
        "source": "prediction log" if live else "simulated or file batches",
        "retrain_recommended": status["retrain_recommended"],
        "rule": status["rule"],
        "model_version": status["model_version"],
        "reasons": status["reasons"],
    }
    return post(body, env)


def champion_alert(
    decision: Mapping[str, Any], project: str, env: Mapping[str, str] = os.environ
) -> dict[str, Any] | None:
    """Step 10's alert: the model in service fails a gate on evidence on recent data, whatever the challenger does."""
    if not decision.get("champion_failing"):
        return None
    body = {
        "project": project,
        "step": "retraining",
        "model_version": decision.get("champion_version"),
        "champion_failing": decision["champion_failing"],
        "challenger_passes": decision.get("passed_gates"),
    }
    return post(body, env)


def post(body: dict[str, Any], env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """POST ``body`` as JSON to the webhook in :data:`ALERT_ENV`: what happened (the URL is never written)."""
    if MUTED:
        return {"due": True, "sent": False, "why": MUTED, "body": body}
    url = env.get(ALERT_ENV, "").strip()
    if not url:
        return {"due": True, "sent": False, "why": f"{ALERT_ENV} is not set", "body": body}
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=ALERT_TIMEOUT_S) as response:
            return {"due": True, "sent": True, "http_status": response.status, "body": body}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"due": True, "sent": False, "why": f"the webhook failed: {exc}", "body": body}


def ci_summary(root: Path) -> str:
    """Step 09's verdict and its alert in Markdown, for the CI job's summary."""
    out = report_dir(root, "monitoring")
    if not (out / "monitoring_status.json").is_file():
        return "## Monitoring\n\nStep 09 has not run.\n"
    status = read_json(out / "monitoring_status.json")
    sent = read_json(out / "alert.json") if (out / "alert.json").is_file() else None
    breached = {reason.split(":")[0] for reason in status["reasons"]}
    lines = [
        "## Monitoring",
        "",
        f"- Retraining recommended: **{'yes' if status['retrain_recommended'] else 'no'}** (rule: {status['rule']}).",
        f"- Windows with a failed gate: {len(breached)} of {len(status['batches'])}.",
        "- Alert: "
        + ("none due." if sent is None else "posted to the webhook." if sent["sent"] else f"not sent: {sent['why']}."),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The prediction log for step 09: its snapshot (the production_log stage), "
        "and the monitoring verdict in Markdown for CI (summary)."
    )
    parser.add_argument("command", choices=["snapshot", "summary"])
    args = parser.parse_args(argv)
    root = find_project_root()
    if args.command == "summary":
        print(ci_summary(root), end="")
        return 0
    try:
        summary = snapshot(root)
    except prediction_log.PredictionLogError as exc:
        print(f"ERROR [production_log]: {exc}", file=sys.stderr)
        return 1
    print(
        f"{SNAPSHOT_DIR}: {summary['decisions']:,} decisions ({summary['with_outcome']:,} with outcome) from {summary['log']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
