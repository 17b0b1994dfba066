"""E7 training: conv nets trained with Moonwalk and with Backprop on two real data sets.

MNIST-1D (1D causal conv net) and scikit-learn's bundled 8x8 digits (2D masked-conv net, a real
image set available offline), each with ReLU (fragmental: the paper's setting) and leaky ReLU.
Both methods start from the same weights (same seed) and see the same batches; gradients come
from ``mw.backward`` (a drop-in for ``loss.backward()``) and the update from
``torch.optim.Adam``. One row per (dataset, activation, method, epoch): mean training loss,
test loss and test accuracy, and the largest Moonwalk self-check of the epoch. See
``docs/experiments.md``.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import arch, data, methods, paths
from ..config import Profile
from ._common import Unavailable, adapter, attempt, ok_rows, prepare, sweep, worst

__all__ = ["run", "summarize", "train"]

KEY = ["dataset", "activation", "method"]
DATASETS = ("mnist1d", "digits")
ACTIVATIONS = ("relu", "leaky_relu")


def train(method: methods.Method, spec: arch.ArchSpec, dataset: Mapping[str, np.ndarray], *,
          epochs: int, batch: int, learning_rate: float, dtype: str,
          seed: int) -> list[dict[str, Any]]:
    """Train a fresh model (weights from ``seed``) and evaluate it after every epoch."""
    import torch

    be = adapter("torch")
    model = be.mw.build(spec, seed, dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    x, y = be.asarray(dataset["x"].astype(dtype)), be.asarray(dataset["y"])
    x_test, y_test = be.asarray(dataset["x_test"].astype(dtype)), be.asarray(dataset["y_test"])
    order = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        permutation = torch.from_numpy(order.permutation(len(y)))
        losses, worst_check = [], 0.0
        for start in range(0, len(y), batch):
            index = permutation[start:start + batch]
            optimizer.zero_grad()
            with warnings.catch_warnings():  # recorded as self_check_max instead
                warnings.filterwarnings("ignore", message="Moonwalk")
                result = be.mw.backward(model, be.loss_fn, x[index], y[index], method=method)
            optimizer.step()
            losses.append(float(result.loss))
            check = result.self_check if result.self_check is not None else 0.0
            worst_check = check if check != check else max(worst_check, check)  # NaN sticks
        with torch.no_grad():
            logits = model(x_test)
            test_loss = float(be.loss_fn(logits, y_test))
            accuracy = float((logits.argmax(dim=1) == y_test).double().mean())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                        "test_loss": test_loss, "test_accuracy": accuracy,
                        "self_check_max": worst_check})
    return history


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: per (dataset, activation), the final test accuracy of both methods
    and their gap; ``accuracy_gap`` is the largest gap of the fragmental (ReLU) runs, the
    paper's setting, and ``nonfragmental_accuracy_gap`` that of the leaky-ReLU runs."""
    ok = ok_rows(table)
    if ok.empty or not {"Backprop", "Moonwalk"} <= set(ok["method"]):
        return {}
    summary: dict[str, Any] = {"epochs": ok["epoch"].max()}
    gaps: dict[str, list[float]] = {"relu": [], "leaky_relu": []}
    for (dataset, activation), run in ok.groupby(["dataset", "activation"]):
        last = run[run["epoch"] == run["epoch"].max()].set_index("method")
        if not {"Backprop", "Moonwalk"} <= set(last.index):
            continue
        bp, mw = last.loc["Backprop", "test_accuracy"], last.loc["Moonwalk", "test_accuracy"]
        summary.update({f"{dataset}_{activation}_backprop_accuracy": bp,
                        f"{dataset}_{activation}_moonwalk_accuracy": mw})
        gaps[str(activation)].append(abs(mw - bp))
    summary.update(accuracy_gap=worst(gaps["relu"]),
                   nonfragmental_accuracy_gap=worst(gaps["leaky_relu"]),
                   moonwalk_self_check_max=worst(ok.loc[ok["method"] == "Moonwalk",
                                                        "self_check_max"]))
    return summary


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E7 (torch backend: it trains with ``torch.optim``); rows per (method, epoch)."""
    out = Path(out) if out is not None else paths.result_file("training", backend)
    t = profile.training
    candidates = {"Backprop": methods.Backprop(), "Moonwalk": methods.Moonwalk(t.block_size)}

    def spec_of(dataset: str, activation: str) -> arch.ArchSpec:
        if dataset == "digits":
            return arch.conv2d_net(t.depth, channels=t.channels, in_channels=1, size=8,
                                   patch=4, activation=activation,
                                   negative_slope=t.negative_slope)
        return arch.causal_conv_net(t.depth, channels=t.channels, in_channels=1, length=40,
                                    patch=8, activation=activation,
                                    negative_slope=t.negative_slope)

    def rows(c: Mapping[str, Any]) -> list[dict[str, Any]]:
        def measure_one() -> dict[str, Any]:
            if backend != "torch":
                raise Unavailable("E7 trains with torch.optim; run it with backend='torch'")
            dataset = (data.load_digits(seed=profile.seed) if c["dataset"] == "digits"
                       else data.load_mnist1d())
            history = train(candidates[c["method"]], spec_of(c["dataset"], c["activation"]),
                            dataset, epochs=t.epochs, batch=t.batch,
                            learning_rate=t.learning_rate, dtype=t.dtype, seed=profile.seed)
            return {"history": history}

        result = attempt(measure_one)
        history = result.pop("history", [{}])
        return [{"backend": backend, **h, **result} for h in history]

    if backend == "torch":
        prepare(profile, backend)
    dataset = (hashlib.sha256(data.MNIST1D_FILE.read_bytes()).hexdigest()[:16]
               if data.MNIST1D_FILE.exists() else "missing")
    configs = [{"dataset": d, "activation": a, "method": m} for d in DATASETS
               for a in ACTIVATIONS for m in candidates]
    return sweep(configs, rows, out, key=KEY, profile=profile,
                 section="training", backend=backend, summarize=summarize,
                 extra_identity={"data": dataset})
