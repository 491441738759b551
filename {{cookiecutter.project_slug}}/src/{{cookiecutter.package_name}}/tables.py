"""The data of steps 03-05, held whole in memory or partitioned on disk. Adapt with care: steps 03, 04 and 05 read and write their data through it.

``data.path`` names a file (CSV or Parquet): :func:`read` gives a :class:`MemoryTable`, a pandas
frame as always. It names a directory of Parquet files (data larger than memory, as Spark, Dask
or ``pyarrow.dataset`` write them): a :class:`PartitionedTable`, a ``dask.dataframe`` read a few
partitions at a time, on the cluster of ``compute.scheduler`` when one is set (else one partition
after another in the step's process). Both answer the same questions, so a step's notebook does not
know which it has:

- :meth:`survey`: the contract checked, rows, labels, duplicated rows, over every row;
- :meth:`sample`: a seeded sample for what fits models or profiles columns (``max_rows``);
- :meth:`column_stats` and :meth:`column_schema`: missingness, ranges and categories over every
  row, so that step 05's validation accepts every row the data hold;
- :meth:`cells`: rows and positives per (sensitive groups, label): what representation tables
  and reweighing need, whatever the size;
- :meth:`split`: step 05's stratified, seeded split, identical rows kept together;
- :meth:`row_hashes`, :meth:`violations`, :meth:`transform_means` and :meth:`write`.

The split is the same function of the rows in memory and partitioned (:func:`.features.split_frame`):
every row draws a number from a seeded 64-bit hash of its content, and each stratum (label and
sensitive group) is cut at the quantiles of its draws counted over every row. So identical rows
land in one split wherever they sit, and the same rows give the same split in one file, in 4 or 8
files, in any order. A partitioned table holds the draws (eight bytes per row) in memory for the
cuts, not the rows. The splits are written as directories of Parquet parts under the same names
(``data/processed/train.parquet/``), which pandas and Dask read like a file.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import data

SPLITS = ("train", "validation", "test")


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


@dataclass(frozen=True)
class Survey:
    """What step 03 reports about the raw data, counted over every row."""

    rows: int
    columns: int
    unlabelled: int
    positives: int
    duplicate_rows: int | None  # among the labelled rows (None: not counted)
    positive_label: Any
    negative_label: Any
    target_dtype: str
    target_missing_rate: float

    @property
    def labelled(self) -> int:
        return self.rows - self.unlabelled

    @property
    def prevalence(self) -> float:
        return self.positives / self.labelled


def is_partitioned(path: str | Path) -> bool:
    """Whether ``path`` is a directory (of Parquet files) rather than one file."""
    return Path(path).is_dir()


def read(path: str | Path, key: str = "data.path", compute: Any = None, root: Path | None = None) -> Any:
    """A :class:`MemoryTable` of a file, or a :class:`PartitionedTable` of a directory of Parquet files.

    ``compute`` is the project's ``compute:`` section: a partitioned table's work runs on its
    cluster. Errors are :class:`.data.DataContractError` naming ``key``.
    """
    path = Path(path)
    if is_partitioned(path):
        return PartitionedTable.read(path, key, compute, root)
    return MemoryTable(data.read_table(path, key))


def read_rows(
    path: str | Path, max_rows: int | None, seed: int, compute: Any = None, root: Path | None = None
) -> tuple[pd.DataFrame, int]:
    """A split for a step that fits on at most ``max_rows`` of its rows, and how many rows it has.

    A file is read whole (the step samples it, stratified, itself). A partitioned split is never read
    whole: a seeded sample of a little more than ``max_rows`` rows is drawn from its partitions, which
    the step then trims to ``max_rows`` as it would trim the whole.
    """
    table = read(path, str(path), compute, root)
    if not table.partitioned:
        return table.frame, len(table)
    wanted = len(table) if max_rows is None else int(max_rows * 1.05) + 100
    return table.sample(wanted, seed), len(table)


def sample_of(
    path: str | Path, max_rows: int, seed: int, compute: Any = None, root: Path | None = None
) -> pd.DataFrame:
    """Every row of a split when it has at most ``max_rows``, else a seeded sample (drawn from its partitions)."""
    return read(path, str(path), compute, root).sample(max_rows, seed)


def remove(path: Path) -> None:
    """Remove a file or a directory of parts, so that a table of the other kind can take its name."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _labelled(frame: pd.DataFrame, target: str, positive: Any) -> pd.DataFrame:
    """The rows that carry a label, the target as 0/1."""
    kept = frame[frame[target].notna()]
    return kept.assign(**{target: data.as_binary(kept[target], positive).astype(int)})


def _cells(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Rows and positives per combination of sensitive groups (and the label)."""
    target = spec["target"]
    keyed = data.sensitive_groups(frame, spec).assign(**{target: frame[target].to_numpy().astype(int)})
    counts = keyed.value_counts(sort=False).rename("rows").reset_index()
    return counts.sort_values([*spec["sensitive_features"], target], kind="stable").reset_index(drop=True)


def combine_cells(parts: list[pd.DataFrame], spec: dict[str, Any]) -> pd.DataFrame:
    keys = [*spec["sensitive_features"], spec["target"]]
    whole = pd.concat(parts, ignore_index=True).groupby(keys, sort=True)["rows"].sum()
    return whole.reset_index()


class MemoryTable:
    """A pandas frame held whole: the default, and what data that fit in memory use."""

    partitioned = False

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    @classmethod
    def read_parquet(cls, path: Path) -> MemoryTable:
        return cls(pd.read_parquet(path))

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def survey(self, contract: dict[str, Any], duplicates: bool = True, empty_sensitive: bool = True) -> Survey:
        """``duplicates``: count duplicated rows; ``empty_sensitive``: an empty sensitive column stops here
        (step 01 leaves that to step 03, which says which column is not available)."""
        target, sensitive = data.check_roles(self.frame.columns, contract)  # as data.check_contract, in its order
        positive, negative = data.target_labels(self.frame[target], contract.get("positive_label"))
        y = data.as_binary(self.frame[target], positive)
        if empty_sensitive:
            data.check_present(self.frame[sensitive].notna().sum(), len(self.frame))
        labelled = self.frame.loc[y.notna()]
        return Survey(
            rows=len(self.frame),
            columns=self.frame.shape[1],
            unlabelled=int(y.isna().sum()),
            positives=int(y.sum()),
            duplicate_rows=int(labelled.duplicated().sum()) if duplicates else None,
            positive_label=positive,
            negative_label=negative,
            target_dtype=str(self.frame[target].dtype),
            target_missing_rate=float(self.frame[target].isna().mean()),
        )

    def labelled(self, target: str, positive: Any) -> MemoryTable:
        return MemoryTable(_labelled(self.frame, target, positive).reset_index(drop=True))

    def sample(self, max_rows: int, seed: int) -> pd.DataFrame:
        """Every row when there are at most ``max_rows``, else a seeded sample (in the rows' order)."""
        from .bias import sample_positions

        return self.frame.iloc[sample_positions(len(self.frame), max_rows, seed)]

    def column_stats(self, columns: list[str]) -> pd.DataFrame:
        return _column_stats(self.frame[columns])

    def column_schema(self, kinds: dict[str, str], max_categories: int) -> dict[str, dict[str, Any]]:
        from .profiling import column_schema

        return column_schema(self.frame, kinds, max_categories)

    def cells(self, spec: dict[str, Any]) -> pd.DataFrame:
        return _cells(self.frame, spec)

    def select(self, columns: list[str]) -> MemoryTable:
        return MemoryTable(self.frame[columns])

    def split(self, spec: dict[str, Any], split: Any, directory: Path | None = None) -> dict[str, MemoryTable]:
        """Step 05's split (:func:`.features.split_selected`); written to ``directory/<split>.parquet`` when given."""
        from .features import split_selected

        splits = {name: MemoryTable(part) for name, part in split_selected(self.frame, spec, split).items()}
        for name, table in splits.items() if directory is not None else ():
            table.write(directory / f"{name}.parquet")
        return splits

    def row_hashes(self) -> np.ndarray:
        """:func:`.features.row_hashes` of every row, in order."""
        from .features import row_hashes

        return row_hashes(self.frame)

    def violations(self, schema: Any) -> pd.DataFrame:
        from .schema import violations

        return violations(schema, self.frame)

    def transform_means(self, pipeline: Any, columns: list[str]) -> pd.Series:
        """The mean of every model feature the fitted ``pipeline`` makes of these rows."""
        encoded = pipeline.transform(self.frame[columns])
        return pd.Series(np.asarray(encoded, dtype=float).mean(axis=0), index=pipeline.get_feature_names_out())

    def write(self, path: Path) -> None:
        remove(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(path, index=False)


def _column_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column: rows, missing values, and min and max of the numeric ones."""
    numeric = frame.select_dtypes("number")
    stats = pd.DataFrame({"rows": len(frame), "missing": frame.isna().sum()})
    stats["min"] = numeric.min().reindex(stats.index)
    stats["max"] = numeric.max().reindex(stats.index)
    return stats


class _Session:
    """Where a table and every table made from it compute: the step's cluster when ``compute.scheduler``
    is set (started at the first computation, kept until the step's process ends), else one partition
    after another in this process."""

    def __init__(self, compute: Any = None, root: Path | None = None, path: Path | None = None, key: str = "data.path"):
        self.compute, self.root, self.path, self.key = compute, root, path, key
        self._stack: ExitStack | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        import dask

        if self.compute is not None and self.compute.scheduler is not None and self._stack is None:
            import atexit

            from .compute import cluster

            self._stack = ExitStack()
            client = self._stack.enter_context(cluster(self.compute, self.root))
            atexit.register(self._stack.close)
            self._check_workers_see(client)
        local = self._stack is None
        with dask.config.set({"scheduler": "synchronous"} if local else {}), warnings.catch_warnings():
            # dask's own Parquet reader still calls reset_index(inplace=True), deprecated by pandas 3.1
            warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.reset_index")
            yield

    def _check_workers_see(self, client: Any) -> None:
        """The workers read and write the parts themselves: each must see the data's directory, or a ConfigError says so."""
        import os

        from .config import ConfigError

        if self.path is None:
            return
        seen = client.run(os.path.isdir, str(self.path.resolve()))
        blind = sorted(worker for worker, ok in seen.items() if not ok)
        if blind:
            self._stack.close()
            self._stack = None
            raise ConfigError(
                f"compute.scheduler: {len(blind)} of the cluster's {len(seen)} workers cannot see {self.key} "
                f"{data.shown(self.path)!r} (e.g. {blind[0]}): on partitioned data they read and write the parts "
                "themselves, so the project must be on a disk they share; or leave compute.scheduler empty for "
                "these steps (README: Running on a cluster)"
            )


class PartitionedTable:
    """A directory of Parquet files read through ``dask.dataframe``: the data need not fit in memory."""

    partitioned = True

    def __init__(self, frame: Any, session: _Session | None = None):
        self.frame, self.session = frame, session or _Session()
        self._rows: int | None = None
        self._labelled: dict[tuple[str, Any], PartitionedTable] = {}
        self._stats = pd.DataFrame()

    @classmethod
    def read(
        cls, path: Path, key: str = "data.path", compute: Any = None, root: Path | None = None
    ) -> PartitionedTable:
        import dask
        import dask.dataframe as dd

        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(data.PARQUET_SUFFIXES))
        if not files:
            raise data.DataContractError(f"{key}: directory {data.shown(path)!r} holds no Parquet file")
        # Text stays as pandas reads it from a file (dask would make it pyarrow strings, whose pd.NA
        # scikit-learn's imputers cannot compare), for every frame the step derives from this one.
        dask.config.set({"dataframe.convert-string": False})
        try:
            frame = dd.read_parquet(str(path))
        except Exception as exc:  # the reader's own words say what is wrong
            raise data.DataContractError(
                f"{key}: cannot read {data.shown(path)!r} as a Parquet dataset: {exc}"
            ) from None
        table = cls(frame, _Session(compute, root, path, key))
        if len(table) == 0:
            raise data.DataContractError(f"{key}: directory {data.shown(path)!r} has no data rows")
        return table

    # -- running ---------------------------------------------------------------------------------
    def _running(self) -> Any:
        return self.session.running()

    def _compute(self, *collections: Any) -> tuple[Any, ...]:
        import dask

        with self._running():
            return dask.compute(*collections)

    def _derived(self, frame: Any) -> PartitionedTable:
        return PartitionedTable(frame, self.session)  # on the same cluster

    def _per_partition(self, func: Any, *args: Any) -> list[Any]:
        """``func(partition, *args)`` of every partition, in order."""
        import dask

        with self._running():
            parts = self.frame.to_delayed()
        task = dask.delayed(func, pure=True)
        return list(self._compute(*[task(part, *args) for part in parts]))

    # -- the questions ---------------------------------------------------------------------------
    def __len__(self) -> int:
        if self._rows is None:  # the frame never changes: count once
            (rows,) = self._compute(self.frame.map_partitions(len).sum())
            self._rows = int(rows)
        return self._rows

    @staticmethod
    def _read(path: Path) -> Any:
        import dask.dataframe as dd

        return dd.read_parquet(str(path))

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def survey(self, contract: dict[str, Any], duplicates: bool = True, empty_sensitive: bool = True) -> Survey:
        target, sensitive = data.check_roles(self.columns, contract)
        frame = self.frame
        values, present, rows, missing = self._compute(
            frame[target].drop_duplicates(),
            frame[sensitive].count(),
            frame.map_partitions(len).sum(),
            frame[target].isna().sum(),
        )
        positive, negative = data.target_labels(values.rename(target), contract.get("positive_label"))
        if empty_sensitive:
            data.check_present(present, int(rows))
        labelled = self.labelled(target, positive)
        positives, labelled_rows = self._compute(labelled.frame[target].sum(), labelled.frame.map_partitions(len).sum())
        labelled._rows = int(labelled_rows)
        repeated = int(labelled_rows) - len(np.unique(labelled.row_hashes())) if duplicates else None
        return Survey(
            rows=int(rows),
            columns=len(self.columns),
            unlabelled=int(missing),
            positives=int(positives),
            duplicate_rows=repeated,
            positive_label=positive,
            negative_label=negative,
            target_dtype=str(frame[target].dtype),
            target_missing_rate=float(missing) / int(rows),
        )

    def labelled(self, target: str, positive: Any) -> PartitionedTable:
        if (target, positive) not in self._labelled:  # one table per label: what it counts is counted once
            meta = self.frame._meta.assign(**{target: pd.Series(dtype="int64")})
            self._labelled[target, positive] = self._derived(
                self.frame.map_partitions(_labelled, target, positive, meta=meta)
            )
        return self._labelled[target, positive]

    def sample(self, max_rows: int, seed: int) -> pd.DataFrame:
        """A seeded sample of about ``max_rows`` rows drawn from every partition (every row when there are fewer)."""
        rows = len(self)
        if rows <= max_rows:
            (whole,) = self._compute(self.frame)
            return whole.reset_index(drop=True)
        (drawn,) = self._compute(self.frame.sample(frac=max_rows / rows, random_state=seed))
        return drawn.reset_index(drop=True)

    def column_stats(self, columns: list[str]) -> pd.DataFrame:
        """Rows, missing values, min and max per column, over every partition (each column counted once per table)."""
        todo = [c for c in columns if c not in self._stats.index]
        if todo:
            parts = self._per_partition(lambda part: _column_stats(part[todo]))
            stats = pd.DataFrame(
                {
                    "rows": sum(p["rows"] for p in parts),
                    "missing": sum(p["missing"] for p in parts),
                    "min": pd.concat([p["min"] for p in parts], axis=1).min(axis=1),
                    "max": pd.concat([p["max"] for p in parts], axis=1).max(axis=1),
                }
            )
            self._stats = pd.concat([self._stats, stats]) if len(self._stats) else stats
        return self._stats.loc[columns]

    def column_schema(self, kinds: dict[str, str], max_categories: int) -> dict[str, dict[str, Any]]:
        """:func:`.profiling.column_schema` over every row: partition by partition, then combined."""
        from .profiling import NUMERIC

        columns = list(kinds)
        stats = self.column_stats(columns)

        def categories(part: pd.DataFrame) -> dict[str, pd.Series]:
            return {c: part[c].dropna().astype(str).value_counts() for c in columns if kinds[c] != NUMERIC}

        counted = self._per_partition(categories)
        schema = {}
        for column, kind in kinds.items():
            entry: dict[str, Any] = {"kind": kind, "nullable": bool(stats.loc[column, "missing"] > 0)}
            if kind == NUMERIC:
                integer = pd.api.types.is_integer_dtype(self.frame[column].dtype)
                entry.update(min=float(stats.loc[column, "min"]), max=float(stats.loc[column, "max"]), integer=integer)
            else:
                values = pd.concat([part[column] for part in counted]).groupby(level=0).sum()
                values = values.sort_values(ascending=False, kind="stable")
                entry["categories"] = (
                    sorted(values.index[:max_categories].tolist()) if len(values) <= max_categories else None
                )
            schema[column] = entry
        return schema

    def cells(self, spec: dict[str, Any]) -> pd.DataFrame:
        cells = combine_cells(self._per_partition(_cells, spec), spec)
        self._rows = int(cells["rows"].sum())  # counted on the way: a later len() or sample() reads no partition for it
        return cells

    def select(self, columns: list[str]) -> PartitionedTable:
        return self._derived(self.frame[columns])

    def row_hashes(self) -> np.ndarray:
        """:func:`.features.row_hashes` of every row, partition after partition (8 bytes a row in memory)."""
        from .features import row_hashes

        hashes = self._per_partition(row_hashes)
        return np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)

    def split(self, spec: dict[str, Any], split: Any, directory: Path | None = None) -> dict[str, PartitionedTable]:
        """Step 05's split, row for row the split of the same rows in memory (:func:`.features.split_frame`).

        One pass draws every row's number and counts the cuts of every stratum over the whole table; a
        second places each partition's rows. With ``directory``, the three splits are written there
        (``<split>.parquet/part-00000.parquet``, ...) in that pass, and the tables returned read the
        written parts.
        """
        from . import features

        if len(self) < 50:
            raise data.DataContractError(f"data.path: only {len(self)} usable rows; at least 50 are needed")

        def keyed(part: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
            return features.split_keys(part, spec), features.split_draws(features.row_hashes(part), split.seed)

        pieces = self._per_partition(lambda part: features.stratum_draws(*keyed(part)))
        cuts = features.cut_points(pieces, split.validation_fraction, split.test_fraction)

        def split_partition(part: pd.DataFrame) -> pd.DataFrame:  # the name the cluster's task stream shows
            return part.assign(_split=features.assign_splits(*keyed(part), cuts))

        meta = self.frame._meta.assign(_split=pd.Series(dtype="object"))
        whole = self.frame.map_partitions(split_partition, meta=meta)
        splits = {name: self._derived(whole[whole["_split"] == name].drop(columns="_split")) for name in SPLITS}
        if directory is None:
            return splits
        writes = []
        for name, table in splits.items():
            target = directory / f"{name}.parquet"
            remove(target)
            target.mkdir(parents=True)
            with self._running():
                writes.append(
                    table.frame.to_parquet(str(target), write_index=False, compute=False, name_function=part_name)
                )
        self._compute(*writes)
        return {name: self._derived(self._read(directory / f"{name}.parquet")) for name in SPLITS}

    def violations(self, schema: Any) -> pd.DataFrame:
        """:func:`.schema.violations` of every partition, combined: rows summed, a few examples kept."""
        from .schema import violations

        found = pd.concat(self._per_partition(lambda part: violations(schema, part)), ignore_index=True)
        if found.empty:
            return found
        examples = found.groupby(["column", "check"], sort=True)["examples"].agg(
            lambda v: ", ".join(sorted({x.strip() for text in v for x in str(text).split(",")})[:5])
        )
        return found.groupby(["column", "check"], sort=True)["rows"].sum().to_frame().join(examples).reset_index()

    def transform_means(self, pipeline: Any, columns: list[str]) -> pd.Series:
        """The mean of every model feature the fitted ``pipeline`` makes of every row, partition by partition."""

        def sums(part: pd.DataFrame) -> tuple[np.ndarray, int]:
            encoded = np.asarray(pipeline.transform(part[columns]), dtype=float)
            return encoded.sum(axis=0), len(encoded)

        parts = [p for p in self._per_partition(sums) if p[1]]
        total = np.sum([s for s, _ in parts], axis=0) / sum(n for _, n in parts)
        return pd.Series(total, index=pipeline.get_feature_names_out())

    def write(self, path: Path) -> None:
        """A directory of Parquet parts, ``part-00000.parquet`` on (empty partitions too: the numbering stays)."""
        remove(path)
        path.mkdir(parents=True)
        with self._running():
            writing = self.frame.to_parquet(str(path), write_index=False, compute=False, name_function=part_name)
        self._compute(writing)
