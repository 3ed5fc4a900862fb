"""Exact references for ‖∇²L(θ)‖₂: dense ``torch.func.hessian`` + ``eigvalsh`` for small p,
Lanczos (``scipy.sparse.linalg.eigsh`` over a LinearOperator of HVPs) for larger p.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from .derivatives import HVPOperator, dense_hessian
from .rounding import U64

DENSE_MAX = 1500


def hessian_spectral_norm_dense(f, theta: Tensor) -> tuple[float, Tensor]:
    """(‖H‖₂, unit eigenvector of the eigenvalue of largest magnitude), exact up to rounding."""
    evals, evecs = torch.linalg.eigh(dense_hessian(f, theta))
    i = int(evals.abs().argmax())
    return float(evals[i].abs()), evecs[:, i]


def hessian_spectral_norm_lanczos(f, theta: Tensor, tol: float = 1e-12) -> tuple[float, Tensor]:
    """Same by Lanczos on HVPs (``which='LM'``: largest magnitude), over one linearisation
    (:class:`~tvgrad.theory.derivatives.HVPOperator`: the gradient graph is built once).
    """
    val, vec, _ = lanczos_top(HVPOperator(f, theta), theta, tol)
    return val, vec


def lanczos_top(op: HVPOperator, theta: Tensor, tol: float = 1e-12) -> tuple[float, Tensor, float]:
    r"""The largest-magnitude eigenpair of ``op`` by Lanczos, and its certified residual.

    .. math::
        \exists\,\lambda\in\operatorname{spec}(H):\ |\lambda - \vartheta| \le \|H x - \vartheta x\|_2
        \quad(\|x\| = 1,\ H \text{ symmetric})

    so ``‖H‖₂ ≥ |ϑ| − r``: a certified *lower* bound on the norm, whatever Lanczos converged to
    (a check that finds ``|ϑ| − r`` above a claimed upper bound has a sound violation). The
    residual is computed with one more product and enlarged by the product's rounding (a
    relative ``p·u`` of ``|ϑ|``).

    Returns:
        (|ϑ|, x, r).
    """
    p = theta.numel()

    def mv(v):
        return op(torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=theta.dtype)).detach().numpy()

    lin = LinearOperator((p, p), matvec=mv, dtype=np.float64)
    vals, vecs = eigsh(lin, k=1, which="LM", tol=tol, v0=np.ones(p))
    x = torch.as_tensor(vecs[:, 0], dtype=theta.dtype)
    x = x / x.norm()
    Hx = op(x)
    lam = float(torch.dot(x, Hx))
    r = float((Hx - lam * x).norm()) + p * U64 * abs(lam)
    return abs(float(vals[0])), x, r


def hessian_spectral_norm(f, theta: Tensor) -> tuple[float, Tensor]:
    """‖∇²f(θ)‖₂ and its eigenvector: dense below ``DENSE_MAX`` parameters, else Lanczos."""
    if theta.numel() <= DENSE_MAX:
        return hessian_spectral_norm_dense(f, theta)
    return hessian_spectral_norm_lanczos(f, theta)
