"""Artifacts a reviewer opens without running anything: notebook pages, evidence links, provenance.

The fixture is a miniature run: result summaries, one executed notebook per stage (built with
nbformat, with a figure, a progress bar and widget state like a real run's), and a ``dvc.lock``
that says which stage wrote which files. Rendering it and writing the report must give a report
whose every claim links to an existing page of the same run; the planted faults (a page from
another run, a missing page, a claim without a link, a dirty tree, a stage run on other code)
must each be caught.
"""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from moonwalk_core import provenance, render, report
from moonwalk_core._claims import CLAIMS, EXPERIMENTS

STAGES = {  # stage -> (executed notebook, result stems): the shape of the real dvc.lock
    "exactness@torch": ("01_exactness_torch", ["exactness_torch"]),
    "exactness@jax": ("01_exactness_jax", ["exactness_jax"]),
    "memory_scaling@torch": ("02_memory_scaling_torch", ["memory_scaling_torch"]),
    "memory_scaling@jax": ("02_memory_scaling_jax", ["memory_scaling_jax"]),
    "max_depth": ("03_max_depth", ["max_depth_torch"]),
    "conv2d": ("04_conv2d", ["conv2d_torch"]),
    "runtime": ("05_runtime", ["runtime_torch"]),
    "revnet_modes": ("06_revnet_modes", ["revnet_modes_torch"]),
    "training": ("07_training", ["training_torch"]),
    "backends": ("08_backends", ["backends"]),
}
SUMMARY = {  # every claim key with a value, whichever summary it lives in
    "max_error_float64": 3.1e-16, "max_error_float32": 2.2e-7,
    "auto_checkpoint_error_float64": 4.0e-13, "peak_ratio_deepest": 1.05,
    "stored_ratio_max": 5.5, "auto_depth_ratio": 1.5, "moonwalk_block_time_ratio": 1.3,
    "fragmental_plain_peak_ratio": 1.05, "fragmental_plain_step_peak_ratio": 1.1,
    "fragmental_stored_ratio": 3.2, "nonfragmental_plain_peak_ratio": 9.0,
    "nonfragmental_plain_step_peak_ratio": 4.0, "fragmental_moonwalk_depth_ratio": 2.0,
    "fragmental_auto_depth_ratio": 1.9, "nonfragmental_moonwalk_depth_ratio": 11.0,
    "nonfragmental_auto_depth_ratio": 10.0, "moonwalk_block_over_floor": 0.8,
    "frontier_peak_ratio": 1.7, "nonfragmental_accuracy_gap": 0.01,
    "speedup_depth_6": 30.5, "shortest_sample_s": 0.12, "accuracy_gap": 0.004,
    "max_torch_vs_jax": 2.0e-15,
}


def _png() -> str:
    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([1, 3, 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return base64.b64encode(buf.getvalue()).decode()


def _executed(title: str, png: str) -> nbformat.NotebookNode:
    """What papermill leaves behind: outputs, a progress bar's redraws, widget state."""
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {title}\n\nWhat the notebook measures."),
        new_code_cell('profile = "tiny"', metadata={"tags": ["injected-parameters"]}),
        new_code_cell("results = run(profile)\nresults", outputs=[
            new_output("stream", name="stderr", text="sweep:   0%| | 0/3"),  # as nbclient
            new_output("stream", name="stderr", text="\rsweep:  33%|#| 1/3"),  # stores a bar
            new_output("stream", name="stderr", text="\rsweep: 100%|##| 3/3\n"),
            new_output("execute_result", execution_count=1, data={
                "text/plain": "   depth  ratio\n0      2   1.25",
                "text/html": "<table class='dataframe'><tr><td>2</td><td>1.25</td></tr></table>"}),
            new_output("display_data", data={
                "text/plain": "HBox(children=(FloatProgress(value=0.0),))",
                "application/vnd.jupyter.widget-view+json": {"model_id": "m0", "version_major": 2,
                                                             "version_minor": 0}}),
        ]),
        new_code_cell("plot(results)", outputs=[
            new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"m0": {"model_name": "FloatProgressModel", "state": {"value": 3}}}}}
    nb.metadata["papermill"] = {"start_time": "2026-01-02T03:04:05.000001",
                                "end_time": "2026-01-02T03:05:05.000001", "duration": 60.0,
                                "exception": None, "parameters": {"profile": "tiny"}}
    return nb


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A checkout-like folder: reports/{results,executed}, params.yaml, dvc.lock."""
    root = tmp_path / "repo"
    results, executed = root / "reports" / "results", root / "reports" / "executed"
    results.mkdir(parents=True)
    executed.mkdir()
    params = Path(provenance.paths.PARAMS).read_text()
    (root / "params.yaml").write_text(params.replace("\nprofile: cpu", "\nprofile: tiny", 1))
    png = _png()
    lock: dict = {"schema": "2.0", "stages": {}}
    for stage, (notebook, stems) in STAGES.items():
        experiment = next(e for e, (_, s, _) in EXPERIMENTS.items() if stems[0] in s)
        nbformat.write(_executed(f"{experiment} {stage}", png), executed / f"{notebook}.ipynb")
        outs = [f"reports/executed/{notebook}.ipynb"]
        for stem in stems:
            (results / f"{stem}.summary.json").write_text(json.dumps(
                {**SUMMARY, "rows": 2, "rows_ok": 2, "unavailable": []}))
            (results / f"{stem}.env.json").write_text(json.dumps({"torch": "2.13.0"}))
            outs += [f"reports/results/{stem}.summary.json", f"reports/results/{stem}.env.json"]
        lock["stages"][stage] = {"cmd": "papermill ...", "outs": [
            {"path": p, "hash": "md5", "md5": provenance._md5(root / p)} for p in outs]}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    return root


def _build(root: Path) -> tuple[str, dict]:
    reports = root / "reports"
    index = render.render(reports / "executed", reports / "notebooks", reports / "results",
                          root=root, profile="tiny")
    report.build_report(reports / "results", reports, root / "params.yaml",
                        pages=reports / "notebooks", root=root)
    return (reports / "report.md").read_text(), index


def test_a_page_is_self_contained_small_and_stamped_with_its_run() -> None:
    png = _png()
    page = render.render_page(_executed("E5 Runtime", png), name="05_runtime",
                              run="0123456789ab", profile="tiny",
                              code=provenance.CodeState("f" * 40), source_md5="0" * 32)
    assert '<meta name="moonwalk-run" content="0123456789ab">' in page
    assert page.count(png) == 1                      # the figure, embedded once
    assert "widget" not in page and "HBox" not in page  # no widget state, no widget repr
    assert page.count("sweep: 100%|##| 3/3") == 1 and "33%" not in page  # redraws collapsed
    assert "<script" not in page and "http" not in page  # nothing fetched from anywhere
    assert '<table class="dataframe">' in page and 'alt="figure output"' in page
    assert len(page.encode()) - len(png) < 16_000    # stylesheet and markup stay small
    assert "clean tree" in page and "parameters injected by papermill" in page


def test_every_claim_links_to_an_existing_page_of_the_same_run(run: Path) -> None:
    text, index = _build(run)
    pages = run / "reports" / "notebooks"
    assert sorted(p.stem for p in pages.glob("*.html")) == sorted(n for n, _ in STAGES.values())
    assert report.check_links(text, run / "reports") == []
    rid = report.report_run(text)
    assert rid == index["run"] == provenance.run_id(run / "reports" / "results",
                                                    run / "reports" / "executed")
    rows = text.split("## Claims")[1].split("\n\n")[1].splitlines()[2:]
    assert len(rows) == len(CLAIMS)
    for claim, row in zip(CLAIMS, rows, strict=True):
        link = report.PAGE_LINK.search(row.rsplit(" | ", 1)[-1])
        assert link, f"{claim.id}: no evidence link"
        page = run / "reports" / link.group(1)
        assert render.page_run(page) == rid
        assert claim.result in index["pages"][page.stem]["results"]
    for experiment in EXPERIMENTS:
        section = text.split(f"## {experiment} ")[1].split("\n## ")[0]
        assert "Executed notebook" in section and "](notebooks/" in section


def test_a_page_from_another_run_is_caught(run: Path) -> None:
    text, _ = _build(run)
    reports = run / "reports"
    page = reports / "notebooks" / "05_runtime.html"
    page.write_text(page.read_text().replace(report.report_run(text) or "?", "0" * 12, 1))
    assert report.check_links(text, reports) == [
        f"notebooks/05_runtime.html: page of run {'0' * 12}, report of run "
        f"{report.report_run(text)}"]
    # the same fault reached through the pipeline: results change after the pages were made
    summary = reports / "results" / "runtime_torch.summary.json"
    summary.write_text(summary.read_text().replace("1.3", "1.4"))
    render.render(reports / "executed", reports / "notebooks", reports / "results", root=run,
                  profile="tiny")
    summary.write_text(summary.read_text().replace("1.4", "1.5"))
    with pytest.raises(ValueError, match="page of run"):
        report.build_report(reports / "results", reports, run / "params.yaml",
                            pages=reports / "notebooks", root=run)


def test_a_missing_page_or_a_claim_without_a_link_is_caught(run: Path) -> None:
    text, _ = _build(run)
    reports = run / "reports"
    (reports / "notebooks" / "03_max_depth.html").unlink()
    assert report.check_links(text, reports) == ["notebooks/03_max_depth.html: linked but missing"]
    (reports / "notebooks" / "03_max_depth.html").write_text(
        f'<meta name="moonwalk-run" content="{report.report_run(text)}">')
    unlinked = text.replace("[08_backends](notebooks/08_backends.html) |", "— |", 1)
    assert report.check_links(unlinked, reports) == [
        "claim 'torch and JAX gradients agree (same weights, float64)' links to no executed "
        "notebook"]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                   check=True, capture_output=True)


def test_the_header_names_the_commit_and_states_a_dirty_tree(run: Path) -> None:
    (run / "code.py").write_text("x = 1\n")
    _git(run, "init", "-q")
    _git(run, "add", "-A")
    _git(run, "commit", "-qm", "run")
    text, _ = _build(run)  # rewrites reports/ (pipeline outputs): still a clean tree
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=run, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert f"commit `{head[:12]}`, clean tree" in text and "Not a clean run" not in text
    assert "profile | `tiny`" in text and "`2026-01-02 03:04 UTC` to `2026-01-02 03:05 UTC`" in text
    (run / "code.py").write_text("x = 2\n")
    text, _ = _build(run)
    assert "**dirty tree**: uncommitted changes to `code.py`" in text
    assert "**Not a clean run.**" in text.split("## Claims")[0]
    assert "dirty tree" in (run / "reports" / "notebooks" / "05_runtime.html").read_text()
    # a result edited after its stage ran no longer matches dvc.lock: the header says which
    summary = run / "reports" / "results" / "runtime_torch.summary.json"
    summary.write_text(summary.read_text().replace("1.3", "1.25"))
    text, _ = _build(run)
    assert ("**stages from other code or data**: `runtime`: outputs differ from the ones it "
            "wrote: `reports/results/runtime_torch.summary.json`") in text


def test_metrics_are_flat_numbers_with_errors_also_as_log10(run: Path) -> None:
    _build(run)
    metrics = json.loads((run / "reports" / "metrics.json").read_text())
    for claim, entry in metrics.items():
        assert set(entry) <= {"ours", "paper", "ratio", "verdict", "ours_log10"}, claim
        assert all(v is None or isinstance(v, int | float)
                   for k, v in entry.items() if k != "verdict"), claim
    assert metrics["exact_float64_torch"]["ours_log10"] == round(math.log10(3.1e-16), 3)
    assert "ours_log10" not in metrics["memory_peak_ratio_1d"]


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A real DVC project: one stage with a file, a directory and a parameter as deps."""
    root = tmp_path / "dvc"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "pkg" / "b.py").write_text("B = 2\n")
    (root / "main.py").write_text("print('hi')\n")
    # a float DVC writes back as ``1e-10`` (YAML 1.2), which PyYAML reads as a string
    (root / "params.yaml").write_text("profile: tiny\nsizes: {n: 3, tol: 1.0e-10}\n")
    dvc = [sys.executable, "-m", "dvc"]
    for args in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"],
                 ["stage", "add", "-q", "-n", "measure", "-d", "pkg", "-d", "main.py",
                  "-p", "profile,sizes.n,sizes.tol", "-o", "out.txt", "cp main.py out.txt"],
                 ["repro", "-q"]):
        done = subprocess.run([*dvc, *args], cwd=root, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_stage_check_recomputes_dvcs_own_hashes(dvc_repo: Path) -> None:
    assert [c.ok for c in provenance.check_stages(dvc_repo)] == [True]
    (dvc_repo / "pkg" / "b.py").write_text("B = 3\n")          # code in a directory dep
    (dvc_repo / "params.yaml").write_text("profile: tiny\nsizes: {n: 4, tol: 1.0e-10}\n")
    (dvc_repo / "out.txt").write_text("edited by hand\n")
    (check,) = provenance.check_stages(dvc_repo)
    assert (check.deps, check.params, check.outs) == (("pkg",), ("sizes.n",), ("out.txt",))
    assert check.describe() == ("`measure`: code changed since it ran: `pkg`; parameters "
                                "changed: `sizes.n`; outputs differ from the ones it wrote: "
                                "`out.txt`")


def test_the_committed_report_links_to_committed_pages_of_its_run() -> None:
    reports = provenance.paths.ROOT / "reports"
    text = (reports / "report.md").read_text()
    if report.report_run(text) is None:
        pytest.skip("the committed report predates the notebook pages: `make repro` renews it")
    assert report.check_links(text, reports) == []


def test_plot_data_has_every_field_dvc_yaml_declares(run: Path) -> None:
    results = run / "reports" / "results"
    rows = [{"method": m, "depth": d, "activation": a, "peak_bytes": 2**20 * d,
             "status": "ok"} for m in ("Plain autograd", "Backprop", "Checkpointed", "Moonwalk")
            for d in (2, 4) for a in ("leaky_relu", "relu")]
    for backend in ("torch", "jax"):
        pd.DataFrame(rows).to_csv(results / f"memory_scaling_{backend}.csv", index=False)
    pd.DataFrame([{"part": p, "method": m, "depth": d, "ratio_to_baseline": 1.5,
                   "status": "ok"} for p in ("depth", "pareto") for d in (2, 4)
                  for m in ("Backprop", "Checkpointed", "Moonwalk", "Moonwalk (block 8)")]
                 ).to_csv(results / "runtime_torch.csv", index=False)
    pd.DataFrame([{"dataset": ds, "activation": a, "method": m, "epoch": e,
                   "test_accuracy": 0.5, "train_loss": 1.0, "status": "ok"}
                  for ds in ("mnist1d", "digits") for a in ("relu", "leaky_relu")
                  for m in ("Backprop", "Moonwalk") for e in (1, 2)]
                 ).to_csv(results / "training_torch.csv", index=False)
    written = report._plot_data(results, run / "reports" / "plots")
    assert sorted(written) == sorted(report.PLOT_DATA)
    memory = pd.read_csv(run / "reports" / "plots" / "peak_memory_torch.csv")
    assert memory.to_dict("list") == {"depth": [2, 4], "Backprop": [2, 4],
                                      "Checkpointed": [2, 4], "Moonwalk": [2, 4],
                                      "Plain autograd": [2, 4]}
    declared = yaml.safe_load((provenance.paths.ROOT / "dvc.yaml").read_text())["plots"]
    for plot in (p for p in declared if isinstance(p, dict)):
        (props,) = plot.values()
        for file, fields in props["y"].items():
            columns = set(pd.read_csv(run / file).columns)
            assert {props["x"], *fields} <= columns, (file, columns)


def test_a_figure_a_notebook_cell_returns_is_shown_as_png() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from moonwalk_core import plotting

    shell = InteractiveShell.instance()
    try:
        plotting._show_in_notebooks()  # what importing plotting in a kernel does
        fig = plotting.max_depth_bars(pd.DataFrame({"method": ["Backprop"], "max_depth": [3],
                                                    "budget_bytes": [2**20], "status": ["ok"]}))
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        InteractiveShell.clear_instance()
