"""Background pools: SynthAerial, procedural, and the Places-layout loader."""

import numpy as np
import pytest

from jaxcxai.concepts.background import pools
from jaxcxai.data import synthaerial
from jaxcxai.data.textures import BACKGROUNDS, FOREST


def test_synthaerial_pool_has_every_group_and_is_reproducible():
    pool = pools.synthaerial_pool(2, size=32, seed=1)
    assert pool.group_names == pools.SCENE_GROUPS == BACKGROUNDS
    assert pool.images.shape == (16, 32, 32, 3) and pool.images.dtype == np.uint8
    np.testing.assert_array_equal(pool.groups, np.repeat(np.arange(8), 2))
    again = pools.synthaerial_pool(2, size=32, seed=1)
    np.testing.assert_array_equal(pool.images, again.images)
    assert not np.array_equal(pool.images, pools.synthaerial_pool(2, size=32).images)
    assert set(pools.PAPER_GROUPS) == set(pools.SCENE_GROUPS)
    water = pool.select("water")
    assert water.images.shape[0] == 2
    assert all(s.startswith("synthaerial:harbor") for s in water.sources)


def test_synthaerial_backgrounds_match_the_generator_layout_colours():
    # A SynthAerial image's pixels off objects and shadows come from the same
    # texture families; its mean colour per family is close to the pool's.
    data = synthaerial.generate(4, size=32, seed=0, scenes=("forest",))
    off = (data["class_mask"] == 0) & (data["background_map"] == FOREST)
    scene_mean = data["image"][off].mean(0)
    pool_mean = pools.synthaerial_pool(4, size=32, groups=("forest",)).images
    assert np.abs(pool_mean.reshape(-1, 3).mean(0) - scene_mean).max() < 20


def test_synthetic_pool_kinds():
    pool = pools.synthetic_pool(2, size=16, kinds=("uniform_noise", "snow"))
    assert pool.group_names == ("uniform_noise", "snow")
    noise, snow = pool.images[:2], pool.images[2:]
    assert noise.std() > 60 and snow.mean() > 200
    with pytest.raises(ValueError, match="kinds"):
        pools.synthetic_pool(1, kinds=("lava",))
    with pytest.raises(ValueError, match="groups"):
        pools.synthaerial_pool(1, groups=("indoors",))


def test_scene_pool_holds_whole_scenes_and_their_objects():
    pool = pools.synthaerial_scene_pool(3, size=32, seed=5, groups=("water", "road"))
    assert pool.images.shape == (6, 32, 32, 3) and pool.images.dtype == np.uint8
    np.testing.assert_array_equal(pool.groups, [0, 0, 0, 1, 1, 1])
    # Row i of group g is SynthAerial image g * 1e6 + i of the seed's stream.
    water = pools.SCENE_GROUPS.index("water") * 1_000_000
    ref = synthaerial.generate(
        3, size=32, seed=5, start=water,
        scenes=tuple(pools.SCENE_SPECS[i].name for i in pools._scenes_by_group()["water"]),
    )  # fmt: skip
    np.testing.assert_array_equal(pool.images[:3], ref["image"])
    np.testing.assert_array_equal(pool.objects[:3], ref["objects_present"])
    assert pool.objects.shape == (6, len(synthaerial.CONCEPTS))
    # The dominant family of every water-group scene is water.
    assert (ref["background"] == pools.SCENE_GROUPS.index("water")).all()
    sub = pool.select("road")
    np.testing.assert_array_equal(sub.objects, pool.objects[3:])


def test_scene_fraction_mixes_scenes_and_object_free_backgrounds():
    kw = dict(size=32, seed=3, groups=("urban", "road"))
    none = pools.synthaerial_scene_pool(4, scene_fraction=0.0, **kw)
    plain = pools.synthaerial_pool(4, **kw)
    np.testing.assert_array_equal(none.images, plain.images)
    assert not none.objects.any()
    whole = pools.synthaerial_scene_pool(4, scene_fraction=1.0, **kw)
    half = pools.synthaerial_scene_pool(4, scene_fraction=0.5, **kw)
    # Each row of the mix is the whole scene or the object-free background.
    is_scene = np.array([s.startswith("synthaerial-scene") for s in half.sources])
    assert 0 < is_scene.sum() < len(is_scene)
    np.testing.assert_array_equal(half.images[is_scene], whole.images[is_scene])
    np.testing.assert_array_equal(half.images[~is_scene], plain.images[~is_scene])
    np.testing.assert_array_equal(half.objects[is_scene], whole.objects[is_scene])
    assert not half.objects[~is_scene].any() and whole.objects[:, 1].any()  # cars
    with pytest.raises(ValueError, match="scene_fraction"):
        pools.synthaerial_scene_pool(1, scene_fraction=1.5)
