"""Exact references for ‖∇²L(θ)‖₂: dense ``torch.func.hessian`` + ``eigvalsh`` for small p,
Lanczos (``scipy.sparse.linalg.eigsh`` over a LinearOperator of HVPs) for larger p.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from .derivatives import dense_hessian, hvp

DENSE_MAX = 1500


def hessian_spectral_norm_dense(f, theta: Tensor) -> tuple[float, Tensor]:
    """(‖H‖₂, unit eigenvector of the eigenvalue of largest magnitude), exact up to rounding."""
    evals, evecs = torch.linalg.eigh(dense_hessian(f, theta))
    i = int(evals.abs().argmax())
    return float(evals[i].abs()), evecs[:, i]


def hessian_spectral_norm_lanczos(f, theta: Tensor, tol: float = 1e-12) -> tuple[float, Tensor]:
    """Same by Lanczos on HVPs (``which='LM'``: largest magnitude)."""
    p = theta.numel()

    def mv(v):
        return hvp(f, theta, torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=theta.dtype)).detach().numpy()

    op = LinearOperator((p, p), matvec=mv, dtype=np.float64)
    vals, vecs = eigsh(op, k=1, which="LM", tol=tol, v0=np.ones(p))
    return float(abs(vals[0])), torch.as_tensor(vecs[:, 0], dtype=theta.dtype)


def hessian_spectral_norm(f, theta: Tensor) -> tuple[float, Tensor]:
    """‖∇²f(θ)‖₂ and its eigenvector: dense below ``DENSE_MAX`` parameters, else Lanczos."""
    if theta.numel() <= DENSE_MAX:
        return hessian_spectral_norm_dense(f, theta)
    return hessian_spectral_norm_lanczos(f, theta)
