"""Class-conditional WGAN-GP on Fashion-MNIST: projection critic, cBN generator.

    python -m wgan_jax.main --config=configs/fashion_mnist_cwgangp.py --workdir=/tmp/fmnist_cwgangp

The recipe of configs/fashion_mnist_wgangp.py (fmnist28 nets, lambda 10,
n_critic 5, Adam 2e-4 (0.5, 0.9), batch 64) made class-conditional: the
critic is D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018),
the generator's batch norms take a per-class scale and shift. Fakes get
uniform labels; the sample grid has one row per class (100 samples: 10 x 10).
Other methods: --config.model.critic_conditioning=ac|concat,
--config.model.generator_conditioning=concat.

Measured: README.md, Results (class-conditional).
"""

import ml_collections

from configs import default
from configs import fashion_mnist_wgangp


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = fashion_mnist_wgangp.get_config()
  config.model.num_classes = 10
  config.model.generator_conditioning = "cbn"
  config.model.critic_conditioning = "projection"
  config.num_samples = 100
  config.eval.classifier_test_split = "test"
  return default.with_arg(config, arg)
