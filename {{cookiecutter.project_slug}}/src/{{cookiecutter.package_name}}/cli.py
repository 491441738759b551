"""The project's console command. Adapt with care: the README, CI and steps 07 and 10 call it.

{{ cookiecutter.package_name }} predict INPUT OUTPUT   # CSV or Parquet in, scores and decisions out
{{ cookiecutter.package_name }} predict DIR_OR_GLOB OUTDIR   # a Parquet dataset, partition by partition (dask), into Parquet parts
{{ cookiecutter.package_name }} serve --host 127.0.0.1 --port 8000   # --workers N (default: the cores)
{{ cookiecutter.package_name }} label OUTCOMES                # CSV or Parquet: request_id (or the id columns) and the target

``predict`` and ``serve`` write every decision to the prediction log (``serving:`` in
params.yaml, or {{ cookiecutter.package_name | upper }}_PREDICTION_LOG_URL); ``--no-log`` is for rehearsal traffic only.
{{ cookiecutter.package_name }} approve VERSION --by NAME --note TEXT   # the challenger step 10 staged goes into service
{{ cookiecutter.package_name }} rollback [--by NAME]  # previous champion back in service
{{ cookiecutter.package_name }} sync-params [--check]  # the notebooks' parameters cells from params.yaml (make sync-params)

``approve`` and ``rollback`` record who and when in the registry and the ledger
``models/approvals.jsonl``, and commit them in git (exit 0 even when the commit cannot be
made: the registry has the record, and the command says why there is no commit).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .project import find_project_root, write_bytes

SPEC = "reports/03_data_selection/dataset_spec.json"
TOKEN_ENV_HELP = "{{ cookiecutter.package_name | upper }}_TOKEN"
NO_LOG_HELP = (
    "do not write the decisions to the prediction log (rehearsal traffic, e.g. steps 07 and 10; never production)"
)


def _model_path(given: str | None) -> Path:
    from .scoring import default_model_path

    if given:
        return Path(given)
    try:
        root = find_project_root()
    except FileNotFoundError:
        raise SystemExit("error: not inside the project; pass --model PATH") from None
    return default_model_path(root)


def _project_file(relative: str) -> Path | None:
    """A file of the enclosing project, if there is one and the file exists."""
    try:
        path = find_project_root() / relative
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


def _dataset_spec() -> dict | None:
    """Step 03's dataset_spec.json of the enclosing project (which columns the contract declared)."""
    import json

    path = _project_file(SPEC)
    return json.loads(path.read_text()) if path else None


def _reference(given: str | None) -> str:
    from .explain import DEFAULT_BACKGROUND

    path = Path(given) if given else _project_file(DEFAULT_BACKGROUND)
    if path is None:
        raise FileNotFoundError(
            f"explanations need reference records: pass --reference PATH (training rows; the project's {DEFAULT_BACKGROUND})"
        )
    return str(path)


def _log_settings():
    """The prediction log's URL and the ``serving:`` settings of the enclosing project (defaults outside one)."""
    from .config import Serving
    from .prediction_log import resolve_url
    from .project import load_params

    try:
        root = find_project_root()
    except FileNotFoundError:
        root = None
    cfg = Serving.from_params(load_params(root) if root else {})
    return resolve_url(cfg.prediction_log, root), cfg


def _open_log():
    """The project's prediction log, opened (schema created or migrated)."""
    from .prediction_log import Log, Privacy

    url, cfg = _log_settings()
    return Log(url, Privacy.from_settings(cfg.log_hash_columns, cfg.log_drop_columns))


def predict(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .data import DataContractError, read_table
    from .prediction_log import PredictionLogError, new_request_id
    from .scoring import InputError, contract_columns, is_dataset, load_bundle, score, validate_input

    output = Path(args.output)
    if is_dataset(args.input):
        return predict_dataset(args)
    if not output.name.lower().endswith((".csv", ".parquet")):
        print(f"error: OUTPUT {str(output)!r} must end in .csv or .parquet", file=sys.stderr)
        return 2
    try:
        log = None if args.no_log else _open_log()
        frame = read_table(args.input, key="INPUT")
        bundle = load_bundle(_model_path(args.model))
        spec = _dataset_spec()
        options = {"allow_extra": args.allow_extra, "allow_unseen": args.allow_unseen, "spec": spec}
        clean = validate_input(frame, bundle["metadata"], **options)
        result = score(bundle, frame, clean=clean)
        if args.explain:
            from .explain import Explainer, load_reference

            explainer = Explainer(bundle, load_reference(_reference(args.reference)))
            result = result.join(explainer.columns(clean))
    except (DataContractError, InputError, FileNotFoundError, ValueError, ConfigError, PredictionLogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # identifiers the contract declared come first, so scores join back to the input
    ids = [c for c in contract_columns(bundle["metadata"], spec)["ids"] if c in frame.columns]
    request_id = new_request_id()
    if log is not None:  # logged before the output is written: no decision leaves unlogged
        records = clean.to_dict(orient="records")
        logged_ids = [c for c in _contract_id_columns(bundle["metadata"]) if c in frame.columns]
        id_values = frame[logged_ids].to_dict(orient="records") if logged_ids else None
        try:
            log.write(log.rows(request_id, "predict", bundle["metadata"], records, result, id_values))
        except PredictionLogError as exc:
            print(f"error: {exc}; no output written", file=sys.stderr)
            return 1
    out = frame.join(result) if args.keep_columns else frame[ids].join(result)
    payload = (
        out.to_parquet(index=False) if output.name.lower().endswith(".parquet") else out.to_csv(index=False).encode()
    )
    write_bytes(output, payload)
    print(f"scored {len(result):,} records -> {output} ({int(result['decision'].sum()):,} positive decisions)")
    if log is not None:
        from .prediction_log import shown_url

        print(f"logged as request {request_id} (record_index = row number) in {shown_url(log.url)}")
    return 0


def predict_dataset(args: argparse.Namespace) -> int:
    """``predict DIR_OR_GLOB OUTDIR``: a Parquet dataset scored partition by partition into Parquet parts.

    Through dask.dataframe, on the cluster of ``compute.scheduler`` when one is set (else one
    partition at a time in this process): memory stays bounded whatever the input's size. Each
    partition is logged in bulk before its part is written, as request ``<id>-<partition>``; the
    parts then carry ``request_id`` and ``record_index`` for ``label``.
    """
    from . import compute
    from .config import ConfigError
    from .data import DataContractError
    from .prediction_log import PredictionLogError, new_request_id, shown_url
    from .scoring import InputError, contract_columns, load_bundle, score_dataset

    output = args.output if "://" in args.output else Path(args.output)  # a URL the workers write to, or a directory
    if str(output).lower().endswith(".csv") or (isinstance(output, Path) and output.is_file()):
        print(
            f"error: OUTPUT {str(output)!r} must be a directory: a Parquet dataset is scored into parts",
            file=sys.stderr,
        )
        return 2
    if isinstance(output, Path) and output.is_dir() and any(output.iterdir()):
        print(f"error: OUTPUT {str(output)!r} is not empty; name a new directory", file=sys.stderr)
        return 2
    if args.explain:
        print("error: --explain scores one file at a time; pass a Parquet file, not a dataset", file=sys.stderr)
        return 2
    try:
        root = find_project_root()
    except FileNotFoundError:
        root = None
    try:
        from .config import Compute

        cfg = compute.settings(root) if root else Compute()
        log = None
        if not args.no_log:
            opened = _open_log()
            log = {"url": opened.url, "privacy": opened.privacy, "request_id": new_request_id()}
        bundle = load_bundle(_model_path(args.model))
        spec = _dataset_spec()
        options = {"allow_extra": args.allow_extra, "allow_unseen": args.allow_unseen, "spec": spec}
        ids = contract_columns(bundle["metadata"], spec)["ids"]
        if log is not None:
            log["id_columns"] = _contract_id_columns(bundle["metadata"])
        with compute.cluster(cfg, root):
            written = score_dataset(args.input, output, bundle, options, ids, args.keep_columns, log)
    except (DataContractError, InputError, FileNotFoundError, ValueError, ConfigError, PredictionLogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"scored {written['rows']:,} records in {written['partitions']:,} partitions -> {output} "
        f"({written['positive']:,} positive decisions)"
    )
    if log is not None:
        print(
            f"logged as requests {log['request_id']}-<partition> (record_index = row number in its part) "
            f"in {shown_url(log['url'])}"
        )
    return 0


def _contract_id_columns(metadata: dict) -> list[str]:
    """``data.id_columns`` of the enclosing project's params.yaml (outside one: as the artifact recorded them)."""
    from .data import as_list
    from .project import load_params

    try:
        return as_list((load_params(find_project_root()).get("data") or {}).get("id_columns"))
    except FileNotFoundError:
        excluded = metadata.get("excluded_columns") or {}
        return [c for c, why in excluded.items() if why == "data.id_columns"]


def label(args: argparse.Namespace) -> int:
    """Attach the outcomes in FILE to the logged decisions; exit 1 when some match none."""
    from .config import ConfigError
    from .data import DataContractError, as_list, read_table
    from .prediction_log import PredictionLogError, attach_outcomes
    from .project import load_params

    try:
        root = find_project_root()
        contract = load_params(root).get("data") or {}
        log = _open_log()
        frame = read_table(args.file, key="FILE")
        report = attach_outcomes(
            log.engine,
            frame,
            target=str(contract["target"]),
            positive_label=contract["positive_label"],
            id_columns=as_list(contract.get("id_columns")),
            privacy=log.privacy,
        )
    except (DataContractError, FileNotFoundError, ValueError, KeyError, ConfigError, PredictionLogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary)
    print("Step 09 sees them after `make monitor` (it reads the log; a plain `dvc repro` keeps the snapshot it has).")
    if report.unknown:
        print(
            f"error: {len(report.unknown):,} of {report.rows:,} outcomes match no logged decision (the others are attached)",
            file=sys.stderr,
        )
        return 1
    return 0


def serve(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import os
    import shutil
    import tempfile

    from .access import TOKEN_ENV, check_exposure

    try:  # before any heavy import: a refusal is immediate
        check_exposure(args.host, os.environ.get(TOKEN_ENV))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # every thread of every worker (explanations run in a thread pool) gets --threads native
    # threads: OpenMP reads this when it loads, in each worker before it imports scikit-learn
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from .config import ConfigError
    from .prediction_log import PredictionLogError, close_engines, open_engine
    from .scoring import load_bundle
    from .service import SETTINGS_ENV, Settings, run

    try:
        model = _model_path(args.model)
        load_bundle(model)  # a clear error here, not one per worker
        log_url, serving = (None, None) if args.no_log else _log_settings()
        if log_url:  # created or migrated once, before the workers start
            open_engine(log_url)
            close_engines()
        # the project's training rows explain the project's model in service; another --model needs its own --reference
        default = None if args.no_explain or args.model else _reference_or_none()
        reference = args.reference or default
    except (FileNotFoundError, ValueError, ConfigError, PredictionLogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        model=str(model.resolve()),
        max_records=args.max_records,
        max_bytes=args.max_bytes,
        timeout=args.timeout,
        range_margin=args.range_margin,
        reference=str(Path(reference).resolve()) if reference else None,
        threads=args.threads,
        prediction_log=log_url,
        log_hash_columns=list(serving.log_hash_columns) if serving else [],
        log_drop_columns=list(serving.log_drop_columns) if serving else [],
    )
    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # one /metrics for all workers: prometheus_client's multiprocess mode, in a fresh directory
        metrics_dir = tempfile.mkdtemp(prefix="{{ cookiecutter.package_name }}-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        run(
            "{{ cookiecutter.package_name }}.service:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=args.log_level in ("debug", "info"),
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _reference_or_none() -> str | None:
    try:
        return _reference(None)
    except FileNotFoundError:
        return None


def _registry():
    from .registry import Registry

    return Registry(find_project_root())


def _git_outcome(git) -> None:
    """Say whether the change was committed; a commit that could not be made is a warning, not a failure."""
    if git.commit:
        print(f"git: {git.detail}")
    else:
        print(f"warning: {git.detail}; the registry records it (models/registry/registry.json)", file=sys.stderr)


def approve(args: argparse.Namespace) -> int:
    """Put the challenger step 10 staged into service, on a named person's approval; exit 1 when refused."""
    from .registry import RegistryError

    try:
        change = _registry().approve(args.version, args.by, args.note)
    except (FileNotFoundError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record = change.record
    print(
        f"approved by {record['by']} at {record['at']}: version {record['version']} is now in service "
        "(models/registry/champion.skops)"
    )
    print(f"report read: {record['report']}")
    if record["replaced"]:
        print(f"previous champion {record['replaced']} kept in models/registry/history/ (`rollback` restores it)")
    _git_outcome(change.git)
    return 0


def rollback(args: argparse.Namespace) -> int:
    from .registry import RegistryError

    try:
        change = _registry().rollback(by=args.by, note=args.note)
    except (FileNotFoundError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"champion is now version {change.state['champion'].get('version')} (models/registry/champion.skops)")
    _git_outcome(change.git)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="{{ cookiecutter.package_name }}", description="Score records with the deployed model.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="score a CSV or Parquet file, or a Parquet dataset")
    p.add_argument(
        "input", help="records to score (.csv, .csv.gz or .parquet), or a directory or glob of Parquet files"
    )
    p.add_argument(
        "output", help="where to write scores and decisions (.csv or .parquet; a directory for a Parquet dataset)"
    )
    p.add_argument("--model", help="deployable artifact (default: models/release.skops, else models/model.skops)")
    p.add_argument(
        "--allow-extra", action="store_true", help="ignore columns no one declared (the contract's are accepted)"
    )
    p.add_argument(
        "--allow-unseen",
        action="store_true",
        help="score values training never saw (categories, numbers out of range, missing values)",
    )
    p.add_argument("--keep-columns", action="store_true", help="copy the input columns into the output")
    p.add_argument("--explain", action="store_true", help="add each feature's contribution to every score")
    p.add_argument("--reference", help="training rows for --explain (default: data/processed/train.parquet)")
    p.add_argument("--no-log", action="store_true", help=NO_LOG_HELP)
    p.set_defaults(func=predict)
    s = commands.add_parser("serve", help="serve GET /health, POST /predict and GET /metrics over HTTP")
    s.add_argument("--host", default="127.0.0.1", help=f"beyond loopback, {TOKEN_ENV_HELP} must hold a token")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--model", help="deployable artifact (default as for predict)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: the cores)")
    s.add_argument("--max-records", type=int, default=10_000, help="largest batch one request may carry")
    s.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024, help="largest request body (bytes)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take, body included")
    s.add_argument(
        "--range-margin", type=float, default=1.0, help="numbers accepted: training range +- this many spans"
    )
    s.add_argument("--reference", help="training rows for ?explain=true (default: data/processed/train.parquet)")
    s.add_argument("--no-explain", action="store_true", help="do not load reference records (explain=true answers 409)")
    s.add_argument("--threads", type=int, default=1, help="native threads per worker (OpenMP, BLAS)")
    s.add_argument("--log-level", default="warning")
    s.add_argument("--no-log", action="store_true", help=NO_LOG_HELP)
    s.set_defaults(func=serve)
    lab = commands.add_parser("label", help="attach outcomes that arrived later to the logged decisions")
    lab.add_argument(
        "file", help="CSV or Parquet: request_id (and record_index) or the data contract's id columns, and the target"
    )
    lab.set_defaults(func=label)
    a = commands.add_parser(
        "approve",
        help="put the challenger step 10 staged into service, on your approval",
        description="Install the challenger that step 10 staged (it passed the promotion gates and the canary) as "
        "the champion, recording who approved it, when, and which report they read, in models/registry/ and "
        "models/approvals.jsonl, and commit the record in git. Read the report first: "
        "reports/10_retraining/retraining_decision.json (and the executed notebook beside it).",
    )
    a.add_argument("version", help="the staged version (step 10 prints it, with this command)")
    a.add_argument("--by", required=True, help="who approves (your name): recorded and named in the commit")
    a.add_argument("--note", default="", help="what you checked, or any condition of the approval")
    a.set_defaults(func=approve)
    r = commands.add_parser("rollback", help="restore the previous champion model of models/registry/")
    r.add_argument("--by", help="who rolls back (recorded with the time)")
    r.add_argument("--note", default="", help="why")
    r.set_defaults(func=rollback)
    sync = commands.add_parser(
        "sync-params",
        add_help=False,  # its own options (--check, --help) are read by runtime.parameters
        help="write params.yaml's values into the notebooks' parameters cells (--check: say where they differ)",
    )
    sync.set_defaults(func=sync_params)
    return parser


def sync_params(args: argparse.Namespace) -> int:
    from .runtime import parameters

    return parameters.main(args.options)


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if args.command == "sync-params":
        args.options = rest
    elif rest:
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
