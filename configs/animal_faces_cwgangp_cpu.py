"""Class-conditional WGAN-GP on 64x64 animal faces, a recipe for a 2-core CPU.

    python -m wgan_jax.main --config=configs/animal_faces_cwgangp_cpu.py --workdir=/tmp/afhq_cpu \
        --config.data.path=/data/afhq/train

configs/animal_faces_cwgangp.py (cBN generator, projection critic, lambda
10, Adam 2e-4 (0.5, 0.9), batch 64, flips) with the changes of
configs/anime_wgangp_cpu.py (`to_cpu_recipe`), 3.5x faster per generator
step here: the dcgan64_half nets, n_critic 2 instead of 5, and an EMA of
the generator (decay 0.999).

Measured here: nothing beyond the smoke test (tests/test_configs.py). The
real-data check is the cat/anime folder of experiments/two_class_faces.py
with --config.model.num_classes=2 (only the AFHQ cats exist here); that run
has not been made.
"""

import ml_collections

from configs import animal_faces_cwgangp
from configs import anime_wgangp_cpu
from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return default.with_arg(
      anime_wgangp_cpu.to_cpu_recipe(animal_faces_cwgangp.get_config()), arg)
