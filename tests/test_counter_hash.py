"""Counter-hash uniforms: their bits, range, distribution and offsets."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as sps

from jaxcxai.counter_hash import hash_bits, hash_uniform


def test_hash_uniform_is_top_24_bits_and_uniform():
    key = jax.random.key(7)
    u = np.asarray(hash_uniform(key, (400, 250)), np.float64)
    bits = np.asarray(hash_bits(key, (400, 250)), np.uint64)
    np.testing.assert_array_equal(u, (bits >> 8) / 2.0**24)
    assert u.min() >= 0.0 and u.max() < 1.0
    # Shifting by 9 instead of 8 (values in [0, 0.5)) fails both checks.
    assert sps.kstest(u.ravel(), "uniform").pvalue > 1e-3
    # Neighbouring elements and rows: no linear dependence.
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.01


def test_hash_uniform_offset_and_keys():
    key = jax.random.key(8)
    whole = np.asarray(hash_uniform(key, (6, 5)))
    np.testing.assert_array_equal(
        np.asarray(hash_uniform(key, (2, 5), offset=15)), whole[3:5]
    )
    other = np.asarray(hash_uniform(jax.random.key(9), (6, 5)))
    assert not np.array_equal(whole, other)
    for dtype, bits in ((np.float16, 11), (jnp.bfloat16, 8)):
        # Narrow floats take the top `bits` bits: exact, never rounded up to 1.
        u = hash_uniform(key, (4096,), dtype)
        assert u.dtype == dtype
        u = np.asarray(u, np.float64)
        assert u.max() < 1.0 and np.all(u * 2**bits == np.round(u * 2**bits))
