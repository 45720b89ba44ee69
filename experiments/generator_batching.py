"""Would one generator pass for all n_critic critic updates be faster?

The critic updates of a train step each make fakes with the same generator
parameters; train-mode batch norm normalizes with each batch's own
statistics, so the n_critic forwards could run as one vmapped pass
([n_critic, B] -> one convolution over n_critic*B images, the statistics
still per batch) and only the running averages need composing afterwards.
This times, jitted, on the SPEC generator (train mode, batch stats updated):

  sequential  n_critic forwards of B, the running stats threaded through
  vmapped     one vmapped pass over [n_critic, B] (same images, 1e-7 apart)
  one batch   one forward over n_critic*B images (other statistics: speed only)
  chunks of c n_critic*B/c sequential forwards of c images (speed only)

    python experiments/generator_batching.py --arch fmnist28
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402
from conv_derivatives import best_ms  # noqa: E402
from wgan_jax import train_step  # noqa: E402

REPEATS = 20  # best of this many calls, ms


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--arch", choices=sorted(benchmark.ARCHS), default="fmnist28")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--n_critic", type=int, default=5)
  args = p.parse_args()
  config = benchmark.spec_config(args.arch, "wgan-clip", args.batch, args.n_critic)
  gan = train_step.create_gan(config, benchmark.ARCHS[args.arch])
  generator = train_step.create_train_state(gan).generator
  n, b = args.n_critic, args.batch

  def forward(params, stats, z):
    return train_step.apply_model(gan.generator, params, stats, z, train=True)

  def sequential(params, stats, z):  # z [chunks, c, z_dim]
    images = []
    for i in range(z.shape[0]):
      image, stats = forward(params, stats, z[i])
      images.append(image)
    return jnp.stack(images), stats

  def vmapped(params, stats, z):
    return jax.vmap(lambda zi: forward(params, stats, zi))(z)

  z = jax.random.normal(jax.random.key(0), (n, b, gan.z_dim))
  variables = (generator.params, generator.batch_stats)
  result = {"arch": args.arch, "batch": b, "n_critic": n,
            "sequential_ms": best_ms(sequential, *variables, z, repeats=REPEATS),
            "vmapped_ms": best_ms(vmapped, *variables, z, repeats=REPEATS),
            "one_batch_ms": best_ms(
                forward, *variables, z.reshape(n * b, gan.z_dim), repeats=REPEATS)}
  difference = jnp.abs(jax.jit(sequential)(*variables, z)[0]
                       - jax.jit(vmapped)(*variables, z)[0]).max()
  result["vmapped_max_difference"] = float(difference)
  for chunk in (16, 32, 64, 128):
    if (n * b) % chunk == 0:
      result[f"chunks_of_{chunk}_ms"] = best_ms(
          sequential, *variables, z.reshape(n * b // chunk, chunk, gan.z_dim),
          repeats=REPEATS)
  result["jax_version"] = jax.__version__
  print(json.dumps(result))


if __name__ == "__main__":
  main()
