"""Resumable sweeps: an unfinished sweep resumes, a finished one is never reused, a damaged
scratch table is repaired by measuring again, and a second writer is kept out."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest

from moonwalk_core import paths
from moonwalk_core.experiments import _runner
from moonwalk_core.experiments._runner import run_sweep

CONFIGS = [{"depth": d, "method": m, "slope": 0.5, "block": None}
           for d in (1, 2, 4) for m in ("Backprop", "Moonwalk")]
KEY = ("depth", "method", "block")


class Interrupted(Exception):
    pass


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Scratch tables of these tests live in a temporary folder."""
    folder = tmp_path / "sweeps"
    monkeypatch.setattr(paths, "SWEEPS", folder)
    return folder


def _rows(config: Mapping) -> list[Mapping]:
    """Deterministic result rows; two per configuration, the deepest with an extra column."""
    extra = {"note": "deep"} if config["depth"] == 4 else {}
    return [{"repeat": r, "peak_bytes": 10 * config["depth"] + r, **extra} for r in range(2)]


def _interrupted_after(done: int):
    seen: list[Mapping] = []

    def fn(config: Mapping) -> list[Mapping]:
        if len(seen) == done:
            raise Interrupted
        seen.append(config)
        return _rows(config)

    return fn


def _scratch_file(folder: Path) -> Path:
    (found,) = [p for p in folder.iterdir() if not p.name.endswith(".lock")]
    return found


def test_an_interrupted_sweep_resumes_after_its_finished_configurations(
        tmp_path: Path, scratch: Path) -> None:
    out = tmp_path / "results" / "sweep.csv"
    with pytest.raises(Interrupted):
        run_sweep(CONFIGS, _interrupted_after(3), out, key=KEY)
    assert not out.exists()  # the result is written only once the sweep is complete
    assert len(_scratch_file(scratch).read_text().splitlines()) == 1 + 3  # header + 3 records

    rerun: list[Mapping] = []
    table = run_sweep(CONFIGS, lambda c: rerun.append(c) or _rows(c), out, key=KEY)
    assert rerun == CONFIGS[3:]
    assert len(table) == 2 * len(CONFIGS)
    assert not table.duplicated(subset=["depth", "method", "repeat"]).any()
    assert list(table.columns[:3]) == ["depth", "method", "block"]
    assert (table["note"] == "deep").sum() == 4
    assert not list(scratch.glob("*.jsonl"))  # complete: the scratch table is gone


def test_a_finished_sweep_is_never_reused(tmp_path: Path) -> None:
    """Item 1 of the fault report: a forced rerun measured nothing and returned the old CSV."""
    out = tmp_path / "sweep.csv"
    calls: list[Mapping] = []
    run_sweep(CONFIGS, lambda c: calls.append(c) or _rows(c), out, key=KEY)
    run_sweep(CONFIGS, lambda c: calls.append(c) or _rows(c), out, key=KEY)
    assert calls == CONFIGS + CONFIGS


def test_an_unfinished_sweep_resumes_only_under_the_same_identity(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    with pytest.raises(Interrupted):
        run_sweep(CONFIGS, _interrupted_after(3), out, key=KEY, identity={"threads": 2})
    calls: list[Mapping] = []
    run_sweep(CONFIGS, lambda c: calls.append(c) or _rows(c), out, key=KEY,
              identity={"threads": 1})
    assert calls == CONFIGS  # other threads: nothing of the unfinished sweep is reused


def _fault_injected(lines: list[str], rng: random.Random) -> list[str]:
    """Duplicate a record, truncate the last one mid-line, break one checksum, reorder."""
    header, records = lines[0], lines[1:]
    records = [*records, records[0]]  # a duplicate (e.g. two writers)
    records[1] = records[1].replace('"peak_bytes"', '"peak_bytez"', 1)  # a damaged middle row
    records[-2] = records[-2][: len(records[-2]) // 2]  # a write cut short
    records.insert(rng.randrange(len(records)), header)
    rng.shuffle(records)
    return records


@pytest.mark.parametrize("seed", range(4))
def test_faults_in_the_scratch_table_are_repaired_and_give_the_uninterrupted_result(
        tmp_path: Path, scratch: Path, seed: int) -> None:
    """The fault-injection test: truncated, damaged, duplicated and reordered scratch lines."""
    clean = run_sweep(CONFIGS, _rows, tmp_path / "clean" / "sweep.csv", key=KEY)
    out = tmp_path / "sweep.csv"
    with pytest.raises(Interrupted):
        run_sweep(CONFIGS, _interrupted_after(4), out, key=KEY)
    path = _scratch_file(scratch)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(_fault_injected(lines, random.Random(seed))))
    with pytest.warns(_runner.DamagedScratchWarning, match=str(path.name)):
        resumed = run_sweep(CONFIGS, _rows, out, key=KEY)
    pd.testing.assert_frame_equal(resumed, clean)
    assert out.read_bytes() == (tmp_path / "clean" / "sweep.csv").read_bytes()


def test_a_scratch_table_without_its_header_is_measured_again(tmp_path: Path,
                                                              scratch: Path) -> None:
    out = tmp_path / "sweep.csv"
    with pytest.raises(Interrupted):
        run_sweep(CONFIGS, _interrupted_after(3), out, key=KEY)
    path = _scratch_file(scratch)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
    calls: list[Mapping] = []
    with pytest.warns(_runner.DamagedScratchWarning, match="no valid header"):
        run_sweep(CONFIGS, lambda c: calls.append(c) or _rows(c), out, key=KEY)
    assert calls == CONFIGS


def test_sweep_rejects_configs_without_the_key_or_repeated_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks key field"):
        run_sweep([{"depth": 1}], lambda c: {}, tmp_path / "x.csv", key=("depth", "method"))
    with pytest.raises(ValueError, match="repeat key values"):
        run_sweep([{"depth": 1}, {"depth": 1}], lambda c: {}, tmp_path / "x.csv", key=("depth",))


_WRITER = """
import sys, time
from pathlib import Path
from moonwalk_core import paths
paths.SWEEPS = Path(sys.argv[2])
from moonwalk_core.experiments import _runner
_runner.LOCK_WAIT_S = 1.0
configs = [{"depth": d} for d in range(8)]

def slow(config):
    time.sleep(0.25)
    return {"pid": sys.argv[3]}

_runner.run_sweep(configs, slow, Path(sys.argv[1]), key=["depth"])
"""


def test_a_second_writer_fails_clearly_and_never_duplicates_rows(tmp_path: Path,
                                                                 scratch: Path) -> None:
    """Item 3 of the fault report: a rerun beside a running sweep duplicated its rows."""
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    out = tmp_path / "sweep.csv"
    env = {"PYTHONPATH": str(paths.ROOT), "PATH": "/usr/bin:/bin"}
    first = subprocess.Popen([sys.executable, str(script), str(out), str(scratch), "first"],
                             env=env, stderr=subprocess.PIPE, text=True)
    while not list(scratch.glob("*.jsonl")) and first.poll() is None:
        pass
    second = subprocess.run([sys.executable, str(script), str(out), str(scratch), "second"],
                            env=env, capture_output=True, text=True, timeout=120)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode != 0
    assert "being written by another run" in second.stderr and "sweep.csv" in second.stderr
    table = pd.read_csv(out)
    assert list(table["depth"]) == list(range(8)) and set(table["pid"]) == {"first"}


def test_runtime_summary_names_the_sequential_solve_when_it_is_fastest() -> None:
    from moonwalk_core.experiments.runtime import summarize

    rows = [{"part": "depth", "depth": 4, "block_size": 8.0, "method": m, "min_s": t,
             "ratio_to_baseline": t} for m, t in [("Backprop", 1.0), ("Moonwalk", 1.5)]]
    for block, t in [("sequential", 1.4), ("8", 1.6), ("32", 1.8)]:
        rows += [{"part": "pareto", "depth": 4, "block_size": None,
                  "method": f"Moonwalk ({block})", "moonwalk_block": block,
                  "ratio_to_baseline": t}]
    summary = summarize(pd.DataFrame(rows))
    assert summary["fastest_block_size"] == "sequential"
    assert summary["fastest_block_time_ratio"] == 1.4
    rows = [r for r in rows if r.get("moonwalk_block") != "sequential"]
    assert summarize(pd.DataFrame(rows))["fastest_block_size"] == 8
