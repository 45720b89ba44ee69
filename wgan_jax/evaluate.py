"""FID, KID and precision/recall of a run's checkpoint, or of two image sets.

Usage:
  python -m wgan_jax.evaluate --workdir=DIR [--step=S] [--num_samples=N]
      [--num_real=N] [--batch_size=B] [--inception=PATH] [--cache_dir=DIR]
  python -m wgan_jax.evaluate --real=SET --fake=SET [--num_real=N]
      [--num_samples=N] [--batch_size=B] [--inception=PATH] [--cache_dir=DIR]
      [--data_path=DIR] [--image_size=S] [--npz_key=KEY]

--workdir evaluates checkpoint --step (default: the latest; the moving
average of the generator's weights if the run keeps one, --raw for the raw
weights) exactly as the training loop does (wgan_jax/evaluator.py): the run's config.eval settings,
overridden by the flags given, noise from (config.seed, step), reference =
the run's training data, cached in config.data.cache_dir or DIR/data_cache.

--real/--fake compare two image sets. A SET is a folder or .zip of images, an
.npz holding uint8 images ([N, H, W], [N, H, W, C] or [N, C, H, W]; array
--npz_key, default 'images', else the only array), or an array dataset as
SOURCE:SPLIT: fashion_mnist:test, mnist:train (IDX files in --data_path, else
the default places), tfds:NAME:SPLIT. --num_real/--num_samples take a seeded
subset of the real/fake set (default: all). With --cache_dir the real set's
features are cached.

Prints one JSON line: fid, kid, kid_std, precision, recall, num_samples,
num_real, step (null for --real/--fake), dataset, grayscale_as_rgb (true: 1-
channel images went through Inception as 3 identical channels), seconds
(wall time, all included), then details. For a class-conditional run also
class_accuracy (the project classifier's verdict on the generated images,
wgan_jax/classifier.py; classifier_test_accuracy is its accuracy on real
held-out images), intra_fid and intra_fid_per_class. Bad input (a `errors.UserError`:
bad flag, missing path or weights, empty folder, no checkpoint) exits with
status 1 and one error line naming it, without a traceback; set
WGAN_JAX_TRACEBACK=1 to get the exception instead.

Python: run(workdir=..., ...) or run(real=..., fake=...) returns the dict.

Several processes (a TPU pod slice, a GPU cluster) evaluate together: each
runs the same command, generates and featurizes its share of the images,
and the features are gathered, so the numbers are those of one process;
process 0 prints the line. --coordinator_address, --num_processes,
--process_id as for wgan_jax.main (wgan_jax/distributed.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

import ml_collections
import numpy as np
from absl import logging

from wgan_jax import checkpointing
from wgan_jax import classifier as classifier_lib
from wgan_jax import data as data_lib
from wgan_jax import distributed
from wgan_jax import errors
from wgan_jax import evaluator
from wgan_jax import parallel
from wgan_jax import sampling
from wgan_jax import validation

# The first fields of the JSON line, in this order.
FIELDS = ("fid", "kid", "kid_std", "precision", "recall", "num_samples",
          "num_real", "step", "dataset", "grayscale_as_rgb", "seconds")
_NPZ_DEFAULT_KEY = "images"
_ARRAY_SOURCES = ("fashion_mnist", "mnist")


PROG = "evaluate"


class ArgumentError(errors.UserError, ValueError):
  """A bad flag or argument; the message names it and the fix."""


def set_data_config(spec: str, flag: str, data_path: str = "",
                    image_size: int = 0,
                    npz_key: str = "") -> ml_collections.ConfigDict:
  """The config.data that data_lib.load_dataset needs for a SET.

  Args:
    spec: a folder, .zip or .npz path, or SOURCE:SPLIT (see the module doc).
    flag: the flag's name, for messages ('real' or 'fake').
    data_path: IDX folder (fashion_mnist, mnist) or TFDS data_dir (tfds:).
    image_size: resize every image to this square size; 0 keeps the sizes.
    npz_key: the .npz array; '' = 'images', else the file's only array.
  """
  data = validation.default_config().data
  data.image_size = image_size
  data.npz_images_key = data.npz_labels_key = ""
  path = os.path.expanduser(spec)
  if os.path.isdir(path) or path.lower().endswith(".zip"):
    data.source, data.path = "folder", path
  elif path.lower().endswith(".npz"):
    if not os.path.exists(path):
      raise ArgumentError(f"--{flag}={spec}: no such file or folder.")
    data.source, data.path = "npz", path
    data.npz_images_key = npz_key or _npz_images_key(path, flag)
  elif spec.startswith("tfds:") and spec.count(":") == 2:
    _, name, split = spec.split(":")
    data.source, data.split, data.path = f"tfds:{name}", split, data_path
  elif spec.split(":")[0] in _ARRAY_SOURCES and spec.count(":") == 1:
    data.source, data.split = spec.split(":")
    data.path = data_path
  else:
    raise ArgumentError(
        f"--{flag}={spec}: not a folder, .zip or .npz (no such path?), nor "
        f"SOURCE:SPLIT with SOURCE in {', '.join(_ARRAY_SOURCES)} or "
        "tfds:NAME:SPLIT.")
  if data.source in ("folder", "npz") and not os.path.exists(path):
    raise ArgumentError(f"--{flag}={spec}: no such file or folder.")
  return data


def _npz_images_key(path: str, flag: str) -> str:
  try:
    with np.load(path, allow_pickle=False) as f:
      keys = list(f.keys())
  except (OSError, ValueError) as e:
    raise ArgumentError(f"--{flag}={path}: cannot read it as .npz ({e}).") \
        from None
  if _NPZ_DEFAULT_KEY in keys:
    return _NPZ_DEFAULT_KEY
  if len(keys) == 1:
    return keys[0]
  raise ArgumentError(f"--{flag}={path} holds arrays {keys}; name the images "
                      "with --npz_key.")


def _ordered(result: dict[str, Any]) -> dict[str, Any]:
  """FIELDS first, then the rest sorted."""
  out = {k: result.get(k) for k in FIELDS}
  out.update(sorted((k, v) for k, v in result.items() if k not in FIELDS))
  return out


def run(workdir: str | None = None, step: int | None = None,
        real: str | None = None, fake: str | None = None,
        num_samples: int | None = None, num_real: int | None = None,
        batch_size: int | None = None, inception: str | None = None,
        cache_dir: str | None = None, data_path: str = "",
        image_size: int = 0, npz_key: str = "",
        raw: bool = False) -> dict[str, Any]:
  """Evaluates a run's checkpoint (workdir) or one image set vs another.

  Arguments are the flags of the module docstring; None takes the default.

  Returns:
    The JSON line's dict (FIELDS first).

  Raises:
    errors.UserError: the input cannot work (ArgumentError, errors.ConfigError,
      errors.DataError, errors.MissingFileError, evaluator.EvaluationError,
      ...), with a one-line message naming the thing and the fix.
  """
  t0 = time.perf_counter()
  if (workdir is None) == (real is None and fake is None):
    raise ArgumentError("Give --workdir, or --real and --fake (not both).")
  if workdir is not None:
    result = _evaluate_run(workdir, step, num_samples, num_real, batch_size,
                           inception, cache_dir, raw)
  else:
    if real is None or fake is None:
      raise ArgumentError("--real and --fake go together: give both sets.")
    if step is not None or raw:
      raise ArgumentError(f"--{'step' if step is not None else 'raw'} "
                          "applies to --workdir only.")
    result = _evaluate_sets(real, fake, num_samples, num_real, batch_size,
                            inception, cache_dir, data_path, image_size,
                            npz_key)
  result["seconds"] = time.perf_counter() - t0
  return _ordered(result)


def _evaluate_run(workdir, step, num_samples, num_real, batch_size,
                  inception, cache_dir, raw) -> dict[str, Any]:
  if not os.path.isdir(workdir):
    raise ArgumentError(f"--workdir={workdir} is not a folder; give the "
                        "--workdir of a training run.")
  step = checkpointing.resolve_step(workdir, step)  # Clear error if none.
  meta = checkpointing.read_meta(workdir, step)
  config = checkpointing.config_from_meta(meta)
  if len(meta["data_shape"]) != 3:
    raise ArgumentError(f"{workdir} is a run on 2-D points "
                        f"({config.data.source}); FID/KID need images.")
  settings = evaluator.read_settings(
      config.eval, num_samples=num_samples, num_real=num_real,
      batch_size=batch_size, inception_path=inception)
  ev = evaluator.Evaluator(settings)  # Missing weights fail here.
  generator = sampling.load_generator(workdir, step, False if raw else None)
  cache_dir = cache_dir or config.data.cache_dir or os.path.join(
      workdir, "data_cache")
  reference = ev.reference(config.data, cache_dir)
  classifier = None
  if generator.num_classes:
    # Class-conditional: the classifier of real images (trained once, cached
    # with the reference), for class accuracy.
    classifier = classifier_lib.load_or_train(
        config.data, generator.num_classes,
        config.eval.classifier_test_split, cache_dir)
  result = ev.evaluate_generator(
      generator.module, generator.variables, generator.output_activation,
      generator.z_dim, config.seed, step, reference, generator.num_classes,
      classifier)
  result.update(workdir=os.path.abspath(workdir), ema=generator.ema,
                seconds_reference=reference.seconds,
                weights_sha256=ev.weights_digest,
                **_metric_settings(settings))
  return result


def _evaluate_sets(real, fake, num_samples, num_real, batch_size, inception,
                   cache_dir, data_path, image_size,
                   npz_key) -> dict[str, Any]:
  # Everything of both sets unless a count is given.
  settings = evaluator.read_settings(
      None, num_real=num_real or 0, batch_size=batch_size,
      inception_path=inception,
      num_samples=num_samples or validation.default_config().eval.num_samples)
  real_data = set_data_config(real, "real", data_path, image_size, npz_key)
  fake_data = set_data_config(fake, "fake", data_path, image_size, npz_key)
  fake_data.max_examples = num_samples or 0
  ev = evaluator.Evaluator(settings)  # Missing weights fail here.
  reference = ev.reference(real_data, cache_dir or None)
  fakes = data_lib.load_dataset(fake_data, seed=evaluator.REFERENCE_SEED)
  if not fakes.is_image:
    raise ArgumentError(f"--fake={fake} gives 2-D points, not images.")
  result = ev.evaluate_images(np.asarray(fakes.examples), reference)
  result.update(step=None, real=real, fake=fake,
                seconds_reference=reference.seconds,
                weights_sha256=ev.weights_digest,
                **_metric_settings(settings))
  return result


def _metric_settings(settings: evaluator.Settings) -> dict[str, int]:
  return {"kid_subsets": settings.kid_subsets,
          "kid_subset_size": settings.kid_subset_size, "pr_k": settings.pr_k}


class _Parser(argparse.ArgumentParser):
  """Flag errors (an unknown flag, --step=x) are user errors: one line, 1."""

  def error(self, message: str):
    raise ArgumentError(f"{message} (see --help).")


def _parser() -> argparse.ArgumentParser:
  # argparse, not absl flags: absl's FLAGS are global, and --workdir/--step
  # are already defined by wgan_jax.generate in the same process (tests).
  parser = _Parser(
      prog="python -m wgan_jax.evaluate",
      description="FID, KID and precision/recall (FID Inception features); "
                  "prints one JSON line.")
  add = parser.add_argument
  add("--workdir", help="a training run's --workdir: evaluate a checkpoint")
  add("--step", type=int, help="checkpoint step (default: the latest)")
  add("--real", help="reference SET (with --fake): folder, .zip, .npz, "
                     "fashion_mnist:SPLIT, mnist:SPLIT or tfds:NAME:SPLIT")
  add("--fake", help="SET to evaluate against --real")
  add("--num_samples", type=int, help="generated images (default: the run's "
                                      "config.eval); with --fake: a subset")
  add("--num_real", type=int, help="reference images, a seeded subset; 0 = "
                                   "all (default: config.eval; all for --real)")
  add("--batch_size", type=int, help="images per Inception/sampling step")
  add("--inception", help="FID Inception weights .npz (default: "
                          "$WGAN_JAX_INCEPTION, $WGAN_JAX_DATA_DIR/inception/,"
                          " ~/.cache/wgan_jax/)")
  add("--cache_dir", help="reference features cache (default for --workdir: "
                          "the run's data cache; none for --real)")
  add("--data_path", default="", help="IDX folder for fashion_mnist:/mnist:, "
                                      "TFDS data_dir for tfds:")
  add("--image_size", type=int, default=0,
      help="--real/--fake: resize images to this square size (0: keep)")
  add("--npz_key", default="", help="images array of .npz SETs")
  add("--raw", action="store_true", help="--workdir: the generator's raw "
      "weights instead of their moving average (runs with config.ema)")
  add("--coordinator_address", help="multi-process runs: HOST:PORT of process"
                                    " 0 (default: $JAX_COORDINATOR_ADDRESS or "
                                    "the detected cluster's)")
  add("--num_processes", type=int, help="multi-process runs: process count")
  add("--process_id", type=int, help="multi-process runs: this process")
  add("--distributed_timeout", type=int,
      default=distributed.DEFAULT_TIMEOUT_S,
      help="seconds to wait for every process to connect")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Parses argv (without the program name), prints the JSON line.

  Returns 0, or 1 after printing one error line to stderr for a
  `errors.UserError` (re-raised instead when WGAN_JAX_TRACEBACK=1). Other
  exceptions are bugs and keep their traceback.
  """
  logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO.
  try:
    args = vars(_parser().parse_args(argv))
    distributed.initialize(*(args.pop(k) for k in (
        "coordinator_address", "num_processes", "process_id",
        "distributed_timeout")))
    result = run(**args)
  except errors.UserError as e:
    if errors.show_traceback():
      raise
    # One line naming the problem and the fix, not a traceback.
    errors.print_error(PROG, e)
    return errors.EXIT_STATUS
  if parallel.is_primary():
    print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
