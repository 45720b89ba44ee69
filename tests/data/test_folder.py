"""wgan_jax.data.folder: folders and zips, class layout, unreadable files."""

import logging
import re
import zipfile

from data_helpers import decode_calls  # noqa: F401  (a fixture)
from data_helpers import data_config
from data_helpers import images_index
from data_helpers import load_folder
from data_helpers import make_class_folder
from data_helpers import random_images
from data_helpers import save_png
from data_helpers import zip_folder
import numpy as np
import pytest

from conftest import require_data
from wgan_jax import data
from wgan_jax.data import folder


def test_flat_folder_gives_every_png_pixel_exact_and_unlabeled(tmp_path):
  images = random_images(5)
  for i, image in enumerate(images):
    save_png(tmp_path / f"{i}.png", image)
  (tmp_path / "notes.txt").write_text("not an image")

  ds = load_folder(tmp_path)

  np.testing.assert_array_equal(ds.examples, images)  # Sorted file order.
  assert ds.examples.dtype == np.uint8
  assert ds.labels is None and ds.class_names == () and ds.num_classes == 0
  assert ds.is_image and ds.example_shape == (6, 7, 3)


def test_class_subfolders_give_sorted_names_and_each_image_its_folder_label(
    tmp_path):
  by_class = make_class_folder(tmp_path, {"zebra": 2, "ant": 3, "moth": 1})

  ds = load_folder(tmp_path)

  assert ds.class_names == ("ant", "moth", "zebra")
  assert ds.labels.dtype == np.int32 and len(ds.labels) == 6
  for example, label in zip(ds.examples, ds.labels):
    name = ds.class_names[label]
    assert any(np.array_equal(example, im) for im in by_class[name])


def test_zip_gives_the_same_dataset_as_the_extracted_folder(tmp_path):
  make_class_folder(tmp_path / "folder", {"cat": 3, "dog": 2})
  junk = {"__MACOSX/cat/._000.png": b"resource fork", "cat/.DS_Store": b"x"}
  zip_folder(tmp_path / "folder", tmp_path / "data.zip", junk)

  from_folder = load_folder(tmp_path / "folder")
  from_zip = load_folder(tmp_path / "data.zip")

  np.testing.assert_array_equal(from_zip.examples, from_folder.examples)
  np.testing.assert_array_equal(from_zip.labels, from_folder.labels)
  assert from_zip.class_names == from_folder.class_names == ("cat", "dog")


def test_a_lone_wrapper_folder_around_class_folders_is_looked_through(
    tmp_path):
  make_class_folder(tmp_path / "src" / "afhq" / "train", {"dog": 2, "cat": 1})
  zip_folder(tmp_path / "src", tmp_path / "afhq.zip")

  ds = load_folder(tmp_path / "afhq.zip")

  assert ds.class_names == ("cat", "dog")
  np.testing.assert_array_equal(np.bincount(ds.labels), [1, 2])


def test_one_folder_of_images_is_a_single_class(tmp_path):
  make_class_folder(tmp_path, {"faces": 3})

  ds = load_folder(tmp_path)

  assert ds.class_names == ("faces",)
  np.testing.assert_array_equal(ds.labels, [0, 0, 0])


def test_images_both_in_root_and_in_class_folders_is_an_error(tmp_path):
  make_class_folder(tmp_path, {"cat": 1})
  save_png(tmp_path / "stray.png", random_images(1)[0])

  with pytest.raises(data.DataError, match="stray.png"):
    load_folder(tmp_path)


@pytest.mark.parametrize("case", [
    "missing", "empty_dir", "no_images", "not_zip", "empty_zip"])
def test_unusable_folder_path_is_one_data_error_naming_it(tmp_path, case):
  path = tmp_path / "input"
  if case == "empty_dir":
    path.mkdir()
  elif case == "no_images":
    path.mkdir()
    (path / "readme.txt").write_text("hello")
  elif case == "not_zip":
    path.write_bytes(b"this is not an archive")
  elif case == "empty_zip":
    zipfile.ZipFile(path, "w").close()

  with pytest.raises(data.DataError, match=re.escape(str(path))):
    load_folder(path)


def test_empty_path_for_folder_is_an_error_naming_the_field():
  with pytest.raises(data.DataError, match="config.data.path"):
    load_folder("")


# ----------------------------------------------------------------------------
# Unreadable files: a few train with a warning, a mostly broken set fails.


def folder_with_broken_files(root, num_good: int, num_broken: int):
  """`num_good` PNGs 000..., then broken files; returns (good images, names)."""
  images = random_images(num_good, 4, 4)
  for i, image in enumerate(images):
    save_png(root / f"{i:03d}.png", image)
  good = (root / "000.png").read_bytes()
  broken = []
  for i in range(num_broken):
    name = f"zz_broken{i:02d}." + ("png" if i % 2 else "jpg")
    # Alternately a truncated PNG and text that is no JPEG.
    (root / name).write_bytes(good[:len(good) // 2] if i % 2 else
                              b"\xff\xd8 not really a jpeg")
    broken.append(name)
  return images, broken


def test_rare_unreadable_files_are_skipped_with_a_warning_naming_them(
    tmp_path, caplog):
  images, broken = folder_with_broken_files(tmp_path, 120, 1)

  with caplog.at_level(logging.WARNING):
    ds = load_folder(tmp_path)

  assert ds.num_examples == 120
  np.testing.assert_array_equal(ds.examples, images)
  assert re.search(r"\b1 unreadable of 121 files", caplog.text)
  assert broken[0] in caplog.text


@pytest.mark.parametrize("num_broken", [2, 40])
def test_up_to_half_unreadable_trains_with_a_warning_listing_every_one(
    tmp_path, caplog, num_broken):
  images, broken = folder_with_broken_files(tmp_path, 80 - num_broken,
                                            num_broken)

  with caplog.at_level(logging.WARNING):
    ds = load_folder(tmp_path)

  assert ds.num_examples == 80 - num_broken  # Exactly the broken ones skipped.
  np.testing.assert_array_equal(ds.examples, images)
  assert re.search(rf"\b{num_broken} unreadable of 80 files", caplog.text)
  assert all(name in caplog.text for name in broken)


def test_more_than_half_unreadable_is_an_error_listing_some(tmp_path):
  assert folder.MAX_BROKEN_FRACTION == 0.5
  _, broken = folder_with_broken_files(tmp_path, 39, 41)

  with pytest.raises(data.DataError, match="41 of 80") as error:
    load_folder(tmp_path)
  message = str(error.value)
  assert "more than 50%" in message
  assert all(name in message for name in broken[:5])


def test_folder_without_any_decodable_image_is_an_error(tmp_path):
  (tmp_path / "a.png").write_text("text")
  (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")

  with pytest.raises(data.DataError, match="no decodable image.*all 2 files"):
    load_folder(tmp_path)


# ----------------------------------------------------------------------------
# Subsets.


def test_max_examples_decodes_only_a_seeded_subset(
    tmp_path, decode_calls):  # noqa: F811
  images = random_images(30, 4, 4)
  for i, image in enumerate(images):
    save_png(tmp_path / f"{i:02d}.png", image)

  def subset(seed):
    ds = data.load_dataset(data_config(source="folder", path=str(tmp_path),
                                       max_examples=10), seed=seed)
    return {images_index(images, x) for x in ds.examples}

  first = subset(seed=0)
  assert len(decode_calls) == 10 and len(first) == 10
  assert subset(seed=0) == first
  assert subset(seed=1) != first


# ----------------------------------------------------------------------------
# Real data (skipped with a hint where it is not fetched).


def test_real_anime_zip_subset_decodes_to_64px_rgb():
  path = require_data("anime_faces_64.zip")

  ds = data.load_dataset(data_config(source="folder", path=str(path),
                                     image_size=64, resize="keep",
                                     max_examples=40))

  assert ds.examples.shape == (40, 64, 64, 3) and ds.labels is None
  flat = ds.examples.reshape(40, -1)
  assert np.all(flat.std(axis=1) > 5)  # Not blank.
  assert len(np.unique(flat, axis=0)) == 40  # The set has no duplicates.


def test_real_animal_zip_is_one_class_named_cat():
  path = require_data("animal_faces_64.zip")

  ds = data.load_dataset(data_config(source="folder", path=str(path),
                                     max_examples=16))

  assert ds.class_names == ("cat",)
  np.testing.assert_array_equal(ds.labels, 0)
  assert ds.examples.shape == (16, 64, 64, 3)


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_shard_decodes_only_its_files_and_the_shards_make_the_set(
    tmp_path, decode_calls, as_zip):  # noqa: F811
  make_class_folder(tmp_path / "images", {"cat": 5, "dog": 4})
  path = tmp_path / "images"
  if as_zip:
    zip_folder(path, tmp_path / "images.zip")
    path = tmp_path / "images.zip"
  config = data_config(source="folder", path=str(path))
  whole = data.load_dataset(config)
  assert len(decode_calls) == 9
  shards = [data.load_dataset(config, shard=(i, 3)) for i in range(3)]
  assert len(decode_calls) == 18  # each file once more, in one shard
  # Every third file of the sorted listing: each shard has both classes.
  for i, shard in enumerate(shards):
    np.testing.assert_array_equal(shard.examples, whole.examples[i::3])
    np.testing.assert_array_equal(shard.labels, whole.labels[i::3])
    assert set(shard.labels) == {0, 1} and shard.class_names == ("cat", "dog")


def test_sources_without_file_access_are_cut_after_loading(tmp_path):
  images = random_images(7)
  np.savez(tmp_path / "x.npz", x_train=images)
  config = data_config(source="npz", path=str(tmp_path / "x.npz"),
                       npz_labels_key="")
  shard = data.load_dataset(config, shard=(1, 2))
  np.testing.assert_array_equal(shard.examples, images[1::2])
  assert not shard.examples.flags.writeable
  with pytest.raises(ValueError, match="0 <= index < count"):
    data.load_dataset(config, shard=(2, 2))
