"""E7 training: a 1D conv net trained on MNIST-1D with Moonwalk and with Backprop.

Both runs start from the same weights (same seed) and see the same batches; gradients come from
``mw.backward`` (a drop-in for ``loss.backward()``) and the update from ``torch.optim.Adam``.
One row per (method, epoch): mean training loss, test loss and test accuracy, and the largest
Moonwalk self-check of the epoch. See ``docs/experiments.md``.
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

KEY = ["method"]


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
    """Claim quantities: final test accuracy and loss of both methods and the accuracy gap."""
    ok = ok_rows(table)
    if ok.empty or not {"Backprop", "Moonwalk"} <= set(ok["method"]):
        return {}
    last = ok[ok["epoch"] == ok["epoch"].max()].set_index("method")
    bp, mw = last.loc["Backprop"], last.loc["Moonwalk"]
    return {"epochs": ok["epoch"].max(), "backprop_accuracy": bp["test_accuracy"],
            "moonwalk_accuracy": mw["test_accuracy"], "backprop_test_loss": bp["test_loss"],
            "moonwalk_test_loss": mw["test_loss"],
            "accuracy_gap": abs(mw["test_accuracy"] - bp["test_accuracy"]),
            "moonwalk_self_check_max": worst(ok.loc[ok["method"] == "Moonwalk",
                                                     "self_check_max"])}


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E7 (torch backend: it trains with ``torch.optim``); rows per (method, epoch)."""
    out = Path(out) if out is not None else paths.result_file("training", backend)
    t = profile.training
    spec = arch.causal_conv_net(t.depth, channels=t.channels, in_channels=1, length=40, patch=8,
                                negative_slope=t.negative_slope)
    candidates = {"Backprop": methods.Backprop(), "Moonwalk": methods.Moonwalk(t.block_size)}

    def rows(c: Mapping[str, Any]) -> list[dict[str, Any]]:
        def measure_one() -> dict[str, Any]:
            if backend != "torch":
                raise Unavailable("E7 trains with torch.optim; run it with backend='torch'")
            history = train(candidates[c["method"]], spec, data.load_mnist1d(),
                            epochs=t.epochs, batch=t.batch, learning_rate=t.learning_rate,
                            dtype=t.dtype, seed=profile.seed)
            return {"history": history}

        result = attempt(measure_one)
        history = result.pop("history", [{}])
        return [{"backend": backend, **h, **result} for h in history]

    if backend == "torch":
        prepare(profile, backend)
    dataset = (hashlib.sha256(data.MNIST1D_FILE.read_bytes()).hexdigest()[:16]
               if data.MNIST1D_FILE.exists() else "missing")
    return sweep([{"method": m} for m in candidates], rows, out, key=KEY, profile=profile,
                 section="training", backend=backend, summarize=summarize,
                 extra_identity={"data": dataset})
