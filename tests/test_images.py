"""Specification of wgan_jax.images: grids, captions, PNG and GIF files."""

import numpy as np
import pytest
from PIL import Image

from wgan_jax import images

B = images.BORDER


def _random(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_grid_tiles_row_major_with_white_borders(channels):
  cells = _random((5, 4, 6, channels))
  grid = images.make_grid(cells, columns=3)
  assert grid.shape == (2 * (4 + B) + B, 3 * (6 + B) + B, channels)
  covered = np.zeros(grid.shape[:2], bool)
  for i, cell in enumerate(cells):
    top, left = B + (i // 3) * (4 + B), B + (i % 3) * (6 + B)
    np.testing.assert_array_equal(grid[top:top + 4, left:left + 6], cell)
    covered[top:top + 4, left:left + 6] = True
  assert np.all(grid[~covered] == images.BACKGROUND)  # borders, empty 6th cell


def test_row_labels_widen_the_grid_on_the_left_only():
  cells = _random((4, 20, 20, 1))
  plain = images.make_grid(cells, columns=2)
  labelled = images.make_grid(cells, columns=2, row_labels=["lerp", "slerp"])
  width = labelled.shape[1] - plain.shape[1]
  assert width > 0 and labelled.shape[0] == plain.shape[0]
  np.testing.assert_array_equal(labelled[:, width:], plain)
  assert np.any(labelled[:, :width] < images.BACKGROUND)  # the text
  with pytest.raises(ValueError, match="1 row labels for 2 rows"):
    images.make_grid(cells, columns=2, row_labels=["x"])


@pytest.mark.parametrize("channels", [1, 3])
def test_caption_adds_a_text_strip_above_the_unchanged_image(channels):
  image = _random((30, 80, channels))
  out = images.caption(image, "step 1200")
  assert out.shape == (30 + images.CAPTION_HEIGHT, 80, channels)
  np.testing.assert_array_equal(out[images.CAPTION_HEIGHT:], image)
  strip = out[:images.CAPTION_HEIGHT]
  assert np.any(strip < images.BACKGROUND)
  assert not np.array_equal(strip, images.caption(image, "step 1300")[
      :images.CAPTION_HEIGHT])


@pytest.mark.parametrize("channels,mode", [(1, "L"), (3, "RGB")])
def test_png_round_trip_is_lossless_and_keeps_grayscale(tmp_path, channels,
                                                        mode):
  image = _random((9, 7, channels))
  path = str(tmp_path / "sub" / "x.png")
  images.save_png(path, image)
  assert Image.open(path).mode == mode
  np.testing.assert_array_equal(images.read_png(path), image)


def test_gif_of_grayscale_frames_is_lossless_with_one_frame_each(tmp_path):
  frames = _random((4, 10, 12, 1))
  frames[2] = frames[1]  # distinct labels keep repeated frames apart
  path = str(tmp_path / "a.gif")
  images.save_gif(path, frames, labels=["0", "1", "2", "3"], duration_ms=120)
  out = images.read_gif(path)
  assert out.shape == (4, 10 + images.CAPTION_HEIGHT, 12, 1)
  np.testing.assert_array_equal(out[:, images.CAPTION_HEIGHT:], frames)
  with Image.open(path) as gif:
    assert gif.n_frames == 4 and gif.info["duration"] == 120
    assert gif.info["loop"] == 0  # loops forever


def test_gif_of_rgb_frames_with_few_colours_is_lossless(tmp_path):
  palette = _random((200, 3), seed=1)
  frames = palette[np.random.default_rng(2).integers(0, 200, (3, 16, 16))]
  path = str(tmp_path / "b.gif")
  images.save_gif(path, frames)
  np.testing.assert_array_equal(images.read_gif(path), frames)


def test_gif_of_many_colours_keeps_size_and_stays_close(tmp_path):
  # A smooth RGB ramp: more than 256 colours, mapped without dithering.
  y, x = np.mgrid[0:64, 0:64]
  frame = np.stack([4 * x, 4 * y, 2 * (x + y)], -1).astype(np.uint8)
  path = str(tmp_path / "c.gif")
  images.save_gif(path, np.stack([frame, frame[::-1]]))
  out = images.read_gif(path)
  assert out.shape == (2, 64, 64, 3)
  assert np.abs(out.astype(int) - np.stack([frame, frame[::-1]])).mean() < 4


def test_save_gif_rejects_bad_input(tmp_path):
  with pytest.raises(ValueError, match="2 labels for 3 frames"):
    images.save_gif(str(tmp_path / "x.gif"), _random((3, 4, 4, 1)), ["a", "b"])
  with pytest.raises(ValueError, match="uint8"):
    images.save_gif(str(tmp_path / "x.gif"), np.zeros((3, 4, 4, 1)))
