"""Hash-based dropout masks: keep rate, independence, reproducibility, and
the Dropout module against flax's semantics."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcxai.uncertainty import masks


def test_fmix32_matches_a_python_reference():
    def ref(h):
        m = 0xFFFFFFFF
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & m
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & m
        return h ^ (h >> 16)

    xs = np.array([0, 1, 2, 12345, 0xDEADBEEF, 0xFFFFFFFF], np.uint32)
    got = np.asarray(masks.fmix32(jnp.asarray(xs)))
    np.testing.assert_array_equal(got, [ref(int(x)) for x in xs])


def test_keep_rate_within_binomial_bounds():
    n = 200_000
    for p in (0.7, 0.1, 0.5):
        m = np.asarray(masks.hash_bernoulli(jax.random.key(3), p, (n,)))
        sd = np.sqrt(p * (1 - p) / n)
        assert abs(m.mean() - p) < 5 * sd, (p, m.mean())
    assert np.asarray(masks.hash_bernoulli(jax.random.key(0), 1.0, (5,))).all()
    assert not np.asarray(masks.hash_bernoulli(jax.random.key(0), 0.0, (5,))).any()
    with pytest.raises(ValueError, match="p must be"):
        masks.hash_bernoulli(jax.random.key(0), 1.5, (3,))


def test_bits_are_uniform_and_uncorrelated():
    bits = np.asarray(masks.hash_bits(jax.random.key(11), (256, 512)), np.float64)
    # Top 4 bits uniform over 16 bins (chi-square, p > 1e-4).
    counts = np.bincount(
        (bits.astype(np.uint64) >> 28).astype(int).ravel(), minlength=16
    )
    assert stats.chisquare(counts).pvalue > 1e-4
    u = bits / 2**32 - 0.5
    n = u.size
    lim = 5 / np.sqrt(n)  # 5 sigma of a zero correlation
    assert abs(np.corrcoef(u.ravel()[:-1], u.ravel()[1:])[0, 1]) < lim  # neighbours
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < lim
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < lim  # rows
    other = np.asarray(masks.hash_bits(jax.random.key(12), (256, 512)), np.float64)
    assert abs(np.corrcoef(u.ravel(), (other / 2**32 - 0.5).ravel())[0, 1]) < lim


def test_masks_reproducible_and_key_dependent():
    k = jax.random.key(5)
    a = masks.hash_bernoulli(k, 0.7, (64, 128))
    np.testing.assert_array_equal(a, masks.hash_bernoulli(k, 0.7, (64, 128)))
    b = masks.hash_bernoulli(jax.random.fold_in(k, 1), 0.7, (64, 128))
    assert 0.3 < np.mean(np.asarray(a) != np.asarray(b)) < 0.5  # 2 p (1 - p) = 0.42
    raw = masks.hash_bits(jax.random.key_data(k), (4,))  # raw uint32 keys too
    np.testing.assert_array_equal(raw, masks.hash_bits(k, (4,)))
    # Split keys under vmap give each pass its own mask.
    v = jax.vmap(lambda kk: masks.hash_bernoulli(kk, 0.7, (1000,)))(
        jax.random.split(k, 3)
    )
    assert not np.array_equal(v[0], v[1])


@pytest.mark.parametrize("rng", ["hash", "threefry"])
def test_dropout_module_semantics(rng):
    x = jnp.arange(1.0, 1.0 + 4 * 6 * 6 * 8).reshape(4, 6, 6, 8)
    layer = masks.Dropout(0.3, broadcast_dims=(1, 2), rng=rng)
    y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    kept = np.asarray(y) != 0
    # One mask value per (sample, channel); kept units scaled by 1 / 0.7.
    assert (kept == kept[:, :1, :1, :]).all()
    np.testing.assert_allclose(
        np.asarray(y)[kept], np.asarray(x)[kept] / 0.7, rtol=1e-6
    )
    assert np.asarray(layer.apply({}, x, deterministic=True)).tolist() == x.tolist()
    if rng == "threefry":  # flax's own draw for the same key
        want = nn.Dropout(0.3, broadcast_dims=(1, 2)).apply(
            {}, x, deterministic=False, rngs={"dropout": jax.random.key(1)}
        )
        np.testing.assert_array_equal(y, want)
    with pytest.raises(ValueError, match="rng must be"):
        masks.Dropout(0.3, rng="mt19937").apply(
            {}, x, deterministic=False, rngs={"dropout": jax.random.key(1)}
        )


def test_hash_bits_offset_draws_a_block_of_rows_of_the_bigger_array():
    k = jax.random.key(3)
    whole = np.asarray(masks.hash_bits(k, (10, 4)))
    block = np.asarray(masks.hash_bits(k, (4, 4), offset=12))  # rows 3..6
    np.testing.assert_array_equal(block, whole[3:7])
    assert not np.array_equal(np.asarray(masks.hash_bits(k, (4, 4))), whole[3:7])
