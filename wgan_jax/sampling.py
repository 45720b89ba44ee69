"""Loading a trained generator and sampling from it.

    from wgan_jax import sampling
    generator = sampling.load_generator("/tmp/run")          # latest checkpoint
    z = sampling.noise(generator, 16, seed=0)                # [16, z_dim]
    images = sampling.sample(generator, z)                   # uint8 [16, H, W, C]

Only the generator's arrays are read from the checkpoint; the data, the
critic and the optimizer states are not needed.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from wgan_jax import checkpointing
from wgan_jax import input_pipeline
from wgan_jax import models

# fold_in constant of the fixed noise behind the training sample grids
# (train_step uses 0 for init and 1 for training).
SAMPLE_STREAM = 2


@dataclasses.dataclass(frozen=True)
class Generator:
  """A trained generator, ready to sample."""
  module: nn.Module
  variables: dict[str, Any]  # {'params': ..., 'batch_stats': ...}
  config: ml_collections.ConfigDict
  data_shape: tuple[int, ...]  # per example: (H, W, C) or (D,)
  step: int
  class_names: tuple[str, ...] = ()

  @property
  def z_dim(self) -> int:
    return self.config.model.z_dim

  @property
  def output_activation(self) -> str:
    return self.config.model.output_activation


def fixed_noise(seed: int, num: int, z_dim: int) -> jax.Array:
  """The run's fixed sample noise [num, z_dim]: the same at every step and on resume."""
  key = jax.random.fold_in(jax.random.key(seed), SAMPLE_STREAM)
  return jax.random.normal(key, (num, z_dim))


def noise(generator: Generator, num: int, seed: int = 0) -> jax.Array:
  """Standard normal z [num, z_dim] from an explicit seed."""
  return jax.random.normal(jax.random.key(seed), (num, generator.z_dim))


@functools.partial(jax.jit, static_argnums=0)
def _generate(module: nn.Module, variables: dict[str, Any], z: jax.Array) -> jax.Array:
  return module.apply(variables, z, train=False)


def generate(module: nn.Module, variables: dict[str, Any], z: jax.Array,
             batch_size: int = 256) -> np.ndarray:
  """Generator outputs in the model's range (eval mode: running BN averages).

  Runs in batches of `batch_size`, so any number of samples fits in memory.
  Returns float32 [N, *data_shape].
  """
  z = jnp.asarray(z, jnp.float32)
  out = [np.asarray(_generate(module, variables, z[i:i + batch_size]))
         for i in range(0, z.shape[0], batch_size)]
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


def sample(generator: Generator, z: jax.Array,
           labels: Any = None) -> np.ndarray:
  """Samples for noise z [N, z_dim]: uint8 [N, H, W, C] images, or float32 points [N, D].

  `labels` is for class-conditional runs, which this version does not train:
  passing labels is an error rather than silently ignored.
  """
  if labels is not None:
    raise ValueError("This generator is unconditional: it takes no labels.")
  z = jnp.asarray(z)
  if z.ndim != 2 or z.shape[1] != generator.z_dim:
    raise ValueError(f"z must have shape [N, {generator.z_dim}], got {z.shape}.")
  out = generate(generator.module, generator.variables, z)
  if len(generator.data_shape) != 3:
    return out
  return input_pipeline.to_uint8(out, generator.output_activation)


def load_generator(workdir: str, step: int | None = None) -> Generator:
  """The generator of a run's checkpoint `step` (default: the latest)."""
  step = checkpointing.resolve_step(workdir, step)
  meta = checkpointing.read_meta(workdir, step)
  config = checkpointing.config_from_meta(meta)
  data_shape = tuple(meta["data_shape"])
  module, _ = models.create_models(config.model, data_shape)
  z = jax.ShapeDtypeStruct((1, config.model.z_dim), jnp.float32)
  abstract = jax.eval_shape(
      functools.partial(models.init_variables, module), jax.random.key(0), z)
  restored = checkpointing.restore_subtree(workdir, {
      "generator_params": abstract["params"],
      "generator_batch_stats": abstract.get("batch_stats", {}),
  }, step)
  variables = {"params": restored["generator_params"]}
  if restored["generator_batch_stats"]:
    variables["batch_stats"] = restored["generator_batch_stats"]
  return Generator(module=module, variables=variables, config=config,
                   data_shape=data_shape, step=step,
                   class_names=tuple(meta.get("class_names", ())))
