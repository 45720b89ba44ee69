"""Evaluation: FID, KID and precision/recall of generators and image sets.

Every number comes from the pool3 features [N, 2048] of the FID Inception
network (inception.py): uint8 images, resized to 299x299 inside the network;
grayscale images (Fashion-MNIST) go through as 3 identical channels, as Lucic
et al. 2018 did, so their numbers are not comparable with RGB datasets'.

    evaluator = evaluator.Evaluator(evaluator.read_settings(config.eval))
    reference = evaluator.reference(config.data, cache_dir)  # cached on disk
    result = evaluator.evaluate_generator(module, variables, "tanh", z_dim,
                                          seed=config.seed, step=step,
                                          reference=reference)
    result["fid"], result["kid"], result["precision"], ...

Reproducible: the images evaluated at step S are a pure function of
(config.seed, S, num_samples) (`eval_noise`), so the training loop's
evaluation of step S and `python -m wgan_jax.evaluate --step=S` agree.

Reference: `num_real` images of the reference split (by default the training
split of config.data), a seeded subset (REFERENCE_SEED, independent of
config.seed and data.max_examples, so runs on one dataset share it). Its
features and their (mu, sigma) are computed once and cached in `cache_dir`
(metrics.cached_features / cached_statistics), keyed by the data settings,
the sha256 of the uint8 pixels and the Inception weights digest.

Metrics (metrics.py): FID of the fakes' (mu, sigma) against the reference's;
KID (unbiased cubic-kernel MMD^2, mean and std over `kid_subsets` subsets of
`kid_subset_size`); improved precision/recall (k = `pr_k`) on equally many
real and fake features (a seeded random subset of the larger set), since the
k-NN radii depend on the set size.

Class-conditional generators are asked for the reference's class mixture
(`eval_labels`) and are measured also by class: `class_accuracy`, the
fraction of generated images that the project's classifier of real images
(classifier.py) puts in their requested class, and intra-class FID, the FID
of each class's generated images against that class's reference images
(`intra_fid` is their mean over the classes with at least
MIN_CLASS_IMAGES of both; `intra_fid_per_class` holds each).

In training, `TrainingEvaluator` logs eval/fid, eval/kid, eval/kid_std,
eval/precision, eval/recall (conditional runs: eval/class_accuracy,
eval/intra_fid too) and keeps WORKDIR/eval/best.json.
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import tempfile
import time
from typing import Any, Mapping

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from wgan_jax import classifier as classifier_lib
from wgan_jax import data as data_lib
from wgan_jax import errors
from wgan_jax import inception
from wgan_jax import metrics
from wgan_jax import parallel
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import validation
from wgan_jax.data import transforms

# fold_in constant of the evaluation noise (train_step uses 0 for init and 1
# for training, sampling 2 for the fixed sample grid).
EVAL_STREAM = 3
# Seed of the reference subset: fixed, so every run on a dataset is compared
# with the same real images (and shares the cache).
REFERENCE_SEED = 0
# Seed of KID's subsets and of the precision/recall subset.
METRIC_SEED = 0
METRIC_NAMES = ("fid", "kid", "kid_std", "precision", "recall")
CONDITIONAL_METRIC_NAMES = ("class_accuracy", "intra_fid")
# Intra-class FID is computed for classes with at least this many generated
# and reference images (FID of fewer images is mostly its bias).
MIN_CLASS_IMAGES = 100
EVAL_DIR = "eval"
BEST_FILE = "best.json"
# Bump when the features of the same pixels and weights change meaning.
_CACHE_VERSION = 1
_FEATURES = ("FID Inception-v3 pool3 (TF 2015-12-05 graph): uint8 input, TF1 "
             "bilinear resize to 299x299, grayscale as 3 identical channels")
# config.data fields that decide the reference pixels.
_DATA_FIELDS = ("source", "path", "split", "image_size", "channels", "resize",
                "npz_images_key")


class EvaluationError(errors.UserError, ValueError):
  """Unusable evaluation input (e.g. too few images); the message says why."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """Validated config.eval fields (see configs/default.py)."""
  eval_every: int
  num_samples: int
  num_real: int
  reference_split: str
  batch_size: int
  inception_path: str
  kid_subsets: int
  kid_subset_size: int
  pr_k: int
  classifier_test_split: str = ""


def read_settings(eval_config: Mapping[str, Any] | None = None,
                  **overrides: Any) -> Settings:
  """config.eval (None: configs/default.py's), with non-None overrides applied.

  Raises:
    errors.ConfigError: a field cannot work; names the fix.
  """
  defaults = validation.default_config().eval.to_dict()
  values = dict(eval_config if eval_config is not None else defaults)
  values.update({k: v for k, v in overrides.items() if v is not None})
  unknown = sorted(set(values) - set(defaults))
  if unknown:
    raise TypeError(f"unknown evaluation settings {unknown}")
  s = Settings(**values)
  validation.check_eval(s)
  return s


def eval_noise(seed: int, step: int, num: int, z_dim: int) -> np.ndarray:
  """The evaluation noise float32 [num, z_dim] of step `step`.

  Normal draws from fold_in(fold_in(key(seed), EVAL_STREAM), step): the same
  for the training loop and the command line, different at every step.
  """
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed),
                                              EVAL_STREAM), step)
  return np.asarray(jax.random.normal(key, (num, z_dim), np.float32))


@dataclasses.dataclass(frozen=True, eq=False)
class Reference:
  """Real images' Inception features and their FID statistics.

  Attributes:
    features: float32 [N, 2048].
    mu: float64 [2048]; sigma: float64 [2048, 2048] (unbiased covariance).
    name: what they are, e.g. 'fashion_mnist:train'.
    grayscale: the images had 1 channel (fed as 3 identical channels).
    key: the cache key (JSON-serialisable).
    seconds: wall time to load the images and get the features.
    labels: int32 [N] classes of the images, None if unlabelled.
    class_names: the names of the label values; () if unlabelled.
  """
  features: np.ndarray
  mu: np.ndarray
  sigma: np.ndarray
  name: str
  grayscale: bool
  key: dict[str, Any]
  seconds: float = 0.0
  labels: np.ndarray | None = None
  class_names: tuple[str, ...] = ()

  @property
  def digest(self) -> str:
    """Short sha256 of the key: identifies the reference in best.json."""
    text = json.dumps(self.key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_name(data: Mapping[str, Any]) -> str:
  """'fashion_mnist:train', 'tfds:cifar10:test', 'folder:/abs/path', ..."""
  source = data.get("source", "")
  if source in ("folder", "npz"):
    return f"{source}:{os.path.abspath(os.path.expanduser(data['path']))}"
  return f"{source}:{data.get('split', 'train')}"


def compute_metrics(fake_features: np.ndarray, reference: Reference,
                    settings: Settings) -> dict[str, float]:
  """FID, KID (+ std) and precision/recall of fake features [N, D].

  Returns:
    {'fid', 'kid', 'kid_std', 'precision', 'recall'}: FID in squared feature
    units; KID as MMD^2 (not x1000); precision, recall in [0, 1].

  Raises:
    EvaluationError: fewer than max(2, pr_k + 1) rows in either set.
  """
  fake = np.asarray(fake_features)
  real = reference.features
  least = max(2, settings.pr_k + 1)
  if min(len(fake), len(real)) < least:
    raise EvaluationError(
        f"need at least {least} real and fake images (FID needs 2, "
        f"precision/recall more than k={settings.pr_k}); got {len(real)} "
        f"real, {len(fake)} fake")
  fid = _fid(fake, real, (reference.mu, reference.sigma))
  kid, kid_std = metrics.kid(fake, real, settings.kid_subsets,
                             settings.kid_subset_size, seed=METRIC_SEED)
  # k-NN radii shrink as a set grows, so both sets get the same size; the
  # reference rows are in file order (e.g. sorted by class), hence random.
  m = min(len(fake), len(real))
  rng = np.random.default_rng(METRIC_SEED)
  if len(real) > m:
    real = real[np.sort(rng.choice(len(real), m, replace=False))]
  if len(fake) > m:
    fake = fake[np.sort(rng.choice(len(fake), m, replace=False))]
  precision, recall = metrics.precision_recall(real, fake, settings.pr_k)
  return {"fid": fid, "kid": kid, "kid_std": kid_std, "precision": precision,
          "recall": recall}


def eval_labels(num: int, reference_labels: np.ndarray | None,
                num_classes: int) -> np.ndarray:
  """The classes int32 [num] asked of a conditional generator, sorted.

  The reference's class mixture: class k gets num * n_k / N images, rounded
  by largest remainder so that they sum to num (uniform if the reference
  has no labels). A function of the reference alone, so every evaluation of
  a run asks for the same classes.
  """
  if reference_labels is None or not len(reference_labels):
    frequencies = np.full(num_classes, 1.0 / num_classes)
  else:
    frequencies = np.bincount(reference_labels, minlength=num_classes) / len(
        reference_labels)
  exact = num * frequencies
  counts = np.floor(exact).astype(int)
  order = np.argsort(-(exact - counts), kind="stable")
  counts[order[:num - counts.sum()]] += 1
  return np.repeat(np.arange(num_classes, dtype=np.int32), counts)


def _fid(fake: np.ndarray, real: np.ndarray,
         real_statistics: tuple[np.ndarray, np.ndarray] | None = None) -> float:
  """FID of feature sets [N, D], [M, D]; real_statistics: (mu, sigma) of real, if known."""
  if max(len(fake), len(real)) <= fake.shape[1]:
    # Few images (tests, quick looks, classes): metrics.fid's exact path needs
    # no D x D eigendecompositions (about 20 s on a 2-core CPU for D = 2048).
    return metrics.fid(fake, real)
  mu, sigma = metrics.statistics(fake)
  mu_r, sigma_r = real_statistics or metrics.statistics(real)
  return metrics.frechet_distance(mu, sigma, mu_r, sigma_r)


def class_metrics(fake_features: np.ndarray, labels: np.ndarray,
                  reference: Reference) -> dict[str, Any]:
  """Intra-class FID of fake features [N, D] generated for labels [N].

  Returns {'intra_fid': mean over the classes with >= MIN_CLASS_IMAGES
  fakes and reference images (None if none has), 'intra_fid_per_class':
  {class name: FID}}; {} if the reference has no labels.
  """
  if reference.labels is None:
    return {}
  per_class = {}
  for k, name in enumerate(reference.class_names):
    fake, real = fake_features[labels == k], reference.features[
        reference.labels == k]
    if min(len(fake), len(real)) >= MIN_CLASS_IMAGES:
      per_class[name] = _fid(fake, real)
  mean = float(np.mean(list(per_class.values()))) if per_class else None
  return {"intra_fid": mean, "intra_fid_per_class": per_class}


@functools.partial(jax.jit, static_argnums=(0, 1))
def _generate_uint8(module: nn.Module, output_activation: str,
                    variables: dict[str, Any], z: jax.Array,
                    labels: jax.Array | None) -> jax.Array:
  # Quantized on device: 4x less to copy back, and exactly as a saved PNG.
  out = module.apply(variables, z, labels, train=False)
  return transforms.to_uint8(out, output_activation)


class Evaluator:
  """Inception features on a mesh, references, and the metrics."""

  def __init__(self, settings: Settings, mesh: Mesh | None = None):
    """Loads the Inception weights (settings.inception_path or the default).

    Raises:
      errors.MissingFileError: no weights file; the message says how to get
        one.
      errors.DataError: the file holds other weights.
    """
    self.settings = settings
    self.mesh = parallel.make_mesh() if mesh is None else mesh
    params = inception.load_params(settings.inception_path or None)
    self.weights_digest = inception.weights_digest(params)
    self._feature_fn = inception.make_feature_fn(params, settings.batch_size,
                                                 self.mesh)
    n = self.mesh.devices.size
    # Whole batches per device, as make_feature_fn rounds its batch.
    self._batch_size = math.ceil(settings.batch_size / n) * n

  def features(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C], C in {1, 3} -> float32 [N, 2048] pool3 features."""
    return self._feature_fn(images)

  def reference(self, data: Mapping[str, Any], cache_dir: str | None,
                split: str | None = None) -> Reference:
    """Features of `settings.num_real` images of `data` (0: all), cached.

    Args:
      data: a config.data ConfigDict (data_lib.load_dataset fields).
      cache_dir: where decoded images, features and statistics are cached;
        None: nothing is cached.
      split: the split to use; None: settings.reference_split, or if that is
        empty data.split (the training data).

    Raises:
      errors.DataError: the data cannot be loaded, or are 2-D points.
    """
    t0 = time.perf_counter()
    data = ml_collections.ConfigDict(dict(data))
    data.split = split or self.settings.reference_split or data.get(
        "split", "train")
    data.max_examples = self.settings.num_real
    dataset = data_lib.load_dataset(data, cache_dir=cache_dir,
                                    seed=REFERENCE_SEED)
    if not dataset.is_image:
      raise errors.DataError(
          f"{data.source} gives 2-D points, not images: FID/KID need images "
          "(set config.eval.eval_every=0 for toy runs)")
    images = np.ascontiguousarray(dataset.examples)
    spec = {k: data.get(k, "") for k in _DATA_FIELDS}
    if spec["source"] != "npz":
      del spec["npz_images_key"]  # Unused, so it must not split the cache.
    if spec["path"]:
      spec["path"] = os.path.abspath(os.path.expanduser(spec["path"]))
    key = {
        "version": _CACHE_VERSION, "features": _FEATURES, "data": spec,
        "num_real": self.settings.num_real, "subset_seed": REFERENCE_SEED,
        "num_images": len(images), "image_shape": list(images.shape[1:]),
        # The pixels themselves: any change of files or decoding is a miss.
        "images_sha256": hashlib.sha256(images.data).hexdigest(),
        "weights_sha256": self.weights_digest,
    }
    compute = lambda: self.features(images)  # noqa: E731
    if cache_dir and not parallel.on_all_processes(
        metrics.features_cached(cache_dir, key)):
      # Inception runs on every process together: one that found the cache
      # (a disk of its own, a file written meanwhile) must compute too.
      features = compute()
      compute = lambda: features  # noqa: E731
    if cache_dir:
      features = metrics.cached_features(cache_dir, key, compute)
      mu, sigma = metrics.cached_statistics(cache_dir, key, lambda: features)
    else:
      features = compute()
      mu, sigma = metrics.statistics(features)
    seconds = time.perf_counter() - t0
    name = data_name(data)
    logging.info("Reference %s: %d images %s (grayscale as 3 channels: %s), "
                 "%.1f s.", name, len(images), list(images.shape[1:]),
                 images.shape[-1] == 1, seconds)
    return Reference(features=features, mu=mu, sigma=sigma, name=name,
                     grayscale=images.shape[-1] == 1, key=key, seconds=seconds,
                     labels=dataset.labels, class_names=dataset.class_names)

  def generate(self, module: nn.Module, variables: dict[str, Any],
               output_activation: str, z: np.ndarray,
               labels: np.ndarray | None = None) -> np.ndarray:
    """Generator images uint8 [N, H, W, C] for z [N, z_dim] (eval mode).

    `labels` (int [N]) for a class-conditional generator. Batches of
    settings.batch_size (rounded up to whole batches per device), split over
    the mesh like training; variables are replicated. With several processes
    every process calls this with the same z (and labels) and gets all the
    images.
    """
    z = np.asarray(z, np.float32)
    sharded = parallel.batch_sharded(self.mesh)
    variables = jax.device_put(variables, parallel.replicated(self.mesh))
    b = self._batch_size
    out = []
    for start in range(0, len(z), b):
      # Zero rows pad the last batch, so one program serves every batch.
      pad = lambda x: np.concatenate(  # noqa: E731
          [x, np.zeros((b - len(x),) + x.shape[1:], x.dtype)])
      chunk = pad(z[start:start + b])
      chunk_labels = (None if labels is None else jax.device_put(
          pad(np.asarray(labels[start:start + b], np.int32)), sharded))
      out.append(_generate_uint8(module, output_activation, variables,
                                 jax.device_put(chunk, sharded), chunk_labels))
    # Each process generated the rows of its devices; to_host gathers them.
    return np.concatenate([parallel.to_host(x) for x in out])[:len(z)]

  def evaluate_images(self, images: np.ndarray, reference: Reference,
                      labels: np.ndarray | None = None,
                      classifier: classifier_lib.Classifier | None = None
                      ) -> dict[str, Any]:
    """Metrics of uint8 images [N, H, W, C] against `reference`.

    Args:
      labels: int [N], the classes the images were generated for: adds
        intra-class FID (`class_metrics`) and, with `classifier`,
        class_accuracy and classifier_test_accuracy.

    Returns:
      compute_metrics' numbers plus num_samples, num_real, dataset (the
      reference's name), grayscale_as_rgb (either set had 1 channel and went
      through Inception as 3 identical channels), seconds_features,
      seconds_metrics.
    """
    t0 = time.perf_counter()
    fake = self.features(images)
    t1 = time.perf_counter()
    result: dict[str, Any] = compute_metrics(fake, reference, self.settings)
    if labels is not None:
      result.update(class_metrics(fake, np.asarray(labels), reference))
      if classifier is not None:
        result.update(
            class_accuracy=classifier_lib.class_accuracy(classifier, images,
                                                         labels),
            classifier_test_accuracy=classifier.test_accuracy)
    result.update(
        num_samples=len(images), num_real=len(reference.features),
        dataset=reference.name,
        grayscale_as_rgb=bool(reference.grayscale or images.shape[-1] == 1),
        seconds_features=t1 - t0, seconds_metrics=time.perf_counter() - t1)
    return result

  def evaluate_generator(self, module: nn.Module, variables: dict[str, Any],
                         output_activation: str, z_dim: int, seed: int,
                         step: int, reference: Reference,
                         num_classes: int = 0,
                         classifier: classifier_lib.Classifier | None = None
                         ) -> dict[str, Any]:
    """Metrics of settings.num_samples images of a generator at `step`.

    The noise is eval_noise(seed, step, ...); a class-conditional generator
    (num_classes > 0) is asked for eval_labels(...), the reference's class
    mixture. `evaluate_images` says what comes back, plus step and
    seconds_generate.
    """
    t0 = time.perf_counter()
    z = eval_noise(seed, step, self.settings.num_samples, z_dim)
    labels = (eval_labels(len(z), reference.labels, num_classes)
              if num_classes else None)
    images = self.generate(module, variables, output_activation, z, labels)
    seconds = time.perf_counter() - t0
    result = self.evaluate_images(images, reference, labels, classifier)
    result.update(step=int(step), seconds_generate=seconds)
    return result


# ------------------------------------------------------------ best record --


def best_path(workdir: str) -> str:
  return os.path.join(workdir, EVAL_DIR, BEST_FILE)


def read_best(workdir: str) -> dict[str, Any] | None:
  """WORKDIR/eval/best.json, or None if the run has none.

  Fields: step, fid, kid, kid_std, precision, recall of the best-FID
  evaluation under the current settings; grayscale_as_rgb; settings (what the
  numbers depend on: num_samples, num_real, reference digest, ...); and
  evaluations, every evaluation as {step, settings_id, fid, ...}.
  """
  path = best_path(workdir)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_json_atomically(path: str, value: Any) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=BEST_FILE,
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(value, f, indent=1)
      f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


class TrainingEvaluator:
  """The training loop's evaluation hook (config.eval.eval_every > 0).

  Construction loads the Inception weights (a missing file raises
  errors.MissingFileError before any training) and the reference (computed
  once, then read from the cache). Each call evaluates the current generator,
  logs eval/* and updates WORKDIR/eval/best.json. Every process computes;
  only process 0 writes.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str,
               start_step: int, mesh: Mesh | None = None):
    """Prepares the evaluation of a run (re)starting at step `start_step`."""
    self.settings = read_settings(config.eval)
    self._workdir = workdir
    self._seed = config.seed
    self._config = config
    self._evaluator = Evaluator(self.settings, mesh)
    cache_dir = config.data.cache_dir or os.path.join(workdir, "data_cache")
    self.reference = self._evaluator.reference(config.data, cache_dir)
    self._num_classes = config.model.num_classes
    # Conditional runs: the classifier of real images (trained once, cached).
    self._classifier = (classifier_lib.for_config(config, workdir)
                        if self._num_classes else None)
    self._metric_names = METRIC_NAMES + (
        CONDITIONAL_METRIC_NAMES if self._num_classes else ())
    # What makes two evaluations comparable; a change starts a new best.
    self._settings = {
        "num_samples": self.settings.num_samples,
        "num_real": len(self.reference.features),
        "reference": self.reference.name,
        "reference_digest": self.reference.digest,
        "seed": self._seed,
        "kid_subsets": self.settings.kid_subsets,
        "kid_subset_size": self.settings.kid_subset_size,
        "pr_k": self.settings.pr_k,
        "ema_standing_batches": (config.ema.standing_batches
                                 if config.ema.decay else 0),
    }
    self._settings_id = hashlib.sha256(json.dumps(
        self._settings, sort_keys=True).encode()).hexdigest()[:12]
    previous = read_best(workdir) or {}
    evaluations = previous.get("evaluations", [])
    # Evaluations after the restored step belong to a future this run
    # recomputes; keeping them could leave a best step that never happens.
    self._evaluations = [e for e in evaluations if e["step"] <= start_step]
    if len(self._evaluations) != len(evaluations):
      self._write()

  def should_evaluate(self, step: int, last: bool) -> bool:
    """Whether the state after `step` generator steps is evaluated."""
    every = self.settings.eval_every
    return every > 0 and (step % every == 0 or last)

  def __call__(self, step: int, gan: Any, state: Any,
               writer: run_logs.MetricWriter) -> dict[str, Any]:
    """Evaluates the generator of train_step.TrainState `state` at `step`.

    Args:
      step: generator steps done.
      gan: the train_step.GAN (generator module, output activation, z_dim).
      state: the train_step.TrainState.
      writer: receives eval/fid, eval/kid, eval/kid_std, eval/precision,
        eval/recall at `step`.

    With an EMA of the generator (config.ema), eval/* are the average's
    numbers (with its standing batch statistics, config.ema.standing_batches)
    and eval_raw/* the raw generator's; best.json follows eval/fid.

    Returns:
      Evaluator.evaluate_generator's result (of the EMA generator if any).
    """
    def evaluate(variables):
      return self._evaluator.evaluate_generator(
          gan.generator, variables, gan.output_activation, gan.z_dim,
          self._seed, step, self.reference, self._num_classes,
          self._classifier)

    result = evaluate(sampling.state_variables(gan.generator,
                                               state.generator, self._config,
                                               step))
    scalars = {f"eval/{name}": result[name] for name in self._metric_names
               if result.get(name) is not None}
    if state.generator.has_ema:
      raw = evaluate(state.generator.variables)
      scalars.update({f"eval_raw/{name}": raw[name]
                      for name in self._metric_names
                      if raw.get(name) is not None})
      result["raw"] = raw
    writer.write_scalars(step, scalars)
    run_logs.log_scalars(step, scalars)
    logging.info(
        "Evaluated step %d: %d samples vs %d of %s (grayscale as 3 identical "
        "channels: %s) in %.1f s.", step, result["num_samples"],
        result["num_real"], result["dataset"], result["grayscale_as_rgb"],
        result["seconds_generate"] + result["seconds_features"] +
        result["seconds_metrics"])
    entry = {"step": int(step), "settings_id": self._settings_id}
    entry.update({name: None if result.get(name) is None else float(result[name])
                  for name in self._metric_names})
    # A re-evaluation of a step (resumed run) replaces the earlier one.
    self._evaluations = [e for e in self._evaluations if e["step"] != step]
    self._evaluations.append(entry)
    self._evaluations.sort(key=lambda e: e["step"])
    self._write()
    return result

  def _write(self) -> None:
    """Rewrites best.json from the evaluations (process 0 only)."""
    comparable = [e for e in self._evaluations
                  if e["settings_id"] == self._settings_id]
    best = min(comparable, key=lambda e: (e["fid"], e["step"]),
               default=dict.fromkeys(("step",) + METRIC_NAMES))
    record = {name: best[name] for name in ("step",) + METRIC_NAMES}
    record.update(grayscale_as_rgb=self.reference.grayscale,
                  settings_id=self._settings_id, settings=self._settings,
                  evaluations=self._evaluations)
    if parallel.is_primary():
      _write_json_atomically(best_path(self._workdir), record)
