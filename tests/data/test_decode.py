"""wgan_jax.data.decode: modes, transparency, bit depth, resizing, stacking.

Exercised through folders of files and .npz arrays, the two paths into it.
"""

from data_helpers import load_folder
from data_helpers import load_npz
from data_helpers import random_images
from data_helpers import save_png
import numpy as np
from PIL import Image
import pytest

from wgan_jax import data


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
  with pytest.raises(data.DataError, match=r"odd\.png \(8x9\)"):
    load_folder(tmp_path, image_size=8, resize="keep")


def test_mixed_sizes_without_image_size_is_an_error_naming_a_file(tmp_path):
  save_png(tmp_path / "a.png", random_images(1, 8, 8)[0])
  save_png(tmp_path / "b.png", random_images(1, 5, 5)[0])

  with pytest.raises(data.DataError) as error:
    load_folder(tmp_path)
  message = str(error.value)
  assert all(s in message for s in ("8x8", "5x5", "b.png", "image_size"))


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
  with pytest.raises(data.DataError, match="6x4.*not 8x8"):
    load_npz(tmp_path, {"x_train": random_images(2, 4, 6)}, npz_labels_key="",
             image_size=8, resize="keep")
