"""The Fashion-MNIST DCGAN of the seeds (the Keras/TF DCGAN tutorial nets).

    python -m wgan_jax.main --config=configs/fashion_mnist_gan.py --workdir=/tmp/fmnist_gan

Non-saturating BCE loss, k5 nets (the critic's dropout left out), Adam 1e-4
(Keras defaults b1 0.9, b2 0.999), batch 256, one discriminator update per
generator step, 12k steps (about 50 epochs).

Measured here: only the end-to-end smoke tests; no full run yet.
"""

import ml_collections

from configs import default
from wgan_jax import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.data.source = "fashion_mnist"
  config.data.path = default.fashion_mnist_path()
  config.model = presets.model_config("fashion_mnist_gan")
  config.loss = "dcgan"
  config.n_critic = 1
  config.batch_size = 256
  config.num_train_steps = 12_000
  config.optimizer.generator_learning_rate = 1e-4
  config.optimizer.critic_learning_rate = 1e-4
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-7
  return default.with_arg(config, arg)
