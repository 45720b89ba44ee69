"""Specification of wgan_jax.evaluation and of the training loop's eval hook.

Inception runs at a few images per second on this CPU, so every set here has
4 to 13 images; the numbers are meaningless as quality measures but exact as
plumbing checks: each is compared with the metrics module applied to
features computed directly (inception.make_feature_fn on sampling.sample).

`trained_run` (shared with test_evaluate.py) trains 4 Fashion-MNIST smoke
steps with eval_every=3: evaluations at step 3 (period) and 4 (end).
"""

import dataclasses
import functools
import json
import os

import conftest
import jax
import ml_collections
import numpy as np
import pytest

from configs import default
from configs import fashion_mnist_wgangp
from wgan_jax import checkpointing
from wgan_jax import evaluator
from wgan_jax import inception
from wgan_jax import input_pipeline
from wgan_jax import metrics
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import train
from wgan_jax import validation

WEIGHTS = "inception/fid_inception_2015-12-05_weights.npz"
NUM = 8  # generated and real images per evaluation: one per fake device


def eval_config(steps: int = 4) -> ml_collections.ConfigDict:
  """The smoke Fashion-MNIST config with a tiny evaluation every 3 steps."""
  conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
  config = fashion_mnist_wgangp.get_config("smoke")
  config.data.path = str(conftest.data_dir() / "fashion-mnist")
  config.num_train_steps = steps
  config.eval.eval_every = 3
  config.eval.num_samples = NUM
  config.eval.num_real = NUM
  config.eval.batch_size = NUM
  config.eval.inception_path = str(conftest.require_data(WEIGHTS))
  return config


@functools.lru_cache(maxsize=None)
def train_once(root: str) -> tuple[str, ml_collections.ConfigDict]:
  workdir = os.path.join(root, "eval_run")
  config = eval_config()
  train.train_and_evaluate(config, workdir)
  return workdir, config


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """(workdir, config) of the 4-step run; trained once per session."""
  return train_once(str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def evaluator(trained_run):
  """An Evaluator with the run's settings (tests restore what they change)."""
  return evaluator.Evaluator(evaluator.read_settings(trained_run[1].eval))


@pytest.fixture(scope="session")
def feature_fn():
  """Inception features built directly, not through evaluator.py."""
  params = inception.load_params(conftest.require_data(WEIGHTS))
  return inception.make_feature_fn(params, batch_size=NUM)


def eval_records(workdir):
  return {r["step"]: r for r in run_logs.read_metrics(workdir)
          if "eval/fid" in r}


# ---------------------------------------------------------------- settings --


def test_config_defaults_are_the_evaluation_defaults_and_eval_is_off():
  config = default.base_config()
  assert config.eval.to_dict() == evaluator.DEFAULTS
  assert config.eval.eval_every == 0  # CPU training must not pay for FID.
  settings = evaluator.read_settings(config.eval)
  assert settings == evaluator.read_settings(None)  # Old runs: defaults.


@pytest.mark.parametrize("field,value,message", [
    ("num_samples", 1, r"num_samples.*>= 4"),
    ("num_samples", 3, r"num_samples.*>= 4"),  # precision/recall needs k + 1
    ("num_real", 1, r"num_real.*0 \(all\) or >= 4"),
    ("eval_every", -1, "eval_every"),
    ("batch_size", 0, "batch_size"),
    ("pr_k", 0, "pr_k"),
])
def test_unusable_settings_are_refused(field, value, message):
  with pytest.raises(validation.ConfigError, match=message):
    evaluator.read_settings(None, **{field: value})


def test_eval_noise_depends_on_seed_and_step_and_nothing_else():
  z = evaluator.eval_noise(0, 5, 6, 3)
  assert z.shape == (6, 3) and z.dtype == np.float32
  np.testing.assert_array_equal(z, evaluator.eval_noise(0, 5, 6, 3))
  assert not np.allclose(z, evaluator.eval_noise(0, 6, 6, 3))
  assert not np.allclose(z, evaluator.eval_noise(1, 5, 6, 3))
  # Not the training grid's fixed noise either.
  assert not np.allclose(z, sampling.fixed_noise(0, 6, 3))


# ----------------------------------------------------------------- metrics --


def _reference(real):
  mu, sigma = metrics.statistics(real)
  return evaluator.Reference(features=real, mu=mu, sigma=sigma, name="r",
                              grayscale=False, key={})


@pytest.mark.parametrize("dim,num_real,num_fake", [
    (8, 60, 60),  # more rows than D: FID from the cached (mu, sigma)
    (64, 30, 30),  # fewer rows than D: metrics.fid's centred-data path
])
def test_compute_metrics_are_the_metrics_module_on_the_same_features(
    dim, num_real, num_fake):
  rng = np.random.default_rng(dim)
  real = rng.normal(size=(num_real, dim))
  fake = rng.normal(size=(num_fake, dim)) * 1.3 + 0.2
  settings = evaluator.read_settings(None, kid_subsets=7, kid_subset_size=20)
  got = evaluator.compute_metrics(fake, _reference(real), settings)
  np.testing.assert_allclose(got["fid"], metrics.fid(fake, real), rtol=1e-9)
  assert (got["kid"], got["kid_std"]) == metrics.kid(fake, real, 7, 20, seed=0)
  assert (got["precision"], got["recall"]) == metrics.precision_recall(
      real, fake, 3)
  assert got["fid"] > 0.1 and got["kid"] > 0


def test_compute_metrics_of_a_set_against_itself():
  real = np.random.default_rng(3).normal(size=(50, 8))
  got = evaluator.compute_metrics(real, _reference(real),
                                   evaluator.read_settings(None))
  assert abs(got["fid"]) < 1e-9
  assert got["precision"] == got["recall"] == 1.0


def test_too_few_images_give_a_clear_error():
  real = np.zeros((10, 4))
  with pytest.raises(evaluator.EvaluationError, match="at least 4 real and "
                     "fake images.*10 real, 3 fake"):
    evaluator.compute_metrics(np.zeros((3, 4)), _reference(real),
                               evaluator.read_settings(None))


# -------------------------------------------------- generator and reference --


def test_generated_images_are_the_sampling_module_samples(trained_run,
                                                         evaluator):
  workdir, config = trained_run
  assert jax.device_count() == 8  # So batches really are sharded.
  generator = sampling.load_generator(workdir)
  z = evaluator.eval_noise(config.seed, 4, 13, generator.z_dim)  # 8 + 5 pad
  got = evaluator.generate(generator.module, generator.variables,
                           generator.output_activation, z)
  want = sampling.sample(generator, z)
  assert got.dtype == np.uint8 and got.shape == want.shape == (13, 28, 28, 1)
  # Sharded vs unsharded float sums may round a pixel the other way.
  diff = np.abs(got.astype(int) - want)
  assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


def test_training_hook_logs_eval_at_the_period_and_the_end(trained_run):
  workdir, _ = trained_run
  evals = eval_records(workdir)
  assert sorted(evals) == [3, 4]
  for record in evals.values():
    for name in evaluator.METRIC_NAMES:
      assert np.isfinite(record[f"eval/{name}"]), name
    assert 0 <= record["eval/precision"] <= 1
  best = evaluator.read_best(workdir)
  best_step = min(evals, key=lambda s: evals[s]["eval/fid"])
  assert best["step"] == best_step
  for name in evaluator.METRIC_NAMES:
    assert best[name] == evals[best_step][f"eval/{name}"]
  assert [e["step"] for e in best["evaluations"]] == [3, 4]
  assert best["grayscale_as_rgb"] is True
  assert best["settings"]["num_samples"] == best["settings"]["num_real"] == NUM
  # TensorBoard got them too (the event file holds the tag names).
  events = os.listdir(os.path.join(workdir, run_logs.TENSORBOARD_DIR))
  data = b"".join(open(os.path.join(workdir, run_logs.TENSORBOARD_DIR, f),
                       "rb").read() for f in events)
  assert b"eval/fid" in data and b"eval/recall" in data


def test_logged_fid_is_metrics_fid_on_directly_computed_features(
    trained_run, feature_fn):
  """The plumbing (sampling, quantization, sharding, cache) adds nothing."""
  workdir, config = trained_run
  logged = eval_records(workdir)[4]
  generator = sampling.load_generator(workdir, 4)
  z = evaluator.eval_noise(config.seed, 4, NUM, generator.z_dim)
  fake = feature_fn(sampling.sample(generator, z))
  # The reference: NUM training images, the subset of seed REFERENCE_SEED.
  data = ml_collections.ConfigDict(config.data.to_dict())
  data.max_examples = NUM
  reals = input_pipeline.load_dataset(data, seed=evaluator.REFERENCE_SEED)
  real = feature_fn(reals.examples)
  np.testing.assert_allclose(logged["eval/fid"], metrics.fid(fake, real),
                             rtol=1e-5)
  kid = metrics.kid(fake, real, config.eval.kid_subsets,
                    config.eval.kid_subset_size, seed=0)
  np.testing.assert_allclose(logged["eval/kid"], kid[0], rtol=1e-4)
  precision, recall = metrics.precision_recall(real, fake, 3)
  assert (logged["eval/precision"], logged["eval/recall"]) == (precision,
                                                               recall)


class _CountingFeatures:

  def __init__(self, evaluator):
    self.features, self.calls = evaluator.features, 0

  def __call__(self, images):
    self.calls += 1
    return self.features(images)


def test_reference_is_cached_and_keyed_by_data_count_and_weights(
    trained_run, evaluator, tmp_path, monkeypatch):
  _, config = trained_run
  settings = evaluator.read_settings(config.eval, num_real=4)
  monkeypatch.setattr(evaluator, "settings", settings)
  counting = _CountingFeatures(evaluator)
  monkeypatch.setattr(evaluator, "features", counting)
  digest = evaluator.weights_digest
  cache = str(tmp_path / "cache")

  first = evaluator.reference(config.data, cache)
  again = evaluator.reference(config.data, cache)
  assert counting.calls == 1
  np.testing.assert_array_equal(again.features, first.features)
  np.testing.assert_array_equal(again.sigma, first.sigma)
  assert again.key == first.key and again.name == "fashion_mnist:train"
  assert first.grayscale and first.features.shape == (4, inception.FEATURE_DIM)
  names = sorted(os.listdir(cache))
  assert [n.split("_")[0] for n in names if n.endswith(".npz")] == [
      "features", "fid"]

  # Another split, another count, other weights: each a new entry.
  test_split = evaluator.reference(config.data, cache, split="test")
  assert counting.calls == 2
  assert not np.allclose(test_split.features, first.features)
  monkeypatch.setattr(evaluator, "settings",
                      dataclasses.replace(settings, num_real=5))
  assert len(evaluator.reference(config.data, cache).features) == 5
  assert counting.calls == 3
  monkeypatch.setattr(evaluator, "settings", settings)
  monkeypatch.setattr(evaluator, "weights_digest", "0" * 64)
  evaluator.reference(config.data, cache)
  assert counting.calls == 4
  # The first entry is still there and still used.
  monkeypatch.setattr(evaluator, "weights_digest", digest)
  evaluator.reference(config.data, cache)
  assert counting.calls == 4
  # No cache folder: computed every time.
  evaluator.reference(config.data, None)
  assert counting.calls == 5


# ------------------------------------------------------------------ resume --


def test_resumed_run_keeps_best_json_consistent(trained_run, tmp_path):
  full_workdir, _ = trained_run
  full = {e["step"]: e for e in evaluator.read_best(full_workdir)[
      "evaluations"]}
  workdir = str(tmp_path / "resumed")
  train.train_and_evaluate(eval_config(steps=2), workdir)  # Ends: eval at 2.
  # A stale record from a later, lost part of the run (e.g. killed after its
  # evaluation but before its checkpoint): better than anything real.
  path = evaluator.best_path(workdir)
  stale = evaluator.read_best(workdir)
  stale["evaluations"].append(dict(stale["evaluations"][0], step=3, fid=0.0))
  with open(path, "w") as f:
    json.dump(stale, f)

  train.train_and_evaluate(eval_config(steps=4), workdir)
  best = evaluator.read_best(workdir)
  steps = [e["step"] for e in best["evaluations"]]
  assert steps == [2, 3, 4]
  for e in best["evaluations"][1:]:
    # The resumed run is the uninterrupted one, evaluations included.
    assert e == full[e["step"]]
  fids = {e["step"]: e["fid"] for e in best["evaluations"]}
  assert best["step"] == min(fids, key=fids.get) and best["fid"] > 0

  # Other evaluation settings: earlier numbers are kept but not compared.
  config = eval_config(steps=5)
  config.eval.num_samples = NUM // 2
  train.train_and_evaluate(config, workdir)
  best = evaluator.read_best(workdir)
  assert [e["step"] for e in best["evaluations"]] == [2, 3, 4, 5]
  assert best["step"] == 5 and best["settings"]["num_samples"] == NUM // 2
  logged = eval_records(workdir)
  assert sorted(logged) == [2, 3, 4, 5]
  assert best["fid"] == logged[5]["eval/fid"]


def test_missing_weights_fail_before_training_only_when_eval_is_on(tmp_path):
  config = eval_config(steps=2)
  config.eval.inception_path = str(tmp_path / "missing.npz")
  config.eval.eval_every = 0
  train.train_and_evaluate(config, str(tmp_path))  # Off: weights not needed.
  assert not os.path.exists(evaluator.best_path(str(tmp_path)))
  config.eval.eval_every = 2
  config.num_train_steps = 4
  with pytest.raises(FileNotFoundError, match=r"FID Inception weights not "
                     r"found(.|\n)*missing\.npz \(the path given\)"):
    train.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.steps(str(tmp_path)) == [2]  # Not a step trained.
  assert max(r["step"] for r in run_logs.read_metrics(str(tmp_path))) == 2
