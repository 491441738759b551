"""The prediction log: every decision ``serve`` and ``predict`` make, and the outcomes that arrive later. Adapt with care: the service, ``predict``, ``label`` and monitoring go through it.

One table, ``predictions``, one row per scored record: the request id (returned to the
caller) and the record's place in its request, the time (UTC), where it was decided
(``serve`` or ``predict``), the model and its version, the record as validated (after the
privacy setting), score, decision and label, the data contract's ``id_columns`` when the
input carried them, and, once ``label`` attached it, the outcome.

It is a real database, through SQLAlchemy Core: SQLite by default (a file under the
project, nothing to start or install; WAL mode and a busy timeout, so several service
workers write at once), PostgreSQL or any SQLAlchemy URL for a team. The URL is
``serving.prediction_log`` in params.yaml (a path is a SQLite file under the project), and
the environment variable :data:`URL_ENV` overrides it, so credentials stay out of tracked
files. :func:`open_engine` creates the tables in an empty database and migrates an older
schema (:data:`SCHEMA_VERSION`, :data:`MIGRATIONS`); nobody does it by hand.

Nothing is lost: a decision is written, in one transaction with the others of its batch,
before it is answered; a write that fails is an error for the caller, never a silent drop.

Privacy: :class:`Privacy` hashes (HMAC-SHA256 with the key in :data:`KEY_ENV` when set) or
drops the columns ``serving.log_hash_columns`` and ``serving.log_drop_columns`` list, in the
logged record and in the logged ids alike (``label`` hashes a label file's ids the same way).

Reading, for monitoring and retraining: :func:`read_window` (decisions by time),
:func:`read_since` (decisions after a row id), :func:`read_latest` (the last N) give a frame
with the record's fields as columns and the outcome where known; :func:`fingerprint` says
whether the log has new rows or labels.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

URL_ENV = "{{ cookiecutter.package_name | upper }}_PREDICTION_LOG_URL"
KEY_ENV = "{{ cookiecutter.package_name | upper }}_PREDICTION_LOG_KEY"
DEFAULT_PATH = "data/log/predictions.sqlite"
DEFAULT_URL = f"sqlite:///{DEFAULT_PATH}"  # relative: under the project
BUSY_TIMEOUT_S = 30  # SQLite: how long a writer waits for another's lock before it fails
REQUEST_ID = "request_id"
RECORD_INDEX = "record_index"
LOOKUP_CHUNK = 500

# ------------------------------------------------------------------ the schema and its migrations

METADATA = sa.MetaData()
_RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's rowid needs INTEGER PRIMARY KEY
_Json = sa.JSON().with_variant(JSONB(), "postgresql")

PREDICTIONS = sa.Table(
    "predictions",
    METADATA,
    sa.Column("id", _RowId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("record_index", sa.Integer, nullable=False),
    sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("record", _Json, nullable=False),
    sa.Column("ids", _Json),
    sa.Column("id_key", sa.String(64), index=True),  # SHA-256 of the logged ids: what ``label`` matches
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.Integer, nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(200)),
    sa.Column("outcome_positive", sa.Boolean),
    sa.Column("labelled_at", sa.DateTime(timezone=True), index=True),
    sa.UniqueConstraint("request_id", "record_index", name="uq_predictions_request_record"),
)
SCHEMA_TABLE = sa.Table("prediction_log_schema", METADATA, sa.Column("version", sa.Integer, nullable=False))

# The schema's version. A change to the tables above raises it by one and adds the step from the
# previous version here (e.g. ``2: lambda conn: conn.execute(sa.text("ALTER TABLE predictions ADD ..."))``):
# an empty database gets the tables as defined above, an older one the steps since its version.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}
_PG_LOCK = 7_020_020  # advisory lock: one process creates or migrates at a time


class PredictionLogError(RuntimeError):
    """The prediction log cannot be opened or written; the message says which log and why."""


def resolve_url(setting: str | None, root: Path | None) -> str:
    """The log's SQLAlchemy URL: :data:`URL_ENV` if set, else ``setting``.

    A relative SQLite file (``sqlite:///data/log/predictions.sqlite``, or the bare path) is under
    ``root``, the project, wherever the command runs; a server's URL is used as given.
    """
    given = os.environ.get(URL_ENV) or setting or DEFAULT_URL
    relative = given.removeprefix("sqlite:///") if given.startswith("sqlite:///") else given
    if "://" in relative or relative.startswith("/") or relative == ":memory:":
        return given  # a server's URL, or a SQLite file at an absolute path
    if root is None:
        raise PredictionLogError(
            f"no prediction log: not inside the project, so {given!r} has no place; set {URL_ENV} to a "
            "database URL (e.g. sqlite:////path/predictions.sqlite) or pass --no-log"
        )
    return f"sqlite:///{(root / relative).resolve()}"


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


_ENGINES: dict[str, sa.Engine] = {}


def open_engine(url: str) -> sa.Engine:
    """The engine of the log at ``url`` (one per process), its schema created or migrated."""
    if url not in _ENGINES:
        try:
            engine = _create_engine(url)
            ensure_schema(engine)
        except (sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
            raise PredictionLogError(f"cannot open the prediction log {shown_url(url)}: {_reason(exc)}") from exc
        _ENGINES[url] = engine
    return _ENGINES[url]


def close_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def _create_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers never block the writer; the busy timeout makes writers queue, not fail
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    return engine


def ensure_schema(engine: sa.Engine) -> int:
    """Create the tables at :data:`SCHEMA_VERSION`, or migrate an older log to it; the version found (0: none)."""
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
                return _migrate(conn)
        except sa.exc.DBAPIError:  # two processes created the tables at once: look again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _migrate(conn: sa.Connection) -> int:
    inspector = sa.inspect(conn)
    found = None
    if inspector.has_table(SCHEMA_TABLE.name):
        found = conn.execute(sa.select(sa.func.max(SCHEMA_TABLE.c.version))).scalar()
    if found is None:
        if inspector.has_table(PREDICTIONS.name):
            raise PredictionLogError(
                "the database has a 'predictions' table but no schema version: not a prediction log"
            )
        METADATA.create_all(conn)
        conn.execute(SCHEMA_TABLE.delete())
        conn.execute(SCHEMA_TABLE.insert().values(version=SCHEMA_VERSION))
        return 0
    if found > SCHEMA_VERSION:
        raise PredictionLogError(f"the log's schema is version {found}, newer than this code's {SCHEMA_VERSION}")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn)
    if found < SCHEMA_VERSION:
        conn.execute(SCHEMA_TABLE.update().values(version=SCHEMA_VERSION))
    return int(found)


def schema_version(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(SCHEMA_TABLE.c.version))).scalar() or 0)


# ------------------------------------------------------------------ privacy


@dataclass(frozen=True)
class Privacy:
    """Columns kept out of the log: hashed (the same value gives the same hash) or dropped."""

    hash_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    key: bytes | None = None

    @classmethod
    def from_settings(cls, hash_columns: Iterable[str] = (), drop_columns: Iterable[str] = ()) -> Privacy:
        """The setting with the hashing key of :data:`KEY_ENV`, if set (without one, a hash of a
        value with few possible values can be reversed by hashing every candidate)."""
        key = os.environ.get(KEY_ENV)
        return cls(tuple(hash_columns), tuple(drop_columns), key.encode() if key else None)

    def apply(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            column: (hashed(column, value, self.key) if column in self.hash_columns else value)
            for column, value in values.items()
            if column not in self.drop_columns
        }


def hashed(column: str, value: Any, key: bytes | None = None) -> str | None:
    """``sha256:<hex>`` of the column and the value's text (HMAC with ``key``); a missing value stays missing."""
    value = plain(value)
    if value is None:
        return None
    message = f"{column}\x00{value}".encode()
    digest = hmac.new(key, message, hashlib.sha256) if key else hashlib.sha256(message)
    return "sha256:" + digest.hexdigest()


def plain(value: Any) -> Any:
    """A value as JSON holds it: numpy scalars as Python's, integral floats as ints, missing as None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str, bytes)):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def id_key(ids: Mapping[str, Any] | None) -> str | None:
    """What ``label`` matches a logged decision by: a SHA-256 of the (already private) ids."""
    if not ids:
        return None
    text = json.dumps({c: None if v is None else str(v) for c, v in ids.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ writing decisions


def new_request_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def decision_rows(
    request_id: str,
    source: str,
    metadata: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    decisions: Sequence[int],
    labels: Sequence[str],
    privacy: Privacy = Privacy(),
    ids: Sequence[Mapping[str, Any]] | None = None,
    logged_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The log's rows of one request: one per record, in order (``record_index`` 0, 1, ...)."""
    logged_at = logged_at or now()
    rows = []
    for index, (record, s, d, lab) in enumerate(zip(records, scores, decisions, labels, strict=True)):
        logged_ids = privacy.apply({c: plain(v) for c, v in ids[index].items()}) if ids else None
        rows.append(
            {
                "request_id": request_id,
                "record_index": index,
                "logged_at": logged_at,
                "source": source,
                "model_name": str(metadata["model_name"]),
                "model_version": str(metadata["version"]),
                "record": privacy.apply({c: plain(v) for c, v in record.items()}),
                "ids": logged_ids or None,
                "id_key": id_key(logged_ids),
                "score": float(s),
                "decision": int(d),
                "label": str(lab),
            }
        )
    return rows


def write(engine: sa.Engine, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert the rows in one transaction: all of them or none (then :class:`PredictionLogError`)."""
    if not rows:
        return 0
    try:
        with engine.begin() as conn:
            conn.execute(PREDICTIONS.insert(), list(rows))
    except sa.exc.SQLAlchemyError as exc:
        raise PredictionLogError(f"the prediction log did not take {len(rows)} decisions: {_reason(exc)}") from exc
    return len(rows)


def _reason(exc: BaseException) -> str:
    """The database's own message, without the statement and its parameters (they hold the records)."""
    original = getattr(exc, "orig", None) or exc
    return f"{type(original).__name__}: {str(original).splitlines()[0] if str(original) else ''}"


class Log:
    """An open prediction log: where it is and what its privacy setting keeps out."""

    def __init__(self, url: str, privacy: Privacy = Privacy()):
        self.url, self.privacy = url, privacy
        self.engine = open_engine(url)

    def rows(
        self, request_id: str, source: str, metadata: Mapping[str, Any], records, result, ids=None, logged_at=None
    ):
        """Rows of one request from its records and its scored frame (``score``, ``decision``, ``label``)."""
        return decision_rows(
            request_id,
            source,
            metadata,
            records,
            result["score"],
            result["decision"],
            result["label"],
            self.privacy,
            ids,
            logged_at,
        )

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        return write(self.engine, rows)


# ------------------------------------------------------------------ outcomes that arrive later


@dataclass
class LabelReport:
    """What ``label`` did: rows of the file, matched decisions, updated and already labelled, unknown keys."""

    rows: int
    matched_by: str
    matched: int
    updated: int
    unchanged: int
    unknown: list[Any]

    @property
    def summary(self) -> str:
        text = (
            f"{self.rows:,} outcomes by {self.matched_by}: {self.matched:,} decisions matched, "
            f"{self.updated:,} labelled now, {self.unchanged:,} already had this outcome"
        )
        if self.unknown:
            shown = ", ".join(map(str, self.unknown[:5])) + (", ..." if len(self.unknown) > 5 else "")
            text += f"; {len(self.unknown):,} match no logged decision ({shown})"
        return text


def attach_outcomes(
    engine: sa.Engine,
    frame: Any,
    target: str,
    positive_label: Any,
    id_columns: Sequence[str] = (),
    privacy: Privacy = Privacy(),
    labelled_at: datetime | None = None,
) -> LabelReport:
    """Attach the outcomes in ``frame`` (column ``target``) to the decisions they belong to.

    A row names its decision by ``request_id`` (and ``record_index``, needed when the request
    had several records), else by the contract's ``id_columns`` (every logged decision with
    those ids gets the outcome). Idempotent: a decision that already has the outcome is left
    as it is; a different outcome replaces the old one (a correction). Keys that match no
    decision are returned in ``unknown``; the others are labelled all the same.
    """
    if target not in frame.columns:
        raise ValueError(f"the file has no column {target!r} (the target, data.target) with the outcomes")
    if frame[target].isna().any():
        row = int(frame[target].isna().to_numpy().nonzero()[0][0])
        raise ValueError(f"row {row} of the file has no outcome in {target!r}")
    outcomes = [str(plain(v)) for v in frame[target]]
    if REQUEST_ID in frame.columns:
        matched_by = REQUEST_ID + (f" and {RECORD_INDEX}" if RECORD_INDEX in frame.columns else "")
        keys = _request_keys(engine, frame)
    elif id_columns and all(c in frame.columns for c in id_columns):
        matched_by = ", ".join(id_columns)
        keys = _id_keys(engine, frame, id_columns, privacy)
    else:
        raise ValueError(
            f"the file needs a {REQUEST_ID!r} column (the id the service answered, with {RECORD_INDEX!r} for a "
            f"request of several records) or the contract's id columns ({', '.join(id_columns) or 'data.id_columns is empty'})"
        )
    wanted: dict[int, tuple[str, Any]] = {}
    unknown, unchanged = [], 0
    for (shown, matches), outcome in zip(keys, outcomes, strict=True):
        if not matches:
            unknown.append(shown)
        for pk, current in matches:
            if pk in wanted and wanted[pk][0] != outcome:
                raise ValueError(
                    f"{shown}: the file gives two outcomes for one decision ({wanted[pk][0]!r}, {outcome!r})"
                )
            if current == outcome:
                unchanged += 1
            elif pk not in wanted:
                wanted[pk] = (outcome, shown)
    when = labelled_at or now()
    positive = str(plain(positive_label))
    update = (
        sa.update(PREDICTIONS)
        .where(PREDICTIONS.c.id == sa.bindparam("b_id"))
        .values(outcome=sa.bindparam("b_outcome"), outcome_positive=sa.bindparam("b_positive"), labelled_at=when)
    )
    if wanted:
        params = [{"b_id": pk, "b_outcome": o, "b_positive": o == positive} for pk, (o, _) in wanted.items()]
        with engine.begin() as conn:
            conn.execute(update, params)
    matched = sum(1 for _, m in keys if m)
    return LabelReport(len(frame), matched_by, matched, len(wanted), unchanged, unknown)


def _lookup(engine: sa.Engine, column: sa.Column, values: list[Any]) -> list[Any]:
    found = []
    with engine.connect() as conn:
        for start in range(0, len(values), LOOKUP_CHUNK):
            chunk = values[start : start + LOOKUP_CHUNK]
            query = sa.select(
                PREDICTIONS.c.id,
                PREDICTIONS.c.request_id,
                PREDICTIONS.c.record_index,
                PREDICTIONS.c.id_key,
                PREDICTIONS.c.outcome,
            ).where(column.in_(chunk))
            found.extend(conn.execute(query).all())
    return found


def _request_keys(engine: sa.Engine, frame: Any) -> list[tuple[str, list[tuple[int, str | None]]]]:
    request_ids = [str(v) for v in frame[REQUEST_ID]]
    indexes = [int(v) for v in frame[RECORD_INDEX]] if RECORD_INDEX in frame.columns else None
    by_request: dict[str, dict[int, tuple[int, str | None]]] = {}
    for row in _lookup(engine, PREDICTIONS.c.request_id, sorted(set(request_ids))):
        by_request.setdefault(row.request_id, {})[row.record_index] = (row.id, row.outcome)
    keys = []
    for position, request_id in enumerate(request_ids):
        records = by_request.get(request_id, {})
        if indexes is None:
            if len(records) > 1:
                raise ValueError(
                    f"request {request_id} scored {len(records)} records: give the file a {RECORD_INDEX!r} column"
                )
            keys.append((request_id, list(records.values())))
        else:
            index = indexes[position]
            hit = records.get(index)
            keys.append((f"{request_id}/{index}", [hit] if hit else []))
    return keys


def _id_keys(engine: sa.Engine, frame: Any, id_columns: Sequence[str], privacy: Privacy) -> list[tuple[str, list]]:
    rows = frame[list(id_columns)].to_dict(orient="records")
    hashes = [id_key(privacy.apply({c: plain(v) for c, v in row.items()})) for row in rows]
    by_key: dict[str, list[tuple[int, str | None]]] = {}
    for row in _lookup(engine, PREDICTIONS.c.id_key, sorted(set(hashes))):
        by_key.setdefault(row.id_key, []).append((row.id, row.outcome))
    return [
        (json.dumps({c: plain(v) for c, v in row.items()}), by_key.get(h, []))
        for row, h in zip(rows, hashes, strict=True)
    ]


# ------------------------------------------------------------------ reading: monitoring and retraining

LOG_COLUMNS = (
    "id",
    "request_id",
    "record_index",
    "logged_at",
    "source",
    "model_name",
    "model_version",
    "score",
    "decision",
    "label",
    "outcome",
    "outcome_positive",
    "labelled_at",
)


def read_window(
    url: str, start: datetime | None = None, end: datetime | None = None, labelled: bool | None = None
) -> Any:
    """Decisions logged in ``[start, end)`` (UTC; open ends when None), oldest first.

    ``labelled``: True only those with an outcome, False only those without, None all. See
    :func:`to_frame` for the columns.
    """
    query = _select()
    if start is not None:
        query = query.where(PREDICTIONS.c.logged_at >= _utc(start))
    if end is not None:
        query = query.where(PREDICTIONS.c.logged_at < _utc(end))
    return _read(url, _labelled(query, labelled))


def read_since(url: str, after_id: int = 0, limit: int | None = None, labelled: bool | None = None) -> Any:
    """Decisions whose row ``id`` is above ``after_id`` (ids grow with every write), oldest first."""
    query = _labelled(_select().where(PREDICTIONS.c.id > after_id), labelled)
    return _read(url, query.limit(limit) if limit else query)


def read_latest(url: str, rows: int, labelled: bool | None = None) -> Any:
    """The last ``rows`` decisions, oldest first."""
    query = _labelled(_select(), labelled).order_by(None).order_by(PREDICTIONS.c.id.desc()).limit(rows)
    frame = _read(url, query)
    return frame.iloc[::-1].reset_index(drop=True)


def fingerprint(url: str) -> dict[str, Any]:
    """Rows, labelled rows, the last row id and the last labelling time: changes exactly when the log does."""
    p = PREDICTIONS.c
    query = sa.select(sa.func.count(), sa.func.count(p.outcome), sa.func.max(p.id), sa.func.max(p.labelled_at))
    with open_engine(url).connect() as conn:
        rows, labelled, last_id, last_label = conn.execute(query).one()
    return {
        "rows": int(rows),
        "labelled": int(labelled),
        "last_id": int(last_id or 0),
        "last_labelled_at": _utc(last_label).isoformat() if last_label else None,
    }


def _select() -> sa.Select:
    return sa.select(*(PREDICTIONS.c[c] for c in LOG_COLUMNS), PREDICTIONS.c.ids, PREDICTIONS.c.record).order_by(
        PREDICTIONS.c.id
    )


def _labelled(query: sa.Select, labelled: bool | None) -> sa.Select:
    if labelled is None:
        return query
    return query.where(PREDICTIONS.c.outcome.is_not(None) if labelled else PREDICTIONS.c.outcome.is_(None))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read(url: str, query: sa.Select) -> Any:
    with open_engine(url).connect() as conn:
        rows = conn.execute(query).all()
    return to_frame(rows)


def to_frame(rows: Sequence[Any]) -> Any:
    """Log rows as a frame: the log's columns (times UTC-aware), ``ids`` as a dict, the record's fields as columns.

    A record field named like a log column comes as ``<field>_record``.
    """
    import pandas as pd

    log = pd.DataFrame([tuple(r)[: len(LOG_COLUMNS)] for r in rows], columns=list(LOG_COLUMNS))
    for column in ("logged_at", "labelled_at"):
        log[column] = pd.to_datetime(log[column].map(lambda t: None if t is None else _utc(t)), utc=True)
    log["outcome_positive"] = log["outcome_positive"].astype("boolean")
    log["ids"] = [r.ids for r in rows]
    records = pd.DataFrame.from_records([r.record for r in rows], index=log.index)
    records.columns = [f"{c}_record" if c in log.columns else c for c in records.columns]
    return log.join(records)
