"""source='folder': a directory or a .zip of images.

Flat (unlabeled) or with one subfolder per class (labels = index in the
sorted folder names; a lone wrapper folder is looked through). Decoded with
Pillow in threads (decode.py). Unreadable files: a few are skipped with a
warning naming them; more than MAX_BROKEN_FRACTION of the files is an error.
"""

from collections.abc import Sequence
import concurrent.futures
import os
import threading
from typing import Any
import zipfile

from absl import logging
import numpy as np

from wgan_jax.data import cache
from wgan_jax.data import decode
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import listing
from wgan_jax.data.dataset import shard_of
from wgan_jax.data.dataset import subset
from wgan_jax.errors import DataError

IMAGE_EXTENSIONS = frozenset({
    ".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif",
    ".tiff", ".webp"})

# More unreadable files than this fraction is a broken download or the wrong
# folder, not a few bad files worth skipping: an error instead of a warning.
MAX_BROKEN_FRACTION = 0.5

# Unreadable files named in a warning (all up to this many) or in an error.
_WARN_LISTED = 50
_ERROR_LISTED = 5


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
        f"{listing(in_root, 3)}) and in subfolders "
        f"({listing(folders, 5)}); for a labelled set put every image in a "
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
    reader, names: Sequence[str], spec: Spec
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
        images[i] = decode.decode_image(data, spec.pil_mode, size, spec.resize)
        ok[i] = True
      except decode.DecodeFailure as e:
        bad.append((names[i], str(e)))
      except decode.SizeMismatch as e:
        wrong_size.append((names[i], str(e)))

  # Chunks amortize the executor's per-task cost over many small images.
  chunk = 256
  chunks = [range(s, min(s + chunk, len(names)))
            for s in range(0, len(names), chunk)]
  with concurrent.futures.ThreadPoolExecutor(_num_threads()) as pool:
    for _ in pool.map(work, chunks):
      pass
  return images, ok, sorted(bad), sorted(wrong_size)


def _check_unreadable(bad: Sequence[tuple[str, str]], total: int, path: str):
  """The broken-file policy: warn naming a few, refuse a mostly broken set.

  Args:
    bad: sorted (name, reason) of the files that could not be decoded.
    total: number of image files tried.
    path: the folder or .zip, for messages.

  Raises:
    DataError: every file, or more than MAX_BROKEN_FRACTION of them, failed.
  """
  if not bad:
    return
  some = "; ".join(f"{n}: {r}" for n, r in bad[:_ERROR_LISTED])
  if len(bad) == total:
    raise DataError(f"no decodable image in {path}: all {total} files "
                    f"failed, e.g. {some}; check that these are images")
  if len(bad) > MAX_BROKEN_FRACTION * total:
    raise DataError(
        f"{len(bad)} of {total} files in {path} are unreadable (more than "
        f"{MAX_BROKEN_FRACTION:.0%}), e.g. {some}; re-download the set or "
        "point config.data.path at the right folder")
  named = "; ".join(f"{n}: {r}" for n, r in bad[:_WARN_LISTED])
  more = (f"; and {len(bad) - _WARN_LISTED} more" if len(bad) > _WARN_LISTED
          else "")
  logging.warning(
      "Skipping %d unreadable of %d files in %s (training on the other %d; "
      "re-download or delete them): %s%s", len(bad), total, path,
      total - len(bad), named, more)


def load(spec: Spec, cache_dir: str | None, seed: int) -> Dataset:
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
  return cache.cached(cache_dir, spec, key, seed, os.path.basename(path),
                      build)


def _decode_folder(reader, spec: Spec, seed: int, path: str) -> Dataset:
  """Lists, subsets and decodes the images of `reader` into a Dataset."""
  image_names = [n for n in reader.names if _is_image_name(n)]
  if not image_names:
    others = (f"it holds e.g. {listing(reader.names, 3)}" if reader.names
              else "it is empty")
    raise DataError(
        f"no image files ({listing(sorted(IMAGE_EXTENSIONS))}) in {path} "
        f"({others}); point config.data.path at the images")
  names, labels, class_names = _folder_layout(image_names, path)
  keep = shard_of(subset(len(names), spec.max_examples, seed), spec.shard)
  names = [names[i] for i in keep]
  labels = None if labels is None else labels[keep]

  logging.info("Decoding %d images from %s", len(names), path)
  images, ok, bad, wrong_size = _decode_files(reader, names, spec)
  if wrong_size:
    sizes = ", ".join(f"{n} ({s})" for n, s in wrong_size[:5])
    raise DataError(
        f"{len(wrong_size)} of {len(names)} images in {path} are not "
        f"{spec.image_size}x{spec.image_size}, e.g. {sizes}; "
        "config.data.resize='keep' requires that size: set resize to "
        "'resize' or 'resize_crop'")
  _check_unreadable(bad, len(names), path)
  if isinstance(images, np.ndarray):
    examples = images if ok.all() else images[ok]
  else:
    kept = np.flatnonzero(ok)
    examples = decode.stack_same_size([images[i] for i in kept],
                                      [names[i] for i in kept], path)
  return Dataset(examples, None if labels is None else labels[ok],
                 class_names, spec.source)
