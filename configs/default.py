"""Default hyperparameters: WGAN-GP (Gulrajani et al. 2017) with the DCGAN family.

Every other config starts from this one and overrides fields. Run
`python -m wgan_jax.main --config=configs/NAME.py --workdir=DIR`; override
any field with `--config.FIELD=VALUE` (a misspelt field is an error).
"""

import ml_collections

from wgan_jax import presets


def get_config() -> ml_collections.ConfigDict:
  """The default config."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Objective: 'wgan' (weight clipping), 'wgan-gp', 'wgan-lp', 'dcgan'.
  config.loss = "wgan-gp"
  config.gp_weight = 10.0  # lambda of the gradient penalty
  config.drift_weight = 0.0  # weight of E[D(real)^2] (Karras et al.: 1e-3)
  config.clip_value = 0.01  # weight clipping bound c ('wgan' only)

  config.batch_size = 64  # global: split over all devices
  config.n_critic = 5  # critic updates per generator step
  config.num_train_steps = 100_000  # generator steps
  # The n_critic loop inside the step: 'scan' (a rolled lax.scan), 'unroll',
  # or 'auto': unroll on CPU, where XLA runs rolled convolution loops slowly.
  config.critic_loop = "auto"

  config.data = ml_collections.ConfigDict()
  config.data.source = "fashion_mnist"
  config.data.path = ""
  config.data.split = "train"
  config.data.image_size = 0  # 0 keeps the source's size
  config.data.channels = 0  # 0: the source's own (1 or 3)
  config.data.resize = "resize"  # 'keep' | 'resize' | 'resize_crop'
  config.data.random_flip = False
  config.data.max_examples = 0  # 0: all
  config.data.npz_images_key = "x_train"
  config.data.npz_labels_key = "y_train"
  config.data.toy_num_examples = 100_000

  config.model = presets.model_config("dcgan")

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.generator_learning_rate = 1e-4
  config.optimizer.critic_learning_rate = 1e-4
  config.optimizer.b1 = 0.0
  config.optimizer.b2 = 0.9
  config.optimizer.eps = 1e-8
  config.optimizer.rmsprop_decay = 0.99
  config.optimizer.schedule = "constant"  # 'constant' | 'linear' | 'exponential'
  config.optimizer.decay_rate = 0.5
  config.optimizer.decay_steps = 10_000

  # Logging, samples, checkpoints (in generator steps).
  config.log_every = 100
  config.sample_every = 1000
  config.num_samples = 64  # fixed-noise grid
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3
  return config


def get_smoke_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config to a run of a few seconds on a CPU (`:smoke`)."""
  config.batch_size = 8
  config.n_critic = min(config.n_critic, 2)
  config.num_train_steps = 4
  config.log_every = 2
  config.sample_every = 2
  config.num_samples = 16
  config.checkpoint_every = 2
  config.data.max_examples = 256
  config.model.width = min(config.model.width, 8)
  return config
