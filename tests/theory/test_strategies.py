"""Tests of the strategies themselves: argument validation, reach, and shrinking."""

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from tvgrad.theory.cases import Case
from tvgrad.theory.nets import NetSpec
from tvgrad.theory.strategies import cases, edge_cases, log_uniform, net_specs


def _draw(strategy):
    return find(strategy, lambda _: True, settings=settings(database=None))


@pytest.mark.parametrize("kwargs", [dict(min_depth=0), dict(max_width=0), dict(min_depth=3, max_depth=2),
                                    dict(activations=()), dict(activations=("nope",)),
                                    dict(width_dist="normal")])
def test_net_specs_validates_arguments(kwargs):
    with pytest.raises(InvalidArgument):
        _draw(net_specs(**kwargs))


def test_options_are_keyword_only():
    """Options by name only (as Hypothesis' own strategies): ``net_specs(2)`` or
    ``cases(("relu",))`` would silently bind to whatever option comes first."""
    from tvgrad.theory.strategies import sized
    for strategy, arg in ((net_specs, 2), (cases, ("relu",))):
        with pytest.raises(TypeError):
            _draw(strategy(arg))
    with pytest.raises(TypeError):
        edge_cases(2)
    with pytest.raises(TypeError):
        sized(2, 4)


def test_unknown_sizes_are_refused_and_the_known_ones_restore():
    from tvgrad.theory import strategies
    with pytest.raises(InvalidArgument, match="unknown sizes 'huge': None or 'deep'"):
        with strategies.sizes("huge"):
            pass
    before = strategies._SIZES
    with strategies.sizes("deep"):
        assert strategies.sized(max_depth=2, max_width=4) == strategies.DEEP_SIZES
    with strategies.sizes("".join(["de", "ep"])):  # a name built at run time: equal, not identical
        assert strategies.sized(max_depth=2, max_width=4) == strategies.DEEP_SIZES
    with strategies.sizes(None):
        assert strategies.sized(max_depth=2, max_width=4) == {
            "max_depth": 2, "max_width": 4, "width_dist": "uniform"}
    assert strategies._SIZES is before


@pytest.mark.parametrize("kwargs", [dict(losses=("hinge",)), dict(max_tasks=0), dict(max_n=0),
                                    dict(max_epochs=5, max_steps=2)])
def test_cases_validates_arguments(kwargs):
    with pytest.raises(InvalidArgument):
        _draw(cases(**kwargs))


def test_log_uniform_validates():
    with pytest.raises(InvalidArgument):
        _draw(log_uniform(0.0, 1.0))


def test_default_sizes_stay_within_their_documented_ranges(assert_draws_within):
    """net_specs() by default: depth 1–4, widths 1–32, in_dim 1–8, out_dim 1–6 — reached at
    both ends, never beyond (a larger default would silently slow every campaign)."""
    assert_draws_within(
        net_specs(),
        lambda n: n.depth > 4 or max(n.widths) > 32 or n.in_dim > 8 or n.out_dim > 6,
        (lambda n: n.depth == 4, lambda n: n.in_dim == 8, lambda n: n.out_dim == 6,
         lambda n: n.depth == 1 and n.widths == (1,), lambda n: n.in_dim == 1,
         lambda n: n.out_dim == 1), edge_examples=2000)


@pytest.mark.parametrize("dist, low", [("uniform", False), ("log", True)])
def test_the_width_distribution_is_the_one_asked_for(dist, low):
    """Widths 1–32: uniform puts 4/32 = 12.5 % of them at ≤ 4, log-uniform (every octave
    equally likely) log₂5/log₂33 ≈ 46 %. Hypothesis favours small integers somewhat (500
    derandomized draws: 28 % and 56 %), so 40 % separates the two with room on both sides."""
    from hypothesis import given, settings
    widths = []

    @settings(max_examples=500, derandomize=True, database=None, deadline=None)
    @given(net_specs(max_depth=1, max_width=32, width_dist=dist))
    def draw(spec):
        widths.append(spec.widths[0])
    draw()
    share = sum(w <= 4 for w in widths) / len(widths)
    assert len(widths) >= 400 and (share > 0.4) is low, (dist, share)


def test_case_defaults_stay_within_their_documented_ranges(assert_draws_within):
    """cases() by default: seeds 0–2¹⁶, n 1–64, η log-uniform on [1e-4, 1] — reached near both
    ends, never beyond. The seed range is what makes two random examples of one architecture
    different networks and data: drawn from a few dozen seeds, a campaign of 200 examples would
    re-check the same initialisations again and again, and nothing else would notice."""
    assert_draws_within(
        cases(),
        lambda c: not (0 <= c.seed <= 2 ** 16 and 1 <= c.n <= 64 and 1e-4 <= c.eta <= 1.0),
        (lambda c: c.seed > 2 ** 15, lambda c: c.n == 64, lambda c: c.eta > 0.5,
         lambda c: c.eta < 2e-4))


def test_case_defaults_draw_one_task_one_epoch_full_batch_and_the_default_networks(
        assert_draws_within):
    """cases() by default: one task, one epoch, full batch (k = 1, the exact regime), depth 1–4
    and widths 1–32 — the depth and width reached, nothing beyond. No claim relies on these
    defaults (each passes its own), so only this test says what a user's bare ``cases()``
    draws. 2 000 draws: n = 65 under a default one larger is reached in about one in a
    hundred, so 300 would miss it."""
    assert_draws_within(
        cases(),
        lambda c: (c.tasks, c.epochs, c.batch_size) != (1, 1, None) or c.spec.depth > 4
        or max(c.spec.widths) > 32 or c.n > 64,
        (lambda c: c.spec.depth == 4, lambda c: max(c.spec.widths) == 32),
        beyond_examples=2000)


def test_cross_entropy_cases_have_two_classes_or_more(assert_draws_within):
    """Cross-entropy needs at least two classes: its cases draw out_dim 2–6, binary reached;
    MSE cases reach a single output."""
    assert_draws_within(cases(losses=("cross_entropy",)), lambda c: c.spec.out_dim < 2,
                        (lambda c: c.spec.out_dim == 2,))
    assert_draws_within(cases(losses=("mse",)), lambda c: c.spec.out_dim < 1,
                        (lambda c: c.spec.out_dim == 1,))


def test_minibatch_cases_take_1_to_24_sgd_steps_by_default(assert_draws_within):
    """cases(minibatch=True) by default: ⌈n / bs⌉·k SGD steps in 1–24 — one step (a single
    batch) and 24 reached, never more; the SGD-epoch claim leaves ``max_steps`` at 24."""
    from math import ceil
    steps = (lambda c: ceil(c.n / c.batch_size) * c.epochs)
    assert_draws_within(
        cases(minibatch=True), lambda c: not 1 <= steps(c) <= 24,
        (lambda c: steps(c) == 1, lambda c: steps(c) == 24), beyond_examples=2000)


def test_reaches_deep_and_wide_networks():
    s = find(net_specs(), lambda n: n.depth == 4 and max(n.widths) == 32,
             settings=settings(max_examples=2000, database=None))
    assert s.depth == 4


def test_reaches_many_tasks_epochs_and_uneven_batches():
    c = find(cases(min_tasks=2, max_tasks=5, max_epochs=6, minibatch=True),
             lambda c: c.tasks == 5 and c.epochs >= 3 and c.n % c.batch_size != 0,
             settings=settings(max_examples=3000, database=None))
    assert c.tasks == 5


def test_shrinks_to_a_minimal_network():
    c = find(cases(), lambda c: True, settings=settings(database=None))
    assert c.spec == NetSpec(in_dim=1, widths=(1,), out_dim=1, activation="tanh", bias=False)
    assert (c.n, c.loss, c.tasks, c.epochs) == (1, "mse", 1, 1)


@given(cases(max_epochs=3, minibatch=True, max_steps=12))
def test_minibatch_cases_respect_step_budget(c):
    from math import ceil
    assert ceil(c.n / c.batch_size) * c.epochs <= 12


def test_the_batch_size_is_drawn_among_those_the_drawn_epochs_allow(monkeypatch):
    """With the epochs fixed and min_steps ≤ epochs, every batch size of at least
    ⌈n / ⌊max_steps / k⌋⌉ fits the step budget, so cases() draws only such sizes and
    nearest_schedule never has to move the pair: a smaller lower end would pile the draws that
    it moves onto the boundary batch size (or onto fewer epochs, where they may change)."""
    from tvgrad.theory import strategies

    moved, real = [], strategies.nearest_schedule

    def spy(n, k, bs, **kw):
        out = real(n, k, bs, **kw)
        if out != (k, bs):
            moved.append((n, k, bs, out))
        return out
    monkeypatch.setattr(strategies, "nearest_schedule", spy)
    seen = []

    @settings(max_examples=100, derandomize=True, database=None)
    @given(cases(minibatch=True, min_epochs=3, max_epochs=3, min_steps=3, max_steps=12))
    def draw(c):
        seen.append(c.n)
    draw()
    assert max(seen) > 8 and not moved, (max(seen), moved[:5])


@given(st.data())
def test_cases_are_valid_and_json_roundtrip(data):
    c = data.draw(cases(min_tasks=1, max_tasks=3))
    assert Case.from_json(c.to_json()) == c
    if c.at_minimum:
        assert c.loss == "mse"


def test_edge_cases_cover_the_pinned_corners():
    ec = edge_cases()
    # by default one task and k = 2, full batch, tanh (where the case does not set its own k)
    assert {c.tasks for c in ec} == {1} and 2 in {c.epochs for c in ec}
    assert {c.batch_size for c in ec} == {None} and ec[0].spec.activation == "tanh"
    assert any(c.spec.widths == (1,) and c.spec.depth == 1 for c in ec)
    assert any(c.epochs == 1 for c in ec) and any(c.n == 1 for c in ec)
    assert any(c.at_minimum for c in ec)
    assert min(c.eta for c in ec) <= 1e-8 and max(c.eta for c in ec) >= 10


@given(cases(min_epochs=2, max_epochs=6))
def test_min_epochs_is_respected(c):
    assert 2 <= c.epochs <= 6


@given(cases(max_epochs=3, minibatch=True, max_n=48, min_steps=2))
def test_min_steps_is_respected(c):
    from math import ceil
    assert ceil(c.n / c.batch_size) * c.epochs >= 2


@pytest.mark.parametrize("max_n, max_steps", [(4, 6), (40, 12)])
def test_steps_stay_within_both_bounds_when_min_steps_needs_several_batches(max_n, max_steps):
    """min_steps 5 cannot always come from raising the epochs alone: 4 batches of one epoch
    need 2 epochs, 8 steps > 6, so the batch size must move too. A derandomized search of 500
    draws finds no step count outside [5, max_steps] (n ≤ 4 makes that corner common)."""
    from math import ceil

    from hypothesis.errors import NoSuchExample
    with pytest.raises(NoSuchExample):
        find(cases(max_epochs=6, minibatch=True, max_n=max_n, min_steps=5, max_steps=max_steps),
             lambda c: not (5 <= ceil(c.n / c.batch_size) * c.epochs <= max_steps
                            and 1 <= c.epochs <= 6),
             settings=settings(max_examples=500, database=None, derandomize=True, deadline=None))


def test_one_sample_tasks_make_min_steps_above_max_epochs_impossible():
    with pytest.raises(InvalidArgument, match="min_steps=3 > max_epochs=2: a one-sample task"):
        _draw(cases(minibatch=True, max_epochs=2, min_steps=3, max_n=5))


@pytest.mark.parametrize("n, k, bs, epochs, steps, expected", [
    (10, 2, 5, (1, 3), (2, 24), (2, 5)),     # already within range: unchanged
    (10, 1, 10, (1, 3), (2, 24), (2, 10)),   # one batch, one epoch: a second epoch
    (10, 1, 5, (1, 6), (3, 24), (2, 5)),     # 2 batches: the fewest epochs reaching 3 steps
    (10, 1, 5, (1, 6), (7, 24), (4, 5)),     # 2 batches: ⌈7 / 2⌉ = 4 epochs
    (8, 1, 2, (1, 3), (5, 6), (2, 3)),       # 4 batches give 4, 8, 12: the batch size moves
    (6, 3, 1, (1, 3), (1, 12), (2, 1)),      # 18 steps > 12: fewer epochs
])
def test_nearest_schedule_moves_the_drawn_pair_as_little_as_needed(n, k, bs, epochs, steps, expected):
    from tvgrad.theory.strategies import nearest_schedule
    assert nearest_schedule(n, k, bs, epochs=epochs, steps=steps) == expected


def test_nearest_schedule_refuses_impossible_bounds():
    from tvgrad.theory.strategies import nearest_schedule
    with pytest.raises(InvalidArgument, match=r"no epochs in \[1, 2\] and batch size in \[1, 1\] give 3\.\.4 steps"):
        nearest_schedule(1, 1, 1, epochs=(1, 2), steps=(3, 4))


def test_no_draw_has_fewer_steps_than_min_steps():
    """A search for a minibatch case with a single SGD step (one batch, one epoch — the
    fix-up's edge) finds none in 500 derandomized draws."""
    from math import ceil

    import pytest
    from hypothesis import find, settings
    from hypothesis.errors import NoSuchExample
    with pytest.raises(NoSuchExample):
        find(cases(max_epochs=3, minibatch=True, max_n=48, min_steps=2),
             lambda c: ceil(c.n / c.batch_size) * c.epochs < 2,
             settings=settings(max_examples=500, database=None, derandomize=True, deadline=None))


def test_the_minimum_draw_is_ten_values_and_only_its_top_one_starts_at_a_minimum():
    """The rule itself, not a statistic of Hypothesis's generation: :data:`MINIMUM_DRAW` takes
    exactly the values 0–9 (smallest 0, largest 9, nothing outside), and
    :func:`starts_at_minimum` is true for exactly one of them (9), with ``allow_minimum`` and
    an MSE loss only — one value in ten, so the zero-gradient edge is reached without crowding
    out the general case. (This replaces a test of the at-minimum share, whose band had to sit
    around Hypothesis's seed-to-seed spread and which a one-value-wider draw, 0–10, passed.)"""
    from hypothesis.errors import NoSuchExample

    from tvgrad.theory.losses import LOSSES
    from tvgrad.theory.strategies import MINIMUM_DRAW, starts_at_minimum

    every = settings(database=None, max_examples=1000)
    assert find(MINIMUM_DRAW, lambda v: True, settings=every) == 0
    assert find(MINIMUM_DRAW, lambda v: v >= 9, settings=every) == 9
    with pytest.raises(NoSuchExample):
        find(MINIMUM_DRAW, lambda v: not 0 <= v <= 9, settings=every)
    for allow in (True, False):
        for loss in LOSSES:
            starting = [d for d in range(10) if starts_at_minimum(allow, loss, d)]
            assert starting == ([9] if allow and loss == "mse" else []), (allow, loss, starting)


def test_cases_start_at_a_minimum_exactly_when_the_rule_says():
    """cases() applies that rule: an MSE case at a minimum is reachable, and none is drawn with
    ``allow_minimum`` off or with cross-entropy alone."""
    from hypothesis.errors import NoSuchExample

    quick = settings(database=None, max_examples=300)
    assert find(cases(losses=("mse",)), lambda c: c.at_minimum, settings=quick).loss == "mse"
    for kwargs in (dict(allow_minimum=False), dict(losses=("cross_entropy",))):
        with pytest.raises(NoSuchExample):
            find(cases(**kwargs), lambda c: c.at_minimum, settings=quick)


def test_the_full_batch_claims_draw_only_full_batch_cases():
    """Every claim but the SGD-epoch one is about full-batch gradient descent, and its strategy
    draws from ``cases()`` with the default ``minibatch=False``: no batch size, no reshuffling
    (a default turned to True hands them batch sizes their checks ignore, and clips the
    k-epoch claims' epochs to a step budget). The SGD claim does draw batch sizes."""
    from hypothesis.errors import NoSuchExample

    from tvgrad.theory.claims import CLAIMS
    from tvgrad.theory.claims.second_order import SGD_EPOCH_SECOND_ORDER

    def minibatch(c):
        return isinstance(c, Case) and (c.batch_size is not None or c.reshuffle)

    for claim in CLAIMS.values():
        if claim is SGD_EPOCH_SECOND_ORDER:
            find(claim.strategy(), minibatch, settings=settings(database=None))
            continue
        with pytest.raises(NoSuchExample):
            find(claim.strategy(), minibatch, settings=settings(max_examples=60, database=None))


def test_the_full_batch_claims_pin_only_full_batch_examples():
    """The pinned examples follow the same rule as the draws: ``edge_cases()`` is full batch
    unless asked (``minibatch=True``: batch size 3 where n allows), so every claim but the SGD
    one pins full-batch cases only, and the SGD one pins minibatch ones."""
    from tvgrad.theory.claims import CLAIMS
    from tvgrad.theory.claims.second_order import SGD_EPOCH_SECOND_ORDER

    assert all(c.batch_size is None and not c.reshuffle for c in edge_cases())
    assert {c.batch_size for c in edge_cases(minibatch=True)} == {3, None}  # None: n = 1
    for claim in CLAIMS.values():
        mini = [isinstance(c, Case) and c.batch_size is not None for c in claim.examples]
        assert any(mini) if claim is SGD_EPOCH_SECOND_ORDER else not any(mini), claim.id
