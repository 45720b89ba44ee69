"""Every check of a config, in one place, with one clear message each.

`validate(config)` is called before anything is built; `check_data(data)`
checks a `config.data` on its own (the evaluation command builds one). The
tables that define what exists (losses, architectures, data sources,
optimizers) live with their code; the checks here read those tables.
"""

import ml_collections

from wgan_jax import input_pipeline
from wgan_jax import losses
from wgan_jax import optimizers
from wgan_jax import presets
from wgan_jax.errors import ConfigError


def _choice(value: object, allowed: tuple, field: str) -> None:
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of {allowed}.")


def check_data(data: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a `config.data` whose fields cannot work."""
  source = data.source
  if not isinstance(source, str) or not (
      source in input_pipeline.SOURCES
      or source.startswith("tfds:") and source != "tfds:"):
    raise ConfigError(f"config.data.source={source!r} is not a known source; "
                      f"use one of {', '.join(input_pipeline.SOURCES)}.")
  _choice(data.resize, input_pipeline.RESIZE_MODES, "data.resize")
  if data.channels not in (0, 1, 3):
    raise ConfigError(f"config.data.channels={data.channels!r}; use 1 "
                      "(grayscale), 3 (RGB) or 0 (the source's own).")
  if not isinstance(data.image_size, int) or data.image_size < 0:
    raise ConfigError(f"config.data.image_size={data.image_size!r}; use a "
                      "positive size or 0 to keep the source size.")
  if not isinstance(data.max_examples, int) or data.max_examples < 0:
    raise ConfigError(f"config.data.max_examples={data.max_examples!r}; use "
                      "a positive count or 0 for all.")
  if source in input_pipeline.TOY_SOURCES:
    if data.toy_num_examples <= 0:
      raise ConfigError(f"config.data.toy_num_examples="
                        f"{data.toy_num_examples}; use a positive count.")
    if data.random_flip:
      raise ConfigError(f"config.data.random_flip=True needs images, but "
                        f"{source} gives 2-D points; set random_flip=False.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for an invalid or incompatible combination of fields."""
  model = config.model
  _choice(config.loss, losses.LOSSES, "loss")
  _choice(model.arch, ("dcgan", "resnet", "mlp"), "model.arch")
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

  if config.loss in losses.GRADIENT_PENALTY_LOSSES:
    if model.critic_norm == "batch":
      raise ConfigError(
          f"config.loss={config.loss!r} with config.model.critic_norm='batch': "
          "batch norm makes each critic output depend on the whole batch, so "
          "the per-sample gradient penalty is wrong (Gulrajani et al. sec. 4). "
          "Set config.model.critic_norm='layer' or 'none'.")
    if config.gp_weight <= 0:
      raise ConfigError(f"config.gp_weight must be > 0 for {config.loss!r} "
                        f"(the paper uses 10), got {config.gp_weight}.")
  if config.loss == "wgan" and config.clip_value <= 0:
    raise ConfigError("config.loss='wgan' needs config.clip_value > 0 (the "
                      f"paper uses 0.01), got {config.clip_value}.")
  if config.drift_weight < 0:
    raise ConfigError(f"config.drift_weight must be >= 0, got "
                      f"{config.drift_weight}.")

  toy = config.data.source.startswith("toy:")
  if toy and model.arch != "mlp":
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
  if not toy and model.arch == "mlp":
    raise ConfigError("config.model.arch='mlp' is for 2-D toy data; use the "
                      "'dcgan' or 'resnet' presets for images.")
