"""Input pipeline: whole datasets as host arrays, batches as a function of step.

Every source is loaded once into memory as a `Dataset`: uint8 images
[N, H, W, C] (C = 1 or 3), or float32 points [N, 2] for the toy sets.
`config.data.source` picks the source:

  folder           A directory or a .zip of images, flat (unlabeled) or with one
                   subfolder per class (labels = index in the sorted folder
                   names). Decoded with Pillow in threads; transparency is
                   composited on white; 16-bit images are rescaled, not clipped.
  fashion_mnist,   The original IDX files (.gz or raw) in `data.path`; with an
  mnist            empty path, /usr/share/datasets/{fashion-mnist,mnist}/ (the
                   Debian packages), then `tfds.data_source` (no TensorFlow).
  npz              Arrays `data.npz_images_key` / `data.npz_labels_key` of an
                   .npz file: NHWC, NCHW (transposed) or NHW (grayscale).
  tfds:NAME        `tfds.data_source(NAME, split)`: array_record, no TensorFlow.
  toy:8gaussians,  The 2-D mixtures of the WGAN-GP paper (Gulrajani et al.
  toy:25gaussians  2017, gan_toy.py), drawn from `seed`.

Images are converted to `data.channels` and brought to `data.image_size` per
`data.resize`. Any problem with the input raises one `DataError` that names
the file and the fix.

Cache: decoding a folder or a TFDS dataset takes seconds to minutes, so with
`cache_dir` the decoded arrays are stored in one .npz named by a sha256 of
everything that determines them (source, absolute path, file names + sizes +
mtimes, or the zip's size + mtime, split, image_size, channels, resize,
max_examples and its seed, Pillow version). It is written to a temporary
file and renamed (`os.replace`), so readers never see a partial cache; a
later load with the same key only reads that file. Stale entries are never
deleted: remove the directory to reclaim space.

Batches are not an iterator with state: `batch_indices(N, seed, step, ...)`
gives the example indices of generator step `step`, so a run resumed from a
checkpoint at step k sees exactly the batches of an uninterrupted run.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import math
import os
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import PIL
from PIL import Image
from PIL import ImageOps

Array = Any  # np.ndarray or jax.Array

RESIZE_MODES = ("keep", "resize", "resize_crop")
TOY_SOURCES = ("toy:8gaussians", "toy:25gaussians")
SOURCES = ("folder", "fashion_mnist", "mnist", "npz", "tfds:NAME") + TOY_SOURCES

IMAGE_EXTENSIONS = frozenset({
    ".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif",
    ".tiff", ".webp"})

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))

# Where the Debian packages dataset-fashion-mnist / dataset-mnist install the
# IDX files. Module-level so tests can point it elsewhere.
SYSTEM_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}

# More unreadable files than this fraction means a broken download, not a few
# bad files worth skipping.
MAX_BAD_FRACTION = 0.01

# Bump when decoding changes, so old cache entries stop matching.
_CACHE_VERSION = 1

# Independent random streams derived from the user's seed, one per purpose.
_STREAM_EPOCH = 0
_STREAM_SUBSET = 1
_STREAM_TOY = 2

_DEFAULTS = {
    "source": "",
    "path": "",
    "split": "train",
    "image_size": 0,
    "channels": 0,
    "resize": "resize",
    "random_flip": False,
    "max_examples": 0,
    "npz_images_key": "x_train",
    "npz_labels_key": "y_train",
    "toy_num_examples": 100_000,
}


class DataError(ValueError):
  """The configured data cannot be loaded; the message names file and fix."""


def _listing(items, limit: int | None = None) -> str:
  """'a, b, c' of the first `limit` items (all if None), for messages."""
  return ", ".join(str(i) for i in list(items)[:limit])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A whole dataset in host memory.

  Attributes:
    examples: uint8 images [N, H, W, C], C in {1, 3}, values 0..255; or, for
      toy sources, float32 points [N, 2]. Read-only from `load_dataset`.
    labels: int32 [N] class indices into `class_names`, or None if unlabeled.
    class_names: names of the classes; () if unlabeled.
    source: the `config.data.source` it came from.
  """
  examples: np.ndarray
  labels: np.ndarray | None
  class_names: tuple[str, ...] = ()
  source: str = ""

  def __post_init__(self):
    x = self.examples
    if x.ndim == 4:
      if x.dtype != np.uint8 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 [N, H, W, 1|3], got {x.dtype} "
                         f"{x.shape}")
    elif x.ndim != 2 or x.shape[1] != 2 or x.dtype != np.float32:
      raise ValueError(f"examples must be uint8 [N, H, W, C] or float32 [N, 2],"
                       f" got {x.dtype} {x.shape}")
    if self.labels is not None:
      if self.labels.dtype != np.int32 or self.labels.shape != (len(x),):
        raise ValueError(f"labels must be int32 [{len(x)}], got "
                         f"{self.labels.dtype} {self.labels.shape}")
      if len(x) and not 0 <= self.labels.min() <= self.labels.max() < len(
          self.class_names):
        raise ValueError(f"labels must lie in [0, {len(self.class_names)})")

  @property
  def is_image(self) -> bool:
    """True for uint8 images, False for toy points."""
    return self.examples.ndim == 4

  @property
  def num_examples(self) -> int:
    return len(self.examples)

  @property
  def example_shape(self) -> tuple[int, ...]:
    """(H, W, C) for images, (2,) for toy points."""
    return tuple(self.examples.shape[1:])

  @property
  def num_classes(self) -> int:
    """Number of classes; 0 if unlabeled."""
    return len(self.class_names)

  def __repr__(self) -> str:
    # The default repr would print the arrays.
    labels = None if self.labels is None else "int32"
    names = self.class_names
    if len(names) > 10:
      names = f"<{len(names)} names>"
    return (f"Dataset(source={self.source!r}, examples={self.examples.dtype}"
            f"{list(self.examples.shape)}, labels={labels}, "
            f"class_names={names})")


@dataclasses.dataclass(frozen=True)
class _Spec:
  """Validated `config.data` fields."""
  source: str
  path: str
  split: str
  image_size: int
  channels: int
  resize: str
  random_flip: bool
  max_examples: int
  npz_images_key: str
  npz_labels_key: str
  toy_num_examples: int

  @property
  def pil_mode(self) -> str:
    return "L" if self.channels == 1 else "RGB"


def _read_spec(data: ml_collections.ConfigDict) -> _Spec:
  """Reads and checks `config.data`; missing fields take their defaults."""
  values = {k: data.get(k, default) for k, default in _DEFAULTS.items()}
  spec = _Spec(**values)
  source = spec.source
  if not isinstance(source, str) or not (
      source in SOURCES or source.startswith("tfds:") and source != "tfds:"):
    raise DataError(f"config.data.source={source!r} is not a known source; use "
                    f"one of {_listing(SOURCES)}")
  if spec.resize not in RESIZE_MODES:
    raise DataError(f"config.data.resize={spec.resize!r}; use one of "
                    f"{_listing(RESIZE_MODES)}")
  if spec.channels not in (0, 1, 3):
    raise DataError(f"config.data.channels={spec.channels!r}; use 1 "
                    "(grayscale), 3 (RGB) or 0 (the source's own)")
  if not isinstance(spec.image_size, int) or spec.image_size < 0:
    raise DataError(f"config.data.image_size={spec.image_size!r}; use a "
                    "positive size or 0 to keep the source size")
  if not isinstance(spec.max_examples, int) or spec.max_examples < 0:
    raise DataError(f"config.data.max_examples={spec.max_examples!r}; use a "
                    "positive count or 0 for all")
  if source in TOY_SOURCES:
    if spec.toy_num_examples <= 0:
      raise DataError(f"config.data.toy_num_examples={spec.toy_num_examples}; "
                      "use a positive count")
    if spec.random_flip:
      raise DataError(f"config.data.random_flip=True needs images, but {source}"
                      " gives 2-D points; set random_flip=False")
  return spec


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
  """Generator for one purpose (`stream`) and index, derived from `seed`."""
  # SeedSequence takes only non-negative entropy; wrap negatives to 64 bits.
  return np.random.default_rng(
      np.random.SeedSequence(int(seed) % 2**64, spawn_key=(stream, index)))


def _subset(total: int, max_examples: int, seed: int) -> np.ndarray:
  """Indices (sorted, int64) of the first `max_examples` of a seeded shuffle."""
  if max_examples == 0 or max_examples >= total:
    return np.arange(total)
  order = _rng(seed, _STREAM_SUBSET).permutation(total)
  return np.sort(order[:max_examples])


# ----------------------------------------------------------------------------
# Decoding one image.


class _DecodeFailure(Exception):
  """A file that is not a readable image; carries the reason."""


class _SizeMismatch(Exception):
  """An image whose size differs from image_size under resize='keep'."""


def _convert_mode(img: Image.Image, mode: str) -> Image.Image:
  """Converts any Pillow image to 8-bit `mode` ('RGB' or 'L')."""
  if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
    # Pillow clips 16/32-bit values at 255 when converting to L; map the full
    # 16-bit range onto 8 bits instead (65535 -> 255, 257 * k -> k).
    wide = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
    img = Image.fromarray(np.round(wide / 257.0).astype(np.uint8))
  elif img.mode == "F":
    raise _DecodeFailure("32-bit float pixels have no defined 0..255 range")
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
    raise _SizeMismatch(f"{img.width}x{img.height}")
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


def _pil_to_array(img: Image.Image, mode: str, image_size: int,
                  resize: str) -> np.ndarray:
  """Pillow image -> uint8 [H, W, 1 | 3] in `mode`, resized."""
  img = _resize(_convert_mode(img, mode), image_size, resize)
  array = np.asarray(img, dtype=np.uint8)
  return array[..., None] if array.ndim == 2 else array


def _decode_image(data: bytes, mode: str, image_size: int,
                  resize: str) -> np.ndarray:
  """Encoded image bytes -> uint8 [H, W, C]; C = 1 for mode 'L', 3 for 'RGB'.

  Raises:
    _DecodeFailure: not a readable image (unknown format, truncated, ...).
    _SizeMismatch: resize='keep' and the size is not image_size.
  """
  try:
    img = Image.open(io.BytesIO(data))
    img.load()  # Decodes now, so truncated files fail here.
    ImageOps.exif_transpose(img, in_place=True)  # Camera rotation tags.
    return _pil_to_array(img, mode, image_size, resize)
  except (_DecodeFailure, _SizeMismatch):
    raise
  except Exception as e:  # pylint: disable=broad-except
    # Pillow signals broken files with many types (OSError, SyntaxError,
    # ValueError, struct.error, ...) and rejects exotic modes (LAB) with
    # ValueError; for a dataset all of them mean "unusable file".
    raise _DecodeFailure(f"{type(e).__name__}: {e}") from None


def _luma(images: np.ndarray) -> np.ndarray:
  """uint8 RGB [..., 3] -> uint8 [..., 1], ITU-R 601-2 exactly as Pillow's L."""
  rgb = images.astype(np.uint32)
  gray = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 +
          0x8000) >> 16
  return gray.astype(np.uint8)[..., None]


def _process_array_images(images: np.ndarray, spec: _Spec,
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
        _pil_to_array(Image.fromarray(im[..., 0] if target == 1 else im),
                      mode, size, spec.resize) for im in images])
  return images


def _stack_same_size(arrays: Sequence[np.ndarray], names: Sequence[str],
                     where: str) -> np.ndarray:
  """Stacks [H, W, C] arrays; DataError naming files if sizes differ."""
  if not arrays:
    raise DataError(f"{where} holds no images; check config.data.path and "
                    "split")
  by_shape = collections.defaultdict(list)
  for name, array in zip(names, arrays):
    by_shape[array.shape].append(name)
  if len(by_shape) > 1:
    listing = "; ".join(
        f"{s[1]}x{s[0]}: {len(n)} (e.g. {_listing(n, 3)})"
        for s, n in sorted(by_shape.items(), key=lambda kv: -len(kv[1])))
    raise DataError(f"images in {where} have different sizes ({listing}); set "
                    "config.data.image_size to resize them to one size")
  return np.stack(arrays)


# ----------------------------------------------------------------------------
# Folder / zip.


class _FolderReader:
  """Lists and reads the files of a directory; `read` is thread-safe."""

  def __init__(self, path: str):
    self.path = path
    names = []
    for root, dirs, files in os.walk(path):
      dirs[:] = sorted(d for d in dirs if not _hidden(d))
      rel = os.path.relpath(root, path)
      for f in files:
        if not _hidden(f):
          names.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    self.names = sorted(names)

  def signature(self, names: Sequence[str]) -> list[Any]:
    """Name, size and mtime of each file: changes when any file does."""
    out = []
    for name in names:
      st = os.stat(os.path.join(self.path, name))
      out.append([name, st.st_size, st.st_mtime_ns])
    return out

  def read(self, name: str) -> bytes:
    with open(os.path.join(self.path, name), "rb") as f:
      return f.read()

  def close(self):
    pass


class _ZipReader:
  """Lists and reads the members of a .zip; `read` is thread-safe."""

  def __init__(self, path: str):
    self.path = path
    try:
      self._zip = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
      raise DataError(f"{path} is not a readable .zip ({e}); re-download it "
                      "or point config.data.path at an image folder") from None
    self.names = sorted(
        i.filename for i in self._zip.infolist()
        if not i.is_dir() and not any(
            _hidden(p) for p in i.filename.split("/")))
    # One handle shared by the decode threads: reading a member takes
    # microseconds next to decoding it, so a lock costs nothing, and reopening
    # the central directory per thread would (0.3 s for 33k members).
    self._lock = threading.Lock()

  def read(self, name: str) -> bytes:
    with self._lock:
      return self._zip.read(name)

  def close(self):
    self._zip.close()


def _hidden(name: str) -> bool:
  # macOS zips carry __MACOSX/ resource forks and ._* / .DS_Store files.
  return name.startswith(".") or name == "__MACOSX"


def _is_image_name(name: str) -> bool:
  return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _folder_layout(
    names: Sequence[str], where: str
) -> tuple[list[str], np.ndarray | None, tuple[str, ...]]:
  """Image paths -> (paths, int32 labels or None, class names).

  Flat: every image in the root, unlabeled. Classes: every image inside a
  first-level subfolder (at any depth), labelled by that folder's rank in
  sorted order. A lone wrapper folder that holds only subfolders (as in
  `afhq/train/{cat,dog}/` of a downloaded zip) is looked through.
  """
  prefix = ""
  while True:
    relative = [n[len(prefix):] for n in names]
    tops = {r.split("/", 1)[0] for r in relative if "/" in r}
    if len(tops) != 1 or any("/" not in r for r in relative):
      break
    top = tops.pop() + "/"
    if any("/" not in r[len(top):] for r in relative):
      break  # Images directly inside: a single class, not a wrapper.
    prefix += top
  if prefix:
    logging.info("Looking through the wrapper folder %s of %s", prefix, where)
  relative = [n[len(prefix):] for n in names]
  in_root = [r for r in relative if "/" not in r]
  nested = [r for r in relative if "/" in r]
  if not nested:
    return list(names), None, ()
  if in_root:
    folders = sorted({r.split("/", 1)[0] for r in nested})
    raise DataError(
        f"{where} has images both in {prefix or 'its root'} (e.g. "
        f"{_listing(in_root, 3)}) and in subfolders "
        f"({_listing(folders, 5)}); for a labelled set put every image in a "
        "class subfolder, for an unlabeled set move them all to one folder")
  class_names = tuple(sorted({r.split("/", 1)[0] for r in nested}))
  index = {c: i for i, c in enumerate(class_names)}
  labels = np.array([index[r.split("/", 1)[0]] for r in nested], np.int32)
  return list(names), labels, class_names


def _num_threads() -> int:
  # Pillow releases the GIL while decoding and resizing, so threads pay off
  # for large images (AFHQ's 512 px); for 64 px JPEGs Python overhead
  # dominates and extra threads neither help nor hurt much.
  return max(1, min(8, os.cpu_count() or 1))


def _decode_files(
    reader, names: Sequence[str], spec: _Spec
) -> tuple[np.ndarray | list[np.ndarray | None], np.ndarray,
           list[tuple[str, str]], list[tuple[str, str]]]:
  """Decodes `names` in threads.

  Returns:
    images: with image_size > 0, uint8 [len(names), S, S, C] written in place
      (no second copy of a large set); else a list of uint8 [H, W, C].
    ok: bool [len(names)], False where decoding failed (image undefined).
    bad: sorted (name, reason) of unreadable files.
    wrong_size: sorted (name, 'WxH') of files rejected by resize='keep'.
  """
  size = spec.image_size
  channels = 1 if spec.pil_mode == "L" else 3
  images = (np.empty((len(names), size, size, channels), np.uint8) if size
            else [None] * len(names))
  ok = np.zeros(len(names), bool)
  bad, wrong_size = [], []  # list.append is atomic under the GIL.

  def work(indices: range):
    for i in indices:
      try:
        data = reader.read(names[i])
      except Exception as e:  # pylint: disable=broad-except
        bad.append((names[i], f"cannot read: {e}"))
        continue
      try:
        images[i] = _decode_image(data, spec.pil_mode, size, spec.resize)
        ok[i] = True
      except _DecodeFailure as e:
        bad.append((names[i], str(e)))
      except _SizeMismatch as e:
        wrong_size.append((names[i], str(e)))

  # Chunks amortize the executor's per-task cost over many small images.
  chunk = 256
  chunks = [range(s, min(s + chunk, len(names)))
            for s in range(0, len(names), chunk)]
  with concurrent.futures.ThreadPoolExecutor(_num_threads()) as pool:
    for _ in pool.map(work, chunks):
      pass
  return images, ok, sorted(bad), sorted(wrong_size)


def _load_folder(spec: _Spec, cache_dir: str | None, seed: int) -> Dataset:
  """Images of a directory or .zip; see the module docstring."""
  if not spec.path:
    raise DataError("config.data.path is empty; set it to a folder or .zip of "
                    "images for source='folder'")
  path = os.path.abspath(os.path.expanduser(spec.path))
  if not os.path.exists(path):
    raise DataError(f"{path} does not exist; set config.data.path to a folder "
                    "or .zip of images")
  if spec.split != "train":
    logging.warning("source=folder has no splits: split=%r is ignored, all of "
                    "%s is used", spec.split, path)
  if os.path.isdir(path):
    reader = _FolderReader(path)
    signature = reader.signature([n for n in reader.names
                                  if _is_image_name(n)])
  elif zipfile.is_zipfile(path):
    # The archive's size and mtime change whenever a member does, so a cache
    # hit needs no look inside (listing 33k members alone takes 0.2-0.4 s).
    reader = None
    st = os.stat(path)
    signature = [st.st_size, st.st_mtime_ns]
  else:
    raise DataError(f"{path} is neither a folder nor a .zip; set "
                    "config.data.path to a folder or .zip of images")

  def build() -> Dataset:
    r = reader or _ZipReader(path)
    try:
      return _decode_folder(r, spec, seed, path)
    finally:
      r.close()

  key = {"path": path, "files": signature, "split": spec.split}
  return _cached(cache_dir, spec, key, seed, os.path.basename(path), build)


def _decode_folder(reader, spec: _Spec, seed: int, path: str) -> Dataset:
  """Lists, subsets and decodes the images of `reader` into a Dataset."""
  image_names = [n for n in reader.names if _is_image_name(n)]
  if not image_names:
    others = (f"it holds e.g. {_listing(reader.names, 3)}" if reader.names
              else "it is empty")
    raise DataError(
        f"no image files ({_listing(sorted(IMAGE_EXTENSIONS))}) in {path} "
        f"({others}); point config.data.path at the images")
  names, labels, class_names = _folder_layout(image_names, path)
  keep = _subset(len(names), spec.max_examples, seed)
  names = [names[i] for i in keep]
  labels = None if labels is None else labels[keep]

  logging.info("Decoding %d images from %s", len(names), path)
  images, ok, bad, wrong_size = _decode_files(reader, names, spec)
  if wrong_size:
    listing = ", ".join(f"{n} ({s})" for n, s in wrong_size[:5])
    raise DataError(
        f"{len(wrong_size)} of {len(names)} images in {path} are not "
        f"{spec.image_size}x{spec.image_size}, e.g. {listing}; "
        "config.data.resize='keep' requires that size: set resize to "
        "'resize' or 'resize_crop'")
  if bad:
    listing = "; ".join(f"{n}: {r}" for n, r in bad[:5])
    if len(bad) == len(names):
      raise DataError(f"no decodable image in {path}: all {len(names)} files "
                      f"failed, e.g. {listing}; check that these are images")
    if len(bad) > MAX_BAD_FRACTION * len(names):
      raise DataError(
          f"{len(bad)} of {len(names)} files in {path} are unreadable "
          f"(more than {MAX_BAD_FRACTION:.0%}), e.g. {listing}; re-download "
          "or delete them")
    logging.warning("Skipped %d unreadable of %d files in %s: %s", len(bad),
                    len(names), path, listing)
  if isinstance(images, np.ndarray):
    examples = images if ok.all() else images[ok]
  else:
    kept = np.flatnonzero(ok)
    examples = _stack_same_size([images[i] for i in kept],
                                [names[i] for i in kept], path)
  return Dataset(examples, None if labels is None else labels[ok],
                 class_names, spec.source)


def _cached(cache_dir: str | None, spec: _Spec, key: dict[str, Any],
            seed: int, label: str, build: Callable[[], Dataset]) -> Dataset:
  """Returns build(), stored under cache_dir keyed by `key` + preprocessing."""
  if cache_dir is None:
    return build()
  full_key = dict(
      key, version=_CACHE_VERSION, pillow=PIL.__version__, source=spec.source,
      image_size=spec.image_size, channels=spec.channels, resize=spec.resize,
      max_examples=spec.max_examples,
      # The subset depends on the seed; the full set does not.
      subset_seed=seed if spec.max_examples else None)
  digest = hashlib.sha256(
      json.dumps(full_key, sort_keys=True).encode()).hexdigest()[:24]
  safe_label = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
  name = f"{spec.source.replace(':', '_')}-{safe_label}-{digest}.npz"
  file = os.path.join(os.path.expanduser(cache_dir), name)
  if os.path.exists(file):
    try:
      dataset = _read_cache(file, spec.source)
      logging.info("Loaded %s from cache %s", dataset, file)
      return dataset
    except Exception as e:  # pylint: disable=broad-except
      # A cache is disposable: anything wrong with it means rebuild it.
      logging.warning("Ignoring unreadable cache %s (%s); rebuilding", file, e)
  dataset = build()
  try:
    _write_cache(file, dataset)
    logging.info("Cached %s as %s", dataset, file)
  except OSError as e:
    logging.warning("Could not write cache %s: %s", file, e)
  return dataset


def _write_cache(file: str, dataset: Dataset):
  """Writes `dataset` to `file` atomically (temporary file + os.replace)."""
  directory = os.path.dirname(file)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  try:
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache.
    with os.fdopen(fd, "wb") as f:
      np.savez(
          f, examples=dataset.examples,
          labels=(np.zeros(0, np.int32) if dataset.labels is None
                  else dataset.labels),
          has_labels=np.array(dataset.labels is not None),
          class_names=np.array(dataset.class_names, dtype=np.str_))
    os.replace(tmp, file)
  except BaseException:
    os.unlink(tmp)
    raise


def _read_cache(file: str, source: str) -> Dataset:
  with np.load(file, allow_pickle=False) as f:
    examples = f["examples"]
    labels = f["labels"] if bool(f["has_labels"]) else None
    class_names = tuple(str(c) for c in f["class_names"])
  return Dataset(_read_only(examples), _read_only(labels), class_names, source)


def _read_only(x: np.ndarray | None) -> np.ndarray | None:
  # The dataset is shared by everything that samples from it; an in-place
  # edit (e.g. augmentation) would silently change every later batch.
  if x is not None:
    x.flags.writeable = False
  return x


# ----------------------------------------------------------------------------
# MNIST / Fashion-MNIST.

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def _find_idx(directory: str, stem: str) -> str | None:
  """Path of an IDX file, .gz or raw, '-idx' or '.idx' (Kaggle) naming."""
  for name in (stem, stem.replace("-idx", ".idx")):
    for suffix in (".gz", ""):
      candidate = os.path.join(directory, name + suffix)
      if os.path.isfile(candidate):
        return candidate
  return None


def _read_idx(path: str, magic: int) -> np.ndarray:
  """Reads an unsigned-byte IDX file (.gz or raw) -> uint8 [dims...].

  Raises:
    DataError: wrong magic number, or data length not matching the header.
  """
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic; the file name may not say.
      raw = gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"cannot read {path} ({e}); re-download it") from None
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
  if found != magic or len(raw) < header:
    raise DataError(f"{path} is not an IDX file of {ndim}-D unsigned bytes "
                    f"(magic {found!r}, expected {magic:#010x}); check that "
                    "images and labels files are not swapped or corrupt")
  dims = struct.unpack(f">{ndim}I", raw[4:header])
  if len(raw) - header != math.prod(dims):
    raise DataError(f"{path}: header says {list(dims)} = {math.prod(dims)} "
                    f"bytes of data but the file has {len(raw) - header}; it "
                    "is truncated or corrupt: re-download it")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _load_idx_pair(directory: str, split: str, num_classes: int
                   ) -> tuple[np.ndarray, np.ndarray] | None:
  """(uint8 [N, H, W, 1], int32 [N]) from `directory`, or None if absent."""
  images_stem, labels_stem = _IDX_FILES[split]
  images_path = _find_idx(directory, images_stem)
  labels_path = _find_idx(directory, labels_stem)
  if images_path is None or labels_path is None:
    return None
  images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
  labels = _read_idx(labels_path, _IDX_LABELS_MAGIC)
  if len(images) != len(labels):
    raise DataError(f"{images_path} has {len(images)} images but "
                    f"{labels_path} has {len(labels)} labels; re-download "
                    "the pair")
  if len(labels) and labels.max() >= num_classes:
    raise DataError(f"{labels_path} has label {labels.max()}, expected "
                    f"0..{num_classes - 1}; is it the right dataset?")
  return images[..., None], labels.astype(np.int32)


def _load_mnist_like(spec: _Spec, seed: int) -> Dataset:
  """MNIST or Fashion-MNIST from IDX files, the Debian folder, or TFDS."""
  name = spec.source
  class_names = (FASHION_MNIST_CLASSES if name == "fashion_mnist" else
                 MNIST_CLASSES)
  if spec.split not in _IDX_FILES:
    raise DataError(f"config.data.split={spec.split!r}; {name} has the splits "
                    "'train' and 'test'")
  expected = ", ".join(f"{s}[.gz]" for s in _IDX_FILES[spec.split])
  if spec.path:
    directory = os.path.abspath(os.path.expanduser(spec.path))
    pair = _load_idx_pair(directory, spec.split, len(class_names))
    if pair is None:
      raise DataError(f"{directory} does not hold the {name} IDX files "
                      f"{expected}; set config.data.path to their folder, or "
                      "to '' to search the default places")
    where = directory
  else:
    directory = SYSTEM_DIRS[name]
    pair = _load_idx_pair(directory, spec.split, len(class_names))
    where = directory
    if pair is None:
      pair = _idx_pair_from_tfds(name, spec.split, directory, expected)
      where = f"tfds:{name}"
  images, labels = pair
  keep = _subset(len(images), spec.max_examples, seed)
  images = _process_array_images(images[keep], spec, f"{name} ({where})")
  logging.info("Loaded %s %s split from %s", name, spec.split, where)
  return Dataset(_read_only(images), _read_only(labels[keep]), class_names,
                 name)


def _idx_pair_from_tfds(name: str, split: str, system_dir: str,
                        expected: str) -> tuple[np.ndarray, np.ndarray]:
  """The last fallback for MNIST-like sources: tfds.data_source."""
  try:
    source = _tfds_source(name, split, None)
  except DataError as e:
    raise DataError(
        f"{name} not found: no {expected} in {system_dir}, and {e}. Fix: set "
        "config.data.path to a folder with the IDX files (`bash "
        "../shared/data/fetch.sh DIR` fetches Fashion-MNIST), or put them in "
        f"{system_dir}") from None
  images, labels = [], []
  for i in range(len(source)):
    example = source[i]
    images.append(np.asarray(example["image"], np.uint8).reshape(28, 28, 1))
    labels.append(int(example["label"]))
  return np.stack(images), np.array(labels, np.int32)


# ----------------------------------------------------------------------------
# TFDS.


def _tfds_source(name: str, split: str, data_dir: str | None):
  """tfds.data_source(name, split), with failures as DataError."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except
    # TFDS raises assorted types (DatasetNotFoundError, FileNotFoundError,
    # AssertionError, ...) for the same user-level problem.
    reason = str(e) if len(str(e)) < 300 else str(e)[:300] + " ..."
    raise DataError(
        f"tfds.data_source({name!r}, split={split!r}, data_dir={data_dir!r}) "
        f"failed ({type(e).__name__}: {reason}); check the name and split, and "
        "prepare the dataset in array_record format first (`tfds build "
        f"{name} --file_format=array_record`)") from None


def _load_tfds(spec: _Spec, cache_dir: str | None, seed: int) -> Dataset:
  """Images (and the 'label' ClassLabel, if any) of a TFDS dataset."""
  name = spec.source[len("tfds:"):]
  source = _tfds_source(name, spec.split, spec.path or None)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = source.dataset_info.features
  image_keys = [k for k, f in features.items()
                if isinstance(f, tfds.features.Image)]
  if not image_keys:
    raise DataError(f"tfds:{name} has no image feature (features: "
                    f"{_listing(features)}); use another source")
  image_key = "image" if "image" in image_keys else image_keys[0]
  label_feature = features["label"] if "label" in features else None
  has_labels = hasattr(label_feature, "names")
  class_names = tuple(label_feature.names) if has_labels else ()
  natural_channels = features[image_key].shape[-1]
  if spec.channels == 0 and natural_channels not in (1, 3):
    raise DataError(f"tfds:{name} images have {natural_channels} channels; "
                    "set config.data.channels to 1 or 3")
  mode = "L" if (spec.channels or natural_channels) == 1 else "RGB"
  keep = _subset(len(source), spec.max_examples, seed)

  def build() -> Dataset:
    logging.info("Reading %d examples of tfds:%s %s", len(keep), name,
                 spec.split)
    arrays, labels, names = [], [], []
    for i in keep:
      example = source[int(i)]
      image = np.asarray(example[image_key], np.uint8)
      if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
      try:
        arrays.append(_pil_to_array(Image.fromarray(image), mode,
                                    spec.image_size, spec.resize))
      except _SizeMismatch as e:
        raise DataError(
            f"tfds:{name} example {i} is {e}, not {spec.image_size}x"
            f"{spec.image_size}, and config.data.resize='keep'; set resize "
            "to 'resize' or 'resize_crop'") from None
      names.append(f"example {i}")
      if has_labels:
        labels.append(int(example["label"]))
    examples = _stack_same_size(arrays, names, f"tfds:{name}")
    return Dataset(examples, np.array(labels, np.int32) if has_labels else None,
                   class_names, spec.source)

  data_dir = str(getattr(source.dataset_info, "data_dir", "") or "")
  files = []
  if os.path.isdir(data_dir):
    files = [[f, os.path.getsize(os.path.join(data_dir, f)),
              os.stat(os.path.join(data_dir, f)).st_mtime_ns]
             for f in sorted(os.listdir(data_dir))]
  key = {"name": name, "split": spec.split, "data_dir": data_dir,
         "files": files, "num_records": len(source)}
  return _cached(cache_dir, spec, key, seed, name, build)


# ----------------------------------------------------------------------------
# NPZ.


def _load_npz(spec: _Spec, seed: int) -> Dataset:
  """Images (and labels) from named arrays of an .npz file."""
  path = os.path.abspath(os.path.expanduser(spec.path)) if spec.path else ""
  if not path or not os.path.isfile(path):
    raise DataError(f".npz file {path or '(config.data.path is empty)'} does "
                    "not exist; set config.data.path to it")
  if spec.split != "train":
    logging.warning("source=npz ignores split=%r: the arrays are chosen by "
                    "npz_images_key / npz_labels_key", spec.split)
  try:
    with np.load(path, allow_pickle=False) as f:
      keys = list(f.keys())
      if spec.npz_images_key not in keys:
        raise DataError(f"{path} has no array {spec.npz_images_key!r} (it has "
                        f"{_listing(keys)}); set config.data.npz_images_key")
      if spec.npz_labels_key and spec.npz_labels_key not in keys:
        raise DataError(f"{path} has no array {spec.npz_labels_key!r} (it has "
                        f"{_listing(keys)}); set config.data.npz_labels_key, "
                        "or to '' for unlabeled images")
      images = f[spec.npz_images_key]
      labels = f[spec.npz_labels_key] if spec.npz_labels_key else None
  except DataError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"cannot read {path} as .npz ({e}); re-create it with "
                    "numpy.savez") from None
  what = f"{path}[{spec.npz_images_key!r}]"
  images = _npz_images(images, what)
  labels = _npz_labels(labels, len(images), path, spec.npz_labels_key)
  keep = _subset(len(images), spec.max_examples, seed)
  images = _process_array_images(images[keep], spec, what)
  class_names = ()
  if labels is not None:
    labels = labels[keep]
    # An .npz carries no class names; number them so num_classes is right.
    class_names = tuple(str(i) for i in range(int(labels.max(initial=-1)) + 1))
  return Dataset(_read_only(images), _read_only(labels), class_names,
                 spec.source)


def _npz_images(images: np.ndarray, what: str) -> np.ndarray:
  """NHWC / NCHW / NHW integer array with values 0..255 -> uint8 NHWC."""
  if not np.issubdtype(images.dtype, np.integer):
    raise DataError(f"{what} is {images.dtype}; store uint8 pixels 0..255 "
                    "(e.g. np.round(x * 255).astype(np.uint8))")
  if images.dtype != np.uint8:
    if images.size and (images.min() < 0 or images.max() > 255):
      raise DataError(f"{what} ({images.dtype}) has values outside 0..255; "
                      "store uint8 pixels")
    images = images.astype(np.uint8)
  if images.ndim == 3:
    return images[..., None]
  if images.ndim == 4 and images.shape[-1] in (1, 3):
    return images
  if images.ndim == 4 and images.shape[1] in (1, 3):
    logging.info("%s has shape %s: reading it as NCHW and transposing to NHWC",
                 what, list(images.shape))
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
  raise DataError(f"{what} has shape {list(images.shape)}, not [N, H, W] "
                  "or [N, H, W, C] / [N, C, H, W] with 1 or 3 channels; "
                  "convert it to grayscale or RGB (e.g. drop alpha with "
                  "x[..., :3])")


def _npz_labels(labels: np.ndarray | None, n: int, path: str,
                key: str) -> np.ndarray | None:
  if labels is None:
    return None
  if labels.ndim == 2 and labels.shape[1] == 1:  # Keras-style [N, 1].
    labels = labels[:, 0]
  if (labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or
      (n and labels.min() < 0)):
    raise DataError(f"{path}[{key!r}] must hold {n} non-negative integer "
                    f"labels, got {labels.dtype} {list(labels.shape)}; fix "
                    "config.data.npz_labels_key ('' for unlabeled)")
  return labels.astype(np.int32)


# ----------------------------------------------------------------------------
# Toy 2-D mixtures (WGAN-GP paper, gan_toy.py).


def _toy_name(name: str) -> str:
  name = name[len("toy:"):] if name.startswith("toy:") else name
  if f"toy:{name}" not in TOY_SOURCES:
    raise DataError(f"unknown toy dataset {name!r}; use one of "
                    f"{_listing(TOY_SOURCES)}")
  return name


def _toy_spec(name: str) -> tuple[np.ndarray, float, float]:
  """(float64 centres [M, 2] before scaling, noise std, divisor)."""
  if name == "8gaussians":
    r = 1.0 / np.sqrt(2.0)
    unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r),
            (-r, -r)]
    return 2.0 * np.array(unit, np.float64), 0.02, 1.414
  grid = [(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)]
  return np.array(grid, np.float64), 0.05, 2.828


def toy_modes(name: str) -> np.ndarray:
  """Mode centres of a toy set ('toy:8gaussians' or '8gaussians', ...).

  Returns:
    float32 [M, 2]: M = 8 or 25, in data units (after the paper's division
    by 1.414 resp. 2.828).
  """
  centres, _, divisor = _toy_spec(_toy_name(name))
  return (centres / divisor).astype(np.float32)


def toy_points(name: str, num_examples: int, seed: int) -> np.ndarray:
  """Samples of a toy mixture as in gan_toy.py, deterministic in `seed`.

  8gaussians: uniform random mode, std 0.02, then / 1.414. 25gaussians:
  num_examples / 25 points per mode (balanced, shuffled), std 0.05, / 2.828.

  Returns:
    float32 [num_examples, 2].
  """
  name = _toy_name(name)
  centres, std, divisor = _toy_spec(name)
  rng = _rng(seed, _STREAM_TOY)
  if name == "8gaussians":
    modes = rng.integers(0, len(centres), num_examples)
  else:
    modes = rng.permutation(np.arange(num_examples) % len(centres))
  points = centres[modes] + std * rng.standard_normal((num_examples, 2))
  return (points / divisor).astype(np.float32)


def _load_toy(spec: _Spec, seed: int) -> Dataset:
  points = toy_points(spec.source, spec.toy_num_examples, seed)
  points = points[_subset(len(points), spec.max_examples, seed)]
  return Dataset(_read_only(points), None, (), spec.source)


# ----------------------------------------------------------------------------
# Entry point.


def load_dataset(data: ml_collections.ConfigDict, cache_dir: str | None = None,
                 seed: int = 0) -> Dataset:
  """Loads `config.data` into memory.

  Args:
    data: the `config.data` ConfigDict (fields in the module docstring);
      missing fields take their defaults.
    cache_dir: where decoded folder / TFDS images are cached; None = no cache.
    seed: picks the max_examples subset and draws the toy points.

  Returns:
    A Dataset with read-only arrays: uint8 [N, H, W, C] images, or float32
    [N, 2] toy points.

  Raises:
    DataError: the configuration or the data is unusable; the message says
      which file and how to fix it.
  """
  spec = _read_spec(data)
  if spec.source in TOY_SOURCES:
    dataset = _load_toy(spec, seed)
  elif spec.source == "folder":
    dataset = _load_folder(spec, cache_dir, seed)
  elif spec.source in ("fashion_mnist", "mnist"):
    dataset = _load_mnist_like(spec, seed)
  elif spec.source == "npz":
    dataset = _load_npz(spec, seed)
  else:
    dataset = _load_tfds(spec, cache_dir, seed)
  if len(dataset.examples) == 0:
    raise DataError(f"{spec.source} at {spec.path or '(default)'} gave no "
                    "examples; check config.data.path and split")
  _read_only(dataset.examples)
  _read_only(dataset.labels)
  logging.info("Loaded %s", dataset)
  return dataset


# ----------------------------------------------------------------------------
# Batches.


@functools.lru_cache(maxsize=16)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """Read-only int32 [num_examples]: the example order of epoch `epoch`."""
  order = _rng(seed, _STREAM_EPOCH, epoch).permutation(num_examples)
  order = order.astype(np.int32)
  order.flags.writeable = False  # Shared by every caller through the cache.
  return order


def batch_indices(num_examples: int, seed: int, step: int, n_critic: int,
                  batch_size: int) -> np.ndarray:
  """Example indices for generator step `step`; a pure function of its args.

  The examples form an infinite stream, the concatenation of one permutation
  per epoch (epoch e: `np.random.default_rng(np.random.SeedSequence(seed,
  spawn_key=(0, e))).permutation(num_examples)`). Step `step` takes positions
  [step * n_critic * batch_size, (step + 1) * n_critic * batch_size), so
  batches cross epoch boundaries and a resumed run continues exactly.

  Returns:
    int32 [n_critic, batch_size]: row i is the batch of critic update i.
  """
  num_examples, seed, step = int(num_examples), int(seed), int(step)
  n_critic, batch_size = int(n_critic), int(batch_size)
  if num_examples < 1 or step < 0 or n_critic < 1 or batch_size < 1:
    raise ValueError(
        f"batch_indices needs num_examples, n_critic, batch_size >= 1 and "
        f"step >= 0; got {num_examples}, {n_critic}, {batch_size}, {step}")
  per_step = n_critic * batch_size
  start, stop = step * per_step, (step + 1) * per_step
  parts = []
  for epoch in range(start // num_examples, (stop - 1) // num_examples + 1):
    offset = epoch * num_examples
    order = _epoch_permutation(num_examples, seed, epoch)
    parts.append(order[max(start - offset, 0):min(stop - offset,
                                                    num_examples)])
  return np.concatenate(parts).reshape(n_critic, batch_size)


# ----------------------------------------------------------------------------
# Value ranges (host and device).


def _xp(x: Array):
  # jax.Array includes tracers, so this stays on device under jit.
  return jnp if isinstance(x, jax.Array) else np


def to_model_range(images: Array, output_activation: str) -> Array:
  """uint8 images -> float32 in the generator's output range.

  Args:
    images: uint8 [..., H, W, C] (0..255), or float points (toy sources).
    output_activation: 'tanh' -> [-1, 1] as x / 127.5 - 1; 'sigmoid' ->
      [0, 1] as x / 255. Ignored for float input (toy points, 'linear').

  Returns:
    float32, same shape and array type (np or jax) as `images`. Float input
    is returned unchanged apart from the cast.
  """
  # jnp.issubdtype also knows bfloat16, which np.issubdtype does not.
  if jnp.issubdtype(images.dtype, jnp.floating):
    return images.astype(np.float32)
  if images.dtype != np.uint8:
    raise ValueError(f"to_model_range expects uint8 images or float points, "
                     f"got {images.dtype}")
  x = images.astype(np.float32)
  if output_activation == "tanh":
    return x / 127.5 - 1.0
  if output_activation == "sigmoid":
    return x / 255.0
  raise ValueError(f"output_activation={output_activation!r}; images need "
                   "'tanh' or 'sigmoid'")


def to_uint8(images: Array, output_activation: str) -> Array:
  """Inverse of `to_model_range`: rounds to nearest and clips to 0..255.

  Args:
    images: float [..., H, W, C] in the range of `output_activation`
      ('tanh': [-1, 1], 'sigmoid': [0, 1]); uint8 input is returned as is.

  Returns:
    uint8, same shape and array type (np or jax) as `images`.
  """
  if images.dtype == np.uint8:
    return images
  x = images.astype(np.float32)
  if output_activation == "tanh":
    x = (x + 1.0) * 127.5
  elif output_activation == "sigmoid":
    x = x * 255.0
  else:
    raise ValueError(f"output_activation={output_activation!r}; images need "
                     "'tanh' or 'sigmoid'")
  xp = _xp(images)
  return xp.clip(xp.round(x), 0, 255).astype(np.uint8)


def flip_horizontally(images: Array, flips: Array) -> jax.Array:
  """Mirrors left-right the images whose `flips` entry is True.

  Args:
    images: [..., N, H, W, C], any dtype.
    flips: bool [..., N] (the train step draws it from its step key).

  Returns:
    jax array like `images`.
  """
  images = jnp.asarray(images)
  flips = jnp.asarray(flips).reshape(flips.shape + (1, 1, 1))
  return jnp.where(flips, jnp.flip(images, axis=-2), images)
