"""Resumable sweeps: one CSV row per completed configuration, done rows skipped on rerun."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

__all__ = ["run_sweep"]


def _cell(value: Any) -> str:
    """How a value is written to (and compared in) the CSV: None as empty, else ``str``."""
    return "" if value is None else str(value)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.exists() or path.stat().st_size == 0:
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_all(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """Rewrite the file (when a row brings new columns); atomic via a temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_sweep(configs: Sequence[Mapping], fn: Callable[[Mapping], Mapping | list[Mapping]],
              out: str | Path, *, key: Sequence[str], desc: str = "") -> pd.DataFrame:
    """Run ``fn`` on every config not yet in ``out``; append its row(s) as each one finishes.

    A configuration's key values are copied into each of its rows (unless ``fn`` sets them),
    and compared as text (``str``; None as empty), so a rerun after an interruption skips
    exactly the configurations already written. An exception in ``fn`` propagates; the rows
    written before it stay.

    Args:
        configs: the sweep, one mapping per configuration.
        fn: computes the result row (or rows) of one configuration.
        out: the CSV file; created if missing, appended to (and flushed) after each config.
        key: config fields that identify a configuration; a config whose key values already
            appear in ``out`` is skipped.
        desc: label of the tqdm progress bar.

    Returns:
        The whole table in ``out`` after the sweep (empty if there are no rows).

    Raises:
        ValueError: if ``key`` is empty or a config lacks one of its fields.
    """
    if not key:
        raise ValueError("run_sweep: key must name at least one config field")
    for i, config in enumerate(configs):
        missing = [k for k in key if k not in config]
        if missing:
            raise ValueError(f"run_sweep: config {i} lacks key field(s) {missing}: {dict(config)}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    header, rows = _read_rows(path)
    done = {tuple(row.get(k, "") for k in key) for row in rows}
    todo = [c for c in configs if tuple(_cell(c[k]) for k in key) not in done]
    bar = tqdm(todo, desc=desc or path.stem, initial=len(configs) - len(todo),
               total=len(configs), dynamic_ncols=True)
    for config in bar:
        result = fn(config)
        new = [{**{k: config[k] for k in key}, **r}
               for r in ([result] if isinstance(result, Mapping) else result)]
        new_rows = [{k: _cell(v) for k, v in r.items()} for r in new]
        columns = list(dict.fromkeys(c for r in new_rows for c in r))
        if not header or any(c not in header for c in columns):
            header = list(dict.fromkeys([*header, *columns]))
            rows += new_rows
            _write_all(path, header, rows)
        else:
            rows += new_rows
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=header, restval="").writerows(new_rows)
                f.flush()
                os.fsync(f.fileno())
    bar.close()
    if not rows:
        return pd.DataFrame(columns=header)
    return pd.read_csv(path)
