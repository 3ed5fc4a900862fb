"""Every claim's pinned examples, as data: a snapshot in ``pinned_examples.json``.

The pinned examples are the cases every campaign checks whatever Hypothesis draws (the edge
cases of ``strategies.edge_cases``, the deep-found and sharp cases); a changed field — an η,
an epoch count, a width — can turn a hard case into an easy one while every claim still holds,
so no verdict would notice. If a change is intended, rewrite the snapshot with
``python tests/theory/test_pinned_examples.py`` and say why in the commit.
"""

import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("pinned_examples.json")


def _current() -> dict:
    from tvgrad.theory.claims import CLAIMS
    return {cid: [json.loads(c.to_json()) for c in claim.examples]
            for cid, claim in CLAIMS.items()}


def test_pinned_examples_match_the_snapshot():
    want = json.loads(SNAPSHOT.read_text())
    got = _current()
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    for cid in want:
        assert len(got[cid]) == len(want[cid]), (cid, len(got[cid]), len(want[cid]))
        for i, (g, w) in enumerate(zip(got[cid], want[cid])):
            diff = {k: (g.get(k), w.get(k)) for k in set(g) | set(w) if g.get(k) != w.get(k)}
            assert not diff, f"{cid} example {i}: (now, snapshot) {diff}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    SNAPSHOT.write_text(json.dumps(_current(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
