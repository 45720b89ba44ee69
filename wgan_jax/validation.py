"""Every check of a config, in one place, with one clear message each.

`validate(config)` is called before anything is built; `check_data(data)`
checks a `config.data` on its own (the evaluation command builds one). The
tables that define what exists (losses, architectures, data sources,
optimizers) live with their code; the checks here read those tables.
"""

import difflib
import hashlib
import importlib.util
import pathlib
from typing import Any, Mapping

import ml_collections
import numpy as np

from wgan_jax import augment
from wgan_jax import conditioning
from wgan_jax import data as data_lib
from wgan_jax import losses
from wgan_jax import models
from wgan_jax import optimizers
from wgan_jax import presets
from wgan_jax.errors import ConfigError

# configs/default.py beside the package: the one place defaults live.
_DEFAULT_CONFIG_FILE = (pathlib.Path(__file__).resolve().parents[1] / "configs"
                        / "default.py")
# Examples hashed for the dataset digest of the resume check: enough to tell
# two datasets apart, cheap for any size.
_DIGEST_EXAMPLES = 1024


def _choice(value: object, allowed, field: str) -> None:
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of "
                      f"{tuple(allowed)}.")


def default_config() -> ml_collections.ConfigDict:
  """configs/default.py's base_config(): every field with its default."""
  try:
    from configs import default  # pylint: disable=g-import-not-at-top
  except ImportError:  # Not run from the checkout's root.
    spec = importlib.util.spec_from_file_location("_wgan_jax_default_config",
                                                  _DEFAULT_CONFIG_FILE)
    default = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(default)
  return default.base_config()


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a.b': value} of a nested ConfigDict or dict; sequences as tuples."""
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_flat(value, name + "."))
    else:
      out[name] = tuple(value) if isinstance(value, (list, tuple)) else value
  return out


def _kind(value: Any) -> str:
  if isinstance(value, bool):
    return "bool"
  if isinstance(value, (int, float)):
    return "number"
  if isinstance(value, (tuple, list)):
    return "sequence"
  return type(value).__name__


def check_schema(config: ml_collections.ConfigDict) -> None:
  """Every field of `config` exists in configs/default.py, with a value of its kind.

  Catches a misspelt field wherever it was written: a config file, a
  ConfigDict built in Python, or the command line. Every default field must
  be present too (configs start from default.base_config()).
  """
  # The default's model is a preset, and every preset carries every field.
  schema = _flat(default_config())
  fields = _flat(config)
  unknown = sorted(set(fields) - set(schema))
  if unknown:
    hints = []
    for name in unknown:
      close = difflib.get_close_matches(name, schema, n=1)
      hints.append(f"config.{name}" + (f" (did you mean config.{close[0]}?)"
                                       if close else ""))
    raise ConfigError(f"unknown config field {', '.join(hints)}: every field "
                      "must exist in configs/default.py (model fields in "
                      "wgan_jax/presets.py).")
  missing = sorted(set(schema) - set(fields))
  if missing:
    raise ConfigError(f"config lacks {', '.join('config.' + m for m in missing)}:"
                      " build configs from configs.default.base_config().")
  for name, value in fields.items():
    expected = schema[name]
    if _kind(value) != _kind(expected):
      raise ConfigError(f"config.{name}={value!r} should be a "
                        f"{_kind(expected)} like its default {expected!r}.")


def check_data(data: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a `config.data` whose fields cannot work."""
  source = data.source
  if not data_lib.known_source(source):
    raise ConfigError(f"config.data.source={source!r} is not a known source; "
                      f"use one of {', '.join(data_lib.SOURCES)}.")
  _choice(data.resize, data_lib.RESIZE_MODES, "data.resize")
  if data.channels not in (0, 1, 3):
    raise ConfigError(f"config.data.channels={data.channels!r}; use 1 "
                      "(grayscale), 3 (RGB) or 0 (the source's own).")
  if not isinstance(data.image_size, int) or data.image_size < 0:
    raise ConfigError(f"config.data.image_size={data.image_size!r}; use a "
                      "positive size or 0 to keep the source size.")
  if not isinstance(data.max_examples, int) or data.max_examples < 0:
    raise ConfigError(f"config.data.max_examples={data.max_examples!r}; use "
                      "a positive count or 0 for all.")
  if source in data_lib.TOY_SOURCES:
    if data.toy_num_examples <= 0:
      raise ConfigError(f"config.data.toy_num_examples="
                        f"{data.toy_num_examples}; use a positive count.")
    if data.random_flip:
      raise ConfigError(f"config.data.random_flip=True needs images, but "
                        f"{source} gives 2-D points; set random_flip=False.")


def check_eval(s: Any) -> None:
  """Raises ConfigError for config.eval fields (or evaluator.Settings) that cannot work."""

  def error(field, must):
    return ConfigError(
        f"config.eval.{field} (--{field} on the command line) must be {must}, "
        f"got {getattr(s, field)!r}.")

  if s.eval_every < 0:
    raise error("eval_every", ">= 0 (0 turns evaluation off)")
  if s.pr_k < 1:
    raise error("pr_k", ">= 1 (Kynkaanniemi et al. use 3)")
  # FID needs a covariance (2 rows); precision/recall a k-th neighbour.
  least = max(2, s.pr_k + 1)
  if s.num_samples < least:
    raise error("num_samples", f">= {least} (FID needs 2 images, "
                f"precision/recall more than pr_k={s.pr_k})")
  if s.num_real != 0 and s.num_real < least:
    raise error("num_real", f"0 (all) or >= {least}")
  if s.batch_size < 1:
    raise error("batch_size", ">= 1")
  if s.kid_subsets < 1:
    raise error("kid_subsets", ">= 1")
  if s.kid_subset_size < 2:
    raise error("kid_subset_size", ">= 2")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for an invalid or incompatible combination of fields."""
  check_schema(config)
  check_data(config.data)
  check_eval(config.eval)
  model = config.model
  _choice(config.loss, losses.LOSSES, "loss")
  _choice(model.arch, models.ARCHS, "model.arch")
  _choice(model.critic_norm, ("none", "layer", "batch"), "model.critic_norm")
  _choice(model.generator_norm, ("none", "batch"), "model.generator_norm")
  _choice(model.output_activation, ("tanh", "sigmoid", "linear"),
          "model.output_activation")
  _choice(model.dtype, ("float32", "bfloat16"), "model.dtype")
  _choice(config.critic_loop, ("auto", "scan", "unroll"), "critic_loop")
  _choice(config.optimizer.name, optimizers.OPTIMIZERS, "optimizer.name")
  _choice(config.optimizer.schedule, optimizers.SCHEDULES, "optimizer.schedule")
  if model.name not in presets.PRESETS:
    raise ConfigError(f"config.model.name={model.name!r} is not a preset "
                      f"({sorted(presets.PRESETS)}).")
  for field in ("batch_size", "n_critic", "num_train_steps", "log_every",
                "checkpoint_every", "sample_every", "keep_checkpoints"):
    if config[field] < 1:
      raise ConfigError(f"config.{field} must be >= 1, got {config[field]}.")

  _check_conditional(config)
  try:
    policy = augment.parse_policy(config.augment.policy)
  except ValueError as e:
    raise ConfigError(f"config.augment.policy={config.augment.policy!r}: "
                      f"{e}") from None
  if policy and not models.ARCHS[model.arch].images:
    raise ConfigError(f"config.augment.policy={config.augment.policy!r} "
                      "augments images; 2-D points take policy=''.")
  if not 0 <= config.ema.decay < 1:
    raise ConfigError(f"config.ema.decay={config.ema.decay}: use 0 (off) or "
                      "a decay in (0, 1), e.g. 0.999.")
  if config.ema.start_step < 0:
    raise ConfigError(f"config.ema.start_step={config.ema.start_step}: use "
                      ">= 0 generator steps.")
  if config.ema.standing_batches < 0:
    raise ConfigError(f"config.ema.standing_batches="
                      f"{config.ema.standing_batches}: use >= 0 batches "
                      "(0: the raw generator's running averages).")
  loss = losses.LOSSES[config.loss]
  if loss.penalty is not None:
    if model.critic_norm == "batch":
      raise ConfigError(
          f"config.loss={config.loss!r} with config.model.critic_norm='batch': "
          "batch norm makes each critic output depend on the whole batch, so "
          "the per-sample gradient penalty is wrong (Gulrajani et al. sec. 4). "
          "Set config.model.critic_norm='layer' or 'none'.")
    if config.gp_weight <= 0:
      raise ConfigError(f"config.gp_weight must be > 0 for {config.loss!r} "
                        f"(the paper uses 10), got {config.gp_weight}.")
  if loss.weight_clipping and config.clip_value <= 0:
    raise ConfigError(f"config.loss={config.loss!r} needs config.clip_value > "
                      f"0 (the paper uses 0.01), got {config.clip_value}.")
  if config.drift_weight < 0:
    raise ConfigError(f"config.drift_weight must be >= 0, got "
                      f"{config.drift_weight}.")

  toy = config.data.source in data_lib.TOY_SOURCES
  images = models.ARCHS[model.arch].images
  if toy and images:
    raise ConfigError(f"config.data.source={config.data.source!r} is 2-D "
                      "points: set config.model = presets.model_config('mlp').")
  if toy and model.output_activation != "linear":
    raise ConfigError(
        f"config.model.output_activation={model.output_activation!r} bounds "
        f"the generator's output, but {config.data.source!r} points are "
        "unbounded: set config.model.output_activation='linear'.")
  if not toy and model.output_activation == "linear":
    raise ConfigError(
        "config.model.output_activation='linear' cannot produce images: use "
        "'tanh' (images scaled to [-1, 1]) or 'sigmoid' (images in [0, 1]).")
  if not toy and not images:
    raise ConfigError(f"config.model.arch={model.arch!r} is for 2-D toy data; "
                      "use the 'dcgan' or 'resnet' presets for images.")


def _check_conditional(config: ml_collections.ConfigDict) -> None:
  model, cond = config.model, config.conditional
  if not isinstance(model.num_classes, int) or model.num_classes < 0:
    raise ConfigError(f"config.model.num_classes={model.num_classes!r}; use "
                      "the data's number of classes, or 0 (unconditional).")
  _choice(model.generator_conditioning, conditioning.GENERATOR_CHOICES,
          "model.generator_conditioning")
  _choice(model.critic_conditioning, conditioning.CRITIC_CHOICES,
          "model.critic_conditioning")
  _choice(cond.fake_labels, ("uniform", "data"), "conditional.fake_labels")
  if model.label_embedding_dim < 1:
    raise ConfigError(f"config.model.label_embedding_dim="
                      f"{model.label_embedding_dim}; use >= 1.")
  for field in ("ac_weight", "ac_generator_weight"):
    if cond[field] < 0:
      raise ConfigError(f"config.conditional.{field} must be >= 0, got "
                        f"{cond[field]}.")
  if model.num_classes == 1:
    raise ConfigError("config.model.num_classes=1: one class is no condition;"
                      " use 0 (unconditional) or the data's class count.")


def check_labels(config: ml_collections.ConfigDict, dataset: Any) -> None:
  """A class-conditional config gets labelled data with num_classes classes."""
  num_classes = config.model.num_classes
  if not num_classes:
    return
  where = config.data.source + (f" at {config.data.path}"
                                if config.data.path else "")
  if dataset.labels is None:
    raise ConfigError(
        f"config.model.num_classes={num_classes} needs labelled data, but "
        f"{where} has no labels: use a labelled source (fashion_mnist, a "
        "folder or zip with one subfolder per class, npz with "
        "config.data.npz_labels_key, tfds) or set config.model.num_classes=0.")
  if dataset.num_classes != num_classes:
    names = ", ".join(dataset.class_names[:10])
    raise ConfigError(
        f"config.model.num_classes={num_classes} but {where} has "
        f"{dataset.num_classes} classes ({names}): set "
        f"config.model.num_classes={dataset.num_classes}.")


def check_data_shape(config: ml_collections.ConfigDict,
                     data_shape: tuple[int, ...]) -> None:
  """The architecture can model examples of `data_shape` (known once loaded)."""
  problem = models.ARCHS[config.model.arch].problem(config.model,
                                                     tuple(data_shape))
  if problem:
    raise ConfigError(f"config.model.arch={config.model.arch!r} ({config.model.name} "
                      f"preset) {problem}.")


def check_batch_size(batch_size: int, num_devices: int,
                     num_processes: int = 1) -> None:
  """The global batch splits evenly over processes and devices."""
  for count, what in ((num_devices, "devices"), (num_processes, "processes")):
    if batch_size % count:
      raise ConfigError(
          f"config.batch_size={batch_size} does not split over {count} "
          f"{what}: set it to a multiple of {count} (the batch is global, "
          "divided over devices).")


# ------------------------------------------------------------------ resume --


def dataset_digest(examples: np.ndarray, labels: np.ndarray | None) -> str:
  """sha256 (16 hex digits) of the shape, the labels and up to 1,024 evenly
  spaced examples: tells datasets apart in O(1) of their size."""
  h = hashlib.sha256(repr((examples.shape, str(examples.dtype))).encode())
  stride = max(1, len(examples) // _DIGEST_EXAMPLES)
  h.update(np.ascontiguousarray(examples[::stride]).data)
  if labels is not None:
    h.update(np.ascontiguousarray(labels).data)
  return h.hexdigest()[:16]


def math_facts(config: ml_collections.ConfigDict, num_examples: int,
               data_shape: tuple[int, ...], digest: str,
               data_shards: int = 1) -> dict[str, Any]:
  """What a run's numbers depend on: a resumed run must have the same.

  Not included (safe to change on resume): log, sample, checkpoint and
  evaluation settings, data.path / cache_dir / on_device (the same data
  gives bitwise the same run), critic_loop (the same mathematics),
  num_train_steps unless the learning rate decays linearly over it, and the
  process count (the state is replicated and the global batch does not
  depend on it) unless `data_shards` > 1: the processes of a
  config.data.shard_by_process run draw from shards of their own, so their
  count decides the batches.
  """
  opt = config.optimizer.to_dict()
  if opt["schedule"] != "exponential":
    del opt["decay_rate"], opt["decay_steps"]
  if opt["name"] != "rmsprop":
    del opt["rmsprop_decay"]
  loss = losses.LOSSES[config.loss]
  return {
      "seed": config.seed,
      "loss": config.loss,
      "gp_weight": config.gp_weight if loss.penalty else None,
      "clip_value": config.clip_value if loss.weight_clipping else None,
      "drift_weight": config.drift_weight,
      "batch_size": config.batch_size,
      "n_critic": config.n_critic,
      "schedule_steps": (config.num_train_steps if opt["schedule"] == "linear"
                         else None),
      "model": _flat(config.model),
      "optimizer": opt,
      "random_flip": config.data.random_flip,
      "augment": tuple(augment.parse_policy(config.augment.policy)),
      "conditional": (config.conditional.to_dict() if config.model.num_classes
                      else None),
      # Not the training's numbers, but the state's shape and its average.
      "ema": {"decay": config.ema.decay,
              "start_step": config.ema.start_step if config.ema.decay else 0,
              "warmup": bool(config.ema.warmup and config.ema.decay)},
      "data_shards": int(data_shards),
      "dataset": {"num_examples": int(num_examples),
                  "example_shape": list(data_shape), "digest": digest},
  }


def _json_like(value: Any) -> Any:
  """Tuples as lists, recursively: saved facts come back from JSON."""
  if isinstance(value, dict):
    return {k: _json_like(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_like(v) for v in value]
  return value


# Facts added after runs were saved without them: the value those runs had.
_FACTS_BEFORE_THEY_WERE_SAVED = {"ema.decay": 0.0, "ema.start_step": 0,
                                 "ema.warmup": False,
                                 "data_shards": 1,
                                 "augment": (),
                                 "model.generator_kernel_sizes": (),
                                 "model.critic_kernel_sizes": ()}


def check_resume(saved: Mapping[str, Any], current: Mapping[str, Any],
                 workdir: str) -> None:
  """Refuses to resume when a math fact differs; names each difference.

  Args:
    saved: the facts of the checkpoint's run (its meta['facts']; for
      checkpoints without facts, those derivable from its config).
    current: math_facts of the config and data being resumed with.
  """
  old, new = _flat(_json_like(dict(saved))), _flat(_json_like(dict(current)))
  old = {**_FACTS_BEFORE_THEY_WERE_SAVED, **old}
  changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
  if not changed:
    return
  names = {"schedule_steps": "num_train_steps (the linear learning-rate "
                             "decay runs over it)",
           "dataset.digest": "the dataset's contents",
           "data_shards": "the process count of a config.data."
                          "shard_by_process run (each process draws from "
                          "its own shard)"}
  details = "; ".join(f"{names.get(k, k)}: {old[k]!r} -> {new[k]!r}"
                      for k in changed)
  raise ConfigError(
      f"{workdir} holds a run whose mathematics differs from this config "
      f"({details}). Resume with the same settings and data, or start the "
      "new run in a new --workdir.")
