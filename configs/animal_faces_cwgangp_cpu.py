"""Class-conditional WGAN-GP on 64x64 animal faces, a recipe for a 2-core CPU.

    python -m wgan_jax.main --config=configs/animal_faces_cwgangp_cpu.py --workdir=/tmp/afhq_cpu \
        --config.data.path=/data/afhq/train

configs/animal_faces_cwgangp.py (cBN generator, projection critic, lambda
10, Adam 2e-4 (0.5, 0.9), batch 64, flips) with the changes that made
configs/anime_wgangp_cpu.py 3.5x faster per generator step here: the
dcgan64_half nets, n_critic 2 instead of 5, and an EMA of the generator
(decay 0.999).

Measured here: see README.md, Results (two classes at 64x64), on the
cat/anime folder of experiments/two_class_faces.py with
--config.model.num_classes=2 (only the AFHQ cats exist here).
"""

import ml_collections

from configs import animal_faces_cwgangp
from configs import default
from wgan_jax import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = animal_faces_cwgangp.get_config()
  conditioning = {k: config.model[k] for k in (
      "num_classes", "generator_conditioning", "critic_conditioning")}
  config.model = presets.model_config("dcgan64_half")
  config.model.update(conditioning)
  config.n_critic = 2
  config.ema.decay = 0.999
  config.num_train_steps = 6_000
  config.sample_every = 250
  config.checkpoint_every = 250
  return default.with_arg(config, arg)
