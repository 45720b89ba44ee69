"""Specification of wgan_jax.input_pipeline: sources, cache, batches, ranges."""

import gzip
import logging
import os
import re
import struct
import zipfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image
import tensorflow_datasets as tfds

from conftest import require_data
from wgan_jax import input_pipeline as ip


def data_config(**overrides) -> ml_collections.ConfigDict:
  """`config.data` with the documented defaults, then `overrides`."""
  fields = dict(source="folder", path="", split="train", image_size=0,
                channels=0, resize="resize", random_flip=False, max_examples=0,
                npz_images_key="x_train", npz_labels_key="y_train",
                toy_num_examples=100_000)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def random_images(n, height=6, width=7, channels=3, seed=0) -> np.ndarray:
  """uint8 [n, height, width, channels] noise: every image distinct."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, height, width, channels), dtype=np.uint8)


def save_png(path, image: np.ndarray):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)


def make_class_folder(root, counts: dict[str, int], seed=0):
  """Class subfolders of random PNGs; returns {class: uint8 [n, 6, 7, 3]}."""
  images = {}
  for k, (name, n) in enumerate(counts.items()):
    images[name] = random_images(n, seed=seed + k)
    for i, image in enumerate(images[name]):
      save_png(os.path.join(root, name, f"{i:03d}.png"), image)
  return images


def zip_folder(folder, zip_path, extra: dict[str, bytes] | None = None):
  with zipfile.ZipFile(zip_path, "w") as zf:
    for root, _, files in os.walk(folder):
      for f in files:
        full = os.path.join(root, f)
        zf.write(full, os.path.relpath(full, folder))
    for name, data in (extra or {}).items():
      zf.writestr(name, data)


def load_folder(path, **overrides) -> ip.Dataset:
  return ip.load_dataset(data_config(source="folder", path=str(path),
                                     **overrides))


@pytest.fixture
def decode_calls(monkeypatch):
  """Counts calls of the image decoder (shared by all decode threads)."""
  calls = []
  real = ip._decode_image

  def counting(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(ip, "_decode_image", counting)
  return calls


# ----------------------------------------------------------------------------
# Folder and zip.


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
    folder = ds.class_names[label]
    assert any(np.array_equal(example, im) for im in by_class[folder])


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

  with pytest.raises(ip.DataError, match="stray.png"):
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

  with pytest.raises(ip.DataError, match=re.escape(str(path))):
    load_folder(path)


def test_empty_path_for_folder_is_an_error_naming_the_field():
  with pytest.raises(ip.DataError, match="config.data.path"):
    load_folder("")


def test_transparent_pixels_are_composited_on_white(tmp_path):
  rgba = np.zeros((4, 4, 4), np.uint8)  # Black, fully transparent...
  rgba[0, 0] = (255, 0, 0, 255)  # ...except one opaque red pixel...
  rgba[0, 1] = (0, 0, 0, 128)  # ...and one half-transparent black one.
  Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")

  pixels = load_folder(tmp_path).examples[0]

  np.testing.assert_array_equal(pixels[0, 0], (255, 0, 0))
  expected_half = 255 * (1 - 128 / 255)  # Alpha blend of black over white.
  assert np.all(np.abs(pixels[0, 1].astype(float) - expected_half) <= 1)
  np.testing.assert_array_equal(pixels[1:], 255)


def test_palette_transparent_index_becomes_white(tmp_path):
  image = Image.new("P", (3, 2))
  image.putpalette([0, 0, 255] + [0, 0, 0] * 255)  # index 0 blue, 1 black
  image.putdata([0, 1, 0, 1, 1, 0])
  image.info["transparency"] = 1
  image.save(tmp_path / "p.png", transparency=1)

  pixels = load_folder(tmp_path).examples[0].reshape(-1, 3)

  expected = [(0, 0, 255) if i == 0 else (255, 255, 255)
              for i in [0, 1, 0, 1, 1, 0]]
  np.testing.assert_array_equal(pixels, expected)


def test_grayscale_files_become_rgb_by_default_and_stay_exact_with_one_channel(
    tmp_path):
  gray = random_images(1, channels=1)[0]
  save_png(tmp_path / "g.png", gray)

  rgb = load_folder(tmp_path).examples[0]
  one = load_folder(tmp_path, channels=1).examples[0]

  assert rgb.shape == (6, 7, 3)
  for c in range(3):
    np.testing.assert_array_equal(rgb[..., c], gray[..., 0])
  np.testing.assert_array_equal(one, gray)


def test_rgb_files_to_one_channel_use_pillow_luma(tmp_path):
  rgb = random_images(1)[0]
  save_png(tmp_path / "c.png", rgb)

  gray = load_folder(tmp_path, channels=1).examples[0]

  np.testing.assert_array_equal(
      gray[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))


def test_sixteen_bit_images_are_rescaled_to_eight_bits_not_clipped(tmp_path):
  levels = np.arange(0, 256, 5, dtype=np.uint16)
  wide = (levels * 257).reshape(1, -1)  # 257 * k is level k in 16 bits.
  image = Image.fromarray(wide)
  assert image.mode.startswith("I;16")
  image.save(tmp_path / "deep.png")

  pixels = load_folder(tmp_path, channels=1).examples[0, 0, :, 0]

  np.testing.assert_array_equal(pixels, levels)


@pytest.mark.parametrize("resize", ["resize", "resize_crop"])
def test_resizing_a_flat_colour_gives_the_target_size_and_the_same_colour(
    tmp_path, resize):
  Image.new("RGB", (20, 11), (10, 200, 30)).save(tmp_path / "flat.png")

  image = load_folder(tmp_path, image_size=8, resize=resize).examples[0]

  assert image.shape == (8, 8, 3)
  assert np.all(np.abs(image.astype(int) - (10, 200, 30)) <= 1)


def test_resize_crop_keeps_the_centre_square_and_resize_keeps_the_sides(
    tmp_path):
  wide = np.zeros((64, 96, 3), np.uint8)
  wide[:, :, 2] = 255  # Blue side bars...
  wide[:, 16:80] = (255, 0, 0)  # ...around a red centre square.
  save_png(tmp_path / "wide.png", wide)

  cropped = load_folder(tmp_path, image_size=16,
                        resize="resize_crop").examples[0].astype(int)
  squeezed = load_folder(tmp_path, image_size=16,
                         resize="resize").examples[0].astype(int)

  # Edge columns may blend with the neighbouring blue; the interior may not.
  assert np.all(cropped[:, 1:-1, 0] >= 250) and np.all(cropped[:, 1:-1, 2] <= 5)
  assert np.all(squeezed[:, 0, 2] >= 250) and np.all(squeezed[:, -1, 2] >= 250)


def test_keep_accepts_the_exact_size_and_names_files_of_other_sizes(tmp_path):
  images = random_images(3, 8, 8)
  for i, image in enumerate(images):
    save_png(tmp_path / f"{i}.png", image)
  np.testing.assert_array_equal(
      load_folder(tmp_path, image_size=8, resize="keep").examples, images)

  save_png(tmp_path / "odd.png", random_images(1, 9, 8)[0])
  with pytest.raises(ip.DataError, match=r"odd\.png \(8x9\)"):
    load_folder(tmp_path, image_size=8, resize="keep")


def test_mixed_sizes_without_image_size_is_an_error_naming_a_file(tmp_path):
  save_png(tmp_path / "a.png", random_images(1, 8, 8)[0])
  save_png(tmp_path / "b.png", random_images(1, 5, 5)[0])

  with pytest.raises(ip.DataError) as error:
    load_folder(tmp_path)
  message = str(error.value)
  assert all(s in message for s in ("8x8", "5x5", "b.png", "image_size"))


def test_rare_unreadable_files_are_skipped_with_a_warning_naming_them(
    tmp_path, caplog):
  images = random_images(120, 4, 4)
  for i, image in enumerate(images):
    save_png(tmp_path / f"{i:03d}.png", image)
  good = (tmp_path / "000.png").read_bytes()
  (tmp_path / "zz_truncated.png").write_bytes(good[:len(good) // 2])

  with caplog.at_level(logging.WARNING):
    ds = load_folder(tmp_path)

  np.testing.assert_array_equal(ds.examples, images)
  assert "zz_truncated.png" in caplog.text


def test_more_than_one_percent_unreadable_is_an_error_listing_them(tmp_path):
  for i, image in enumerate(random_images(20, 4, 4)):
    save_png(tmp_path / f"{i:02d}.png", image)
  (tmp_path / "bad1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
  (tmp_path / "bad2.png").write_text("text")

  with pytest.raises(ip.DataError, match="bad1.jpg.*bad2.png"):
    load_folder(tmp_path)


def test_folder_without_any_decodable_image_is_an_error(tmp_path):
  (tmp_path / "a.png").write_text("text")

  with pytest.raises(ip.DataError, match="no decodable image"):
    load_folder(tmp_path)


# ----------------------------------------------------------------------------
# Cache.


@pytest.mark.parametrize("as_zip", [False, True])
def test_second_load_comes_from_the_cache_without_decoding(
    tmp_path, decode_calls, as_zip):
  make_class_folder(tmp_path / "images", {"a": 4, "b": 3})
  path = tmp_path / "images"
  if as_zip:
    zip_folder(path, tmp_path / "images.zip")
    path = tmp_path / "images.zip"
  config = data_config(source="folder", path=str(path), image_size=4)
  cache = tmp_path / "cache"

  first = ip.load_dataset(config, cache_dir=str(cache))
  assert len(decode_calls) == 7
  second = ip.load_dataset(config, cache_dir=str(cache))

  assert len(decode_calls) == 7
  np.testing.assert_array_equal(second.examples, first.examples)
  np.testing.assert_array_equal(second.labels, first.labels)
  assert second.class_names == first.class_names == ("a", "b")
  assert [f.suffix for f in cache.iterdir()] == [".npz"]  # No temp leftovers.


def test_changing_preprocessing_or_a_file_misses_the_cache(
    tmp_path, decode_calls):
  for i, image in enumerate(random_images(3, 8, 8)):
    save_png(tmp_path / "img" / f"{i}.png", image)
  cache = str(tmp_path / "cache")

  def load(**overrides):
    fields = dict(source="folder", path=str(tmp_path / "img"), image_size=4)
    config = data_config(**{**fields, **overrides})
    return ip.load_dataset(config, cache_dir=cache)

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


def test_a_corrupt_cache_file_is_rebuilt(tmp_path, decode_calls):
  save_png(tmp_path / "img" / "a.png", random_images(1)[0])
  config = data_config(source="folder", path=str(tmp_path / "img"))
  cache = tmp_path / "cache"
  expected = ip.load_dataset(config, cache_dir=str(cache)).examples
  (cache_file,) = cache.iterdir()
  cache_file.write_bytes(b"garbage")

  again = ip.load_dataset(config, cache_dir=str(cache))

  assert len(decode_calls) == 2
  np.testing.assert_array_equal(again.examples, expected)


def test_max_examples_decodes_only_a_seeded_subset(tmp_path, decode_calls):
  images = random_images(30, 4, 4)
  for i, image in enumerate(images):
    save_png(tmp_path / f"{i:02d}.png", image)

  def subset(seed):
    ds = ip.load_dataset(data_config(source="folder", path=str(tmp_path),
                                     max_examples=10), seed=seed)
    return {images_index(images, x) for x in ds.examples}

  first = subset(seed=0)
  assert len(decode_calls) == 10 and len(first) == 10
  assert subset(seed=0) == first
  assert subset(seed=1) != first


def images_index(images, image) -> int:
  (index,) = [i for i, x in enumerate(images) if np.array_equal(x, image)]
  return index


# ----------------------------------------------------------------------------
# MNIST / Fashion-MNIST IDX files.


def write_idx(directory, split, images, labels, gz=True):
  """The four original files' layout: big-endian magic, dims, then bytes."""
  stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
  os.makedirs(directory, exist_ok=True)
  images_raw = struct.pack(">4I", 2051, *images.shape) + images.tobytes()
  labels_raw = struct.pack(">2I", 2049, len(labels)) + labels.tobytes()
  paths = []
  for stem, raw in zip(stems[split], (images_raw, labels_raw)):
    path = os.path.join(directory, stem + (".gz" if gz else ""))
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
      f.write(raw)
    paths.append(path)
  return paths


def fake_mnist(n=7, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, n).astype(np.uint8))


@pytest.mark.parametrize("split,gz", [("train", True), ("test", False)])
def test_idx_files_load_exactly_with_labels_and_fashion_class_names(
    tmp_path, split, gz):
  images, labels = fake_mnist()
  write_idx(tmp_path, split, images, labels, gz=gz)

  ds = ip.load_dataset(data_config(source="fashion_mnist", path=str(tmp_path),
                                   split=split))

  np.testing.assert_array_equal(ds.examples, images[..., None])
  np.testing.assert_array_equal(ds.labels, labels)
  assert ds.labels.dtype == np.int32
  # Zalando's published label order.
  assert len(ds.class_names) == 10
  assert ds.class_names[0] == "T-shirt/top"
  assert ds.class_names[9] == "Ankle boot"


def test_mnist_images_convert_to_rgb_and_resize(tmp_path):
  images, labels = fake_mnist()
  images[0] = 200  # A flat image stays flat when resized.
  write_idx(tmp_path, "train", images, labels)

  ds = ip.load_dataset(data_config(source="mnist", path=str(tmp_path),
                                   channels=3, image_size=32))

  assert ds.examples.shape == (7, 32, 32, 3)
  assert np.all(np.abs(ds.examples[0].astype(int) - 200) <= 1)
  np.testing.assert_array_equal(ds.examples[..., 0], ds.examples[..., 2])
  assert ds.class_names == tuple("0123456789")


@pytest.mark.parametrize(
    "damage", ["swapped", "truncated", "trailing_bytes", "count_mismatch"])
def test_broken_idx_files_are_an_error_naming_the_file(tmp_path, damage):
  images, labels = fake_mnist()
  images_path, labels_path = write_idx(tmp_path, "train", images, labels,
                                       gz=False)
  if damage == "swapped":
    culprit = images_path
    os.replace(labels_path, images_path + ".tmp")
    os.replace(images_path, labels_path)
    os.replace(images_path + ".tmp", images_path)
  elif damage == "truncated":
    culprit = images_path
    with open(images_path, "r+b") as f:
      f.truncate(1000)
  elif damage == "trailing_bytes":
    culprit = images_path
    with open(images_path, "ab") as f:
      f.write(b"\0" * 28)
  else:
    culprit = labels_path
    write_idx(tmp_path, "train", images, labels[:-1], gz=False)

  with pytest.raises(ip.DataError, match=re.escape(culprit)):
    ip.load_dataset(data_config(source="mnist", path=str(tmp_path)))


def test_folder_without_idx_files_is_an_error_naming_the_expected_files(
    tmp_path):
  with pytest.raises(ip.DataError, match="train-images-idx3-ubyte"):
    ip.load_dataset(data_config(source="fashion_mnist", path=str(tmp_path)))


def test_empty_path_uses_the_debian_folder_before_tfds(tmp_path, monkeypatch):
  images, labels = fake_mnist()
  write_idx(tmp_path, "train", images, labels)
  monkeypatch.setitem(ip.SYSTEM_DIRS, "fashion_mnist", str(tmp_path))

  def no_tfds(*args, **kwargs):
    raise AssertionError("tfds must not be used when the IDX files exist")

  monkeypatch.setattr(tfds, "data_source", no_tfds)

  ds = ip.load_dataset(data_config(source="fashion_mnist"))

  np.testing.assert_array_equal(ds.examples[..., 0], images)


def test_empty_path_falls_back_to_tfds_data_source(tmp_path, monkeypatch):
  monkeypatch.setitem(ip.SYSTEM_DIRS, "fashion_mnist", str(tmp_path / "none"))

  with tfds.testing.mock_data(num_examples=5,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = ip.load_dataset(data_config(source="fashion_mnist", split="test"))

  assert ds.examples.shape == (5, 28, 28, 1) and ds.examples.dtype == np.uint8
  assert ds.labels.dtype == np.int32 and np.all((ds.labels >= 0) &
                                                (ds.labels < 10))


def test_fashion_mnist_missing_everywhere_is_one_error_naming_the_places(
    tmp_path, monkeypatch):
  missing = str(tmp_path / "no-such-dir")
  monkeypatch.setitem(ip.SYSTEM_DIRS, "fashion_mnist", missing)

  def unavailable(*args, **kwargs):
    raise FileNotFoundError("not prepared")

  monkeypatch.setattr(tfds, "data_source", unavailable)

  with pytest.raises(ip.DataError) as error:
    ip.load_dataset(data_config(source="fashion_mnist"))
  assert missing in str(error.value) and "tfds" in str(error.value)
  assert "config.data.path" in str(error.value)


def test_unknown_mnist_split_is_an_error(tmp_path):
  with pytest.raises(ip.DataError, match="'validation'"):
    ip.load_dataset(data_config(source="mnist", path=str(tmp_path),
                                split="validation"))


# ----------------------------------------------------------------------------
# NPZ.


def load_npz(tmp_path, arrays: dict[str, np.ndarray], **overrides):
  path = tmp_path / "data.npz"
  np.savez(path, **arrays)
  return ip.load_dataset(data_config(source="npz", path=str(path),
                                     **overrides))


def test_npz_nhwc_uint8_loads_exactly_with_numbered_classes(tmp_path):
  x = random_images(5, 4, 4)
  y = np.array([0, 3, 1, 3, 2], np.uint8)

  ds = load_npz(tmp_path, {"x_train": x, "y_train": y})

  np.testing.assert_array_equal(ds.examples, x)
  np.testing.assert_array_equal(ds.labels, y)
  assert ds.num_classes == 4  # Classes 0..max label.


def test_npz_nchw_and_grayscale_nhw_arrays_become_nhwc(tmp_path):
  x = random_images(5, 4, 6)
  gray = random_images(5, 4, 6, channels=1)

  nchw = load_npz(tmp_path, {"x_train": x.transpose(0, 3, 1, 2)},
                  npz_labels_key="")
  nhw = load_npz(tmp_path, {"x_train": gray[..., 0]}, npz_labels_key="")

  np.testing.assert_array_equal(nchw.examples, x)
  np.testing.assert_array_equal(nhw.examples, gray)
  assert nchw.labels is None and nchw.class_names == ()


def test_npz_split_keys_select_the_test_arrays(tmp_path):
  x_test, y_test = random_images(3, seed=1), np.array([1, 0, 1])
  arrays = {"x_train": random_images(4), "y_train": np.zeros(4, np.int64),
            "x_test": x_test, "y_test": y_test}

  ds = load_npz(tmp_path, arrays, npz_images_key="x_test",
                npz_labels_key="y_test")

  np.testing.assert_array_equal(ds.examples, x_test)
  np.testing.assert_array_equal(ds.labels, y_test)


@pytest.mark.parametrize("arrays,overrides,message", [
    ({"images": random_images(2)}, {}, r"no array 'x_train'.*images"),
    ({"x_train": random_images(2)}, {}, r"no array 'y_train'"),
    ({"x_train": random_images(2, channels=4)}, dict(npz_labels_key=""),
     r"shape \[2, 6, 7, 4\].*1 or 3 channels"),
    ({"x_train": random_images(2, channels=2)}, dict(npz_labels_key=""),
     r"shape \[2, 6, 7, 2\].*1 or 3 channels"),
    ({"x_train": random_images(2) / 255.0}, dict(npz_labels_key=""),
     "float64"),
    ({"x_train": random_images(2), "y_train": np.zeros(3)}, {},
     "'y_train'.*2 non-negative integer labels"),
])
def test_unusable_npz_arrays_are_one_error_naming_the_fix(
    tmp_path, arrays, overrides, message):
  with pytest.raises(ip.DataError, match=message) as error:
    load_npz(tmp_path, arrays, **overrides)
  assert str(tmp_path / "data.npz") in str(error.value)


def test_array_sources_convert_and_resize_like_decoded_files(tmp_path):
  x = random_images(2, 12, 10)
  for i, image in enumerate(x):
    save_png(tmp_path / "img" / f"{i}.png", image)

  for overrides in [dict(channels=1), dict(image_size=5),
                    dict(image_size=5, resize="resize_crop", channels=1)]:
    from_npz = load_npz(tmp_path, {"x_train": x}, npz_labels_key="",
                        **overrides)
    from_files = load_folder(tmp_path / "img", **overrides)
    np.testing.assert_array_equal(from_npz.examples, from_files.examples)


def test_array_sources_with_keep_reject_other_sizes(tmp_path):
  with pytest.raises(ip.DataError, match="6x4.*not 8x8"):
    load_npz(tmp_path, {"x_train": random_images(2, 4, 6)}, npz_labels_key="",
             image_size=8, resize="keep")


# ----------------------------------------------------------------------------
# TFDS.


def test_tfds_source_gives_uint8_images_and_class_labels():
  with tfds.testing.mock_data(num_examples=6,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = ip.load_dataset(data_config(source="tfds:cifar10"))
    small = ip.load_dataset(data_config(source="tfds:cifar10", image_size=16,
                                        channels=1, max_examples=4))

  assert ds.examples.shape == (6, 32, 32, 3) and ds.examples.dtype == np.uint8
  assert ds.num_classes == 10 and ds.labels.dtype == np.int32
  assert np.all((ds.labels >= 0) & (ds.labels < 10))
  assert small.examples.shape == (4, 16, 16, 1) and len(small.labels) == 4


def test_tfds_second_load_with_a_cache_converts_no_image(tmp_path,
                                                         monkeypatch):
  config = data_config(source="tfds:cifar10", image_size=8)
  with tfds.testing.mock_data(num_examples=5,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    first = ip.load_dataset(config, cache_dir=str(tmp_path))

    def no_conversion(*args, **kwargs):
      raise AssertionError("cached images must not be converted again")

    monkeypatch.setattr(ip, "_pil_to_array", no_conversion)
    second = ip.load_dataset(config, cache_dir=str(tmp_path))

  np.testing.assert_array_equal(second.examples, first.examples)
  np.testing.assert_array_equal(second.labels, first.labels)
  assert second.class_names == first.class_names


def test_unknown_tfds_dataset_is_a_data_error_naming_it():
  with pytest.raises(ip.DataError, match="no_such_dataset_xyz"):
    ip.load_dataset(data_config(source="tfds:no_such_dataset_xyz"))


# ----------------------------------------------------------------------------
# Toy mixtures (WGAN-GP paper, gan_toy.py).


def test_toy_modes_have_the_paper_geometry():
  eight = ip.toy_modes("toy:8gaussians")
  grid = ip.toy_modes("25gaussians")

  assert eight.shape == (8, 2) and eight.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(eight, axis=1), 2 / 1.414,
                             rtol=1e-6)
  angles = np.sort(np.degrees(np.arctan2(eight[:, 1], eight[:, 0])) % 360)
  np.testing.assert_allclose(angles, np.arange(0, 360, 45), atol=1e-4)
  expected = {(2 * x / 2.828, 2 * y / 2.828)
              for x in range(-2, 3) for y in range(-2, 3)}
  assert grid.shape == (25, 2)
  assert all(np.min(np.linalg.norm(grid - np.array(e), axis=1)) < 1e-6
             for e in expected)


@pytest.mark.parametrize("name,std,divisor", [
    ("toy:8gaussians", 0.02, 1.414), ("toy:25gaussians", 0.05, 2.828)])
def test_toy_points_sit_at_the_modes_with_the_paper_spread(name, std, divisor):
  n = 25_000
  ds = ip.load_dataset(data_config(source=name, toy_num_examples=n))
  points, modes = ds.examples, ip.toy_modes(name)

  assert points.shape == (n, 2) and points.dtype == np.float32
  assert ds.labels is None and not ds.is_image
  distances = np.linalg.norm(points[:, None] - modes[None], axis=-1)
  nearest = distances.argmin(axis=1)
  residual = points - modes[nearest]
  np.testing.assert_allclose(residual.std(axis=0), std / divisor, rtol=0.05)
  assert np.abs(residual).max() < 6 * std / divisor
  counts = np.bincount(nearest, minlength=len(modes))
  if len(modes) == 25:
    np.testing.assert_array_equal(counts, n // 25)  # Balanced, as the paper.
  else:  # Uniform random choice: each count within 5 binomial sigmas.
    sigma = np.sqrt(n * (1 / 8) * (7 / 8))
    assert np.all(np.abs(counts - n / 8) < 5 * sigma)


def test_toy_points_are_a_function_of_the_seed():
  config = data_config(source="toy:8gaussians", toy_num_examples=100)
  a = ip.load_dataset(config, seed=3).examples
  np.testing.assert_array_equal(ip.load_dataset(config, seed=3).examples, a)
  assert not np.array_equal(ip.load_dataset(config, seed=4).examples, a)


# ----------------------------------------------------------------------------
# Configuration and Dataset.


@pytest.mark.parametrize("overrides,field", [
    (dict(source="cifar"), "source"),
    (dict(source="tfds:"), "source"),
    (dict(resize="crop"), "resize"),
    (dict(channels=2), "channels"),
    (dict(image_size=-1), "image_size"),
    (dict(max_examples=-5), "max_examples"),
    (dict(source="toy:8gaussians", random_flip=True), "random_flip"),
])
def test_bad_config_values_are_an_error_naming_the_field(overrides, field):
  with pytest.raises(ip.DataError, match=f"config.data.{field}"):
    ip.load_dataset(data_config(**overrides))


def test_loaded_arrays_are_read_only(tmp_path):
  x = random_images(2, 4, 4)
  ds = load_npz(tmp_path, {"x_train": x, "y_train": np.array([0, 1])})

  with pytest.raises(ValueError):
    ds.examples[0, 0, 0, 0] = 1
  with pytest.raises(ValueError):
    ds.labels[0] = 1


@pytest.mark.parametrize("examples,labels", [
    (np.zeros((2, 4, 4, 3), np.float32), None),  # Float images.
    (np.zeros((2, 4, 4, 4), np.uint8), None),  # RGBA.
    (np.zeros((2, 3), np.float32), None),  # 3-D points.
    (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3, np.int32)),  # Count.
    (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int64)),  # Dtype.
    (np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1], np.int32)),  # Names.
])
def test_dataset_rejects_inconsistent_arrays(examples, labels):
  with pytest.raises(ValueError):
    ip.Dataset(examples, labels, ("only",) if labels is not None else ())


# ----------------------------------------------------------------------------
# Real data (skipped with a hint where it is not fetched).


def test_real_fashion_mnist_has_the_published_split_sizes_and_balance():
  path = str(require_data("fashion-mnist"))

  train = ip.load_dataset(data_config(source="fashion_mnist", path=path))
  test = ip.load_dataset(data_config(source="fashion_mnist", path=path,
                                     split="test"))

  assert train.examples.shape == (60000, 28, 28, 1)
  assert test.examples.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)


def test_real_anime_zip_subset_decodes_to_64px_rgb():
  path = require_data("anime_faces_64.zip")

  ds = ip.load_dataset(data_config(source="folder", path=str(path),
                                   image_size=64, resize="keep",
                                   max_examples=40))

  assert ds.examples.shape == (40, 64, 64, 3) and ds.labels is None
  flat = ds.examples.reshape(40, -1)
  assert np.all(flat.std(axis=1) > 5)  # Not blank.
  assert len(np.unique(flat, axis=0)) == 40  # The set has no duplicates.


def test_real_animal_zip_is_one_class_named_cat():
  path = require_data("animal_faces_64.zip")

  ds = ip.load_dataset(data_config(source="folder", path=str(path),
                                   max_examples=16))

  assert ds.class_names == ("cat",)
  np.testing.assert_array_equal(ds.labels, 0)
  assert ds.examples.shape == (16, 64, 64, 3)


# ----------------------------------------------------------------------------
# Batches.


def stream(num_examples, seed, steps, n_critic, batch_size) -> np.ndarray:
  return np.concatenate([
      ip.batch_indices(num_examples, seed, k, n_critic, batch_size).ravel()
      for k in range(steps)])


def test_every_epoch_visits_every_example_exactly_once():
  n = 37  # Not a multiple of the 20 examples per step: batches span epochs.
  order = stream(n, seed=0, steps=10, n_critic=5, batch_size=4)

  for epoch in range(len(order) // n):
    np.testing.assert_array_equal(np.sort(order[epoch * n:(epoch + 1) * n]),
                                  np.arange(n))
  assert not np.array_equal(order[:n], order[n:2 * n])  # Reshuffled.


def test_a_step_computed_cold_equals_the_same_step_after_all_earlier_ones():
  in_order = [ip.batch_indices(50, 7, k, 5, 4) for k in range(12)]

  for k in (0, 3, 11):
    ip._epoch_permutation.cache_clear()  # As in a freshly resumed process.
    np.testing.assert_array_equal(ip.batch_indices(50, 7, k, 5, 4),
                                  in_order[k])


def test_a_dataset_smaller_than_one_step_still_gives_full_epochs():
  batches = ip.batch_indices(3, seed=1, step=2, n_critic=5, batch_size=4)

  assert batches.shape == (5, 4) and batches.dtype == np.int32
  order = stream(3, seed=1, steps=3, n_critic=5, batch_size=4)
  for epoch in range(len(order) // 3):
    assert sorted(order[3 * epoch:3 * epoch + 3]) == [0, 1, 2]


def test_batches_depend_on_the_seed_and_the_step():
  a = ip.batch_indices(1000, 0, 5, 5, 64)
  assert not np.array_equal(ip.batch_indices(1000, 1, 5, 5, 64), a)
  assert not np.array_equal(ip.batch_indices(1000, 0, 6, 5, 64), a)
  assert a.min() >= 0 and a.max() < 1000


def test_editing_returned_indices_does_not_change_later_batches():
  a = ip.batch_indices(100, 0, 0, 1, 100)
  expected = a.copy()
  a[:] = 0

  np.testing.assert_array_equal(ip.batch_indices(100, 0, 0, 1, 100), expected)


@pytest.mark.parametrize("args", [
    (0, 0, 0, 5, 4), (10, 0, -1, 5, 4), (10, 0, 0, 0, 4), (10, 0, 0, 5, 0)])
def test_batch_indices_rejects_invalid_arguments(args):
  with pytest.raises(ValueError):
    ip.batch_indices(*args)


# ----------------------------------------------------------------------------
# Value ranges.


ALL_UINT8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)


@pytest.mark.parametrize("activation,low,high", [
    ("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0)])
def test_to_model_range_maps_0_and_255_onto_the_activation_range_linearly(
    activation, low, high):
  y = ip.to_model_range(ALL_UINT8, activation)

  assert isinstance(y, np.ndarray) and y.dtype == np.float32
  expected = low + (high - low) * ALL_UINT8.astype(np.float64) / 255
  np.testing.assert_allclose(y, expected, atol=1e-6)
  assert y.ravel()[0] == low and y.ravel()[-1] == high


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_to_uint8_inverts_to_model_range_for_every_value_on_numpy_and_jax(
    activation):
  on_host = ip.to_uint8(ip.to_model_range(ALL_UINT8, activation), activation)
  on_device = jax.jit(lambda x: ip.to_uint8(
      ip.to_model_range(x, activation), activation))(jnp.asarray(ALL_UINT8))

  assert isinstance(on_host, np.ndarray) and on_host.dtype == np.uint8
  assert isinstance(on_device, jax.Array) and on_device.dtype == jnp.uint8
  np.testing.assert_array_equal(on_host, ALL_UINT8)
  np.testing.assert_array_equal(np.asarray(on_device), ALL_UINT8)


@pytest.mark.parametrize("activation,to_range", [
    ("tanh", lambda v: v / 127.5 - 1), ("sigmoid", lambda v: v / 255)])
def test_to_uint8_rounds_to_nearest_and_clips(activation, to_range):
  levels = np.array([10.4, 10.6, -3.0, 300.0, 254.7])
  y = to_range(levels).astype(np.float32)

  np.testing.assert_array_equal(ip.to_uint8(y, activation),
                                [10, 11, 0, 255, 255])
  np.testing.assert_array_equal(ip.to_uint8(jnp.asarray(y), activation),
                                [10, 11, 0, 255, 255])


def test_toy_points_pass_through_to_model_range_as_float32():
  points = np.array([[0.25, -3.5], [1e3, 0.0]], np.float64)

  for x in (points, jnp.asarray(points, jnp.float32)):
    y = ip.to_model_range(x, "tanh")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(y), points.astype(np.float32))


def test_bad_activation_or_dtype_is_rejected():
  with pytest.raises(ValueError, match="relu"):
    ip.to_model_range(ALL_UINT8, "relu")
  with pytest.raises(ValueError):
    ip.to_model_range(ALL_UINT8.astype(np.int32), "tanh")
  with pytest.raises(ValueError, match="relu"):
    ip.to_uint8(np.zeros(3, np.float32), "relu")


def test_flip_horizontally_mirrors_exactly_the_marked_images():
  images = jnp.asarray(random_images(6, 5, 7)).reshape(2, 3, 5, 7, 3)
  flips = jnp.array([[True, False, True], [False, False, True]])

  out = jax.jit(ip.flip_horizontally)(images, flips)

  for i in range(2):
    for j in range(3):
      expected = images[i, j, :, ::-1] if flips[i, j] else images[i, j]
      np.testing.assert_array_equal(out[i, j], expected)