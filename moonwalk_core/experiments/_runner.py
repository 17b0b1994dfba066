"""Resumable sweeps: finished configurations survive an interruption, and only an unfinished
sweep resumes.

# Note: [scratch tables]
While a sweep runs, each finished configuration is appended to a scratch table in
``.sweeps/`` as one line ``<checksum> <json>``: its key and all its result rows, so a
configuration is either wholly there or not at all. The first line is a header holding the
sweep's identity (everything that changes a result: the resolved settings, threads, device,
package sources, library versions and the configurations); the file name carries its hash.
Reading a scratch table checks every line: a damaged, truncated or duplicated line, or a
table without a matching header, is dropped with a :class:`DamagedScratchWarning` naming the
file, and those configurations are measured again. When every configuration is done the result
CSV is written in the order of the configurations (temporary file, then rename) and the
scratch table is deleted: a sweep that completed is never reused, so any rerun measures
afresh. A lock per result keeps a second writer out (:class:`SweepLocked`).
See ``docs/pipeline.md``.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

__all__ = ["run_sweep", "sweep_lock", "scratch_path", "DamagedScratchWarning", "SweepLocked"]

FORMAT = "moonwalk-sweep/1"
LOCK_WAIT_S = 30.0


class DamagedScratchWarning(UserWarning):
    """A scratch table held lines that failed their checks; they are measured again."""


class SweepLocked(RuntimeError):
    """Another process is writing the same result."""


def _cell(value: Any) -> str:
    """How a value is written to (and compared in) the CSV: None as empty, else ``str``."""
    return "" if value is None else str(value)


def _canonical(obj: Any, *, sort: bool = False) -> str:
    """Compact JSON; rows keep their column order unless ``sort``."""
    return json.dumps(obj, sort_keys=sort, separators=(",", ":"), allow_nan=False)


def _checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _line(obj: Any) -> str:
    payload = _canonical(obj)
    return f"{_checksum(payload)} {payload}\n"


def _identity_digest(out: Path, key: Sequence[str], configs: Sequence[Mapping],
                     identity: Mapping[str, Any] | None) -> str:
    document = {"result": out.name, "key": list(key),
                "configs": [{k: _cell(v) for k, v in c.items()} for c in configs],
                "identity": identity or {}}
    return hashlib.sha256(_canonical(document, sort=True).encode()).hexdigest()[:16]


def scratch_path(out: str | Path, digest: str, scratch_dir: str | Path | None = None) -> Path:
    """``<scratch_dir>/<result stem>-<digest>.jsonl`` (default folder: ``paths.SWEEPS``)."""
    from .. import paths

    folder = Path(scratch_dir) if scratch_dir is not None else paths.SWEEPS
    return folder / f"{Path(out).stem}-{digest}.jsonl"


_HELD: dict[str, int] = {}


@contextmanager
def sweep_lock(out: str | Path, scratch_dir: str | Path | None = None, *,
               wait_s: float | None = None) -> Iterator[None]:
    """Hold the lock of result ``out`` (``<scratch_dir>/<stem>.lock``); re-entrant in a process.

    Waits up to ``wait_s`` seconds (default :data:`LOCK_WAIT_S`) for another holder (a run
    that is still shutting down), then raises :class:`SweepLocked` naming the file and the
    process that holds it.
    """
    from .. import paths

    wait_s = LOCK_WAIT_S if wait_s is None else wait_s

    folder = Path(scratch_dir) if scratch_dir is not None else paths.SWEEPS
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / f"{Path(out).stem}.lock"
    name = str(lock.resolve())
    if name in _HELD:
        yield
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, told = time.monotonic() + wait_s, False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                message = (f"{Path(out).name} is being written by another run (process "
                           f"{holder}; lock {lock})")
                if time.monotonic() >= deadline:
                    raise SweepLocked(f"{message}. Wait for it to finish, or stop it "
                                      f"(kill {holder}), then run again.") from None
                if not told:
                    print(f"{message}; waiting up to {wait_s:g} s", file=sys.stderr)
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[name] = fd
        try:
            yield
        finally:
            del _HELD[name]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _parse(line: str) -> Any:
    """The JSON object of one scratch line, or None when its checksum or syntax fails."""
    if not line.endswith("\n"):
        return None  # truncated: the write never finished
    checksum, _, payload = line.rstrip("\n").partition(" ")
    if len(checksum) != 16 or _checksum(payload) != checksum:
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _valid_record(obj: Mapping[str, Any], key: Sequence[str],
                  expected: set[tuple[str, ...]]) -> bool:
    cells, rows = obj.get("key"), obj.get("rows")
    if (not isinstance(cells, list) or len(cells) != len(key)
            or tuple(cells) not in expected or not isinstance(rows, list)):
        return False
    return all(isinstance(row, dict) and all(isinstance(v, str) for v in row.values())
               for row in rows)


def _load(path: Path, digest: str, key: Sequence[str], expected: set[tuple[str, ...]]
          ) -> tuple[dict[tuple[str, ...], list[dict[str, str]]], bool]:
    """The valid records of scratch table ``path`` (key cells -> rows), and whether the file
    must be rewritten (it held lines that were dropped, or ends without a newline)."""
    if not path.exists():
        return {}, False
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    parsed = [_parse(line) for line in lines]
    headers = [i for i, obj in enumerate(parsed) if obj is not None
               and obj.get("kind") == "header" and obj.get("format") == FORMAT
               and obj.get("digest") == digest]
    if not headers:
        if lines:
            warnings.warn(f"{path}: no valid header for this sweep; its {len(lines)} line(s) "
                          "are dropped and every configuration is measured again",
                          DamagedScratchWarning, stacklevel=3)
        return {}, bool(lines)
    records: dict[tuple[str, ...], list[dict[str, str]]] = {}
    dropped: list[str] = []
    for number, (line, obj) in enumerate(zip(lines, parsed, strict=True), start=1):
        if number - 1 == headers[0]:
            continue
        if obj is None:
            why = "truncated" if not line.endswith("\n") else "checksum or syntax"
            dropped.append(f"line {number} ({why})")
        elif obj.get("kind") != "record" or not _valid_record(obj, key, expected):
            dropped.append(f"line {number} (not a record of this sweep)")
        elif tuple(obj["key"]) in records:
            same = dict(zip(key, obj["key"], strict=True))
            dropped.append(f"line {number} (duplicate of {same})")
        else:
            records[tuple(obj["key"])] = obj["rows"]
    if dropped:
        warnings.warn(f"{path}: dropped {', '.join(dropped)}; those configurations are "
                      "measured again", DamagedScratchWarning, stacklevel=3)
    return records, bool(dropped) or len(headers) > 1


def _fsync_write(path: Path, text: str, mode: str) -> None:
    with open(path, mode) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _fsync_write(tmp, text, "w")
    os.replace(tmp, path)


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """All rows, columns in order of first appearance; atomic (temporary file, then rename)."""
    header = list(dict.fromkeys(c for row in rows for c in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_sweep(configs: Sequence[Mapping], fn: Callable[[Mapping], Mapping | list[Mapping]],
              out: str | Path, *, key: Sequence[str], desc: str = "",
              identity: Mapping[str, Any] | None = None,
              scratch_dir: str | Path | None = None) -> pd.DataFrame:
    """Run ``fn`` on every configuration not yet in the sweep's scratch table, then write
    ``out`` (see Note: [scratch tables]).

    A configuration's key values are copied into each of its rows (unless ``fn`` sets them)
    and compared as text (``str``; None as empty). An exception in ``fn`` propagates; the
    configurations finished before it stay in the scratch table, and a rerun with the same
    identity resumes after them.

    Args:
        configs: the sweep, one mapping per configuration (distinct key values).
        fn: computes the result row (or rows) of one configuration.
        out: the result CSV, written once the sweep is complete.
        key: config fields that identify a configuration.
        desc: label of the tqdm progress bar.
        identity: everything else that changes a result (settings, threads, device, source
            and library versions); a scratch table resumes only under the same identity.
        scratch_dir: where scratch tables and locks live (default ``paths.SWEEPS``).

    Returns:
        The whole table in ``out`` (empty if there are no rows).

    Raises:
        ValueError: if ``key`` is empty, a config lacks a key field or two share key values.
        SweepLocked: if another process is writing the same result.
    """
    if not key:
        raise ValueError("run_sweep: key must name at least one config field")
    cells: list[tuple[str, ...]] = []
    for i, config in enumerate(configs):
        missing = [k for k in key if k not in config]
        if missing:
            raise ValueError(f"run_sweep: config {i} lacks key field(s) {missing}: {dict(config)}")
        cells.append(tuple(_cell(config[k]) for k in key))
    if len(set(cells)) != len(cells):
        again = next(c for i, c in enumerate(cells) if c in cells[:i])
        raise ValueError("run_sweep: configurations repeat key values "
                         f"{dict(zip(key, again, strict=True))}")
    out = Path(out)
    digest = _identity_digest(out, key, configs, identity)
    path = scratch_path(out, digest, scratch_dir)
    with sweep_lock(out, path.parent):
        records, rewrite = _load(path, digest, key, set(cells))
        header = _line({"kind": "header", "format": FORMAT, "digest": digest, "result": out.name,
                        "identity": dict(identity or {})})
        if rewrite or not path.exists():
            _write_atomic(path, header + "".join(
                _line({"kind": "record", "key": list(k), "rows": rows})
                for k, rows in records.items()))
        todo = [(c, k) for c, k in zip(configs, cells, strict=True) if k not in records]
        bar = tqdm(todo, desc=desc or out.stem, initial=len(configs) - len(todo),
                   total=len(configs), dynamic_ncols=True)
        for config, k in bar:
            result = fn(config)
            rows = [{**{f: config[f] for f in key}, **r}
                    for r in ([result] if isinstance(result, Mapping) else result)]
            rows = [{c: _cell(v) for c, v in r.items()} for r in rows]
            _fsync_write(path, _line({"kind": "record", "key": list(k), "rows": rows}), "a")
            records[k] = rows
        bar.close()
        table = [row for k in cells for row in records[k]]
        _write_csv(out, table)
        for stale in path.parent.glob(f"{out.stem}-{'?' * len(digest)}.jsonl"):
            stale.unlink()  # complete: never reused (and older unfinished runs are obsolete)
    if not table:
        return pd.DataFrame(columns=list(key))
    return pd.read_csv(out)
