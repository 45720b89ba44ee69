"""Where the train step's time went: XLA's conv derivatives vs wgan_jax.convolutions.

    python experiments/conv_derivatives.py [--batch 64] [--repeats 3]

Times, side by side in one process, the pieces of the dcgan64 step (the
SPEC's nets, written here with bare lax ops so that only the convolution
implementation differs) with XLA's automatic derivatives of
`lax.conv_general_dilated` ("xla") and with wgan_jax.convolutions' custom
VJPs ("custom_vjp"). Prints one JSON line per implementation, in ms (best of
--repeats after a compile run).
"""

import argparse
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wgan_jax import convolutions  # noqa: E402  pylint: disable=g-import-not-at-top

_DN = ("NHWC", "HWIO", "NHWC")
CRITIC = (3, 64, 128, 256, 512)
GENERATOR = (512, 256, 128, 64, 3)


def xla_conv(x, w):
  return lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


def xla_conv_transpose(x, w):
  return lax.conv_transpose(x, w, (2, 2), ((2, 2), (2, 2)), dimension_numbers=_DN,
                            transpose_kernel=True)


IMPLEMENTATIONS = {
    "xla": (xla_conv, xla_conv_transpose),
    "custom_vjp": (lambda x, w: convolutions.conv2d(x, w, 2, 1),
                   lambda x, w: convolutions.conv_transpose2d(x, w, 2)),
}


def critic(conv, params, x):
  for w in params[:-1]:
    x = jax.nn.leaky_relu(conv(x, w), 0.2)
  return (x.reshape(x.shape[0], -1) @ params[-1])[:, 0]


def penalty(conv, params, x):
  g = jax.grad(lambda x: critic(conv, params, x).sum())(x)
  return jnp.mean((jnp.sqrt(jnp.sum(g ** 2, axis=(1, 2, 3)) + 1e-12) - 1) ** 2)


def generator(conv_transpose, params, h):
  for i, w in enumerate(params):
    h = conv_transpose(h, w)
    h = jnp.tanh(h) if i == len(params) - 1 else jax.nn.relu(h)
  return h


def best_ms(fn, *args, repeats):
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return round(1e3 * min(times), 1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  keys = jax.random.split(jax.random.key(0), 12)
  critic_params = [0.02 * jax.random.normal(keys[i], (4, 4, CRITIC[i], CRITIC[i + 1]))
                   for i in range(4)] + [0.02 * jax.random.normal(keys[4], (8192, 1))]
  generator_params = [0.02 * jax.random.normal(keys[5 + i], (4, 4, GENERATOR[i + 1], GENERATOR[i]))
                      for i in range(4)]
  x = jax.random.uniform(keys[10], (args.batch, 64, 64, 3), minval=-1, maxval=1)
  h = jax.random.normal(keys[11], (args.batch, 4, 4, 512))
  for name, (conv, conv_transpose) in IMPLEMENTATIONS.items():
    timing = {
        "critic_forward": best_ms(functools.partial(critic, conv), critic_params, x,
                                  repeats=args.repeats),
        "critic_param_grad": best_ms(jax.grad(lambda p, x: critic(conv, p, x).sum()),
                                     critic_params, x, repeats=args.repeats),
        "penalty_value": best_ms(functools.partial(penalty, conv), critic_params, x,
                                 repeats=args.repeats),
        "penalty_param_grad": best_ms(jax.grad(functools.partial(penalty, conv)),
                                      critic_params, x, repeats=args.repeats),
        "generator_forward": best_ms(functools.partial(generator, conv_transpose),
                                     generator_params, h, repeats=args.repeats),
        "generator_param_grad": best_ms(
            jax.grad(lambda p, h: generator(conv_transpose, p, h).sum()),
            generator_params, h, repeats=args.repeats),
    }
    print(json.dumps({"impl": name, "batch": args.batch, "unit": "ms",
                      "device": jax.devices()[0].device_kind,
                      "loadavg": round(os.getloadavg()[0], 2), **timing}), flush=True)


if __name__ == "__main__":
  main()
