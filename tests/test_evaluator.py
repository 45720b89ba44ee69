"""Specification of wgan_jax.evaluator and of the training loop's eval hook.

Inception runs at a few images per second on this CPU, so every set here has
4 to 13 images; the numbers are meaningless as quality measures but exact as
plumbing checks: each is compared with values computed in this file from
first principles (the `*_reference` functions below, which share no code
with wgan_jax.metrics) on features computed directly
(inception.make_feature_fn on sampling.sample).

`trained_run` (shared with test_evaluate.py) trains 4 Fashion-MNIST smoke
steps with eval_every=3: evaluations at step 3 (period) and 4 (end).
"""

import dataclasses
import functools
import itertools
import json
import math
import os

import conftest
import jax
import ml_collections
import numpy as np
import pytest

from configs import default
from configs import fashion_mnist_wgangp
from wgan_jax import checkpointing
from wgan_jax import data as data_lib
from wgan_jax import errors
from wgan_jax import evaluator
from wgan_jax import inception
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import train

WEIGHTS = "inception/fid_inception_2015-12-05_weights.npz"
NUM = 8  # generated and real images per evaluation: one per fake device


def eval_config(steps: int = 4) -> ml_collections.ConfigDict:
  """The smoke Fashion-MNIST config with a tiny evaluation every 3 steps.

  With an EMA generator, which samples with standing batch statistics: the
  tests that compare the logged numbers with those of the checkpoint cover
  them.
  """
  conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
  config = fashion_mnist_wgangp.get_config("smoke")
  config.data.path = str(conftest.data_dir() / "fashion-mnist")
  config.num_train_steps = steps
  config.eval.eval_every = 3
  config.eval.num_samples = NUM
  config.eval.num_real = NUM
  config.eval.batch_size = NUM
  config.eval.inception_path = str(conftest.require_data(WEIGHTS))
  config.ema.decay, config.ema.standing_batches = 0.9, 2
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
def the_evaluator(trained_run):
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


# --------------------------------------- first-principles metric references --


def fid_reference(a: np.ndarray, b: np.ndarray) -> float:
  """||mu_a - mu_b||^2 + tr S_a + tr S_b - 2 sum_i sqrt(lambda_i).

  lambda_i: eigenvalues of S_a^(1/2) S_b S_a^(1/2) (similar to S_a S_b). Both
  covariances live in the span of the centred rows, so with fewer rows than
  dims everything is computed in an orthonormal basis of that span (FID is
  rotation invariant); the mean difference is taken in full.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  ac, bc = a - a.mean(0), b - b.mean(0)
  if len(a) + len(b) < a.shape[1]:
    basis = np.linalg.qr(np.concatenate([ac, bc]).T)[0]  # [D, Na + Nb]
    ac, bc = ac @ basis, bc @ basis
  s_a = ac.T @ ac / (len(a) - 1)
  s_b = bc.T @ bc / (len(b) - 1)
  w, v = np.linalg.eigh(s_a)
  root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  lambdas = np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)
  diff = a.mean(0) - b.mean(0)
  return float(diff @ diff + np.trace(s_a) + np.trace(s_b) -
               2 * np.sqrt(lambdas).sum())


def kid_reference(a: np.ndarray, b: np.ndarray) -> float:
  """Unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3, as a double loop."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  k = lambda x, y: (float(np.dot(x, y)) / len(x) + 1.0) ** 3  # noqa: E731
  na, nb = len(a), len(b)
  kaa = sum(k(a[i], a[j]) for i, j in itertools.permutations(range(na), 2))
  kbb = sum(k(b[i], b[j]) for i, j in itertools.permutations(range(nb), 2))
  kab = sum(k(x, y) for x in a for y in b)
  return kaa / (na * (na - 1)) + kbb / (nb * (nb - 1)) - 2 * kab / (na * nb)


def precision_recall_reference(real: np.ndarray, fake: np.ndarray,
                               k: int) -> tuple[float, float]:
  """Kynkaanniemi et al. 2019 by brute force: k-th other neighbour radii."""
  def dist(x, y):
    return math.sqrt(sum((float(p) - float(q)) ** 2 for p, q in zip(x, y)))

  def radii(points):
    return [sorted(dist(p, q) for j, q in enumerate(points) if j != i)[k - 1]
            for i, p in enumerate(points)]

  def coverage(queries, centres):
    r = radii(centres)
    return sum(any(dist(q, c) <= rc for c, rc in zip(centres, r))
               for q in queries) / len(queries)

  return coverage(fake, real), coverage(real, fake)


# ---------------------------------------------------------------- settings --


def test_config_defaults_are_the_evaluation_defaults_and_eval_is_off():
  config = default.base_config()
  assert evaluator.read_settings(None) == evaluator.Settings(**config.eval)
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
  with pytest.raises(errors.ConfigError, match=message):
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
  """A Reference whose statistics are np.mean / np.cov of `real`."""
  return evaluator.Reference(features=real, mu=real.mean(0),
                             sigma=np.cov(real, rowvar=False), name="r",
                              grayscale=False, key={})


@pytest.mark.parametrize("dim,num", [
    (8, 40),  # more rows than D: FID from the reference's (mu, sigma)
    (64, 20),  # fewer rows than D: metrics.fid's centred-data path
])
def test_compute_metrics_match_first_principles_references(dim, num):
  rng = np.random.default_rng(dim)
  # Points near a 5-D subspace, so that the k-NN balls overlap partly.
  mixing = rng.normal(size=(5, dim))
  real = rng.normal(size=(num, 5)) @ mixing
  fake = (rng.normal(size=(num, 5)) * 1.3 + 0.8) @ mixing
  # Subsets of >= num rows hold every row: KID is the full-sample MMD^2.
  settings = evaluator.read_settings(None, kid_subsets=3)
  got = evaluator.compute_metrics(fake, _reference(real), settings)
  assert set(got) == set(evaluator.METRIC_NAMES)
  # Rank-5 covariances: the reference's sqrt of null eigenvalues (rounding
  # noise ~1e-15) adds ~1e-8 per null direction, hence 1e-6.
  np.testing.assert_allclose(got["fid"], fid_reference(fake, real), rtol=1e-6)
  np.testing.assert_allclose(got["kid"], kid_reference(fake, real), rtol=1e-9)
  assert got["kid_std"] < 1e-12 * abs(got["kid"])
  precision, recall = precision_recall_reference(real, fake, settings.pr_k)
  assert 0 < precision < 1 and 0 < recall < 1  # Not a trivial case.
  assert (got["precision"], got["recall"]) == (precision, recall)
  assert got["fid"] > 0.1 and got["kid"] > 0


def test_compute_metrics_fid_uses_the_reference_statistics():
  # More rows than D: FID comes from reference.mu/sigma, not its features.
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
  shifted = evaluator.Reference(features=real, mu=fake.mean(0) + 2.0,
                                sigma=np.cov(fake, rowvar=False), name="r",
                                grayscale=False, key={})
  got = evaluator.compute_metrics(fake, shifted, evaluator.read_settings(None))
  np.testing.assert_allclose(got["fid"], 4 * 4.0, rtol=1e-9)


@pytest.mark.parametrize("num,dim", [(50, 8), (10, 16)])
def test_compute_metrics_fid_of_a_shifted_copy_is_the_squared_shift(num,
                                                                     dim):
  # Same covariance, means apart by `shift`: FID = ||shift||^2 exactly, on
  # both FID paths (from statistics: 50 > 8 rows; from the data: 10 < 16).
  rng = np.random.default_rng(num)
  real = rng.normal(size=(num, dim)) @ rng.normal(size=(dim, dim))
  shift = rng.normal(size=dim)
  got = evaluator.compute_metrics(real + shift, _reference(real),
                                  evaluator.read_settings(None))
  scale = np.trace(np.cov(real, rowvar=False))
  assert abs(got["fid"] - shift @ shift) < 1e-9 * (scale + shift @ shift)


def test_too_few_images_give_a_clear_error():
  real = np.zeros((10, 4))
  with pytest.raises(evaluator.EvaluationError, match="at least 4 real and "
                     "fake images.*10 real, 3 fake"):
    evaluator.compute_metrics(np.zeros((3, 4)), _reference(real),
                              evaluator.read_settings(None))


# -------------------------------------------------- generator and reference --


def test_generated_images_are_the_sampling_module_samples(trained_run,
                                                         the_evaluator):
  workdir, config = trained_run
  assert jax.device_count() == 8  # So batches really are sharded.
  generator = sampling.load_generator(workdir)
  z = evaluator.eval_noise(config.seed, 4, 13, generator.z_dim)  # 8 + 5 pad
  got = the_evaluator.generate(generator.module, generator.variables,
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


def test_logged_metrics_are_first_principles_values_of_direct_features(
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
  reals = data_lib.load_dataset(data, seed=evaluator.REFERENCE_SEED)
  real = feature_fn(reals.examples)
  np.testing.assert_allclose(logged["eval/fid"], fid_reference(fake, real),
                             rtol=1e-5)
  # KID subsets of >= NUM rows hold all rows: the full-sample MMD^2.
  assert config.eval.kid_subset_size >= NUM
  np.testing.assert_allclose(logged["eval/kid"], kid_reference(fake, real),
                             rtol=1e-4)
  precision, recall = precision_recall_reference(real, fake, 3)
  assert (logged["eval/precision"], logged["eval/recall"]) == (precision,
                                                               recall)


class _CountingFeatures:

  def __init__(self, ev):
    self.features, self.calls = ev.features, 0

  def __call__(self, images):
    self.calls += 1
    return self.features(images)


def test_reference_is_cached_and_keyed_by_data_count_and_weights(
    trained_run, the_evaluator, tmp_path, monkeypatch):
  ev = the_evaluator
  _, config = trained_run
  settings = evaluator.read_settings(config.eval, num_real=4)
  monkeypatch.setattr(ev, "settings", settings)
  counting = _CountingFeatures(ev)
  monkeypatch.setattr(ev, "features", counting)
  digest = ev.weights_digest
  cache = str(tmp_path / "cache")

  first = ev.reference(config.data, cache)
  again = ev.reference(config.data, cache)
  assert counting.calls == 1
  np.testing.assert_array_equal(again.features, first.features)
  np.testing.assert_array_equal(again.sigma, first.sigma)
  assert again.key == first.key and again.name == "fashion_mnist:train"
  assert first.grayscale and first.features.shape == (4, inception.FEATURE_DIM)
  # The statistics are the features' mean and unbiased covariance.
  np.testing.assert_allclose(first.mu, first.features.astype(np.float64)
                             .mean(0), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(again.sigma, np.cov(first.features.astype(
      np.float64), rowvar=False), rtol=1e-10, atol=1e-12)
  names = sorted(os.listdir(cache))
  assert [n.split("_")[0] for n in names if n.endswith(".npz")] == [
      "features", "fid"]

  # Another split, another count, other weights: each a new entry.
  test_split = ev.reference(config.data, cache, split="test")
  assert counting.calls == 2
  assert not np.allclose(test_split.features, first.features)
  monkeypatch.setattr(ev, "settings",
                      dataclasses.replace(settings, num_real=5))
  assert len(ev.reference(config.data, cache).features) == 5
  assert counting.calls == 3
  monkeypatch.setattr(ev, "settings", settings)
  monkeypatch.setattr(ev, "weights_digest", "0" * 64)
  ev.reference(config.data, cache)
  assert counting.calls == 4
  # The first entry is still there and still used.
  monkeypatch.setattr(ev, "weights_digest", digest)
  ev.reference(config.data, cache)
  assert counting.calls == 4
  # No cache folder: computed every time.
  ev.reference(config.data, None)
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
  with pytest.raises(errors.MissingFileError, match=r"FID Inception weights "
                     r"not found; looked for .*missing\.npz \(the path "
                     r"given\)"):
    train.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.steps(str(tmp_path)) == [2]  # Not a step trained.
  assert max(r["step"] for r in run_logs.read_metrics(str(tmp_path))) == 2


# ------------------------------------------------------ class-conditional --


def test_eval_labels_follow_the_reference_class_mixture():
  reference = np.array([0] * 50 + [1] * 30 + [2] * 20, np.int32)
  labels = evaluator.eval_labels(10, reference, 3)
  np.testing.assert_array_equal(np.bincount(labels), [5, 3, 2])
  # Rounded by largest remainder, summing to the number asked for.
  labels = evaluator.eval_labels(7, reference, 3)
  assert len(labels) == 7 and list(np.bincount(labels)) == [4, 2, 1]
  np.testing.assert_array_equal(np.bincount(evaluator.eval_labels(9, None, 3)),
                                [3, 3, 3])


def test_intra_class_fid_is_the_fid_of_each_class_and_their_mean(monkeypatch):
  monkeypatch.setattr(evaluator, "MIN_CLASS_IMAGES", 5)
  rng = np.random.default_rng(0)
  real = rng.normal(size=(30, 4))
  real_labels = np.array([0] * 12 + [1] * 12 + [2] * 6, np.int32)
  fake = rng.normal(size=(24, 4)) + 0.5
  fake_labels = np.array([0] * 10 + [1] * 10 + [2] * 4, np.int32)  # 2: too few
  reference = evaluator.Reference(
      features=real, mu=None, sigma=None, name="x", grayscale=False, key={},
      labels=real_labels, class_names=("a", "b", "c"))
  got = evaluator.class_metrics(fake, fake_labels, reference)
  expected = {name: fid_reference(fake[fake_labels == k], real[real_labels == k])
              for k, name in enumerate("ab")}
  assert set(got["intra_fid_per_class"]) == {"a", "b"}
  for name, value in expected.items():
    np.testing.assert_allclose(got["intra_fid_per_class"][name], value,
                               rtol=1e-6)
  np.testing.assert_allclose(got["intra_fid"], np.mean(list(expected.values())),
                             rtol=1e-6)
  unlabelled = dataclasses.replace(reference, labels=None)
  assert evaluator.class_metrics(fake, fake_labels, unlabelled) == {}


def test_a_conditional_run_logs_class_accuracy_of_its_classifier(tmp_path,
                                                                 monkeypatch):
  from configs import fashion_mnist_cwgangp  # pylint: disable=g-import-not-at-top
  from wgan_jax import classifier  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(classifier, "EPOCHS", 1)
  config = fashion_mnist_cwgangp.get_config("smoke")
  base = eval_config(steps=3)
  config.data.path, config.eval = base.data.path, base.eval
  config.num_train_steps = 3
  config.eval.num_samples = config.eval.num_real = 10
  config.eval.classifier_test_split = "test"
  train.train_and_evaluate(config, str(tmp_path))
  record = eval_records(str(tmp_path))[3]
  assert 0 <= record["eval/class_accuracy"] <= 1
  assert np.isfinite(record["eval/fid"])
  # The same number from the parts: the eval images of step 3 and their labels.
  model = classifier.for_config(config, str(tmp_path))
  generator = sampling.load_generator(str(tmp_path), 3)
  z = evaluator.eval_noise(config.seed, 3, 10, config.model.z_dim)
  ref = data_lib.load_dataset(
      ml_collections.ConfigDict(dict(config.data, max_examples=10)),
      seed=evaluator.REFERENCE_SEED)
  labels = evaluator.eval_labels(10, ref.labels, 10)
  images = sampling.sample(generator, z, labels)
  np.testing.assert_allclose(
      record["eval/class_accuracy"],
      np.mean(model.predict(images) == labels))
  # The evaluate command measures the checkpoint the same way.
  from wgan_jax import evaluate  # pylint: disable=g-import-not-at-top
  result = evaluate.run(workdir=str(tmp_path), step=3)
  assert result["class_accuracy"] == record["eval/class_accuracy"]
  assert result["classifier_test_accuracy"] == model.test_accuracy
  assert result["intra_fid"] is None  # 1 image per class: below the minimum
