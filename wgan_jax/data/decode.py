"""One image: decoding, mode conversion, resizing; array images; stacking.

Files are decoded with Pillow; transparency is composited on white, 16-bit
images are rescaled (not clipped) to 8 bits, and `resize` brings every image
to image_size x image_size. Arrays from .npz / IDX / TFDS sources go through
the same conversion, so they match decoded files bitwise.
"""

import collections
from collections.abc import Sequence
import io

import numpy as np
from PIL import Image
from PIL import ImageOps

from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import listing
from wgan_jax.errors import DataError

RESIZE_MODES = ("keep", "resize", "resize_crop")


class DecodeFailure(Exception):
  """A file that is not a readable image; carries the reason."""


class SizeMismatch(Exception):
  """An image whose size differs from image_size under resize='keep'."""


def _convert_mode(img: Image.Image, mode: str) -> Image.Image:
  """Converts any Pillow image to 8-bit `mode` ('RGB' or 'L')."""
  if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
    # Pillow clips 16/32-bit values at 255 when converting to L; map the full
    # 16-bit range onto 8 bits instead (65535 -> 255, 257 * k -> k).
    wide = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
    img = Image.fromarray(np.round(wide / 257.0).astype(np.uint8))
  elif img.mode == "F":
    raise DecodeFailure("32-bit float pixels have no defined 0..255 range")
  if (img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or
      "transparency" in img.info):
    # Transparent pixels often hold arbitrary colour (black, garbage), so
    # dropping alpha would leak it into training; white is what a viewer shows.
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, rgba)
  return img if img.mode == mode else img.convert(mode)


def _resize(img: Image.Image, image_size: int, resize: str) -> Image.Image:
  """Brings `img` to image_size x image_size per `resize` (0 = unchanged)."""
  if image_size == 0 or img.size == (image_size, image_size):
    return img
  if resize == "keep":
    raise SizeMismatch(f"{img.width}x{img.height}")
  box = None
  if resize == "resize_crop":
    # Resizing the short side to image_size then cropping the centre equals
    # resizing the centred square of side min(w, h); integer offsets keep a
    # same-scale crop exact.
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    box = (left, top, left + side, top + side)
    if side == image_size:
      return img.crop(box)
  # LANCZOS is antialiased when shrinking; reducing_gap=3 first box-reduces
  # large images (AFHQ's 512 px), which Pillow documents as indistinguishable.
  return img.resize((image_size, image_size), Image.Resampling.LANCZOS,
                    box=box, reducing_gap=3.0)


def pil_to_array(img: Image.Image, mode: str, image_size: int,
                 resize: str) -> np.ndarray:
  """Pillow image -> uint8 [H, W, 1 | 3] in `mode`, resized.

  Raises:
    DecodeFailure: pixels without a 0..255 meaning (32-bit float).
    SizeMismatch: resize='keep' and the size is not image_size.
  """
  img = _resize(_convert_mode(img, mode), image_size, resize)
  array = np.asarray(img, dtype=np.uint8)
  return array[..., None] if array.ndim == 2 else array


def decode_image(data: bytes, mode: str, image_size: int,
                 resize: str) -> np.ndarray:
  """Encoded image bytes -> uint8 [H, W, C]; C = 1 for mode 'L', 3 for 'RGB'.

  Raises:
    DecodeFailure: not a readable image (unknown format, truncated, ...).
    SizeMismatch: resize='keep' and the size is not image_size.
  """
  try:
    img = Image.open(io.BytesIO(data))
    img.load()  # Decodes now, so truncated files fail here.
    ImageOps.exif_transpose(img, in_place=True)  # Camera rotation tags.
    return pil_to_array(img, mode, image_size, resize)
  except (DecodeFailure, SizeMismatch):
    raise
  except Exception as e:  # pylint: disable=broad-except
    # Pillow signals broken files with many types (OSError, SyntaxError,
    # ValueError, struct.error, ...) and rejects exotic modes (LAB) with
    # ValueError; for a dataset all of them mean "unusable file".
    raise DecodeFailure(f"{type(e).__name__}: {e}") from None


def _luma(images: np.ndarray) -> np.ndarray:
  """uint8 RGB [..., 3] -> uint8 [..., 1], ITU-R 601-2 exactly as Pillow's L."""
  rgb = images.astype(np.uint32)
  gray = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 +
          0x8000) >> 16
  return gray.astype(np.uint8)[..., None]


def process_array_images(images: np.ndarray, spec: Spec,
                         what: str) -> np.ndarray:
  """uint8 [N, H, W, C] from an array source -> configured channels and size."""
  channels = images.shape[-1]
  if channels not in (1, 3):
    raise DataError(f"{what} has {channels} channels (shape "
                    f"{list(images.shape)}); only 1 (grayscale) or 3 (RGB) "
                    "are supported: convert the array")
  target = spec.channels or channels
  if target == 1 and channels == 3:
    images = _luma(images)
  elif target == 3 and channels == 1:
    images = np.repeat(images, 3, axis=-1)
  size = spec.image_size
  if size and images.shape[1:3] != (size, size):
    if spec.resize == "keep":
      raise DataError(f"{what} images are {images.shape[2]}x{images.shape[1]}, "
                      f"not {size}x{size}, and config.data.resize='keep'; "
                      "set resize to 'resize' or 'resize_crop' or "
                      f"image_size to 0")
    mode = "L" if target == 1 else "RGB"
    images = np.stack([
        pil_to_array(Image.fromarray(im[..., 0] if target == 1 else im),
                     mode, size, spec.resize) for im in images])
  return images


def stack_same_size(arrays: Sequence[np.ndarray], names: Sequence[str],
                    where: str) -> np.ndarray:
  """Stacks [H, W, C] arrays; DataError naming files if sizes differ."""
  if not arrays:
    raise DataError(f"{where} holds no images; check config.data.path and "
                    "split")
  by_shape = collections.defaultdict(list)
  for name, array in zip(names, arrays):
    by_shape[array.shape].append(name)
  if len(by_shape) > 1:
    sizes = "; ".join(
        f"{s[1]}x{s[0]}: {len(n)} (e.g. {listing(n, 3)})"
        for s, n in sorted(by_shape.items(), key=lambda kv: -len(kv[1])))
    raise DataError(f"images in {where} have different sizes ({sizes}); set "
                    "config.data.image_size to resize them to one size")
  return np.stack(arrays)
