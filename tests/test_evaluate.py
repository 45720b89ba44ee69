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
from wgan_jax import evaluate
from wgan_jax import evaluator
from wgan_jax import images
from wgan_jax import input_pipeline

NUM = test_evaluator.NUM


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  return test_evaluator.train_once(str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def image_sets(tmp_path_factory):
  """The same 8 Fashion-MNIST test images as an .npz and as a PNG folder."""
  conftest.require_data("fashion-mnist/t10k-images-idx3-ubyte.gz")
  data = {"source": "fashion_mnist", "split": "test", "max_examples": NUM,
          "path": str(conftest.data_dir() / "fashion-mnist")}
  examples = input_pipeline.load_dataset(data).examples
  root = tmp_path_factory.mktemp("sets")
  npz = root / "set.npz"
  np.savez(npz, images=examples)
  folder = root / "pngs"
  for i, image in enumerate(examples):
    images.save_png(str(folder / f"{i}.png"), image)
  return str(npz), str(folder), examples


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


def test_a_set_against_itself_has_fid_zero_and_full_precision_recall(
    image_sets, capsys):
  npz, folder, _ = image_sets
  assert evaluate.main([f"--real={npz}", f"--fake={folder}",
                        f"--batch_size={NUM}"]) == 0
  result = _json_line(capsys.readouterr().out)
  assert abs(result["fid"]) < 1e-6  # FID units: squared feature distance.
  assert result["precision"] == result["recall"] == 1.0
  assert result["num_samples"] == result["num_real"] == NUM
  assert result["step"] is None and result["grayscale_as_rgb"] is True
  assert result["dataset"] == f"npz:{os.path.abspath(npz)}"
  assert (result["real"], result["fake"]) == (npz, folder)


def test_different_sets_have_positive_fid_through_the_command_line(
    image_sets, tmp_path):
  """The real entry point: one JSON line on stdout, logs elsewhere."""
  npz, _, examples = image_sets
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
  return {
      "no checkpoint": ([f"--workdir={empty}"], f"No checkpoint in {empty}"),
      "not a folder": ([f"--workdir={tmp}/nope"], "is not a folder"),
      "step not saved": ([f"--workdir={run}", "--step=3"],
                         r"No checkpoint for step 3 .*saved steps: \[2, 4\]"),
      "missing weights": ([f"--workdir={run}", f"--inception={tmp}/w.npz"],
                          "FID Inception weights not found"),
      "one sample": ([f"--workdir={run}", "--num_samples=1"],
                     r"num_samples \(--num_samples on the command line\) "
                     "must be >= 4"),
      "empty folder": ([f"--real={empty}", f"--fake={npz}", "--batch_size=8"],
                       "no image files"),
      "real without fake": ([f"--real={npz}"], "give both sets"),
      "both modes": ([f"--workdir={run}", f"--real={npz}", f"--fake={npz}"],
                     "not both"),
      "unknown set": (["--real=cifar:test", f"--fake={npz}"],
                      "not a folder, .zip or .npz"),
      "npz without the key": ([f"--real={tmp}/two.npz", f"--fake={npz}"],
                              "name the images with --npz_key"),
  }


BAD_CASES = list(_bad_cases("run", "empty", "npz", "tmp"))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_one_clear_error(case, trained_run, image_sets,
                                         tmp_path, capsys):
  empty = tmp_path / "empty"
  empty.mkdir()
  np.savez(tmp_path / "two.npz", a=np.zeros((4, 8, 8), np.uint8),
           b=np.zeros((4, 8, 8), np.uint8))
  argv, message = _bad_cases(trained_run[0], empty, image_sets[0],
                             tmp_path)[case]
  assert evaluate.main(argv) == 1
  out, err = capsys.readouterr()
  assert out == ""
  assert err.startswith("evaluate: error: ") and "Traceback" not in err
  assert re.search(message, err), err
  if case != "missing weights":  # That one lists where it looked.
    assert len(err.strip().splitlines()) == 1, err


def test_command_line_error_exits_with_status_1_and_no_traceback(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
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
