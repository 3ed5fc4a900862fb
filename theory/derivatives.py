r"""Gradients and Hessian-vector products with :mod:`torch.func`, and the exact dense reference.

Every function takes a scalar function ``f`` of parameters ``theta`` — a tensor or a dict
of tensors (any pytree ``torch.func`` accepts) — and returns results of the same structure.

Two matrix-free Hessian-vector products are provided:

.. math::

    \text{fwd-rev:}\; Hv = \partial_\epsilon \nabla f(\theta + \epsilon v)\big|_{\epsilon=0}
    \quad(\texttt{jvp}\text{ of }\texttt{grad}),\qquad
    \text{rev-rev:}\; Hv = \nabla_\theta \langle \nabla f(\theta), v\rangle
    \quad(\texttt{vjp}\text{ of }\texttt{grad}).

:func:`dense_hessian` (``torch.func.hessian``) is the exact reference every HVP is compared
to in the tests. :func:`hvp` is the one the claims use: rev-rev, the faster of the two in
``make bench`` on every size measured on the CPU (1.8–2.5× a gradient, against 2.8–3.1× for
fwd-rev; README, "Benchmarks").

**Eager fast path.** Outside any ``torch.func`` transform, for a flat tensor θ that is not
itself part of an autograd graph, :func:`gradient`, :func:`hvp_rev_rev` and
:class:`HVPOperator` compute the same rev-rev products with plain ``torch.autograd.grad`` on
a fresh leaf (``create_graph`` for the second pass): the same kernels without ``torch.func``'s
per-call wrapping, which cost 1.2–1.7× a plain autograd gradient (``make bench``:
``grad_over_autograd``). Inside a transform (``vmap`` over an η grid, ``jvp`` through the
steps, ``grad`` of an HVP) or for a θ that requires grad, they use ``torch.func`` as before, so
they compose exactly as ``torch.func`` functions do.
"""

from __future__ import annotations

import contextlib
import re
from typing import Callable

import torch
from torch import Tensor
from torch._C._functorch import maybe_current_level
from torch.func import grad, hessian, jvp, vjp

from ..errors import InvalidInput

Params = Tensor | dict[str, Tensor]
Scalar = Callable[[Params], Tensor]


class SumOfParts:
    r"""A loss :math:`f(\theta) = \sum_i w_i f_i(\theta)` differentiated part by part.

    Gradients and Hessian-vector products of a sum are sums of the parts', so a full-batch
    loss split into micro-batches (``w_i = n_i / n`` for mean losses) is differentiated with
    one micro-batch's graph in memory at a time. :func:`gradient`, :func:`hvp` and
    :func:`grad_and_value` accumulate over the parts; calling it gives the value.

    Args:
        parts: ``(weight, function)`` pairs; nested sums are flattened.
    """

    def __init__(self, parts):
        self.parts = []
        for w, f in parts:
            if isinstance(f, SumOfParts):
                self.parts += [(float(w) * v, g) for v, g in f.parts]
            else:
                self.parts.append((float(w), f))
        if not self.parts:
            raise InvalidInput("a SumOfParts needs at least one part")

    def __call__(self, theta: Params) -> Tensor:
        """The value Σ_i w_i f_i(θ)."""
        return _accumulate(w * f(theta) for w, f in self.parts)


def _accumulate(terms):
    total = None
    for t in terms:
        total = t if total is None else total + t
    return total


def _scaled(w: float, x: Params) -> Params:
    if isinstance(x, Tensor):
        return w * x
    return {k: w * v for k, v in x.items()}


def _add(a: Params | None, b: Params) -> Params:
    if a is None:
        return b
    if isinstance(b, Tensor):
        return a + b
    return {k: a[k] + b[k] for k in b}


def _eager(theta: Params) -> bool:
    """Plain autograd applies: a flat tensor outside every ``torch.func`` transform and outside
    any autograd graph of the caller (whose derivatives through θ must keep flowing).
    """
    return (isinstance(theta, Tensor) and not theta.requires_grad
            and maybe_current_level() is None)


def _autograd_grad(f: Scalar, theta: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """(∇f(θ), the leaf it was taken at), by ``torch.autograd.grad`` on a fresh leaf."""
    leaf = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(f(leaf), leaf, create_graph=create_graph,
                                   allow_unused=True, materialize_grads=True)
    return g, leaf


def gradient(f: Scalar, theta: Params) -> Params:
    r""":math:`\nabla f(\theta)` (part by part for a :class:`SumOfParts`)."""
    if isinstance(f, SumOfParts):
        g = None
        for w, part in f.parts:
            g = _add(g, _scaled(w, gradient(part, theta)))
        return g
    if _eager(theta):
        return _autograd_grad(f, theta, create_graph=False)[0]
    return grad(f)(theta)


def grad_and_value(f: Scalar):
    """``θ ↦ (∇f(θ), f(θ))`` (:func:`torch.func.grad_and_value`, part by part for sums)."""
    from torch.func import grad_and_value as gv
    if not isinstance(f, SumOfParts):
        return gv(f)

    def both(theta):
        g = v = None
        for w, part in f.parts:
            gp, vp = gv(part)(theta)
            g, v = _add(g, _scaled(w, gp)), _add(v, w * vp)
        return g, v
    return both


def _check_like(theta: Params, v: Params) -> None:
    """``v`` must have the structure and shapes of ``theta`` (else a clear error)."""
    if isinstance(theta, Tensor) != isinstance(v, Tensor):
        raise InvalidInput("v and theta must both be tensors or both be dicts")
    pairs = [("theta", theta, v)] if isinstance(theta, Tensor) else None
    if pairs is None:
        if theta.keys() != v.keys():
            raise InvalidInput(f"v has keys {sorted(v)}, theta has {sorted(theta)}")
        pairs = [(k, theta[k], v[k]) for k in theta]
    for name, t, w in pairs:
        if t.shape != w.shape:
            raise InvalidInput(f"v[{name}] has shape {tuple(w.shape)}, theta has {tuple(t.shape)}")


def hvp_fwd_rev(f: Scalar, theta: Params, v: Params) -> Params:
    r""":math:`\nabla^2 f(\theta)\,v` by forward-over-reverse (``jvp`` of ``grad``)."""
    _check_like(theta, v)
    return jvp(grad(f), (theta,), (v,))[1]


def hvp_rev_rev(f: Scalar, theta: Params, v: Params) -> Params:
    r""":math:`\nabla^2 f(\theta)\,v` by reverse-over-reverse (``vjp`` of ``grad``).

    Raises:
        NotTwiceDifferentiable: an operation of ``f`` has no double backward in PyTorch.
    """
    _check_like(theta, v)
    if isinstance(f, SumOfParts):
        h = None
        for w, part in f.parts:
            h = _add(h, _scaled(w, hvp_rev_rev(part, theta, v)))
        return h
    if _eager(theta):
        return HVPOperator(f, theta)(v)
    with _second_order(f):
        _, pullback = vjp(grad(f), theta)
        return pullback(v)[0]


class HVPOperator:
    r"""∇²f(θ) as a linear map linearised once at a fixed θ.

    .. math::
        H v = \nabla^2 f(\theta)\,v,\qquad \text{pullback of } \mathrm{vjp}(\nabla f, \theta)

    The gradient graph and its pullback are built once (as PyHessian does) and every product
    reuses them: bit-identical to :func:`hvp_rev_rev` (tested), at a fraction of its cost per
    further product (``make bench``: ``reused_hvp_over_grad``). For Lanczos, several vectors
    at one point, and the claims' H_t·g_s products.

    Attributes:
        grad: ∇f(θ), computed on the way (free).
        count: products so far.
    """

    def __init__(self, f: Scalar, theta: Params):
        self.theta, self.count = theta, 0
        if isinstance(f, SumOfParts):
            self._parts = [(w, HVPOperator(part, theta)) for w, part in f.parts]
            self.grad = None
            for w, op in self._parts:
                self.grad = _add(self.grad, _scaled(w, op.grad))
            self._pullback = None
            return
        self._parts = None
        with _second_order(f):
            if _eager(theta):  # plain autograd: the first pass kept with its graph
                g, leaf = _autograd_grad(f, theta, create_graph=True)
                self.grad = g.detach()
                self._pullback = _AutogradPullback(g, leaf)
            else:
                self.grad, self._pullback = vjp(grad(f), theta)

    def __call__(self, v: Params) -> Params:
        """H v."""
        _check_like(self.theta, v)
        self.count += 1
        if self._parts is not None:
            h = None
            for w, op in self._parts:
                h = _add(h, _scaled(w, op(v)))
            return h
        with _second_order(None):
            return self._pullback(v)[0]


class _AutogradPullback:
    """v ↦ (∇_θ⟨∇f(θ), v⟩,): the second backward pass over a kept gradient graph."""

    def __init__(self, g: Tensor, leaf: Tensor):
        self.g, self.leaf = g, leaf

    def __call__(self, v: Tensor) -> tuple[Tensor]:
        if not self.g.requires_grad:  # f is affine in θ: the Hessian is zero
            return (torch.zeros_like(self.leaf),)
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(self.g, self.leaf, v, retain_graph=True,
                                        allow_unused=True, materialize_grads=True)
        return (hv,)


class NotTwiceDifferentiable(InvalidInput):
    """An operation has no second derivative in PyTorch, so no Hessian-vector product exists."""


@contextlib.contextmanager
def _second_order(f):
    try:
        yield
    except RuntimeError as exc:
        m = re.search(r"derivative for (\S+) is not implemented", str(exc))
        if m is None:
            raise
        raise NotTwiceDifferentiable(
            f"the loss uses {m.group(1)}, which has no double backward in PyTorch: "
            f"Hessian-vector products (every second-order claim) are impossible through it. "
            f"Use a smooth replacement (e.g. SiLU/GELU for hardswish/hardsigmoid); attention "
            f"must run under the math SDPA backend (tvgrad.ModuleProblem does this).") from None


hvp = hvp_rev_rev
"""The HVP the claims use (the faster one measured by ``make bench``)."""


def _flat(p: Params) -> Tensor:
    if isinstance(p, Tensor):
        return p.reshape(-1)
    return torch.cat([t.reshape(-1) for t in p.values()])


def dense_hessian(f: Scalar, theta: Params) -> Tensor:
    """The exact Hessian as a dense ``p × p`` matrix (``torch.func.hessian``).

    For a dict, rows and columns follow the dict's order with each tensor flattened.
    """
    if isinstance(theta, Tensor):
        flat0 = theta.reshape(-1)
        return hessian(lambda t: f(t.reshape(theta.shape)))(flat0)
    names = list(theta)
    shapes = [theta[n].shape for n in names]
    sizes = [theta[n].numel() for n in names]
    flat0 = _flat(theta)

    def f_flat(t: Tensor) -> Tensor:
        parts = torch.split(t, sizes)
        return f({n: q.reshape(s) for n, q, s in zip(names, parts, shapes)})

    return hessian(f_flat)(flat0)


def flatten(p: Params) -> Tensor:
    """Concatenate a tensor or a dict of tensors into one vector (dict order)."""
    return _flat(p)
