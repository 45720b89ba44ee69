"""wgan_jax.data.cache: a second load reads the cache; any change misses it."""

import os

from data_helpers import decode_calls  # noqa: F401  (a fixture)
from data_helpers import data_config
from data_helpers import make_class_folder
from data_helpers import random_images
from data_helpers import save_png
from data_helpers import zip_folder
import numpy as np
import pytest

from wgan_jax import data


@pytest.mark.parametrize("as_zip", [False, True])
def test_second_load_comes_from_the_cache_without_decoding(
    tmp_path, decode_calls, as_zip):  # noqa: F811
  make_class_folder(tmp_path / "images", {"a": 4, "b": 3})
  path = tmp_path / "images"
  if as_zip:
    zip_folder(path, tmp_path / "images.zip")
    path = tmp_path / "images.zip"
  config = data_config(source="folder", path=str(path), image_size=4)
  cache = tmp_path / "cache"

  first = data.load_dataset(config, cache_dir=str(cache))
  assert len(decode_calls) == 7
  second = data.load_dataset(config, cache_dir=str(cache))

  assert len(decode_calls) == 7
  np.testing.assert_array_equal(second.examples, first.examples)
  np.testing.assert_array_equal(second.labels, first.labels)
  assert second.class_names == first.class_names == ("a", "b")
  assert [f.suffix for f in cache.iterdir()] == [".npz"]  # No temp leftovers.
  assert not second.examples.flags.writeable


def test_changing_preprocessing_or_a_file_misses_the_cache(
    tmp_path, decode_calls):  # noqa: F811
  for i, image in enumerate(random_images(3, 8, 8)):
    save_png(tmp_path / "img" / f"{i}.png", image)
  cache = str(tmp_path / "cache")

  def load(**overrides):
    fields = dict(source="folder", path=str(tmp_path / "img"), image_size=4)
    config = data_config(**{**fields, **overrides})
    return data.load_dataset(config, cache_dir=cache)

  load()
  for overrides in [dict(image_size=5), dict(channels=1),
                    dict(resize="resize_crop"), dict(max_examples=2)]:
    before = len(decode_calls)
    load(**overrides)
    assert len(decode_calls) > before, overrides

  new_image = np.full((8, 8, 3), 77, np.uint8)
  save_png(tmp_path / "img" / "0.png", new_image)
  stat = os.stat(tmp_path / "img" / "0.png")
  os.utime(tmp_path / "img" / "0.png",
           ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  before = len(decode_calls)
  reloaded = load()
  assert len(decode_calls) > before
  np.testing.assert_array_equal(reloaded.examples[0], 77)


def test_a_corrupt_cache_file_is_rebuilt(tmp_path, decode_calls):  # noqa: F811
  save_png(tmp_path / "img" / "a.png", random_images(1)[0])
  config = data_config(source="folder", path=str(tmp_path / "img"))
  cache = tmp_path / "cache"
  expected = data.load_dataset(config, cache_dir=str(cache)).examples
  (cache_file,) = cache.iterdir()
  cache_file.write_bytes(b"garbage")

  again = data.load_dataset(config, cache_dir=str(cache))

  assert len(decode_calls) == 2
  np.testing.assert_array_equal(again.examples, expected)


def test_each_shard_has_a_cache_entry_of_its_own(tmp_path,
                                                 decode_calls):  # noqa: F811
  make_class_folder(tmp_path / "images", {"a": 4, "b": 3})
  config = data_config(source="folder", path=str(tmp_path / "images"))
  cache = str(tmp_path / "cache")
  whole = data.load_dataset(config, cache_dir=cache)
  halves = [data.load_dataset(config, cache_dir=cache, shard=(i, 2))
            for i in range(2)]
  assert len(decode_calls) == 14 and len(os.listdir(cache)) == 3
  again = [data.load_dataset(config, cache_dir=cache, shard=(i, 2))
           for i in range(2)]
  assert len(decode_calls) == 14  # read from the cache
  for half, cached, i in zip(halves, again, range(2)):
    np.testing.assert_array_equal(cached.examples, half.examples)
    np.testing.assert_array_equal(half.examples, whole.examples[i::2])
