"""Condition estimates and invertibility checks of the layers' vijps, in NumPy (float64).

Both backends hand these functions their weights as NumPy arrays (one explicit host transfer
per call, in :meth:`condition` / :meth:`check_weights`), so a layer has the same estimates and
the same verdict on singular weights in both backends. What the numbers mean and how the
planner uses them: docs/layers.md ('Condition estimates') and Note: [predicted amplification]
in :mod:`moonwalk_core._stability_plan`.

Weight layouts are torch's (the backends share them, see ``export_weights``): a 1D conv weight is
(C_out, C_in, k) with lag ``l`` at ``weight[..., k - 1 - l]``; a 2D conv weight is
(C_out, C_in, k, k) with the centre tap at ``[..., k // 2, k // 2]``. Products are row-vector
products (``h W``), as everywhere in the package.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "matrix_condition",
    "companion_spectral_radius",
    "symbol_condition",
    "causal_conv_condition",
    "masked_conv2d_condition",
    "circular_conv2d_condition",
    "leaky_relu_condition",
    "coupling_condition",
    "branch_rms_gain",
    "branch_lipschitz",
    "check_invertible",
    "causal_mask",
]

SYMBOL_GRID = 32
"""Frequencies per axis on which a convolution's symbol is sampled (the layers do not store
their input length or image size)."""


def matrix_condition(matrix: np.ndarray) -> float:
    """σ_max / σ_min of a (rows, cols) matrix (inf when it is rank deficient)."""
    s = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else math.inf


def companion_spectral_radius(lags: np.ndarray) -> float:
    """Spectral radius of the recurrence ``z[q] = -sum_{l=1..n} z[q + l] M_l`` (row vectors).

    Args:
        lags: (n, C, C), ``lags[l - 1] = M_l``.

    The companion matrix is (nC x nC) with ``[M_1; ...; M_n]`` negated in its first block
    column and identities on the block superdiagonal; its spectral radius ρ is the per-step
    growth of the error the recurrence carries (ρ > 1: a sequential solve amplifies it by about
    ρ^steps).
    """
    n, c = lags.shape[0], lags.shape[1]
    comp = np.zeros((n * c, n * c))
    comp[:, :c] = -lags.reshape(n * c, c)
    comp[: (n - 1) * c, c:] = np.eye((n - 1) * c)
    return float(np.abs(np.linalg.eigvals(comp)).max())


def symbol_condition(weight: np.ndarray, grid: int = SYMBOL_GRID) -> float:
    """max σ_max / min σ_min of W(ω) = Σ_l W_l e^{-iωl} for a (C, C, k) causal conv weight,
    on ``grid`` frequencies: the condition number of J for long sequences when the
    back-substitution is stable (ρ < 1).

    Real weights give W(-ω) = conj W(ω), so ω in [0, π] covers the grid; σ² are the Hermitian
    eigenvalues of W(ω)ᴴW(ω) (several times cheaper than an SVD).
    """
    lags = np.asarray(weight, dtype=np.float64)[..., ::-1].transpose(2, 0, 1)
    omega = np.arange(grid // 2 + 1) * (2 * np.pi / grid)
    phase = np.exp(-1j * omega[:, None] * np.arange(lags.shape[0]))
    sym = np.einsum("wl,lij->wij", phase, lags)
    sq = np.linalg.eigvalsh(np.conj(sym.transpose(0, 2, 1)) @ sym)
    return float(np.sqrt(sq.max() / max(sq.min(), 1e-300)))


def _inverse(matrix: np.ndarray) -> np.ndarray | None:
    """``matrix⁻¹``, or None when it is singular or the inverse is not finite."""
    try:
        inv = np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return None
    return inv if np.isfinite(inv).all() else None


def causal_conv_condition(weight: np.ndarray) -> dict[str, float]:
    """Estimates for a C -> C causal conv's vijp (back-substitution with ``W_0⁻¹``).

    ``amplification`` = κ(W_0); for k > 1 also ``spectral_radius`` ρ of the back-substitution
    (lag matrices ``M_l = W_l W_0⁻¹``) and ``symbol_condition``. A singular W_0 gives inf.
    """
    w = np.asarray(weight, dtype=np.float64)
    k = w.shape[-1]
    w0 = w[..., -1]
    out = {"amplification": matrix_condition(w0), "spectral_radius": 0.0}
    if k == 1:
        return out
    w0_inv = _inverse(w0)
    if w0_inv is None:
        return {"amplification": math.inf, "spectral_radius": math.inf,
                "symbol_condition": math.inf}
    lags = w[..., :-1][..., ::-1].transpose(2, 0, 1) @ w0_inv  # M_1 .. M_{k-1}
    out["spectral_radius"] = companion_spectral_radius(lags)
    out["symbol_condition"] = symbol_condition(w)
    return out


def causal_mask(k: int) -> np.ndarray:
    """(k, k) bool: the taps before the centre (k // 2, k // 2) in raster order, and the centre
    (docs/conv2d.md)."""
    p = k // 2
    rows, cols = np.arange(k)[:, None], np.arange(k)[None, :]
    return (rows < p) | ((rows == p) & (cols <= p))


def _spectrum_condition(weight: np.ndarray) -> float:
    """max σ_max / min σ_min of K̂(ω) = Σ_ij W_ij e^{-iω·offset_ij} on a grid of
    max(SYMBOL_GRID, k)² frequencies (rfft2's half plane)."""
    c_out, c_in, k, _ = weight.shape
    n, p = max(SYMBOL_GRID, k), k // 2
    kernel = np.zeros((c_out, c_in, n, n))
    kernel[..., :k, :k] = weight
    kernel = np.roll(kernel, (-p, -p), axis=(-2, -1))  # tap (i, j) at its offset
    spectrum = np.fft.rfft2(kernel).transpose(2, 3, 0, 1)  # (n, n // 2 + 1, C, C)
    s = np.linalg.svd(spectrum, compute_uv=False)
    return float(s.max() / s.min()) if s.min() > 0 else math.inf


def masked_conv2d_condition(weight: np.ndarray) -> dict[str, float]:
    """Estimates for the masked (raster-order) conv2d's substitution (docs/conv2d.md).

    ``amplification`` = κ(W_c); ``symbol_condition`` of the masked kernel (J's condition on large
    images); ``spectral_radius`` of the right-to-left recurrence along a row; ``tap_norm_sum`` =
    Σ‖T_ij‖₂ over the non-centre taps, ``T_ij = W_ij W_c⁻¹`` (below 1 the substitution is a
    contraction).
    """
    k = weight.shape[-1]
    p = k // 2
    mask = causal_mask(k)
    w = np.asarray(weight, dtype=np.float64) * mask
    w0 = w[..., p, p]
    out = {"amplification": matrix_condition(w0), "symbol_condition": _spectrum_condition(w),
           "spectral_radius": 0.0, "tap_norm_sum": 0.0}
    if p == 0:
        return out
    w0_inv = _inverse(w0)
    if w0_inv is None:
        return {**out, "spectral_radius": math.inf, "tap_norm_sum": math.inf}
    taps = w.transpose(2, 3, 0, 1) @ w0_inv  # T_ij, (k, k, C, C)
    others = mask.copy()
    others[p, p] = False
    out["tap_norm_sum"] = float(sum(np.linalg.norm(taps[i, j], 2)
                                    for i, j in zip(*np.nonzero(others), strict=True)))
    out["spectral_radius"] = companion_spectral_radius(taps[p, :p][::-1])  # T_{p,p-1} .. T_{p,0}
    return out


def circular_conv2d_condition(weight: np.ndarray) -> dict[str, float]:
    """Estimates for the circular conv2d's per-frequency solves: ``amplification`` =
    ``symbol_condition`` = max σ_max(K̂) / min σ_min(K̂), the condition number of J."""
    symbol = _spectrum_condition(np.asarray(weight, dtype=np.float64))
    return {"amplification": symbol, "symbol_condition": symbol}


def leaky_relu_condition(negative_slope: float) -> dict[str, float]:
    """The vijp divides by the slope on negative units: κ = max(s, 1/s)."""
    return {"amplification": max(negative_slope, 1 / negative_slope)}


def branch_rms_gain(weight_in: np.ndarray, weight_out: np.ndarray, slope: float) -> float:
    """Mean-square gain of a coupling branch's Jacobian on a random direction:
    ‖W_in‖_F ‖W_out‖_F sqrt((1 + slope²) / 2) / sqrt(C · hidden) (half the hidden units
    negative)."""
    w_in, w_out = (np.asarray(w, dtype=np.float64) for w in (weight_in, weight_out))
    gain = float(np.linalg.norm(w_in) * np.linalg.norm(w_out))
    return gain * math.sqrt((1 + slope**2) / 2 / (w_in.shape[1] * w_in.shape[0]))


def branch_lipschitz(weight_in: np.ndarray, weight_out: np.ndarray) -> float:
    """Upper bound on a branch's Lipschitz constant: ‖conv‖ <= sqrt(k^d)·‖W flattened‖₂ per
    'same' conv, leaky-ReLU slope <= 1."""
    def norm(w: np.ndarray) -> float:
        w = np.asarray(w, dtype=np.float64)
        flat = w.reshape(w.shape[0], -1)
        return float(np.linalg.norm(flat, 2)) * math.sqrt(math.prod(w.shape[2:]))

    return norm(weight_in) * norm(weight_out)


def coupling_condition(f: tuple[np.ndarray, np.ndarray], g: tuple[np.ndarray, np.ndarray],
                       slope: float) -> dict[str, float]:
    """Estimates for a RevNet coupling's vijp (two vjps, no inverse).

    ``amplification`` = (1 + g_F)(1 + g_G) with the branches' mean-square gains (an estimate
    for errors with no preferred direction, on the safe side of measured vijp errors);
    ``amplification_bound`` = ((1 + Lip F)(1 + Lip G))², a worst-case bound on κ(J).

    Args:
        f, g: each branch's (weight_in, weight_out).
        slope: the branches' leaky-ReLU slope.
    """
    lf, lg = branch_lipschitz(*f), branch_lipschitz(*g)
    return {"amplification": (1 + branch_rms_gain(*f, slope)) * (1 + branch_rms_gain(*g, slope)),
            "amplification_bound": ((1 + lf) * (1 + lg)) ** 2, "lipschitz_f": lf,
            "lipschitz_g": lg}


def check_invertible(tap: np.ndarray, *, layer: str, tap_name: str) -> None:
    """Raise when a C x C tap a vijp must invert is singular (or its inverse overflows).

    Decided in the tap's own dtype (an LU factorization, as the vijp's own solve), so both
    backends agree on every weight.

    Args:
        tap: the tap, as a NumPy array in the layer's dtype.
        layer: the layer as error messages name it, e.g. "layer 3 (causal_conv1d)".
        tap_name: e.g. "lag-0 tap weight[..., -1]".

    Raises:
        ValueError: naming the layer and the tap.
    """
    if not np.isfinite(tap).all():
        raise ValueError(f"{layer}: the {tap_name} has non-finite values, so the layer has "
                         "no vijp")
    if _inverse(tap) is None:
        kind = tap_name.split(" weight")[0]
        raise ValueError(f"{layer}: the {tap_name} is singular, so the layer has no vijp; use "
                         f"an invertible {kind} (the default 'orthogonal' init gives one)")
