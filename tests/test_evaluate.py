"""Specification of `python -m wgan_jax.evaluate` on a tiny run and image sets.

The run is test_evaluator's `trained_run` (trained once per session: 4
Fashion-MNIST steps, evaluated by the training loop at steps 3 and 4 with 8
samples against 8 real images).
"""

import json
import os
import re
import subprocess
import sys

import conftest
import numpy as np
import pytest

import test_evaluator
from configs import default
from wgan_jax import data as data_lib
from wgan_jax import errors
from wgan_jax import evaluate
from wgan_jax import evaluator
from wgan_jax import images
from wgan_jax import inception

NUM = test_evaluator.NUM


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  return test_evaluator.train_once(str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def image_sets(tmp_path_factory):
  """8 Fashion-MNIST test images as an .npz, 8 others as a PNG folder.

  Returns (npz path, folder path, the npz's images, the folder's images).
  """
  conftest.require_data("fashion-mnist/t10k-images-idx3-ubyte.gz")
  data = default.base_config().data
  data.update(source="fashion_mnist", split="test", max_examples=2 * NUM,
              path=str(conftest.data_dir() / "fashion-mnist"))
  examples = data_lib.load_dataset(data).examples
  first, second = examples[:NUM], examples[NUM:]
  root = tmp_path_factory.mktemp("sets")
  npz = root / "set.npz"
  np.savez(npz, images=first)
  folder = root / "pngs"
  for i, image in enumerate(second):
    images.save_png(str(folder / f"{i}.png"), image)
  return str(npz), str(folder), first, second


def _json_line(out: str) -> dict:
  lines = out.splitlines()
  assert len(lines) == 1, out
  result = json.loads(lines[0])
  assert list(result)[:len(evaluate.FIELDS)] == list(evaluate.FIELDS)
  return result


def test_workdir_json_is_the_training_loops_evaluation_of_that_step(
    trained_run, capsys):
  workdir, config = trained_run
  assert evaluate.main([f"--workdir={workdir}"]) == 0  # Latest: step 4.
  result = _json_line(capsys.readouterr().out)
  assert result["step"] == 4
  assert result["num_samples"] == result["num_real"] == NUM
  assert result["dataset"] == "fashion_mnist:train"
  assert result["grayscale_as_rgb"] is True
  assert result["seconds"] > 0 and result["pr_k"] == config.eval.pr_k
  logged = test_evaluator.eval_records(workdir)[4]
  for name in evaluator.METRIC_NAMES:
    # Same noise (seed, step), same reference (the run's cache): same value.
    np.testing.assert_allclose(result[name], logged[f"eval/{name}"],
                               rtol=1e-9, err_msg=name)


def test_num_samples_flag_changes_the_sample_count(trained_run, capsys):
  workdir, _ = trained_run
  assert evaluate.main([f"--workdir={workdir}", "--step=2",
                        "--num_samples=5"]) == 0
  result = _json_line(capsys.readouterr().out)
  assert (result["step"], result["num_samples"], result["num_real"]) == (
      2, 5, NUM)
  assert np.isfinite(result["fid"]) and result["fid"] > 0


def test_two_sets_give_first_principles_metrics_of_their_features(
    image_sets, capsys):
  """An .npz against a PNG folder: both decode to the pixels written, and the
  numbers are test_evaluator's references on directly computed features."""
  npz, folder, real_images, fake_images = image_sets
  assert evaluate.main([f"--real={npz}", f"--fake={folder}",
                        f"--batch_size={NUM}"]) == 0
  result = _json_line(capsys.readouterr().out)
  assert result["num_samples"] == result["num_real"] == NUM
  assert result["step"] is None and result["grayscale_as_rgb"] is True
  assert result["dataset"] == f"npz:{os.path.abspath(npz)}"
  assert (result["real"], result["fake"]) == (npz, folder)
  params = inception.load_params(conftest.require_data(test_evaluator.WEIGHTS))
  feature_fn = inception.make_feature_fn(params, batch_size=NUM)
  real, fake = feature_fn(real_images), feature_fn(fake_images)
  np.testing.assert_allclose(result["fid"],
                             test_evaluator.fid_reference(fake, real),
                             rtol=1e-5)
  assert result["fid"] > 1.0  # Different images: not a trivial match.
  # KID subsets of 1000 >= 8 rows hold every row: the full-sample MMD^2.
  assert result["kid_subset_size"] >= NUM
  np.testing.assert_allclose(result["kid"],
                             test_evaluator.kid_reference(fake, real),
                             rtol=1e-4)
  assert (result["precision"], result["recall"]) == (
      test_evaluator.precision_recall_reference(real, fake, 3))


def test_different_sets_have_positive_fid_through_the_command_line(
    image_sets, tmp_path):
  """The real entry point: one JSON line on stdout, logs elsewhere."""
  npz, _, examples, _ = image_sets
  flipped = tmp_path / "flipped.npz"
  np.savez(flipped, x=255 - examples)  # Negatives: far from the originals.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="",
             JAX_COMPILATION_CACHE_DIR=str(
                 conftest.REPO / ".pytest_cache" / "jax_compilation_cache"))
  proc = subprocess.run(
      [sys.executable, "-m", "wgan_jax.evaluate", f"--real={npz}",
       f"--fake={flipped}", "--batch_size=8"], cwd=conftest.REPO, env=env,
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  result = _json_line(proc.stdout)
  assert result["fid"] > 10 and result["num_samples"] == NUM


def _bad_cases(run, empty, npz, tmp):
  """{case: (argv, regex of the message, the UserError raised)}."""
  e = lambda path: re.escape(str(path))  # noqa: E731
  return {
      "no checkpoint": ([f"--workdir={empty}"], f"No checkpoint in {e(empty)}",
                        errors.MissingFileError),
      "not a folder": ([f"--workdir={tmp}/nope"], "is not a folder",
                       evaluate.ArgumentError),
      "step not saved": ([f"--workdir={run}", "--step=3"],
                         r"No checkpoint for step 3 .*saved steps: \[2, 4\]",
                         errors.MissingFileError),
      "missing weights": ([f"--workdir={run}", f"--inception={tmp}/w.npz"],
                          rf"FID Inception weights not found; looked for "
                          rf"{e(tmp)}/w\.npz \(the path given\)",
                          errors.MissingFileError),
      "other weights": ([f"--real={npz}", f"--fake={npz}",
                         f"--inception={tmp}/two.npz"],
                        "two.npz does not hold the FID Inception weights",
                        errors.DataError),
      "one sample": ([f"--workdir={run}", "--num_samples=1"],
                     r"num_samples \(--num_samples on the command line\) "
                     "must be >= 4", errors.ConfigError),
      "bad flag value": ([f"--workdir={run}", "--step=last"],
                         "argument --step: invalid int value: 'last'",
                         evaluate.ArgumentError),
      "unknown flag": ([f"--workdir={run}", "--samples=5"],
                       "unrecognized arguments: --samples=5",
                       evaluate.ArgumentError),
      "missing path": ([f"--real={tmp}/nowhere.npz", f"--fake={npz}"],
                       f"--real={e(tmp)}/nowhere\\.npz: no such file or folder",
                       evaluate.ArgumentError),
      "empty folder": ([f"--real={empty}", f"--fake={npz}", "--batch_size=8"],
                       f"no image files .* in {e(empty)}", errors.DataError),
      "real without fake": ([f"--real={npz}"], "give both sets",
                            evaluate.ArgumentError),
      "both modes": ([f"--workdir={run}", f"--real={npz}", f"--fake={npz}"],
                     "not both", evaluate.ArgumentError),
      "unknown set": (["--real=cifar:test", f"--fake={npz}"],
                      "not a folder, .zip or .npz", evaluate.ArgumentError),
      "npz without the key": ([f"--real={tmp}/two.npz", f"--fake={npz}"],
                              "name the images with --npz_key",
                              evaluate.ArgumentError),
  }


BAD_CASES = list(_bad_cases("run", "empty", "npz", "tmp"))


def _bad_case(case, trained_run, image_sets, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  np.savez(tmp_path / "two.npz", a=np.zeros((4, 8, 8), np.uint8),
           b=np.zeros((4, 8, 8), np.uint8))
  return _bad_cases(trained_run[0], empty, image_sets[0], tmp_path)[case]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_one_line_naming_it_and_status_1(
    case, trained_run, image_sets, tmp_path, capsys, monkeypatch):
  monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
  argv, message, _ = _bad_case(case, trained_run, image_sets, tmp_path)
  assert evaluate.main(argv) == 1
  out, err = capsys.readouterr()
  assert out == ""
  assert len(err.splitlines()) == 1 and err.endswith("\n"), err
  assert err.startswith("evaluate: error: ") and "Traceback" not in err
  assert re.search(message, err), err


@pytest.mark.parametrize("case", ["no checkpoint", "missing weights",
                                  "one sample", "bad flag value",
                                  "missing path", "empty folder"])
def test_traceback_env_lets_the_user_error_propagate(
    case, trained_run, image_sets, tmp_path, capsys, monkeypatch):
  monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
  argv, message, kind = _bad_case(case, trained_run, image_sets, tmp_path)
  with pytest.raises(kind, match=message) as info:
    evaluate.main(argv)
  assert isinstance(info.value, errors.UserError)
  assert capsys.readouterr().out == ""


def test_command_line_error_exits_with_status_1_and_no_traceback(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  env.pop(errors.TRACEBACK_ENV, None)
  proc = subprocess.run(
      [sys.executable, "-m", "wgan_jax.evaluate", f"--workdir={tmp_path}"],
      cwd=conftest.REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1 and proc.stdout == ""
  assert proc.stderr.strip().splitlines() == [
      f"evaluate: error: No checkpoint in {tmp_path}/checkpoints: train first "
      f"with `python -m wgan_jax.main --config=... --workdir={tmp_path}`."]


@pytest.mark.parametrize("spec,want", [
    ("fashion_mnist:test", {"source": "fashion_mnist", "split": "test",
                            "path": "/idx"}),
    ("mnist:train", {"source": "mnist", "split": "train", "path": "/idx"}),
    ("tfds:cifar10:test", {"source": "tfds:cifar10", "split": "test",
                           "path": "/idx"}),
])
def test_array_dataset_sets(spec, want):
  data = evaluate.set_data_config(spec, "real", data_path="/idx")
  assert {k: data[k] for k in want} == want
