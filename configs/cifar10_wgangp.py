"""WGAN-GP with the ResNet of Gulrajani et al. 2017 on CIFAR-10 (gan_cifar_resnet.py).

    python -m wgan_jax.main --config=configs/cifar10_wgangp.py --workdir=/tmp/cifar10

Generator and critic of width 128 (no critic normalization), lambda 10,
n_critic 5, Adam 2e-4 (b1 0, b2 0.9) decayed linearly to 0, batch 64, 100k
generator steps: the paper's unconditional CIFAR-10 setting.

Data: `cifar10.npz` (x_train uint8 [50000, 32, 32, 3]) written by
`DATA_ITEMS=cifar10 CIFAR10_TARBALL=... bash ../shared/data/fetch.sh`, or
`--config.data.source=tfds:cifar10` where TFDS has it prepared. CIFAR-10 is
not obtainable from package registries, so this config is tested on
generated arrays only.
"""

import ml_collections

from configs import default
from wgan_jax import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.data.source = "npz"
  config.data.path = default.data_file("cifar10.npz")
  config.data.npz_images_key = "x_train"
  config.data.npz_labels_key = "y_train"
  config.model = presets.model_config("resnet32")
  config.loss = "wgan-gp"
  config.gp_weight = 10.0
  config.n_critic = 5
  config.batch_size = 64
  config.num_train_steps = 100_000
  config.optimizer.generator_learning_rate = 2e-4
  config.optimizer.critic_learning_rate = 2e-4
  config.optimizer.b1 = 0.0
  config.optimizer.b2 = 0.9
  config.optimizer.schedule = "linear"
  return default.with_arg(config, arg)
