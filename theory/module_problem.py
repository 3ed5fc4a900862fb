"""A *problem*: what every numeric claim needs, for any PyTorch model.

A claim never sees a network class. It sees a problem: θ₀ as one flat vector, the loss of any
subset of a task's samples as a function of flat θ, the data of each task, a twin of the same
problem in another dtype (the float32 twin estimates rounding errors), an optional
activation-pattern map for models with kinks, and a fresh ``nn.Module`` at θ₀ for the claims
that finetune it with ``torch.optim.SGD``. :class:`ModuleProblem` wraps any ``nn.Module``; the
suite's own feed-forward cases (:class:`tvgrad.theory.cases.FFNProblem`) are one subclass.

Conventions, stated once:

* **Parameters** are the module's parameters with ``requires_grad=True``, in
  ``named_parameters()`` order; frozen parameters and all buffers are held fixed at their
  values. θ enters the model by putting its views in the module's parameter slots for the
  duration of one forward (:class:`_Slots`: what :func:`torch.func.functional_call` does,
  without its per-call bookkeeping, which cost 1.2–1.7× a plain autograd gradient on small
  networks); a model with tied parameters goes through ``functional_call`` itself.
* **Mode.** The model is evaluated in ``eval()`` mode: dropout is off and BatchNorm uses its
  running statistics, held fixed, so the loss is a deterministic function of θ alone. (In train
  mode BatchNorm would normalise with the statistics of whichever batch is passed and update
  its buffers on every call: the loss would then not be a function of θ.) The model you pass is
  deep-copied and never modified.
* **Attention.** Every forward runs under the math backend of
  ``scaled_dot_product_attention`` (:func:`torch.nn.attention.sdpa_kernel`): the fused CPU/CUDA
  kernels have no double backward, which Hessian-vector products need.
* **Kinks** (ReLU, LeakyReLU, ELU, hardtanh/ReLU6/clamp, hardswish/hardsigmoid, abs,
  maximum/minimum, max pooling, and any tensor comparison ``>``/``<``/…) are *tracked*: a
  ``TorchFunctionMode`` records, on every forward, the sign pattern of their inputs (the
  argmax indices of a max pooling, the comparison's result), so the expansion claims exclude
  the η where the pattern changes, as they do for ReLU feed-forward networks. Operations that
  select by value without a pattern recorded here (max/min reductions, sort, top-k, rounding,
  fractional max pooling, RReLU) are *refused* at construction with :class:`NonSmoothModel`,
  naming the operation.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from ..errors import InvalidInput
from .derivatives import SumOfParts

__all__ = ["ModuleProblem", "ParamLayout", "TaskData", "NonSmoothModel", "math_attention"]

Inputs = tuple[Tensor, ...]
LossFn = Callable[[Any, Tensor], Tensor]
DTYPES = (torch.float32, torch.float64)


class NonSmoothModel(InvalidInput):
    """The model uses an operation whose kinks the suite cannot track (named in the message)."""


def math_attention() -> contextlib.AbstractContextManager:
    """Context in which ``scaled_dot_product_attention`` uses its math backend only.

    The fused kernels (flash, memory-efficient, cuDNN, the CPU flash kernel) have no double
    backward (``derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is
    not implemented``); the math backend is plain differentiable tensor algebra.
    """
    return sdpa_kernel([SDPBackend.MATH])


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a parameter dict, to move between dicts and flat vectors."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, params: dict[str, Tensor]) -> "ParamLayout":
        """The layout of ``params`` (its order is the order of the flat vector)."""
        return cls(tuple(params), tuple(tuple(p.shape) for p in params.values()))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of entries of each tensor."""
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def numel(self) -> int:
        """Total number of parameters p."""
        return sum(self.sizes)

    def flatten(self, params: dict[str, Tensor]) -> Tensor:
        """Concatenate the tensors of ``params`` (in layout order) into one vector."""
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        """Views of ``vec`` (…, p) as the named tensors (leading batch dims are kept)."""
        if vec.shape[-1] != self.numel:
            raise InvalidInput(f"parameter vector has {vec.shape[-1]} entries, the model "
                               f"has {self.numel} parameters (shapes {self.shapes})")
        # one split (its backward is a single concatenation), not a slice per tensor (each of
        # whose backwards would materialise a zero vector of all p entries)
        parts = torch.split(vec, self.sizes, dim=-1)
        lead = vec.shape[:-1]
        return {name: part.reshape((*lead, *shape))
                for name, part, shape in zip(self.names, parts, self.shapes)}


@dataclass
class TaskData:
    """The samples of one task: model inputs (a tuple, passed positionally), targets, and the
    sizes of the batches they were given in (their order is the SGD order).
    """

    inputs: Inputs
    targets: Tensor
    batch_sizes: tuple[int, ...]

    @property
    def x(self) -> Tensor:
        """The single input tensor (feed-forward problems)."""
        if len(self.inputs) != 1:
            raise InvalidInput(f"this task has {len(self.inputs)} input tensors, not one")
        return self.inputs[0]

    @property
    def y(self) -> Tensor:
        """The targets."""
        return self.targets

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.targets.shape[0])

    def subset(self, index: Tensor | None) -> tuple[Inputs, Tensor]:
        """(inputs, targets) of the samples ``index`` (all of them for None)."""
        if index is None:
            return self.inputs, self.targets
        return tuple(x[index] for x in self.inputs), self.targets[index]

    def batches(self) -> list[Tensor]:
        """Index sets of the batches, in order."""
        out, i = [], 0
        for b in self.batch_sizes:
            out.append(torch.arange(i, i + b))
            i += b
        return out


class _Slots:
    """The parameter slots (``module._parameters`` dict, key) of θ's tensors, in layout order.

    ``with slots.holding(params): module(x)`` evaluates the module at ``params`` and restores
    its own parameters afterwards, even on an exception. Works under ``torch.func``
    transforms (the views may be batched or dual tensors), as ``functional_call`` does.
    """

    def __init__(self, module: nn.Module, names: Sequence[str]):
        self.names = tuple(names)
        self.slots = []
        for name in self.names:
            path, _, leaf = name.rpartition(".")
            self.slots.append((module.get_submodule(path)._parameters, leaf))

    @contextlib.contextmanager
    def holding(self, params: dict[str, Tensor]):
        """The module's slots hold ``params`` inside the block."""
        old = [d[k] for d, k in self.slots]
        try:
            for (d, k), name in zip(self.slots, self.names):
                d[k] = params[name]
            yield
        finally:
            for (d, k), v in zip(self.slots, old):
                d[k] = v


# -- kink tracking --------------------------------------------------------------------------
F = nn.functional


def _gt0(args, kwargs) -> list[Tensor]:
    return [args[0] > 0]


def _range(lo_name: str, hi_name: str, lo_default, hi_default, lo_pos: int = 1,
           hi_pos: int = 2):
    def rule(args, kwargs) -> list[Tensor]:
        x = args[0]
        lo = kwargs.get(lo_name, args[lo_pos] if len(args) > lo_pos else lo_default)
        hi = kwargs.get(hi_name, args[hi_pos] if len(args) > hi_pos else hi_default)
        return [x > lo if lo is not None else torch.zeros_like(x, dtype=torch.bool),
                x < hi if hi is not None else torch.zeros_like(x, dtype=torch.bool)]
    return rule


def _pairwise(args, kwargs) -> list[Tensor]:
    return [args[0] > args[1]]


def _pool_indices(with_indices: Callable):
    """Max pooling's pattern: which input each output takes (its argmax indices)."""
    def rule(args, kwargs) -> list[Tensor]:
        kw = {k: v for k, v in kwargs.items() if k != "return_indices"}
        return [with_indices(*args, **kw)[1]]
    return rule


_KINKS: dict[Callable, Callable] = {
    torch.relu: _gt0, torch.relu_: _gt0, F.relu: _gt0, F.relu_: _gt0, F.leaky_relu: _gt0,
    F.elu: _gt0, F.selu: _gt0, F.celu: _gt0, torch.abs: _gt0, Tensor.abs: _gt0,
    Tensor.relu: _gt0,
    F.hardtanh: _range("min_val", "max_val", -1.0, 1.0),
    F.relu6: _range("_lo", "_hi", 0.0, 6.0, 99, 99),
    F.hardsigmoid: _range("_lo", "_hi", -3.0, 3.0, 99, 99),
    F.hardswish: _range("_lo", "_hi", -3.0, 3.0, 99, 99),
    torch.clamp: _range("min", "max", None, None), torch.clip: _range("min", "max", None, None),
    Tensor.clamp: _range("min", "max", None, None), Tensor.clip: _range("min", "max", None, None),
    torch.maximum: _pairwise, torch.minimum: _pairwise,
    F.max_pool1d: _pool_indices(F.max_pool1d_with_indices),
    F.max_pool2d: _pool_indices(F.max_pool2d_with_indices),
    F.max_pool3d: _pool_indices(F.max_pool3d_with_indices),
    F.adaptive_max_pool1d: _pool_indices(F.adaptive_max_pool1d_with_indices),
    F.adaptive_max_pool2d: _pool_indices(F.adaptive_max_pool2d_with_indices),
    F.adaptive_max_pool3d: _pool_indices(F.adaptive_max_pool3d_with_indices),
}
# comparisons: their boolean result *is* the pattern
_COMPARISONS = {torch.gt, torch.lt, torch.ge, torch.le, Tensor.gt, Tensor.lt, Tensor.ge,
                Tensor.le, Tensor.__gt__, Tensor.__lt__, Tensor.__ge__, Tensor.__le__,
                torch.argmax, torch.argmin, Tensor.argmax, Tensor.argmin}
_REFUSED = {f: name for name, f in [
    ("fractional_max_pool2d", F.fractional_max_pool2d), ("torch.max", torch.max),
    ("torch.min", torch.min), ("Tensor.max", Tensor.max), ("Tensor.min", Tensor.min),
    ("torch.amax", torch.amax), ("torch.amin", torch.amin), ("torch.sort", torch.sort),
    ("torch.topk", torch.topk), ("torch.kthvalue", torch.kthvalue),
    ("torch.median", torch.median), ("torch.round", torch.round), ("torch.floor", torch.floor),
    ("torch.ceil", torch.ceil), ("rrelu", F.rrelu),
]}


class _KinkRecorder(TorchFunctionMode):
    """Records the pattern of every kink on a forward pass (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[Tensor] = []
        self.refused: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        rule = _KINKS.get(func)
        if rule is not None:
            self.masks.extend(m.detach() for m in rule(args, kwargs))
        elif func in _COMPARISONS and isinstance(result, Tensor):
            self.masks.append(result.detach())
        elif func in _REFUSED:
            self.refused.append(_REFUSED[func])
        return result


# -- the problem ----------------------------------------------------------------------------
def _as_inputs(x: Any) -> Inputs:
    if isinstance(x, Tensor):
        return (x,)
    if isinstance(x, (tuple, list)) and x and all(isinstance(t, Tensor) for t in x):
        return tuple(x)
    raise InvalidInput(f"batch inputs must be a tensor or a tuple of tensors, got {type(x).__name__}")


def _cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    return t.detach().to(dtype) if t.is_floating_point() else t.detach()


def _task_data(batches: Sequence, task: int, dtype: torch.dtype) -> TaskData:
    if not isinstance(batches, (list, tuple)) or len(batches) == 0:
        raise InvalidInput(f"task {task}: batches must be a non-empty list of (inputs, targets), "
                           f"got {batches!r:.80}")
    ins, tgts, sizes = [], [], []
    for b, batch in enumerate(batches):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise InvalidInput(f"task {task}, batch {b}: expected a pair (inputs, targets)")
        x, y = _as_inputs(batch[0]), batch[1]
        if not isinstance(y, Tensor):
            raise InvalidInput(f"task {task}, batch {b}: targets must be a tensor")
        n = int(y.shape[0]) if y.dim() else 0
        if n < 1 or any(t.shape[0] != n for t in x):
            raise InvalidInput(f"task {task}, batch {b}: inputs and targets must share a "
                               f"non-empty first (sample) dimension, got "
                               f"{[tuple(t.shape) for t in x]} and {tuple(y.shape)}")
        if ins and len(x) != len(ins[0]):
            raise InvalidInput(f"task {task}, batch {b}: {len(x)} input tensors, batch 0 has "
                               f"{len(ins[0])}")
        ins.append(x)
        tgts.append(y)
        sizes.append(n)
    inputs = tuple(_cast(torch.cat([x[i] for x in ins]), dtype) for i in range(len(ins[0])))
    return TaskData(inputs, _cast(torch.cat(tgts), dtype), tuple(sizes))


class ModuleProblem:
    """Any ``nn.Module`` with a loss and data, as the problem the claims check.

    Example:
        >>> import torch, tvgrad
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
        >>> problem = tvgrad.ModuleProblem(model, torch.nn.functional.cross_entropy, [(x, y)])
        >>> tvgrad.check("multi_epoch_second_order", problem, k=2).verdict
        'holds'

    Args:
        model: the network at θ₀ (deep-copied, cast to ``dtype``, put in eval mode).
        loss_fn: ``loss_fn(outputs, targets)``, the *mean* loss of a batch; or a list with one
            per task (e.g. each task with its own frozen head).
        batches: the data of a single task, as a list of ``(inputs, targets)`` pairs;
            ``inputs`` is a tensor or a tuple of tensors passed positionally to ``model``. The
            full-data loss is the loss of all samples at once; the batches (in order) are the
            steps of one SGD epoch.
        tasks: instead of ``batches``, one such list per task (multitask claims).
        dtype: ``torch.float64`` (the theory checks) or ``torch.float32``.
        micro_batch: evaluate losses and their derivatives over at most this many samples
            at a time (:class:`~tvgrad.theory.derivatives.SumOfParts` with weights n_b/n,
            exact for mean losses): memory of one micro-batch's graph, for large models.

    Raises:
        InvalidInput: empty or inconsistent data, an unsupported dtype, a model without
            trainable parameters, or a loss that is not a finite scalar at θ₀.
        NonSmoothModel: an operation whose kinks cannot be tracked (see the module docstring).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn | Sequence[LossFn],
                 batches: Sequence | None = None, *, tasks: Sequence[Sequence] | None = None,
                 dtype: torch.dtype = torch.float64, micro_batch: int | None = None):
        if not isinstance(model, nn.Module):
            raise InvalidInput(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if dtype not in DTYPES:
            raise InvalidInput(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
        if (batches is None) == (tasks is None):
            raise InvalidInput("pass exactly one of batches= (one task) or tasks= (a list of "
                               "batch lists, one per task)")
        raw = [batches] if tasks is None else list(tasks)
        if not raw:
            raise InvalidInput("tasks is empty: give at least one task's batches")
        losses = list(loss_fn) if isinstance(loss_fn, (list, tuple)) else [loss_fn] * len(raw)
        if len(losses) != len(raw) or not all(callable(f) for f in losses):
            raise InvalidInput(f"loss_fn must be a callable or a list of {len(raw)} callables "
                               f"(one per task), got {loss_fn!r:.80}")
        if micro_batch is not None and (not isinstance(micro_batch, int) or micro_batch < 1):
            raise InvalidInput(f"micro_batch must be an integer >= 1 or None, got {micro_batch!r}")
        self.micro_batch = micro_batch
        self.dtype = dtype
        self._raw_tasks = raw
        self.loss_fns = losses
        self.module = copy.deepcopy(model).to(dtype).eval()
        named = dict(self.module.named_parameters())
        trainable = {n: p.detach() for n, p in named.items() if p.requires_grad}
        if not trainable:
            raise InvalidInput("the model has no parameter with requires_grad=True")
        self.fixed = {n: p.detach() for n, p in named.items() if not p.requires_grad}
        self.fixed.update({n: b for n, b in self.module.named_buffers()})
        self.layout = ParamLayout.of(trainable)
        tied = len(list(self.module.named_parameters(remove_duplicate=False))) != len(named)
        self._slots = None if tied else _Slots(self.module, self.layout.names)
        self.theta0 = self.layout.flatten(trainable).clone()
        self.data = [_task_data(b, t, dtype) for t, b in enumerate(raw)]
        self.pattern = self._probe()

    # -- what the claims use ----------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        """Number of tasks T."""
        return len(self.data)

    @property
    def num_params(self) -> int:
        """Number of trainable parameters p."""
        return self.layout.numel

    def num_samples(self, task: int = 0) -> int:
        """Samples of task ``task``."""
        return self.data[task].n

    def _forward(self, params: dict[str, Tensor], inputs: Inputs) -> Tensor:
        with math_attention():
            if self._slots is None:  # tied parameters: functional_call ties them
                return functional_call(self.module, {**params, **self.fixed}, inputs)
            with self._slots.holding(params):
                return self.module(*inputs)

    def loss_fn(self, task: int = 0, index: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        """The mean loss of task ``task`` (optionally over the samples ``index``) as f(θ_flat).

        Returns:
            A function of the flat parameter vector; it works under ``torch.func`` transforms
            (``grad``, ``vjp``, ``vmap``).
        """
        if not 0 <= task < self.num_tasks:
            raise InvalidInput(f"task {task} out of range: the problem has {self.num_tasks}")
        mb = self.micro_batch
        n = self.data[task].n if index is None else int(index.numel())
        if mb is not None and n > mb:
            idx = torch.arange(n) if index is None else index
            return SumOfParts((len(chunk) / n, self._loss(task, chunk))
                              for chunk in torch.split(idx, mb))
        return self._loss(task, index)

    def _loss(self, task: int, index: Tensor | None) -> Callable[[Tensor], Tensor]:
        inputs, targets = self.data[task].subset(index)
        layout, loss = self.layout, self.loss_fns[task]

        def f(theta: Tensor) -> Tensor:
            return loss(self._forward(layout.unflatten(theta), inputs), targets)

        return f

    def sum_loss_fn(self) -> Callable[[Tensor], Tensor]:
        """Σ_t L_t(θ), the multitask loss."""
        fs = [self.loss_fn(t) for t in range(self.num_tasks)]
        if self.micro_batch is not None:
            return SumOfParts((1.0, f) for f in fs)
        return lambda theta: sum(f(theta) for f in fs)

    def batch_indices(self, task: int = 0) -> list[Tensor]:
        """Index sets of task ``task``'s batches, in the order given (one SGD epoch)."""
        return self.data[task].batches()

    def to(self, dtype: torch.dtype) -> "ModuleProblem":
        """The same problem in ``dtype`` (``self`` if it already is): the float32 twin."""
        if dtype == self.dtype:
            return self
        return type(self)(self.module, self.loss_fns, tasks=self._raw_tasks, dtype=dtype,
                          micro_batch=self.micro_batch)

    # -- the finetuning path of the exact claims ----------------------------------------------
    def module_at_theta0(self) -> nn.Module:
        """A fresh copy of the module at θ₀ (eval mode), to finetune with ``torch.optim``."""
        return copy.deepcopy(self.module)

    def trainable(self, module: nn.Module) -> list[nn.Parameter]:
        """The trainable parameters of a copy from :meth:`module_at_theta0`, in θ order."""
        named = dict(module.named_parameters())
        return [named[n] for n in self.layout.names]

    def module_loss(self, module: nn.Module, tasks: Sequence[int]) -> Tensor:
        """Σ_{t ∈ tasks} L_t evaluated by ``module`` itself (ordinary autograd), in one graph."""
        total = None
        with math_attention():
            for t in tasks:
                inputs, targets = self.data[t].subset(None)
                term = self.loss_fns[t](module(*inputs), targets)
                total = term if total is None else total + term
        return total

    def module_backward(self, module: nn.Module, tasks: Sequence[int]) -> Tensor:
        """``.grad`` of the module = ∇ Σ_{t ∈ tasks} L_t, as training computes it: one
        backward of the summed loss, or one backward per micro-batch (weights n_b/n)
        accumulating into ``.grad``. Returns the loss (detached).
        """
        if self.micro_batch is None:
            loss = self.module_loss(module, tasks)
            loss.backward()
            return loss.detach()
        total = 0.0
        with math_attention():
            for t in tasks:
                d = self.data[t]
                for chunk in torch.split(torch.arange(d.n), self.micro_batch):
                    inputs, targets = d.subset(chunk)
                    part = self.loss_fns[t](module(*inputs), targets) * (len(chunk) / d.n)
                    part.backward()
                    total = total + part.detach()
        return total

    # -- kinks ------------------------------------------------------------------------------
    def _record(self, theta: Tensor, task: int) -> _KinkRecorder:
        rec = _KinkRecorder()
        params = self.layout.unflatten(theta)
        with rec, torch.no_grad():
            d = self.data[task]
            for chunk in torch.split(torch.arange(d.n), self.micro_batch or d.n):
                self._forward(params, d.subset(chunk)[0])
        return rec

    def _probe(self) -> Callable[[Tensor], Tensor] | None:
        """Classify the model at construction: smooth (None), kinks tracked (a pattern map),
        or refused (:class:`NonSmoothModel`). Also checks that the loss is a finite scalar.
        """
        with torch.no_grad():
            value = self._loss(0, None if self.micro_batch is None
                               else torch.arange(min(self.micro_batch, self.data[0].n)))(self.theta0)
        if value.dim() != 0:
            raise InvalidInput(f"loss_fn must return a scalar (the mean loss of a batch), got "
                               f"shape {tuple(value.shape)}")
        if not torch.isfinite(value):
            raise InvalidInput(f"the loss at θ₀ is {value.item()}: not finite")
        rec = self._record(self.theta0, 0)
        if rec.refused:
            raise NonSmoothModel(
                f"the model uses {sorted(set(rec.refused))}: a selection by value whose kinks "
                f"the claims cannot track (the second-order expansion needs a model that is "
                f"smooth, or piecewise smooth with a recordable pattern). Replace it with a "
                f"smooth or a tracked operation (e.g. average pooling, ReLU).")
        if not rec.masks:
            return None
        return self._pattern

    def _pattern(self, theta: Tensor) -> Tensor:
        """The activation pattern at θ over every task's samples, as one integer vector."""
        masks = [m.reshape(-1).to(torch.int64) for t in range(self.num_tasks)
                 for m in self._record(theta, t).masks]
        return torch.cat(masks)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({type(self.module).__name__}, p={self.num_params}, "
                f"tasks={self.num_tasks}, samples={[d.n for d in self.data]}, "
                f"dtype={self.dtype}, kinks={'tracked' if self.pattern else 'none'})")

