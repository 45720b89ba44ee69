"""Class-conditional WGAN-GP on 64x64 animal faces, a recipe for a 2-core CPU.

    python -m wgan_jax.main --config=configs/animal_faces_cwgangp_cpu.py --workdir=/tmp/afhq_cpu \
        --config.data.path=/data/afhq/train

configs/animal_faces_cwgangp.py (cBN generator, projection critic, lambda
10, Adam 2e-4 (0.5, 0.9), batch 64, flips) with the changes of
configs/anime_wgangp_cpu.py (`to_cpu_recipe`), 3.5x faster per generator
step here: the dcgan64_half nets, n_critic 2 instead of 5, and an EMA of
the generator (decay 0.999).

Measured here (2-core CPU, 2026-12-02) on the cat/anime folder of
experiments/two_class_faces.py (only the AFHQ cats exist here), with
--config.model.num_classes=2 --config.ema.warmup=True: 4,000 steps in 92 min
52 s (0.72 steps/s); the per-class grids show anime faces and cats, class
accuracy 99.25% of 2,000 generated images, FID 254.9 (2k vs 2k, EMA)
(README.md, Results). The 6,000 steps of the recipe were not run.
"""

import ml_collections

from configs import animal_faces_cwgangp
from configs import anime_wgangp_cpu
from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return default.with_arg(
      anime_wgangp_cpu.to_cpu_recipe(animal_faces_cwgangp.get_config()), arg)
