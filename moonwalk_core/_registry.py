"""Which layer class builds which architecture entry, per backend (docs/architecture.md).

Each backend keeps one :class:`Registry`; its ``register`` files a final layer class under
its ``type_name`` and ``variant`` (:data:`moonwalk_core.arch.VARIANTS`), and ``build`` looks up
the class of every :class:`~moonwalk_core.arch.LayerSpec`. ``tests/test_registry.py`` checks
that both backends register exactly the kinds :func:`moonwalk_core.arch.layer_kinds` lists.
"""

from __future__ import annotations

from typing import Any, TypeVar

from .arch import LayerSpec

__all__ = ["Registry", "INITS", "DTYPE_NAMES", "check_build_options"]

INITS = ("orthogonal", "default")
DTYPE_NAMES = ("float32", "float64", "bfloat16")

C = TypeVar("C", bound=type)


class Registry:
    """Architecture (type, variant) -> layer class, for one backend.

    Attributes:
        classes: ``{type_name: {variant: class}}`` (variant None for single-class types).
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.classes: dict[str, dict[str | None, type]] = {}

    def register(self, cls: C) -> C:
        """Make ``cls`` buildable from entries of type ``cls.type_name`` and variant
        ``cls.variant`` (replacing the class registered for them before, if any)."""
        self.classes.setdefault(cls.type_name, {})[cls.variant] = cls
        return cls

    def lookup(self, spec: LayerSpec) -> Any:
        """The class that builds ``spec``.

        Raises:
            ValueError: naming the layer when this backend has no class for it.
        """
        by_variant = self.classes.get(spec.type)
        if not by_variant:
            raise ValueError(f"layer {spec.index} ({spec.type}): the {self.backend} backend has "
                             f"no such layer; available: {sorted(self.classes)}")
        if spec.variant not in by_variant:
            raise ValueError(f"layer {spec.index} ({spec.type}): the {self.backend} backend has "
                             f"no {spec.variant!r} variant; available: "
                             f"{sorted(map(str, by_variant))}")
        return by_variant[spec.variant]


def check_build_options(init: str, dtype: str | None = None) -> None:
    """``init`` one of :data:`INITS`; ``dtype`` (a name, when given) one of :data:`DTYPE_NAMES`.

    Raises:
        ValueError: naming the option and what is allowed.
    """
    if init not in INITS:
        raise ValueError(f"init={init!r} is not supported; use one of {INITS}")
    if dtype is not None and dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype={dtype!r} is not supported; use one of {DTYPE_NAMES}")
