"""Seed 000: WGAN with weight clipping on 64x64 anime faces (Arjovsky et al. 2017).

    python -m wgan_jax.main --config=configs/anime_wgan.py --workdir=/tmp/anime_wgan

RMSprop 5e-5 (torch semantics: decay 0.99, eps outside the root), n_critic 5,
clip 0.01, z 128, batch 64, the seed's k5 nets with a sigmoid output (data in
[0, 1]), 20k generator steps. Data: ../shared/data/anime_faces_64.zip (or set
--config.data.path to your own folder or zip of images).

Measured here: only the end-to-end tests (a few smoke steps on the real zip,
tests/test_train.py); no full run on the 2-core CPU, so no result to expect
yet.
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
  config.model = presets.model_config("anime_wgan")
  config.loss = "wgan"
  config.clip_value = 0.01
  config.n_critic = 5
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.optimizer.name = "rmsprop"
  config.optimizer.generator_learning_rate = 5e-5
  config.optimizer.critic_learning_rate = 5e-5
  config.optimizer.rmsprop_decay = 0.99
  return default.with_arg(config, arg)
