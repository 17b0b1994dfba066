"""Data loaders refuse what they cannot trust, with a clear error."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from moonwalk_core import data


class _Payload:
    """A pickle that runs code when loaded (what an untrusted archive can hold)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_load_cifar10_checks_the_archive_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    archive = tmp_path / "cifar-10-python.tar.gz"
    blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                         b"payload": _Payload(marker)})
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="is not that of the official cifar-10-python.tar.gz"):
        data.load_cifar10(archive, num_samples=1)
    assert not marker.exists()


def test_load_cifar10_without_the_archive_is_a_labelled_stand_in(tmp_path: Path) -> None:
    x, y, source = data.load_cifar10(tmp_path / "absent.tar.gz", num_samples=4)
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,) and source == data.SYNTHETIC_CIFAR


@pytest.mark.parametrize("bad", [1, 9, 2.5, True])
def test_generate_mnist1d_names_a_size_it_cannot_make(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="num_samples=.*at least 10"):
        data.generate_mnist1d(bad, out=tmp_path / "m.npz")  # type: ignore[arg-type]
