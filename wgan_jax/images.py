"""Image grids, captions, and lossless PNG and GIF output.

All images are uint8 [..., H, W, C] with C = 1 (grayscale, kept grayscale)
or C = 3 (RGB).
"""

import math
from typing import Sequence

import numpy as np
from etils import epath
from PIL import Image, ImageDraw

BORDER = 2  # pixels between and around grid cells
BACKGROUND = 255  # white borders
CAPTION_HEIGHT = 16  # pixels of the text strip `caption` adds on top


def make_grid(images: np.ndarray, columns: int | None = None,
              row_labels: Sequence[str] | None = None,
              border: int = BORDER) -> np.ndarray:
  """Tiles images row-major into one uint8 image [H', W', C].

  Args:
    images: uint8 [N, H, W, C].
    columns: cells per row; default ceil(sqrt(N)).
    row_labels: optional text drawn left of each row (e.g. class names or
      steps); widens the grid by a label column.
    border: pixels of white between and around cells.
  """
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"make_grid needs uint8 [N, H, W, 1 or 3] images, got "
                     f"{images.dtype} {images.shape}.")
  n, h, w, c = images.shape
  columns = columns or max(1, math.ceil(math.sqrt(n)))
  rows = math.ceil(n / columns)
  label_width = 0
  if row_labels is not None:
    if len(row_labels) != rows:
      raise ValueError(f"{len(row_labels)} row labels for {rows} rows.")
    label_width = 7 * max(len(s) for s in row_labels) + 2 * border
  grid = np.full((rows * (h + border) + border,
                  label_width + columns * (w + border) + border, c),
                 BACKGROUND, np.uint8)
  for i in range(n):
    r, col = divmod(i, columns)
    top = border + r * (h + border)
    left = label_width + border + col * (w + border)
    grid[top:top + h, left:left + w] = images[i]
  if row_labels is not None:
    canvas = Image.fromarray(grid[..., 0] if c == 1 else grid)
    draw = ImageDraw.Draw(canvas)
    for r, text in enumerate(row_labels):
      top = border + r * (h + border) + max(0, h // 2 - 6)
      draw.text((border, top), text, fill=0 if c == 1 else (0, 0, 0))
    grid = np.asarray(canvas).reshape(grid.shape)
  return grid


def caption(image: np.ndarray, text: str) -> np.ndarray:
  """Puts a white strip with `text` above `image` uint8 [H, W, C].

  Text wider than the image is cut off at its right edge.

  Returns:
    uint8 [CAPTION_HEIGHT + H, W, C], the image unchanged at the bottom.
  """
  image = np.asarray(image)
  strip = np.full((CAPTION_HEIGHT,) + image.shape[1:], BACKGROUND, np.uint8)
  canvas = to_pil(strip)
  ImageDraw.Draw(canvas).text((BORDER, 2), text,
                              fill=0 if image.shape[-1] == 1 else (0, 0, 0))
  strip = np.asarray(canvas).reshape(strip.shape)
  return np.concatenate([strip, image], axis=0)


def to_pil(image: np.ndarray) -> Image.Image:
  """uint8 [H, W, 1 or 3] -> a grayscale ('L') or RGB PIL image."""
  image = np.asarray(image)
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def save_png(path: str, image: np.ndarray) -> None:
  """Writes uint8 [H, W, C] losslessly as PNG, creating parent folders."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("wb") as f:
    to_pil(image).save(f, format="PNG")


def read_png(path: str) -> np.ndarray:
  """uint8 [H, W, C] of a PNG (C = 1 for grayscale)."""
  with epath.Path(path).open("rb") as f:
    image = np.asarray(Image.open(f))
  return image[..., None] if image.ndim == 2 else image


def _gif_frame(image: np.ndarray) -> Image.Image:
  """A GIF frame of uint8 [H, W, C]: exact for grayscale and <= 256 colours."""
  if image.shape[-1] == 1:
    return Image.fromarray(image[..., 0])  # 'L': GIF's gray palette is exact
  colours, index = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True)
  if len(colours) <= 256:
    frame = Image.fromarray(
        index.reshape(image.shape[:2]).astype(np.uint8), "P")
    frame.putpalette(colours.astype(np.uint8).tobytes())
    return frame
  # More colours than a GIF palette holds: the nearest of 256, undithered.
  return Image.fromarray(image).quantize(
      256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def save_gif(path: str, frames: np.ndarray,
             labels: Sequence[str] | None = None,
             duration_ms: int = 300) -> None:
  """Writes frames as an animated, looping GIF, creating parent folders.

  Args:
    path: the .gif file.
    frames: uint8 [T, H, W, C], T >= 1. Grayscale frames and RGB frames of
      at most 256 colours are stored exactly; other RGB frames are mapped to
      an adaptive 256-colour palette without dithering.
    labels: optional text per frame, drawn by `caption` above it (each frame
      then has CAPTION_HEIGHT more rows).
    duration_ms: display time of each frame.

  Consecutive identical frames are merged into one longer frame by Pillow;
  distinct labels keep every frame.
  """
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (
      1, 3) or not len(frames):
    raise ValueError(f"save_gif needs uint8 [T >= 1, H, W, 1 or 3] frames, got "
                     f"{frames.dtype} {frames.shape}.")
  if labels is not None:
    if len(labels) != len(frames):
      raise ValueError(f"{len(labels)} labels for {len(frames)} frames.")
    frames = np.stack([caption(f, text) for f, text in zip(frames, labels)])
  pil_frames = [_gif_frame(f) for f in frames]
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("wb") as f:
    # optimize=False: no palette pruning or transparency tricks between frames.
    pil_frames[0].save(f, format="GIF", save_all=True,
                       append_images=pil_frames[1:], duration=duration_ms,
                       loop=0, optimize=False)


def read_gif(path: str) -> np.ndarray:
  """uint8 [T, H, W, C] of an animated GIF's frames as displayed.

  C = 1 if every frame is gray (R = G = B everywhere), else 3.
  """
  with epath.Path(path).open("rb") as f:
    with Image.open(f) as gif:
      frames = []
      for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")))
  frames = np.stack(frames)
  gray = np.all(frames == frames[..., :1])
  return frames[..., :1] if gray else frames
