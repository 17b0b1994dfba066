"""Resumable sweeps: rows survive an interruption and a rerun skips what is done."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest

from moonwalk_core.experiments._runner import run_sweep

CONFIGS = [{"depth": d, "method": m, "slope": 0.5, "block": None}
           for d in (1, 2, 4) for m in ("Backprop", "Moonwalk")]
KEY = ("depth", "method", "block")


class Interrupted(Exception):
    pass


def test_sweep_survives_an_interruption_and_a_rerun_skips_done_rows(tmp_path: Path) -> None:
    out = tmp_path / "results" / "sweep.csv"
    seen: list[Mapping] = []

    def failing(config: Mapping) -> Mapping:
        if len(seen) == 3:
            raise Interrupted
        seen.append(config)
        return {"peak_bytes": 10 * config["depth"]}

    with pytest.raises(Interrupted):
        run_sweep(CONFIGS, failing, out, key=KEY)
    assert len(pd.read_csv(out)) == 3  # each completed config was on disk before the failure

    rerun: list[Mapping] = []

    def counting(config: Mapping) -> Mapping:
        rerun.append(config)
        return {"peak_bytes": 10 * config["depth"]}

    table = run_sweep(CONFIGS, counting, out, key=KEY)
    assert rerun == CONFIGS[3:]
    assert len(table) == len(CONFIGS)
    assert not table.duplicated(subset=["depth", "method"]).any()
    assert (table["peak_bytes"] == 10 * table["depth"]).all()

    again: list[Mapping] = []
    run_sweep(CONFIGS, lambda c: again.append(c) or {}, out, key=KEY)
    assert again == []  # everything done: nothing recomputed


def test_sweep_accepts_several_rows_per_config_and_new_columns(tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"

    def rows(config: Mapping) -> list[Mapping]:
        extra = {"note": "deep"} if config["depth"] == 4 else {}
        return [{"repeat": r, "time_s": 0.1 * r, **extra} for r in range(2)]

    table = run_sweep(CONFIGS, rows, out, key=KEY, desc="rows")
    assert len(table) == 2 * len(CONFIGS)
    assert list(table.columns[:3]) == ["depth", "method", "block"]
    assert (table["note"] == "deep").sum() == 4
    assert table.loc[table["depth"] != 4, "note"].isna().all()


def test_sweep_rejects_configs_without_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks key field"):
        run_sweep([{"depth": 1}], lambda c: {}, tmp_path / "x.csv", key=("depth", "method"))


def test_runtime_summary_names_the_sequential_solve_when_it_is_fastest() -> None:
    import pandas as pd

    from moonwalk_core.experiments.runtime import summarize

    rows = [{"part": "depth", "depth": 4, "block_size": 8.0, "method": m, "min_s": t,
             "ratio_to_baseline": t} for m, t in [("Backprop", 1.0), ("Moonwalk", 1.5)]]
    for block, t in [(None, 1.4), (8.0, 1.6), (32.0, 1.8)]:
        rows += [{"part": "block", "depth": 4, "block_size": block, "method": "Backprop",
                  "min_s": 1.0, "ratio_to_baseline": 1.0},
                 {"part": "block", "depth": 4, "block_size": block, "method": "Moonwalk",
                  "min_s": t, "ratio_to_baseline": t}]
    summary = summarize(pd.DataFrame(rows))
    assert summary["fastest_block_size"] == "sequential"
    assert summary["fastest_block_time_ratio"] == 1.4
    rows = [r for r in rows if not (r["part"] == "block" and r["block_size"] is None)]
    assert summarize(pd.DataFrame(rows))["fastest_block_size"] == 8
