"""The report: ``reports/report.md``, ``report.html``, ``metrics.json`` and ``plots/*.csv``.

Reads only ``reports/results/*`` (the experiments' tables, ``*.summary.json`` claim quantities
and ``*.env.json`` environments), ``params.yaml`` (the paper's figures and the verdict rule) and
the rendered notebook pages' index (``reports/notebooks/index.json``). Every number in the text
goes through :func:`fmt`; :func:`unsourced_numbers` finds any number that no result file or
parameter produced, and the report stage fails on one. The header says which run produced the
report (run identifier, commit, clean or dirty tree, profile, dates; see
:mod:`moonwalk_core.provenance`); each claim and each experiment section links to the executed
notebook of the stage that measured it, and :func:`check_links` fails the stage on a link to a
missing page or to a page of another run.
Run: ``python -m moonwalk_core.report``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths, provenance, report_gpu
from ._claims import CLAIMS, EXPERIMENTS, Claim
from .config import load_params

__all__ = ["fmt", "evaluate_claims", "build_report", "unsourced_numbers", "check_links",
           "report_run"]

PAGES: Path = paths.REPORTS / "notebooks"
RUN_MARK = re.compile(r"<!-- moonwalk-run: ([0-9a-f]+) -->")
PAGE_LINK = re.compile(r"\]\((notebooks/[^)#\s]+\.html)\)")
MAX_LISTED = 8  # changed paths named in the header before "and N more"

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


SCOPES = {"paper": "paper's setting", "beyond": "beyond the paper"}


def _short_samples(claim: Claim, summary: dict[str, Any], rule: dict[str, float]) -> str:
    """The flag of a timing claim whose shortest timed sample is under the rule's
    ``min_timed_sample_s`` (or that does not record it): such times are the clock's and the
    scheduler's noise as much as the computation's."""
    if claim.sample_key is None:
        return ""
    shortest = summary.get(claim.sample_key)
    if shortest is None:
        return " (flagged: the shortest timed sample is not recorded)"
    if float(shortest) < rule["min_timed_sample_s"]:
        return (f" (flagged: a timed sample of {fmt(shortest)} s, under "
                f"{fmt(rule['min_timed_sample_s'])} s)")
    return ""


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
            if claim.scope == "beyond":  # nothing of the paper's to reproduce: does it hold?
                verdict = {"reproduced": "holds"}.get(verdict, "does not hold")
            if claim.lower_bound_key and summary.get(claim.lower_bound_key):
                verdict += " (ours is a lower bound: the depth search reached its limit)"
            verdict += _short_samples(claim, summary, rule)
        ratio = (float(ours) / paper_value if ours is not None and paper_value else None)
        rows.append({"id": claim.id, "experiment": claim.experiment, "claim": claim.text,
                     "setting": SCOPES[claim.scope],
                     "paper": claim.paper_text.format(**{k: fmt(v) for k, v in paper.items()}),
                     "paper_value": paper_value, "ours": ours, "ratio": ratio,
                     "verdict": verdict, "result": claim.result, "key": key})
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _table_or_none(results: Path, stem: str) -> pd.DataFrame | None:
    """The result table ``<stem>.csv``, or None when the run did not write it."""
    path = results / f"{stem}.csv"
    return pd.read_csv(path) if path.exists() else None


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
        ("E5", "runtime_torch", "pareto",
         lambda df: plotting.pareto(df, jax=_table_or_none(results, "memory_scaling_jax"))),
        ("E6", "revnet_modes_torch", "revnet_pareto", plotting.pareto),
        ("E6", "revnet_modes_torch", "forward_mode_speedups",
         lambda df: plotting.forward_mode_speedups(df, speedups(df))),
        ("E7", "training_torch", "training_curves", plotting.training_curves),
        ("E8", "backends", "backend_agreement", plotting.backend_agreement),
    ]:
        df = _table_or_none(results, stem)
        if df is None:
            continue
        if name.startswith("conv2d_"):
            df = df[df["part"] == name.removeprefix("conv2d_")]
        fig = draw(df)
        fig.savefig(figures / f"{name}.png", dpi=110)
        drawn.setdefault(experiment, []).append(f"![{name}](figures/{name}.png)")
    return {k: "\n\n".join(v) for k, v in drawn.items()}


# Plot data for `dvc plots show` / `dvc plots diff` (git-tracked, so two commits can be compared
# without the DVC cache): file -> (result table, row filter, x, value, scale); one column per
# method, the fields `plots:` in dvc.yaml names (a missing field empties the whole plot there).
PLOT_DATA: dict[str, tuple[str, dict[str, str], str, str, float]] = {
    "peak_memory_torch": ("memory_scaling_torch", {"activation": "relu"}, "depth",
                          "peak_bytes", 2**-20),
    "peak_memory_jax": ("memory_scaling_jax", {"activation": "relu"}, "depth",
                        "peak_bytes", 2**-20),
    "time_ratio": ("runtime_torch", {"part": "depth"}, "depth", "ratio_to_baseline", 1.0),
    "test_accuracy": ("training_torch", {"dataset": "mnist1d", "activation": "relu"}, "epoch",
                      "test_accuracy", 1.0),
    "train_loss": ("training_torch", {"dataset": "mnist1d", "activation": "relu"}, "epoch",
                   "train_loss", 1.0),
}


def _plot_data(results: Path, plots: Path) -> list[str]:
    """Write ``plots/<name>.csv``: one row per x value, one column per method (wide, as
    ``dvc plots`` expects); returns the names written. Stale files are removed."""
    plots.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (stem, rows, x, value, scale) in PLOT_DATA.items():
        df = _table_or_none(results, stem)
        if df is None:
            continue
        df = df[df["status"] == "ok"] if "status" in df else df
        for column, wanted in rows.items():
            df = df[df[column].astype(str) == wanted]
        if df.empty:
            continue
        # "Moonwalk (block 128)": the block size depends on the profile, the field name must not
        method = df["method"].astype(str).str.replace(r"\(block \d+\)", "(block-wise)",
                                                      regex=True)
        wide = (df.assign(value=df[value] * scale, method=method)
                .pivot_table(index=x, columns="method", values="value", aggfunc="first"))
        wide.columns.name = None
        wide.reset_index().to_csv(plots / f"{name}.csv", index=False, float_format="%.6g")
        written.append(name)
    for stale in plots.glob("*.csv"):
        if stale.stem not in written:
            stale.unlink()
    return written


def _sources(results: Path) -> list[str]:
    """Every memory-source label that appears in a result table."""
    labels: set[str] = set()
    for table in results.glob("*.csv"):
        df = pd.read_csv(table)
        for column in [c for c in df.columns if c.endswith("source")]:
            labels.update(str(v) for v in df[column].dropna().unique())
    return sorted(labels)


def _pages(pages: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The render stage's index and, from it, result stem -> page file name."""
    if pages is None or not (pages / "index.json").exists():
        return {}, {}
    index = json.loads((pages / "index.json").read_text())
    by_stem = {stem: page["page"] for page in index.get("pages", {}).values()
               for stem in page.get("results", [])}
    return index, by_stem


def _link(page: str | None) -> str:
    return f"[{page.removesuffix('.html')}](notebooks/{page})" if page else "—"


def _code(path: str) -> str:
    return f"`{path}`"


def _provenance(run: str, profile: str, code: provenance.CodeState,
                checks: list[provenance.StageCheck] | None, measured: tuple[str | None, ...],
                generated: str, pages: dict[str, Any]) -> list[str]:
    """The header: which run, which code (clean or not), which profile, when."""
    if code.commit is None:
        code_text = "not a git commit (no `HEAD`): the code cannot be named"
    else:
        code_text = f"commit `{code.commit[:12]}`, " + (
            "clean tree" if not code.dirty else
            "**dirty tree**: uncommitted changes to " + ", ".join(
                _code(p) for p in code.changed[:MAX_LISTED])
            + (f" and `{len(code.changed) - MAX_LISTED}` more"
               if len(code.changed) > MAX_LISTED else ""))
    start, end = measured
    when = (f"`{start}` to `{end}` (papermill's record in the executed notebooks)"
            if start else "unknown (no executed notebook with papermill's record)")
    if checks is None:
        stages_text = "no `dvc.lock`: these results were not recorded by `dvc repro`"
    elif all(c.ok for c in checks):
        stages_text = ("every stage in `dvc.lock` measured exactly this tree's code, parameters "
                       "and outputs (DVC's recorded hashes recomputed when the report was written)")
    else:
        stages_text = "**stages from other code or data**: " + "; ".join(
            c.describe() for c in checks if not c.ok)
    rendered = (f"`reports/notebooks/` (render stage, run `{pages['run']}`)" if pages
                else "not rendered")
    lines = [f"<!-- moonwalk-run: {run} -->", "",
             _table(["run", f"`{run}`"],
                    [["profile", f"`{profile}`"], ["code", code_text],
                     ["stages", stages_text], ["measured", when],
                     ["report written", f"`{generated}`"],
                     ["executed notebooks", rendered]]), ""]
    problems = code.dirty or code.commit is None or (checks is not None
                                                    and not all(c.ok for c in checks))
    if problems:
        lines += ["> **Not a clean run.** The numbers below are what this tree measured, but "
                  "the code or stages above differ from a committed state: rerun `dvc repro` "
                  "after committing to get a report a reader can reproduce.", ""]
    return lines


def _markdown(params: dict[str, Any], claims: list[dict[str, Any]],
              summaries: dict[str, dict[str, Any]], envs: dict[str, dict[str, Any]],
              figures: dict[str, str], sources: list[str], header: list[str],
              pages: dict[str, str], gpu: report_gpu.GpuRun | None = None) -> str:
    rule = params["verdict"]
    on_gpu = (report_gpu.claims_cells(gpu, claims, evaluate_claims(gpu.summaries, params), fmt)
              if gpu else None)
    out = [f"# Moonwalk reproduction report (profile `{params['profile']}`)", "",
           *header,
           "Generated by `dvc repro` from `reports/results/*` and `params.yaml` only; every "
           "number below comes from those files. Paper: `arXiv:2402.14212` (Moonwalk: "
           "Inverse-Forward Differentiation). Each claim links to the executed notebook that "
           "measured it (a self-contained page: code, tables and figures of this run).",
           "", "## Claims", "",
           _table(["claim", "experiment", "setting", "paper", "ours", "ours / paper",
                   *(["gpu"] if on_gpu else []), "verdict", "evidence"],
                  [[c["claim"], c["experiment"], c["setting"], c["paper"], fmt(c["ours"]),
                    fmt(c["ratio"]), *([on_gpu[c["id"]]] if on_gpu else []),
                    f"**{c['verdict']}**",
                    _link(pages.get(c["result"]) if c["verdict"] != "not run" else None)]
                   for c in claims]), "",
           *([report_gpu.label(gpu), ""] if gpu else []),
           f"Verdict rule (`params.yaml`, `verdict`): a factor claim is *reproduced* when ours / "
           f"paper is at least {fmt(rule['reproduced_ratio'])}, *direction reproduced, smaller "
           "factor* when the factor is still above 1, else *not reproduced*; an exactness claim "
           f"needs a relative gradient error at most {fmt(rule['exact_float64'])} (float64) or "
           f"{fmt(rule['exact_float32'])} (float32); the runtime claim a time ratio to the plain "
           "framework net "
           f"at most {fmt(rule['runtime_slack'])}; the training claim a test-accuracy gap at "
           f"most {fmt(rule['accuracy_gap'])}; a timing claim is *flagged* when its shortest "
           f"timed sample lasted under {fmt(rule['min_timed_sample_s'])} s (clock and scheduler "
           "noise). *unavailable*: the backend lacks the piece (the "
           "reason is listed below); *not measured on this profile*: the profile has no such "
           "configuration. Rows beyond the paper have nothing of the paper's to reproduce: "
           "their verdict says whether the measurement *holds* by the same rule. "
           "*paper's setting*: the paper's own comparison (fragmental ReLU nets, "
           "the plain framework net as the reference: plain torch modules under autograd, or a "
           "plain `lax.conv` net under `jax.grad`, with the same weights); ours / paper divides "
           "matching quantities. *beyond the paper*: non-fragmental (leaky-ReLU) nets, "
           "`checkpoint_every='auto'`, the checkpointing frontier and other measurements the "
           "paper does not make; no ours / paper ratio. Memory rows say which peak they are: "
           "the *activation peak* is what one gradient adds on top of the model and batch; the "
           "*whole training step* peak also holds weights, gradients and Adam's state.",
           "", *_differences(params), ""]
    for experiment, (title, stems, what) in EXPERIMENTS.items():
        out += [f"## {experiment} {title}", "", what, ""]
        linked = list(dict.fromkeys(pages[s] for s in stems if s in pages and s in summaries))
        if linked:
            out += ["Executed notebook" + ("s" if len(linked) > 1 else "") + ": "
                    + ", ".join(_link(page) for page in linked) + ".", ""]
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
            "Backprop in float64 on the same weights and batch.",
            "- Stored bytes: what a method holds between phases, from the package's own "
            "accounting (autograd saved tensors, deduplicated by storage, for Backprop and "
            "Checkpointed; residuals + fragments + checkpoints for Moonwalk).",
            "- Peak memory: the framework's own accounting; every memory figure is labelled "
            "with its source. Sources in these results:"]
    out += [f"  - {label}" for label in sources]
    out += ["- Time: rounds after warm-up, each round calling every method once in the same "
            "order in one process (slow drifts of the machine hit all methods alike), with "
            "freed memory kept by the C allocator; thread count fixed and recorded below. The "
            "claims compare medians over rounds of per-round ratios to the reference (the "
            "plain framework net in E5, PureForward in E6), with their quartiles as the "
            "spread; a timed sample repeats short calls until it lasts long enough to "
            "measure.",
            "- Max depth: exponential then binary search over depth of the measured peak "
            "against the budget.", "", *(report_gpu.section(gpu, fmt) if gpu else []),
            "## Environment", ""]
    keys = sorted({k for env in envs.values() for k in env})
    out += [_table(["result", *keys], [[stem, *[str(env.get(k, "")) for k in keys]]
                                       for stem, env in envs.items()]), ""]
    return "\n".join(out) + "\n"


def _differences(params: dict[str, Any]) -> list[str]:
    """The "Differences from the paper" section: every setting of this profile that differs
    from the paper's, and why (sizes come from params.yaml; no measured number)."""
    from .config import load_profile

    p = load_profile(str(params["profile"]))
    m, d, r, v, t = p.memory_scaling, p.max_depth, p.runtime, p.revnet_modes, p.training
    return [
        "## Differences from the paper", "",
        f"- **Hardware.** Profile `{p.name}`: measured where the environment table below says "
        "(the paper used one GPU). CPU peaks come from the torch profiler's allocator events "
        "and XLA's compiled memory analysis, not from a GPU allocator; CPU times do not show "
        "a GPU's launch costs or parallelism, so time ratios are indicative of the operation "
        "count, not of GPU speed.",
        f"- **Sizes.** 1D memory sweep: {m.channels} channels, length {m.length}, batch "
        f"{m.batch}, depths up to {max(m.depths)}; depth search under {fmt(d.budget_mib)} MiB "
        f"with {d.channels} channels, length {d.length}, batch {d.batch} (the paper's budget "
        "is a GPU's memory). The ratios, not the absolute bytes, are compared with the paper.",
        f"- **RevNet size (E6).** {v.channels} channels on {v.size}x{v.size} images, "
        f"{v.hidden} hidden channels, batch {v.batch}, {v.dtype}: a stated reduction of "
        "CIFAR-10's 3x32x32 (a coupling splits the channels into two halves, so they must be "
        "even; NaiveForward's time grows with the parameter count times the depth, and the "
        "full shape at the deepest net does not fit the CPU budget).",
        f"- **Runtime net (E5).** ReLU, {r.channels} channels, length {r.length}, batch "
        f"{r.batch}, depths up to {max(r.depths)}, {r.dtype} with IEEE float32 arithmetic "
        "(no TF32 on a CPU).",
        "- **Initialisation.** The package's init (orthogonal convolutions) for every net; "
        "the paper's init is not stated at this level of detail.",
        f"- **Data.** MNIST-1D generated locally and scikit-learn's bundled 8x8 digits (no "
        f"network); CIFAR-10 only where a local archive exists. Training: depth {t.depth}, "
        f"{t.channels} channels, {t.epochs} epochs, batch {t.batch}, Adam with learning rate "
        f"{fmt(t.learning_rate)}.",
        "- **Precision.** float32 for memory and time, float64 for the exactness references.",
        "- **Baselines.** Ratios divide by the plain framework net with the same weights "
        "(torch modules under autograd, a plain `lax.conv` net under `jax.grad`); the "
        "package's own Backprop is reported beside it. The paper compares with its own "
        "backprop.",
        "- **JAX checkpointing on a CPU.** `jax.checkpoint` around segments of the plain "
        "net saves no compiled temp memory under XLA:CPU: the recomputation is compiled in, "
        "but XLA drops the barriers that keep it in the backward pass and schedules it with "
        "the forward pass, so every activation is live at once (a `lax.scan` of checkpointed "
        "segments does save memory). E2's JAX checkpoint rows therefore sit at the plain "
        "net's temp bytes; `docs/measurement.md` has the investigation and "
        "`benchmarks/bench_jax_checkpoint.py` re-measures it.",
    ]


def report_run(text: str) -> str | None:
    """The run identifier a report states (None if it states none)."""
    found = RUN_MARK.search(text)
    return found.group(1) if found else None


def check_links(text: str, reports: Path) -> list[str]:
    """What is wrong with the report's evidence links; empty when all is well.

    Every claim that has results must link to an executed-notebook page, every linked page
    must exist under ``reports``, and every page must carry the report's run identifier.
    """
    from .render import page_run

    run = report_run(text)
    problems = [] if run else ["the report states no run identifier"]
    for link in dict.fromkeys(PAGE_LINK.findall(text)):
        page = reports / link
        if not page.exists():
            problems.append(f"{link}: linked but missing")
        elif page_run(page) != run:
            problems.append(f"{link}: page of run {page_run(page)}, report of run {run}")
    table = text.split("## Claims", 1)[-1].strip().split("\n\n", 1)[0].splitlines()[2:]
    for row in table:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        if "not run" not in cells[-2] and not PAGE_LINK.search(cells[-1]):
            problems.append(f"claim '{cells[0]}' links to no executed notebook")
    return problems


def _metrics(claims: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per claim: ours, paper, ratio, verdict; gradient errors also as log10 (``dvc metrics
    diff`` rounds to 5 decimals, which would show every error below 1e-5 as 0)."""
    metrics = {}
    thresholds = {c.id: c.threshold for c in CLAIMS}
    for c in claims:
        entry = {"ours": c["ours"], "paper": c["paper_value"], "ratio": c["ratio"],
                 "verdict": c["verdict"]}
        if (thresholds.get(c["id"]) or "").startswith("exact_") and c["ours"]:
            entry["ours_log10"] = round(math.log10(float(c["ours"])), 3)
        metrics[c["id"]] = entry
    return metrics


def build_report(results: Path = paths.RESULTS, reports: Path = paths.REPORTS,
                 params_path: Path | None = None, *, pages: Path | None = None,
                 executed: Path | None = None, root: Path = paths.ROOT) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``metrics.json``, figures and ``plots/*.csv``.

    Args:
        results: the result files. ``executed`` (default ``reports/executed``) and ``results``
            define the run identifier.
        reports: where the report goes.
        pages: the rendered notebook pages (with ``index.json``); None: no evidence links.
        root: the checkout whose git state and ``dvc.lock`` the header reports.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        ValueError: if the report contains a number that no result file or parameter produced,
            or (with ``pages``) links a missing page, a page of another run, or leaves a claim
            that has results without a link.
    """
    import markdown

    params = load_params(params_path)
    summaries, envs = _load(results)
    claims = evaluate_claims(summaries, params)
    figures = _figures(results, reports / "figures")
    _plot_data(results, reports / "plots")
    executed = executed if executed is not None else reports / "executed"
    run = provenance.run_id(results, executed)
    index, by_stem = _pages(pages)
    lock = root / "dvc.lock"
    header = _provenance(run, str(params["profile"]), provenance.code_state(root),
                         provenance.check_stages(root) if lock.exists() else None,
                         provenance.notebook_times(executed), provenance.utc_now(), index)
    text = _markdown(params, claims, summaries, envs, figures, _sources(results), header,
                     by_stem, report_gpu.load(results))
    bad = unsourced_numbers(text, results, params)
    if bad:
        raise ValueError(f"report: numbers with no source in reports/results or params: {bad}")
    if pages is not None:
        problems = check_links(text, reports)
        if problems:
            raise ValueError("report: evidence links are broken (rerun the render stage):\n  "
                             + "\n  ".join(problems))
    (reports / "report.md").write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    (reports / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f'<meta name="moonwalk-run" content="{run}"><title>Moonwalk reproduction</title>'
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
        "blockquote{border-left:4px solid #b00;margin:0;padding:0 1em}</style>"
        f"</head><body>{body}</body></html>\n")
    metrics = _metrics(claims)
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
    for path in [*results.glob("*.json"), *report_gpu.files(results, "json")]:
        _numbers_in(json.loads(path.read_text()), allowed)
    for path in [*results.glob("*.csv"), *report_gpu.files(results, "csv")]:
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
    result = build_report(pages=PAGES)
    print(json.dumps(result, indent=1))
