"""WGAN with weight clipping on Fashion-MNIST.

    python -m wgan_jax.main --config=configs/fashion_mnist_wgan.py --workdir=/tmp/fmnist_wgan

The fmnist28 nets of ../shared/bench/SPEC.md, RMSprop 5e-5 (torch
semantics), clip 0.01, n_critic 5, batch 64, 20k generator steps.

Measured here: only the end-to-end smoke tests; no full run yet.
"""

import ml_collections

from configs import default
from wgan_jax import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.data.source = "fashion_mnist"
  config.data.path = default.fashion_mnist_path()
  config.model = presets.model_config("fmnist28")
  config.loss = "wgan"
  config.clip_value = 0.01
  config.n_critic = 5
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.optimizer.name = "rmsprop"
  config.optimizer.generator_learning_rate = 5e-5
  config.optimizer.critic_learning_rate = 5e-5
  return default.with_arg(config, arg)
