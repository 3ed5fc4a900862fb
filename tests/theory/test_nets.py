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
