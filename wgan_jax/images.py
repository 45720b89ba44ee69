"""Image grids and lossless PNG output.

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
