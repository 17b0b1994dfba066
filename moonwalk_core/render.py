"""Executed notebooks as self-contained HTML pages: ``reports/notebooks/<name>.html``.

A reviewer who only clones the repository opens these pages to see the evidence behind each
claim: the notebook's code, its tables and its figures (PNG outputs embedded as data URIs), with
no kernel, no network and nothing from the DVC cache. Pages are small: nbconvert's ``basic``
template (no JupyterLab theme, no MathJax or require.js from a CDN), a short stylesheet, no
widget state, progress-bar redraws collapsed to their final line.

Every page carries the run identifier (:func:`moonwalk_core.provenance.run_id`) in
``<meta name="moonwalk-run">`` and in its header; ``index.json`` beside the pages maps each page
to its source notebook (with md5), the DVC stage that wrote it and that stage's result files, so
the report links each claim to the page of the stage that measured it.
Run: ``python -m moonwalk_core.render`` (the ``render`` stage of ``dvc.yaml``).
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import logging
import re
from pathlib import Path
from typing import Any

import nbformat
import yaml

from . import paths, provenance
from ._claims import EXPERIMENTS

__all__ = ["render", "render_page", "page_run", "clean_notebook", "PAGES", "INDEX"]

PAGES: Path = paths.REPORTS / "notebooks"
INDEX = "index.json"
RUN_META = re.compile(r'<meta name="moonwalk-run" content="([0-9a-f]*)">')
WIDGET_MIMES = ("application/vnd.jupyter.widget-view+json",
                "application/vnd.jupyter.widget-state+json")

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:62em;margin:0 auto;padding:0 1em 3em;color:#222}
header.mw-run{position:sticky;top:0;background:#f3f5f8;border-bottom:1px solid #ccd;
 padding:.4em .6em;font-size:13px;margin:0 -1em 1em;z-index:1}
header.mw-run .dirty{color:#b00;font-weight:bold}
pre,code{font:13px/1.35 ui-monospace,monospace}
.input_area pre{background:#f7f7f7;border-left:3px solid #9ab;padding:.4em .6em;
 overflow-x:auto;margin:.6em 0 .2em}
.celltag_injected-parameters .input_area pre{border-left-color:#e90}
.celltag_injected-parameters .input_area::before{content:"parameters injected by papermill";
 font-size:12px;color:#a60}
.output_area pre{padding:0 .6em;overflow-x:auto;margin:.2em 0}
.output_stderr pre{color:#777}
.output_png img{max-width:100%}
a.anchor-link{display:none}
table.dataframe{border-collapse:collapse;font-size:12px;margin:.4em 0;display:block;
 overflow-x:auto}
table.dataframe td,table.dataframe th{border:1px solid #ddd;padding:1px 5px;text-align:right}
"""


def _md5(text: bytes) -> str:
    return hashlib.md5(text).hexdigest()


def _collapse_redraws(text: str) -> str:
    """What a terminal shows after carriage returns: each line's text after its last ``\\r``."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without widget state or widget outputs, with consecutive stream outputs merged
    and progress-bar redraws collapsed to their final line."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs: list[Any] = []
        for out in cell.get("outputs", []):
            if any(mime in out.get("data", {}) for mime in WIDGET_MIMES):
                continue  # a widget (its text/plain is only a repr like "HBox(...)")
            if (out.output_type == "stream" and outputs
                    and outputs[-1].output_type == "stream" and outputs[-1].name == out.name):
                outputs[-1].text += out.text
                continue
            outputs.append(out)
        for out in outputs:
            if out.output_type == "stream":
                out.text = _collapse_redraws(out.text)
        cell.outputs = [o for o in outputs if o.output_type != "stream" or o.text.strip()]
    return nb


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _header(name: str, run: str, profile: str, code: provenance.CodeState,
            meta: dict[str, Any]) -> str:
    commit = html.escape(code.commit[:12]) if code.commit else "no commit"
    state = ('<span class="dirty">dirty tree</span>' if code.dirty else "clean tree")
    when = ""
    if meta.get("start_time"):
        duration = f", {meta['duration']:.0f} s" if meta.get("duration") else ""
        when = f" · executed {provenance.utc(str(meta['start_time']))}{duration}"
    failed = (' · <span class="dirty">execution stopped with an error</span>'
              if meta.get("exception") else "")
    return (f'<header class="mw-run">Moonwalk reproduction · executed notebook '
            f"<code>{html.escape(name)}.ipynb</code> · run <code>{run}</code> · profile "
            f"<code>{html.escape(profile)}</code> · code <code>{commit}</code> ({state})"
            f'{when}{failed} · <a href="../report.html">report</a></header>')


def render_page(nb: nbformat.NotebookNode, *, name: str, run: str, profile: str,
                code: provenance.CodeState, source_md5: str) -> str:
    """One executed notebook as a standalone HTML page stamped with the run identifier."""
    from nbconvert import HTMLExporter
    from pygments.formatters import HtmlFormatter

    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True,
                            exclude_output_prompt=True)
    exporter.log.setLevel(logging.ERROR)  # it warns about every figure lacking alt text
    body, _ = exporter.from_notebook_node(clean_notebook(nb))
    body = body.replace('alt="No description has been provided for this image"',
                        'alt="figure output"')
    title = _title(nb, name)
    pygments_css = HtmlFormatter(style="default").get_style_defs(".highlight")
    meta = dict(nb.metadata.get("papermill", {}))
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="moonwalk-run" content="{run}">'
            f'<meta name="moonwalk-source" content="executed/{html.escape(name)}.ipynb '
            f'{source_md5}">'
            f"<title>{html.escape(title)} — Moonwalk reproduction</title>"
            f"<style>{_STYLE}{pygments_css}</style></head>\n<body>"
            f"{_header(name, run, profile, code, meta)}\n<main>{body}</main></body></html>\n")


def page_run(page: Path) -> str | None:
    """The run identifier stamped in a page (None if it has none)."""
    found = RUN_META.search(page.read_text(errors="replace")[:4000])
    return found.group(1) if found else None


def _stage_results(root: Path) -> dict[str, tuple[str, list[str]]]:
    """Executed notebook file name -> (DVC stage, result stems) from ``dvc.lock``."""
    lock_path = root / "dvc.lock"
    if not lock_path.exists():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    found = {}
    for stage, entry in (lock.get("stages") or {}).items():
        outs = [Path(o["path"]).name for o in entry.get("outs", [])]
        stems = sorted(o.removesuffix(".summary.json") for o in outs
                       if o.endswith(".summary.json"))
        for out in outs:
            if out.endswith(".ipynb"):
                found[out] = (stage, stems)
    return found


def _experiment(stems: list[str]) -> str | None:
    for experiment, (_, experiment_stems, _) in EXPERIMENTS.items():
        if any(stem in experiment_stems for stem in stems):
            return experiment
    return None


def render(executed: Path = paths.EXECUTED, pages: Path = PAGES,
           results: Path = paths.RESULTS, root: Path = paths.ROOT,
           profile: str | None = None) -> dict[str, Any]:
    """Render every executed notebook to ``pages``; write ``index.json``; drop stale pages.

    Returns the index: the run identifier and, per page, its source, md5, stage, results,
    experiment, title, size and execution times.

    Raises:
        FileNotFoundError: if ``executed`` holds no notebook.
    """
    from .config import load_params

    notebooks = sorted(executed.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no executed notebooks in {executed}: run dvc repro first")
    run = provenance.run_id(results, executed)
    profile = profile if profile is not None else str(load_params()["profile"])
    code = provenance.code_state(root)
    stages = _stage_results(root)
    pages.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"run": run, "profile": profile, "pages": {}}
    for path in notebooks:
        raw = path.read_bytes()
        nb = nbformat.reads(raw.decode(), as_version=4)
        name = path.stem
        text = render_page(nb, name=name, run=run, profile=profile, code=code,
                           source_md5=_md5(raw))
        (pages / f"{name}.html").write_text(text)
        stage, stems = stages.get(path.name, (None, []))
        meta = nb.metadata.get("papermill", {})
        index["pages"][name] = {
            "page": f"{name}.html", "source": f"executed/{path.name}", "md5": _md5(raw),
            "stage": stage, "results": stems, "experiment": _experiment(stems),
            "title": _title(nb, name), "bytes": len(text.encode()),
            "start_time": meta.get("start_time"), "end_time": meta.get("end_time"),
            "error": bool(meta.get("exception")),
        }
    for stale in pages.glob("*.html"):
        if stale.stem not in index["pages"]:
            stale.unlink()
    (pages / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


if __name__ == "__main__":
    done = render()
    for name, page in done["pages"].items():
        print(f"{page['bytes'] / 1024:7.1f} KiB  {name}.html  ({page['stage']})")
    print(f"run {done['run']}: {len(done['pages'])} pages in {PAGES}")
