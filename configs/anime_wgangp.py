"""WGAN-GP on 64x64 anime faces (Gulrajani et al. 2017 objective, DCGAN nets).

    python -m wgan_jax.main --config=configs/anime_wgangp.py --workdir=/tmp/anime_wgangp

The dcgan64 nets of ../shared/bench/SPEC.md (critic without normalization),
lambda 10, n_critic 5, Adam 2e-4 (b1 0.5, b2 0.9), batch 64, 20k generator
steps. Data: ../shared/data/anime_faces_64.zip.

Measured here (2-core CPU, 2026-11-23): 300 steps in 27 min (0.19 steps/s)
give face-shaped colour layouts without features (README.md, Results); 20k
steps would take more than a day there, and were not run.
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
  config.model = presets.model_config("dcgan64")
  config.loss = "wgan-gp"
  config.gp_weight = 10.0
  config.n_critic = 5
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.optimizer.generator_learning_rate = 2e-4
  config.optimizer.critic_learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.9
  return default.with_arg(config, arg)
