"""Two runs of the timing experiments side by side: do their headlines agree within their spread?

``python -m moonwalk_core.compare_runs A B [--out table.md] [--repo PATH]`` reads the summaries of
E5 (``runtime_torch``) and E6 (``revnet_modes_torch``) of two runs, each given as a results
folder (``reports/results`` of a checkout, or a copy of it) or as a git revision whose
``reports/results/`` holds them (``git show REV:reports/results/<stem>.summary.json``), and
prints a markdown table: per headline, run A's and run B's figure with its interval and whether
the intervals overlap (see ``docs/measurement.md``). Intervals: quartiles over rounds for the
time ratios and speed-ups, 95% intervals for the fitted depth exponents. A headline with no
interval in a run (an older summary) is shown without a verdict; one missing from a run is
shown as missing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._claims import OP_COUNT_FLOOR

__all__ = ["Headline", "headlines", "load_summaries", "compare", "markdown", "main"]

STEMS = ("runtime_torch", "revnet_modes_torch")
RESULTS_IN_GIT = "reports/results"


@dataclass(frozen=True)
class Headline:
    """One compared quantity: where it lives and where its interval's ends are."""

    experiment: str
    label: str
    stem: str
    key: str
    lo_key: str | None
    hi_key: str | None
    scale: float = 1.0  # the quantity is ``key`` times this (and so are its ends)


_E5 = [("Moonwalk (sequential) / plain autograd, deepest net", "moonwalk_time_ratio"),
       ("Moonwalk (block-wise) / plain autograd, deepest net", "moonwalk_block_time_ratio"),
       ("package Backprop / plain autograd, deepest net", "backprop_time_ratio"),
       ("checkpointed / plain autograd, deepest net", "checkpointed_time_ratio")]


def headlines(summaries: dict[str, dict[str, dict[str, Any]]]) -> list[Headline]:
    """The headlines of E5 and E6, with E6's speed-up at every depth either run measured."""
    out = [Headline("E5", label, "runtime_torch", key, f"{key}_q1", f"{key}_q3")
           for label, key in _E5]
    out.append(Headline("E5", "Moonwalk (block-wise) over the op-count floor (5/3)",
                        "runtime_torch", "moonwalk_block_time_ratio",
                        "moonwalk_block_time_ratio_q1", "moonwalk_block_time_ratio_q3",
                        scale=1 / OP_COUNT_FLOOR))
    depths = sorted({int(m.group(1)) for run in summaries.values()
                     for key in run.get("revnet_modes_torch", {})
                     if (m := re.fullmatch(r"speedup_depth_(\d+)", key))})
    out += [Headline("E6", f"PureForward speed-up over NaiveForward, depth {d}",
                     "revnet_modes_torch", f"speedup_depth_{d}", f"speedup_q1_depth_{d}",
                     f"speedup_q3_depth_{d}") for d in depths]
    out += [Headline("E6", f"{name} depth exponent (time ~ depth^b)", "revnet_modes_torch",
                     f"{key}_depth_exponent", f"{key}_depth_exponent_lo",
                     f"{key}_depth_exponent_hi")
            for name, key in (("PureForward", "pure"), ("NaiveForward", "naive"))]
    return out


def _git_show(rev: str, path: str, repo: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"],
                          capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def load_summaries(source: str, repo: str | Path = ".") -> dict[str, dict[str, Any]]:
    """The E5/E6 summaries of a run: ``source`` is a results folder, or else a git revision
    of ``repo`` (its ``reports/results/``). A summary the run lacks is left out.

    Raises:
        ValueError: ``source`` is neither a folder nor a revision of ``repo``.
    """
    folder = Path(source)
    if folder.is_dir():
        return {stem: json.loads((folder / f"{stem}.summary.json").read_text())
                for stem in STEMS if (folder / f"{stem}.summary.json").exists()}
    repo = Path(repo)
    if _git_show(source, "", repo) is None:
        raise ValueError(f"compare_runs: {source!r} is neither a results folder nor a git "
                         f"revision of {repo.resolve()}")
    out = {}
    for stem in STEMS:
        text = _git_show(source, f"{RESULTS_IN_GIT}/{stem}.summary.json", repo)
        if text is not None:
            out[stem] = json.loads(text)
    return out


def _value(summary: dict[str, Any], key: str | None, scale: float) -> float | None:
    value = summary.get(key) if key else None
    if value is None or isinstance(value, str):
        return None
    value = float(value) * scale
    return None if math.isnan(value) else value


def compare(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]
            ) -> list[dict[str, Any]]:
    """One row per headline: each run's value and interval, and ``agree``: True when both
    intervals exist and overlap, False when they exist and do not, None otherwise."""
    rows = []
    for h in headlines({"a": a, "b": b}):
        row: dict[str, Any] = {"experiment": h.experiment, "quantity": h.label, "key": h.key}
        for run, summaries in (("a", a), ("b", b)):
            summary = summaries.get(h.stem, {})
            row[run] = _value(summary, h.key, h.scale)
            row[f"{run}_lo"] = _value(summary, h.lo_key, h.scale)
            row[f"{run}_hi"] = _value(summary, h.hi_key, h.scale)
        ends = [row["a_lo"], row["a_hi"], row["b_lo"], row["b_hi"]]
        row["agree"] = (None if None in ends else
                        max(row["a_lo"], row["b_lo"]) <= min(row["a_hi"], row["b_hi"]))
        rows.append(row)
    return rows


def _cell(value: float | None, lo: float | None, hi: float | None) -> str:
    if value is None:
        return "missing"
    text = f"{value:.3g}"
    return text + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else
                   " (no interval)")


def markdown(rows: list[dict[str, Any]], name_a: str, name_b: str) -> str:
    """The comparison as a markdown table, with a count of the headlines that agree."""
    verdict = {True: "yes", False: "**no**", None: "—"}
    lines = [f"| experiment | quantity | run A `{name_a}` | run B `{name_b}` | "
             "intervals overlap |", "|---|---|---|---|---|"]
    lines += [f"| {r['experiment']} | {r['quantity']} | {_cell(r['a'], r['a_lo'], r['a_hi'])}"
              f" | {_cell(r['b'], r['b_lo'], r['b_hi'])} | {verdict[r['agree']]} |"
              for r in rows]
    judged = [r for r in rows if r["agree"] is not None]
    lines += ["", f"{sum(r['agree'] for r in judged)} of {len(judged)} headlines with both "
              "intervals agree (intervals: quartiles over rounds; 95% intervals for the "
              "depth exponents)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moonwalk_core.compare_runs",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="run A: a results folder or a git revision")
    parser.add_argument("b", help="run B: a results folder or a git revision")
    parser.add_argument("--repo", default=".", help="the git repository of the revisions")
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a headline's intervals do not overlap")
    args = parser.parse_args(argv)
    try:
        a, b = (load_summaries(s, args.repo) for s in (args.a, args.b))
    except ValueError as err:
        parser.error(str(err))
    rows = compare(a, b)
    text = markdown(rows, args.a, args.b)
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text)
    return 1 if args.strict and any(r["agree"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
