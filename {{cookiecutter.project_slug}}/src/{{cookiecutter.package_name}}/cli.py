"""The project's console command.

{{ cookiecutter.package_name }} predict INPUT OUTPUT   # CSV or Parquet in, scores and decisions out
{{ cookiecutter.package_name }} serve --host 127.0.0.1 --port 8000
{{ cookiecutter.package_name }} rollback              # previous champion back in service
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import DataContractError, read_table
from .project import find_project_root, write_bytes


def _model_path(given: str | None) -> Path:
    from .scoring import default_model_path

    if given:
        return Path(given)
    try:
        root = find_project_root()
    except FileNotFoundError:
        raise SystemExit("error: not inside the project; pass --model PATH") from None
    return default_model_path(root)


def predict(args: argparse.Namespace) -> int:
    from .scoring import InputError, load_bundle, score

    output = Path(args.output)
    if not output.name.lower().endswith((".csv", ".parquet")):
        print(f"error: OUTPUT {str(output)!r} must end in .csv or .parquet", file=sys.stderr)
        return 2
    try:
        frame = read_table(args.input, key="INPUT")
        bundle = load_bundle(_model_path(args.model))
        result = score(bundle, frame, allow_extra=args.allow_extra, allow_unseen=args.allow_unseen)
    except (DataContractError, InputError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = frame.join(result) if args.keep_columns else result
    payload = (
        out.to_parquet(index=False) if output.name.lower().endswith(".parquet") else out.to_csv(index=False).encode()
    )
    write_bytes(output, payload)
    print(f"scored {len(result):,} records -> {output} ({int(result['decision'].sum()):,} positive decisions)")
    return 0


def serve(args: argparse.Namespace) -> int:
    import uvicorn
    from threadpoolctl import threadpool_limits

    from .service import create_app

    # A request scores a small batch: native thread pools (OpenMP, BLAS) gain little there
    # and, on a busy machine, their spinning threads turn a 60 ms answer into a second.
    # Scale a service with processes; --threads raises the pool for large batches.
    threadpool_limits(limits=args.threads)
    app = create_app(_model_path(args.model), max_records=args.max_records)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def rollback(args: argparse.Namespace) -> int:
    from .registry import Registry

    try:
        root = find_project_root()
        state = Registry(root).rollback()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"champion is now version {state['champion'].get('version')} (models/registry/champion.skops)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="{{ cookiecutter.package_name }}", description="Score records with the deployed model.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="score a CSV or Parquet file")
    p.add_argument("input", help="records to score (.csv, .csv.gz or .parquet)")
    p.add_argument("output", help="where to write scores and decisions (.csv or .parquet)")
    p.add_argument("--model", help="deployable artifact (default: models/release.skops, else models/model.skops)")
    p.add_argument("--allow-extra", action="store_true", help="ignore columns the model does not take")
    p.add_argument("--allow-unseen", action="store_true", help="score categories not seen in training")
    p.add_argument("--keep-columns", action="store_true", help="copy the input columns into the output")
    p.set_defaults(func=predict)
    s = commands.add_parser("serve", help="serve GET /health and POST /predict over HTTP")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--model", help="deployable artifact (default as for predict)")
    s.add_argument("--max-records", type=int, default=10_000, help="largest batch one request may carry")
    s.add_argument("--threads", type=int, default=1, help="native threads per request (OpenMP, BLAS)")
    s.add_argument("--log-level", default="warning")
    s.set_defaults(func=serve)
    r = commands.add_parser("rollback", help="restore the previous champion model of models/registry/")
    r.set_defaults(func=rollback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
