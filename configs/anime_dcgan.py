"""Seed 001: DCGAN on 64x64 anime faces (Radford et al. 2016).

    python -m wgan_jax.main --config=configs/anime_dcgan.py --workdir=/tmp/anime_dcgan

Non-saturating BCE loss, one discriminator update per generator update, the
DCGAN family at 64x64 with k4 convolutions and batch norm in both networks,
Adam 2e-4 (b1 0.5, b2 0.999), batch 64, 20k steps.

Measured here: only the end-to-end tests (a few smoke steps on the real zip);
no full run, so no result to expect yet.
"""

import ml_collections

from configs import default
from wgan_jax import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.data.source = "folder"
  config.data.path = default.data_file("anime_faces_64.zip")
  config.data.image_size = 64
  config.data.channels = 3
  config.model = presets.model_config("dcgan", critic_norm="batch")
  config.loss = "dcgan"
  config.n_critic = 1
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.optimizer.generator_learning_rate = 2e-4
  config.optimizer.critic_learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  return default.with_arg(config, arg)
