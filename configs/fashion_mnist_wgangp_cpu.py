"""WGAN-GP on Fashion-MNIST, a recipe for one hour of a 2-core CPU.

    python -m wgan_jax.main --config=configs/fashion_mnist_wgangp_cpu.py --workdir=/tmp/fmnist_wgangp_cpu

configs/fashion_mnist_wgangp.py (fmnist28 nets, lambda 10, Adam 2e-4 (b1
0.5, b2 0.9), batch 64) with n_critic 2 instead of 5 (1.5x the generator
steps per second here: 3.44 vs 2.33 steps/s, `experiments/benchmark.py
--arch fmnist28 --loss wgan-gp --n_critic N --data fashion_mnist`), an EMA of
the generator (decay 0.999; on the conditional run it took the 10k FID from
25.4 to 21.9) and both learning rates decayed linearly to 0 over the 11,000
steps, as the WGAN-GP authors' code does.

Measured here (2-core CPU, 2026-12-02, seed 0): 11,000 steps in 53 min 31 s;
FID 55.2 at 2k vs 2k samples (EMA; raw 55.6), FID 46.2 at 10k vs 10k (EMA). Short of an FID
of 20 in an hour, and worse than fashion_mnist_wgangp.py with an EMA at
5,000 steps (42.8): n_critic 2 did not pay (README.md, Results).
"""

import ml_collections

from configs import default
from configs import fashion_mnist_wgangp


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = fashion_mnist_wgangp.get_config()
  config.n_critic = 2
  config.ema.decay = 0.999
  config.optimizer.schedule = "linear"
  config.num_train_steps = 11_000
  config.keep_checkpoints = 12
  return default.with_arg(config, arg)
