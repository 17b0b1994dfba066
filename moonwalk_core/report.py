"""The report (SPEC §6): ``reports/report.md``, ``report.html`` and ``metrics.json``.

Reads only ``reports/results/*`` (the experiments' tables, ``*.summary.json`` claim quantities
and ``*.env.json`` environments) and ``params.yaml`` (the paper's figures and the verdict rule).
Every number in the text goes through :func:`fmt`; :func:`unsourced_numbers` finds any number
that no result file or parameter produced, and the report stage fails on one.
Run: ``python -m moonwalk_core.report``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths
from ._claims import CLAIMS, EXPERIMENTS, Claim
from .config import load_params

__all__ = ["fmt", "evaluate_claims", "build_report", "unsourced_numbers"]

NUMBER = re.compile(r"(?<![\w.§/#])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def fmt(value: Any) -> str:
    """How every number is written: integers plainly, others with 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _load(results: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    summaries = {p.name.removesuffix(".summary.json"): json.loads(p.read_text())
                 for p in sorted(results.glob("*.summary.json"))}
    envs = {p.name.removesuffix(".env.json"): json.loads(p.read_text())
            for p in sorted(results.glob("*.env.json"))}
    return summaries, envs


def _verdict(claim: Claim, ours: float, paper: float | None, rule: dict[str, float]) -> str:
    if claim.kind == "at_most":
        return "reproduced" if ours <= rule[claim.threshold or ""] else "not reproduced"
    if claim.kind == "gain" or paper is None:
        return "reproduced" if ours > 1 else "not reproduced"
    if ours / paper >= rule["reproduced_ratio"]:
        return "reproduced"
    return "direction reproduced, smaller factor" if ours > 1 else "not reproduced"


def evaluate_claims(summaries: dict[str, dict[str, Any]], params: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """One row per claim: paper figure, ours, ratio and verdict by the rule in params.yaml."""
    paper, rule = params["paper"], params["verdict"]
    rows = []
    for claim in CLAIMS:
        key = claim.key.format(**paper)
        summary = summaries.get(claim.result)
        ours = None if summary is None else summary.get(key)
        paper_value = paper.get(claim.paper_key) if claim.paper_key else None
        if summary is None:
            verdict = "not run"
        elif ours is None:
            verdict = ("unavailable" if summary.get("unavailable") and not summary.get("rows_ok")
                       else "not measured on this profile")
        else:
            verdict = _verdict(claim, float(ours), paper_value, rule)
            if claim.lower_bound_key and summary.get(claim.lower_bound_key):
                verdict += " (ours is a lower bound: the depth search reached its limit)"
        ratio = (float(ours) / paper_value if ours is not None and paper_value else None)
        rows.append({"id": claim.id, "experiment": claim.experiment, "claim": claim.text,
                     "paper": claim.paper_text.format(**{k: fmt(v) for k, v in paper.items()}),
                     "paper_value": paper_value, "ours": ours, "ratio": ratio,
                     "verdict": verdict, "result": claim.result, "key": key})
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _figures(results: Path, figures: Path) -> dict[str, str]:
    """Draw every figure whose table exists; returns experiment -> markdown image lines."""
    from . import plotting
    from .experiments.revnet_modes import speedups

    figures.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, list[str]] = {}
    for experiment, stem, name, draw in [
        ("E1", "exactness_torch", "error_vs_depth", plotting.error_vs_depth),
        ("E2", "memory_scaling_torch", "memory_vs_depth_torch", plotting.memory_vs_depth),
        ("E2", "memory_scaling_jax", "memory_vs_depth_jax", plotting.memory_vs_depth),
        ("E3", "max_depth_torch", "max_depth", plotting.max_depth_bars),
        ("E4", "conv2d_torch", "conv2d_memory", plotting.memory_vs_depth),
        ("E4", "conv2d_torch", "conv2d_max_depth", plotting.max_depth_bars),
        ("E5", "runtime_torch", "time_vs_depth", plotting.time_vs_depth),
        ("E5", "runtime_torch", "block_size_tradeoff", plotting.block_size_tradeoff),
        ("E6", "revnet_modes_torch", "forward_mode_speedups",
         lambda df: plotting.forward_mode_speedups(df, speedups(df))),
        ("E7", "training_torch", "training_curves", plotting.training_curves),
        ("E8", "backends", "backend_agreement", plotting.backend_agreement),
    ]:
        table_path = results / f"{stem}.csv"
        if not table_path.exists():
            continue
        df = pd.read_csv(table_path)
        if name.startswith("conv2d_"):
            df = df[df["part"] == name.removeprefix("conv2d_")]
        fig = draw(df)
        fig.savefig(figures / f"{name}.png", dpi=110)
        drawn.setdefault(experiment, []).append(f"![{name}](figures/{name}.png)")
    return {k: "\n\n".join(v) for k, v in drawn.items()}


def _sources(results: Path) -> list[str]:
    """Every memory-source label that appears in a result table."""
    labels: set[str] = set()
    for table in results.glob("*.csv"):
        df = pd.read_csv(table)
        for column in [c for c in df.columns if c.endswith("source")]:
            labels.update(str(v) for v in df[column].dropna().unique())
    return sorted(labels)


def _markdown(params: dict[str, Any], claims: list[dict[str, Any]],
              summaries: dict[str, dict[str, Any]], envs: dict[str, dict[str, Any]],
              figures: dict[str, str], sources: list[str]) -> str:
    rule = params["verdict"]
    out = [f"# Moonwalk reproduction report (profile `{params['profile']}`)", "",
           "Generated by `dvc repro` from `reports/results/*` and `params.yaml` only; every "
           "number below comes from those files. Paper: `arXiv:2402.14212` (Moonwalk: "
           "Inverse-Forward Differentiation).", "", "## Claims", "",
           _table(["claim", "experiment", "paper", "ours", "ours / paper", "verdict"],
                  [[c["claim"], c["experiment"], c["paper"], fmt(c["ours"]), fmt(c["ratio"]),
                    f"**{c['verdict']}**"] for c in claims]), "",
           f"Verdict rule (`params.yaml`, `verdict`): a factor claim is *reproduced* when ours / "
           f"paper is at least {fmt(rule['reproduced_ratio'])}, *direction reproduced, smaller "
           "factor* when the factor is still above 1, else *not reproduced*; an exactness claim "
           f"needs a relative gradient error at most {fmt(rule['exact_float64'])} (float64) or "
           f"{fmt(rule['exact_float32'])} (float32); the runtime claim a time ratio to Backprop "
           f"at most {fmt(rule['runtime_slack'])}; the training claim a test-accuracy gap at "
           f"most {fmt(rule['accuracy_gap'])}. *unavailable*: the backend lacks the piece (the "
           "reason is listed below); *not measured on this profile*: the profile has no such "
           "configuration (e.g. the paper's 60-layer RevNet runs only on the `gpu` profile).",
           ""]
    for experiment, (title, stems, what) in EXPERIMENTS.items():
        out += [f"## {experiment} {title}", "", what, ""]
        if experiment in figures:
            out += [figures[experiment], ""]
        for stem in stems:
            summary = summaries.get(stem)
            if summary is None:
                out += [f"`{stem}`: no results (stage not run).", ""]
                continue
            items = [[k, fmt(v) if not isinstance(v, str) else v] for k, v in summary.items()
                     if k != "unavailable"]
            out += [f"`{stem}`:", "", _table(["quantity", "value"], items), ""]
            out += [f"- unavailable: {reason}" for reason in summary.get("unavailable", [])]
            out += [""]
    out += ["## How the numbers were measured", "",
            "- Gradient error: norm-wise relative error over all parameter tensors against "
            "Backprop in float64 on the same weights and batch (SPEC §4).",
            "- Stored bytes: what a method holds between phases, from the package's own "
            "accounting (autograd saved tensors, deduplicated by storage, for Backprop and "
            "Checkpointed; residuals + fragments + checkpoints for Moonwalk).",
            "- Peak memory: the framework's own accounting; every memory figure is labelled "
            "with its source. Sources in these results:"]
    out += [f"  - {label}" for label in sources]
    out += ["- Time: repeated runs after warm-up, methods interleaved in one process, as "
            "ratios to Backprop; thread count fixed and recorded below. The tables keep the "
            "median, fastest and slowest repeat; the claims compare the fastest repeats (on a "
            "shared machine the median mostly measures preemption; medians are listed in the "
            "summaries as `*_median`).",
            "- Max depth: exponential then binary search over depth of the measured peak "
            "against the budget.", "", "## Environment", ""]
    keys = sorted({k for env in envs.values() for k in env})
    out += [_table(["result", *keys], [[stem, *[str(env.get(k, "")) for k in keys]]
                                       for stem, env in envs.items()]), ""]
    return "\n".join(out) + "\n"


def build_report(results: Path = paths.RESULTS, reports: Path = paths.REPORTS,
                 params_path: Path | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``metrics.json`` and figures; return the metrics.

    Raises:
        ValueError: if the report contains a number that no result file or parameter produced.
    """
    import markdown

    params = load_params(params_path)
    summaries, envs = _load(results)
    claims = evaluate_claims(summaries, params)
    figures = _figures(results, reports / "figures")
    text = _markdown(params, claims, summaries, envs, figures, _sources(results))
    bad = unsourced_numbers(text, results, params)
    if bad:
        raise ValueError(f"report: numbers with no source in reports/results or params: {bad}")
    (reports / "report.md").write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    (reports / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Moonwalk reproduction</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style>"
        f"</head><body>{body}</body></html>\n")
    metrics = {c["id"]: {"ours": c["ours"], "paper": c["paper_value"], "ratio": c["ratio"],
                         "verdict": c["verdict"]} for c in claims}
    (reports / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def _numbers_in(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _numbers_in(v, found)
    elif isinstance(value, list):
        for v in value:
            _numbers_in(v, found)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        found.add(fmt(value))
    else:
        found.update(NUMBER.findall(str(value)))


def unsourced_numbers(text: str, results: Path = paths.RESULTS,
                      params: dict[str, Any] | None = None) -> list[str]:
    """Numbers in ``text`` that no result file, parameter or claim ratio produced.

    Allowed: every value of every ``reports/results`` table and JSON file (as :func:`fmt`
    writes it), every number in ``params.yaml``, and each claim's ours / paper ratio. Code
    spans and link targets are skipped (paths and identifiers).
    """
    params = params if params is not None else load_params()
    allowed: set[str] = set()
    summaries, _ = _load(results)
    for path in results.glob("*.json"):
        _numbers_in(json.loads(path.read_text()), allowed)
    for path in results.glob("*.csv"):
        for column in pd.read_csv(path, dtype=str).fillna("").itertuples(index=False):
            for cell in column:
                try:
                    allowed.add(fmt(float(cell)))
                except ValueError:
                    allowed.update(NUMBER.findall(cell))
    _numbers_in(params, allowed)
    for claim in evaluate_claims(summaries, params):
        allowed.add(fmt(claim["ratio"]))
    stripped = re.sub(r"`[^`]*`|\]\([^)]*\)|<[^>]*>", " ", text)
    return [n for n in NUMBER.findall(stripped) if n not in allowed]


if __name__ == "__main__":
    result = build_report()
    print(json.dumps(result, indent=1))
