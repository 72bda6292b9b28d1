"""Retrieval stability on planted-direction activations (spec 8.2 items 1, 8):
consistency rises with the sample count, the 1D CAV is more consistent than
the 3D one, and separation is measured on held-out rows."""

import jax
import numpy as np

from jaxcxai.concepts.stability import retrieval as ret


def _planted(seed, n, concept, h=4, w=4, c=16, mu=1.0):
    """a = m * mu * u + xi: m a random mask (concept samples only), u a fixed
    unit direction in channel space, xi standard normal."""
    rng = np.random.default_rng(seed)
    u = np.random.default_rng(99).normal(size=c)
    u /= np.linalg.norm(u)
    m = (rng.random((n, h, w)) < 0.5) if concept else np.zeros((n, h, w))
    return (m[..., None] * mu * u + rng.normal(size=(n, h, w, c))).astype(np.float32)


def test_sweep_planted_direction():
    sets = [_planted(s, 160, s % 2 == 0) for s in range(4)]  # train p/n, held p/n
    res = ret.sweep(*sets, jax.random.key(1), samples=(5, 60), dims=("1d", "3d"),
                    runs=6)  # fmt: skip
    k = {
        d: {n: float(r.consistency) for n, r in cells.items()}
        for d, cells in res.items()
    }
    assert k["1d"][60] > k["1d"][5] + 0.2 and k["3d"][60] > k["3d"][5] + 0.2
    # At equal samples the C-dim CAV is more consistent than the CHW-dim one.
    assert k["1d"][5] > k["3d"][5] + 0.1 and k["1d"][60] > k["3d"][60] + 0.1
    assert k["1d"][60] > 0.8
    # Separation is measured on held-out rows: each 3D CAV of 5 + 5 samples
    # (D = 256 > 10 rows) separates its own training rows perfectly, new
    # rows far less well.
    small = res["3d"][5]
    flat_p, flat_n = sets[0].reshape(160, -1), sets[1].reshape(160, -1)
    w, b = np.asarray(small.runs.weight), np.asarray(small.runs.bias)
    own = [np.mean(np.r_[flat_p[np.asarray(pi)] @ w[r] + b[r] > 0,
                         flat_n[np.asarray(ni)] @ w[r] + b[r] <= 0])
           for r, (pi, ni) in enumerate(zip(small.runs.pos_index,
                                            small.runs.neg_index))]  # fmt: skip
    assert min(own) == 1.0 and float(small.separation) < 0.8
    assert 0.6 < float(res["1d"][60].separation) <= 1.0
    rows = ret.sweep_table(res)
    assert len(rows) == 4 and {r["dim"] for r in rows} == {"1d", "3d"}
    row = next(r for r in rows if r["dim"] == "1d" and r["samples"] == 60)
    np.testing.assert_allclose(row["stability"], row["separation"] * row["consistency"],
                               rtol=1e-6)  # fmt: skip
