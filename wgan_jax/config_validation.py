"""Refuses configs that are wrong in a known way, with one clear message each."""

import ml_collections

from wgan_jax import losses
from wgan_jax import optimizers
from wgan_jax import presets


class ConfigError(ValueError):
  """A config field has a value that cannot work; the message names the fix."""


def _choice(value: object, allowed: tuple, field: str) -> None:
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of {allowed}.")


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
