"""WGAN-GP on 64x64 anime faces, a recipe for a 2-core CPU.

    python -m wgan_jax.main --config=configs/anime_wgangp_cpu.py --workdir=/tmp/anime_wgangp_cpu

configs/anime_wgangp.py (lambda 10, Adam 2e-4 (b1 0.5, b2 0.9), batch 64)
with the dcgan64_half nets (a quarter of dcgan64's convolution FLOPs),
n_critic 2 instead of 5, and an EMA of the generator (decay 0.999): on this
CPU a step costs 0.9 s instead of 3.3-5 s, so that an hour buys about 3,900
generator steps instead of 700-1,100 (experiments/README.md).

Measured here (2-core CPU, 2026-12-02): 6,000 steps in 95 min 9 s (0.98-1.11
steps/s); faces with eyes, hair and outline, and FID 240.5 (EMA, 10k
samples vs 10k training images), high because Inception punishes the
speckle and checkerboard of the samples: the evaluation was checked and
is sound (README.md, Results; experiments/README.md).
"""

import ml_collections

from configs import anime_wgangp
from configs import default
from wgan_jax import presets


def to_cpu_recipe(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The 64x64 CPU recipe's changes, in place: dcgan64_half nets (keeping the
  config's class conditioning), n_critic 2, EMA 0.999, 6,000 steps, samples
  and checkpoints every 250 steps."""
  conditioning = {k: config.model[k] for k in (
      "num_classes", "generator_conditioning", "critic_conditioning")}
  config.model = presets.model_config("dcgan64_half")
  config.model.update(conditioning)
  config.n_critic = 2
  config.ema.decay = 0.999
  config.num_train_steps = 6_000
  config.sample_every = 250
  config.checkpoint_every = 250
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return default.with_arg(to_cpu_recipe(anime_wgangp.get_config()), arg)
