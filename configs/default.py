"""Default hyperparameters: WGAN-GP (Gulrajani et al. 2017) with the DCGAN family.

Every other config starts from this one and overrides fields. Run
`python -m wgan_jax.main --config=configs/NAME.py --workdir=DIR`; override
any field with `--config.FIELD=VALUE` (a misspelt field is an error).
"""

import os

import ml_collections

from wgan_jax import presets


def data_file(name: str) -> str:
  """A file fetched by ../shared/data/fetch.sh: $WGAN_JAX_DATA_DIR/name, else ../shared/data/name."""
  root = os.environ.get("WGAN_JAX_DATA_DIR") or os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir,
      "shared", "data")
  return os.path.normpath(os.path.join(root, name))


def fashion_mnist_path() -> str:
  """The fetched IDX folder if present, else '' (the loader then searches
  /usr/share/datasets/fashion-mnist, then TFDS)."""
  path = data_file("fashion-mnist")
  return path if os.path.isdir(path) else ""


def base_config() -> ml_collections.ConfigDict:
  """Every field with its default value."""
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
  config.data.cache_dir = ""  # decoded-dataset cache; "" = WORKDIR/data_cache
  # Keep the decoded dataset on the devices and gather each step's batches
  # inside the compiled step (single-process runs, datasets up to
  # train.MAX_ON_DEVICE_BYTES); otherwise batches are gathered on the host.
  # Both give bitwise the same run.
  config.data.on_device = True
  # Multi-process runs: each process loads only its 1/P of the examples
  # (folders, zips and TFDS decode only theirs) and draws its part of every
  # batch from them; then a P-process run equals a 1-process run only in
  # distribution, and resuming with another process count is refused. Off:
  # every process holds the whole dataset and the global batch is a function
  # of (seed, step) alone, the same run for any process count.
  config.data.shard_by_process = False

  config.model = presets.model_config("dcgan")

  # Class-conditional runs (config.model.num_classes > 0; the conditioning
  # methods are config.model.generator_conditioning / critic_conditioning).
  config.conditional = ml_collections.ConfigDict()
  # Labels of generated images: 'uniform' over the classes, or 'data': the
  # critic's fakes take the labels of its real batch (so the penalty's
  # interpolates join images of one class) and the generator's are drawn
  # with the data's class frequencies.
  config.conditional.fake_labels = "uniform"
  # Auxiliary classifier (critic_conditioning='ac'): cross-entropy weights
  # of the critic (on real images) and of the generator (on its images), as
  # improved_wgan_training's ACGAN_SCALE and ACGAN_SCALE_G.
  config.conditional.ac_weight = 1.0
  config.conditional.ac_generator_weight = 0.1
  config.conditional.ac_classify_fakes = False  # the critic also classifies fakes

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

  # DiffAugment (Zhao et al. 2020) of every critic input, real and fake, in
  # both players' losses: "" (off) or a list like "color,translation,cutout"
  # (wgan_jax/augment.py).
  config.augment = ml_collections.ConfigDict()
  config.augment.policy = ""

  # Exponential moving average of the generator's weights (0 = off). When on,
  # sample grids, `generate` and the evaluation use the average by default
  # (evaluation also reports the raw generator as eval_raw/*). Until
  # start_step generator steps the average is a copy of the weights. warmup:
  # the k-th average uses min(decay, (1 + k) / (10 + k)) (TensorFlow's
  # ExponentialMovingAverage with num_updates), so that the average forgets
  # the initial weights early: with 0.999 and no warmup, 37% of it is still
  # the initialization after 1,000 steps.
  config.ema = ml_collections.ConfigDict()
  config.ema.decay = 0.0
  config.ema.start_step = 0
  config.ema.warmup = False
  # A generator with batch norm samples with the batch statistics of the
  # average's own weights (BigGAN's standing statistics), not with the raw
  # network's running averages: the means of this many batches of
  # config.batch_size noise vectors, drawn from the seed and the step. 0:
  # the running averages (the results in README.md before 2026-12-03).
  config.ema.standing_batches = 16

  # Logging, samples, checkpoints (in generator steps).
  config.log_every = 100
  config.sample_every = 1000
  config.num_samples = 64  # fixed-noise grid
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3

  # FID/KID/precision-recall during training (wgan_jax/evaluator.py). Off by
  # default: Inception runs at 4-10 images/s on a 2-core CPU. Grayscale
  # images go through Inception as 3 identical channels.
  config.eval = ml_collections.ConfigDict()
  config.eval.eval_every = 0  # generator steps; 0 = off (also at the end)
  config.eval.num_samples = 10_000  # generated images per evaluation
  config.eval.num_real = 10_000  # reference images (a fixed subset); 0 = all
  config.eval.reference_split = ""  # "" = config.data.split (training data)
  config.eval.batch_size = 64  # images per Inception / sampling step, global
  config.eval.inception_path = ""  # "" = inception.default_weights_path()
  config.eval.kid_subsets = 100  # KID: mean and std over this many subsets
  config.eval.kid_subset_size = 1000  # KID: images per subset
  config.eval.pr_k = 3  # precision/recall: k-th nearest neighbour
  # Class-conditional runs: the split whose real images measure the
  # class-accuracy classifier (wgan_jax/classifier.py); "" holds out a
  # seeded 10% of the training images instead (sources without splits).
  config.eval.classifier_test_split = ""
  return config


def with_arg(config: ml_collections.ConfigDict,
             arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `--config=configs/NAME.py:ARG` argument: '' or 'smoke'."""
  if arg in (None, ""):
    return config
  if arg == "smoke":
    return smoke(config)
  raise ValueError(f"Unknown config argument {arg!r}; use ':smoke' or none.")


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config to a run of seconds on a CPU: same code paths, tiny sizes.

  The network is shrunk by its architecture's own rule (models.ARCHS).
  """
  from wgan_jax import models  # pylint: disable=g-import-not-at-top
  config.batch_size = 8
  config.n_critic = min(config.n_critic, 2)
  config.num_train_steps = 4
  config.log_every = 2
  config.sample_every = 2
  config.num_samples = 16
  config.checkpoint_every = 2
  config.data.max_examples = 256
  config.data.toy_num_examples = 1024
  models.ARCHS[config.model.arch].smoke(config.model)
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The default config (WGAN-GP, DCGAN family, Fashion-MNIST)."""
  return with_arg(base_config(), arg)
