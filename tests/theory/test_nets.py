"""NetSpec's derived sizes against the module it builds."""

import pytest

from tvgrad.theory.nets import FFN, NetSpec


@pytest.mark.parametrize("spec", [
    NetSpec(1, (1,), 1), NetSpec(3, (4, 5), 2), NetSpec(2, (3, 1, 6), 4, bias=False),
    NetSpec(5, (2, 7, 3, 4), 3, "gelu"),
])
def test_num_params_and_dims_match_the_module(spec):
    module = FFN(spec)
    assert spec.num_params == sum(p.numel() for p in module.parameters())
    assert spec.dims == (spec.in_dim, *spec.widths, spec.out_dim)
    assert spec.depth == len(spec.widths) == len(module.layers) - 1


def test_init_module_draws_lecun_normal_weights_and_small_biases():
    """θ₀ as documented: per layer, in order, weights N(0, 1/fan_in) then biases N(0, 0.1²),
    from one generator seeded with the case's seed, drawn in float64 (the same θ₀ in float32)."""
    import math

    import torch

    from tvgrad.theory.nets import init_module
    spec = NetSpec(3, (4, 2), 2, "tanh")
    net = init_module(spec, seed=5)
    gen = torch.Generator().manual_seed(5)
    for layer in net.layers:
        w = torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64)
        assert torch.equal(layer.weight, w * (1.0 / math.sqrt(layer.weight.shape[1])))
        b = torch.randn(layer.bias.shape, generator=gen, dtype=torch.float64)
        assert torch.equal(layer.bias, 0.1 * b)
    f32 = init_module(spec, seed=5, dtype=torch.float32)
    assert all(torch.equal(a, b.double().float()) and a.dtype == torch.float32
               for a, b in zip(f32.parameters(), net.parameters()))
