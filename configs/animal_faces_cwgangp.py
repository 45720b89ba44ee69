"""Class-conditional WGAN-GP on 64x64 animal faces (AFHQ cat / dog / wild).

    python -m wgan_jax.main --config=configs/animal_faces_cwgangp.py --workdir=/tmp/afhq \
        --config.data.path=/data/afhq/train

The animal-faces seed's system, with its faults mended: no batch norm (or
dropout) in the gradient-penalty critic, and the label reaches the critic by
projection (Miyato & Koyama 2018) instead of label planes plus an auxiliary
classifier that is handed the label it must predict (that variant, mended,
is configs/animal_faces_acwgangp.py). dcgan64 nets, cBN generator, lambda
10, n_critic 5, Adam 2e-4 (0.5, 0.9), batch 64, horizontal flips.

Data: a folder or zip with one subfolder per class (the AFHQ layout:
cat/, dog/, wild/); config.model.num_classes must equal the number of
subfolders. Only the AFHQ cats (../shared/data/animal_faces_64.zip, one
class) exist in this environment, so the real-data check used a two-class
folder of cats and anime faces (experiments/two_class_faces.py,
--config.model.num_classes=2).

Measured here (2-core CPU, 2026-12-02) on that folder, batch 32: 200 steps
in 7 min 42 s (0.45 steps/s) give colour blobs, not yet faces of either
class (README.md, Results); the 20k steps of the config were not run.
configs/animal_faces_cwgangp_cpu.py reaches faces of both classes there in
4,000 steps (93 min).
"""

import ml_collections

from configs import default
from wgan_jax import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.data.source = "folder"
  config.data.path = default.data_file("afhq")
  config.data.image_size = 64
  config.data.channels = 3
  config.data.random_flip = True
  config.model = presets.model_config("dcgan64")
  config.model.num_classes = 3
  config.model.generator_conditioning = "cbn"
  config.model.critic_conditioning = "projection"
  config.loss = "wgan-gp"
  config.gp_weight = 10.0
  config.n_critic = 5
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.num_samples = 24  # 8 columns per class
  config.optimizer.generator_learning_rate = 2e-4
  config.optimizer.critic_learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.9
  return default.with_arg(config, arg)
