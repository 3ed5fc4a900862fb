"""A task vector τ = θ_t − θ₀ as a small algebraic value (``+``, ``-``, scalar ``*``, ``sum``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor


@dataclass(frozen=True)
class TaskVector:
    """Named tensors with vector-space operations; keys must match exactly (strict)."""

    tensors: dict[str, Tensor]

    @classmethod
    def between(cls, finetuned: dict[str, Tensor], pretrained: dict[str, Tensor]) -> "TaskVector":
        """τ = finetuned − pretrained (keys must match exactly)."""
        _same_keys(finetuned, pretrained)
        return cls({k: finetuned[k].detach() - pretrained[k].detach() for k in pretrained})

    def _zip(self, other: "TaskVector"):
        _same_keys(self.tensors, other.tensors)
        return ((k, v, other.tensors[k]) for k, v in self.tensors.items())

    def __add__(self, other: "TaskVector") -> "TaskVector":
        return TaskVector({k: a + b for k, a, b in self._zip(other)})

    def __radd__(self, other):  # so that sum([...]) works
        return self if other == 0 else self.__add__(other)

    def __sub__(self, other: "TaskVector") -> "TaskVector":
        return TaskVector({k: a - b for k, a, b in self._zip(other)})

    def __neg__(self) -> "TaskVector":
        return TaskVector({k: -v for k, v in self.tensors.items()})

    def __mul__(self, alpha: float) -> "TaskVector":
        return TaskVector({k: alpha * v for k, v in self.tensors.items()})

    __rmul__ = __mul__

    def dot(self, other: "TaskVector") -> float:
        """Inner product ⟨τ, τ'⟩ over every tensor, in float64."""
        return float(sum((a.double() * b.double()).sum() for _, a, b in self._zip(other)))

    def norm(self) -> float:
        """Euclidean norm ‖τ‖ over every tensor, in float64."""
        return float(sum((v.double() ** 2).sum() for v in self.tensors.values())) ** 0.5

    def cos(self, other: "TaskVector") -> float:
        """Cosine similarity of two task vectors (NaN if either is zero)."""
        d = self.norm() * other.norm()
        return self.dot(other) / d if d > 0 else float("nan")

    def apply_to(self, pretrained: dict[str, Tensor], alpha: float = 1.0) -> dict[str, Tensor]:
        """θ₀ + α τ."""
        _same_keys(self.tensors, pretrained)
        return {k: pretrained[k] + alpha * self.tensors[k].to(pretrained[k]) for k in pretrained}

    def to(self, *args, **kw) -> "TaskVector":
        """The task vector with every tensor moved/cast (``Tensor.to`` arguments)."""
        return TaskVector({k: v.to(*args, **kw) for k, v in self.tensors.items()})

    def save(self, path: str | Path) -> None:
        """Write the tensors as one safetensors file (atomically)."""
        from .io import save_tensors
        save_tensors(self.tensors, path)

    @classmethod
    def load(cls, path: str | Path) -> "TaskVector":
        """Read a task vector written by :meth:`save`."""
        from .io import load_tensors
        return cls(load_tensors(path))


def _same_keys(a: dict, b: dict) -> None:
    if a.keys() != b.keys():
        missing, extra = sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys())
        raise KeyError(f"parameter names differ: missing {missing[:5]}, unexpected {extra[:5]}")
