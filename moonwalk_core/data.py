"""Data of the experiments: MNIST-1D, CIFAR-10 or its stand-in, synthetic batches.

MNIST-1D is generated offline by the ``mnist1d`` package (no download). CIFAR-10 is read from
``data/cifar-10-python.tar.gz`` when a user places it there (its MD5 is checked before anything
in it is unpickled); otherwise a synthetic stand-in of the same shapes is returned, labelled as
such. Memory and time experiments use synthetic tensors. Run ``python -m moonwalk_core.data``
to write ``data/mnist1d.npz`` at the size of the profile selected in ``params.yaml``.
See ``docs/experiments.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np

from . import paths

__all__ = ["MNIST1D_FILE", "CIFAR10_ARCHIVE", "generate_mnist1d", "load_mnist1d", "load_digits",
           "load_cifar10",
           "synthetic_batch"]

MNIST1D_FILE: Path = paths.DATA / "mnist1d.npz"
CIFAR10_ARCHIVE: Path = paths.DATA / "cifar-10-python.tar.gz"
SYNTHETIC_CIFAR = "synthetic stand-in (no data/cifar-10-python.tar.gz)"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
"""MD5 of the official ``cifar-10-python.tar.gz`` (www.cs.toronto.edu/~kriz/cifar.html)."""


def generate_mnist1d(num_samples: int, seed: int = 42, out: str | Path = MNIST1D_FILE) -> Path:
    """Generate MNIST-1D (40-step sequences, 10 classes, 80/20 train/test split) into ``out``.

    Raises:
        ValueError: for fewer than 10 samples (one per class template).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 10:
        raise ValueError(f"num_samples={num_samples!r}: MNIST-1D needs an integer of at least "
                         "10 (one sample per class)")

    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    state = np.random.get_state()  # mnist1d seeds NumPy's global generator; leave it as it was
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x=d["x"].astype(np.float32), y=d["y"].astype(np.int64),
                        x_test=d["x_test"].astype(np.float32),
                        y_test=d["y_test"].astype(np.int64))
    return out


def load_mnist1d(path: str | Path = MNIST1D_FILE) -> dict[str, np.ndarray]:
    """MNIST-1D as ``x`` (N, 1, 40), ``y`` (N,), ``x_test``, ``y_test``.

    Raises:
        FileNotFoundError: if the file is missing (run the ``data`` stage first).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; generate it with `dvc repro data` or "
                                "`python -m moonwalk_core.data`")
    with np.load(path) as f:
        return {"x": f["x"][:, None, :], "y": f["y"], "x_test": f["x_test"][:, None, :],
                "y_test": f["y_test"]}


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, shipped inside the package:
    no download) as ``x`` (N, 1, 8, 8) float32 scaled to [0, 1] then standardized by the
    training split's mean and deviation, ``y``, ``x_test``, ``y_test``; a seeded random split.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(), x[train].std()
    return {"x": (x[train] - mean) / std, "y": y[train], "x_test": (x[test] - mean) / std,
            "y_test": y[test]}


def load_cifar10(path: str | Path = CIFAR10_ARCHIVE, *, num_samples: int = 1000,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x (N, 3, 32, 32) float32 standardized, y (N,), source)`` from the archive or a stand-in.

    ``source`` is ``"CIFAR-10 (data/cifar-10-python.tar.gz)"`` or the stand-in's label; every
    table that uses these data carries it.

    Raises:
        ValueError: when the archive is not the official one (its MD5 differs): the batches
            are pickles, and unpickling an unknown file can run arbitrary code.
    """
    path = Path(path)
    if not path.exists():
        x, y = synthetic_batch((3, 32, 32), 10, num_samples, seed=seed)
        return x, y, SYNTHETIC_CIFAR
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != CIFAR10_MD5:
        raise ValueError(f"{path}: MD5 {digest.hexdigest()} is not that of the official "
                         f"cifar-10-python.tar.gz ({CIFAR10_MD5}); refusing to unpickle it. "
                         "Download it again from www.cs.toronto.edu/~kriz/cifar.html, or "
                         "remove it to use the synthetic stand-in.")
    xs, ys = [], []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if Path(member.name).name.startswith("data_batch"):
                batch = pickle.load(tar.extractfile(member), encoding="bytes")  # noqa: S301
                xs.append(batch[b"data"])
                ys.extend(batch[b"labels"])
                if sum(len(b) for b in xs) >= num_samples:
                    break
    x = np.concatenate(xs)[:num_samples].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    return x, np.asarray(ys[:num_samples], dtype=np.int64), f"CIFAR-10 ({path.name})"


def synthetic_batch(input_shape: tuple[int, ...] | list[int], classes: int, batch: int, *,
                    dtype: str = "float32", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal inputs ``(batch, *input_shape)``, uniform labels in ``[0, classes)``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *input_shape)).astype(dtype)
    return x, rng.integers(0, classes, size=batch).astype(np.int64)


def main(argv: list[str] | None = None) -> None:
    """CLI of the ``data`` stage: generate MNIST-1D at the profile's size."""
    from .config import PROFILES, load_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, choices=PROFILES,
                        help="tiny | cpu | gpu (default: the one selected in params.yaml)")
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    out = generate_mnist1d(profile.training.num_samples, seed=42)
    print(f"wrote {out.relative_to(paths.ROOT)} ({profile.training.num_samples} samples)")


if __name__ == "__main__":
    main()
