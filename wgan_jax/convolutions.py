"""2-D convolutions whose derivatives of every order are fast convolutions.

Why: the gradient penalty differentiates the critic twice, and the generator
update differentiates transposed convolutions. XLA's automatic derivatives of
`conv_general_dilated` produce convolutions with dilated inputs and kernels
that XLA:CPU runs through a slow path: on the 2-core CPU here, the double
backward of the dcgan64 critic at batch 64 took ~6.7 s and the backward of
the dcgan64 generator ~6.5 s, against ~0.4-0.7 s for the same mathematics
written as below (see experiments/README.md).

Every convolution here is one of three linear maps, each computed by plain
forward convolutions (or, for a weight gradient into more channels than it
reads, one matmul per kernel tap) and each with a custom VJP that is again
one of the three:

  conv2d(x, w)                 y = torch Conv2d(k, s, p)(x)
  conv2d_input_grad(dy, w)     x-gradient of conv2d: torch ConvTranspose2d
  conv2d_weight_grad(x, dy)    w-gradient of conv2d

Because the VJPs are built from the same functions, reverse-over-reverse
differentiation (the WGAN-GP double backward) stays within them. The values
are those of the plain XLA ops (tests/test_convolutions.py compares first
and second derivatives with XLA's own).

Layouts: images NHWC, kernels HWIO [k, k, C_in, C_out] for conv2d; padding is
torch's symmetric `p` on both spatial axes.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
  """torch Conv2d's output size: floor((H + 2p - k) / s) + 1."""
  return (size + 2 * padding - kernel_size) // stride + 1


def _conv2d(x: Array, w: Array, stride: int, padding: int) -> Array:
  return lax.conv_general_dilated(
      x, w, (stride, stride), ((padding, padding), (padding, padding)),
      dimension_numbers=_DIMENSIONS)


def _conv2d_input_grad(dy: Array, w: Array, stride: int, padding: int,
                       input_hw: tuple[int, int]) -> Array:
  if stride > 1 and _use_space_to_depth(w, input_hw):
    return _input_grad_space_to_depth(dy, w, stride, padding, input_hw)
  return _input_grad_dilated(dy, w, stride, padding, input_hw)


def _use_space_to_depth(w: Array, input_hw: tuple[int, int]) -> bool:
  """Whether the space-to-depth form of a strided input gradient is faster.

  On XLA:CPU the dilated form multiplies the inserted zeros; the stride-1
  form avoids them but pays two transposes, which only pays off on large
  maps with more than one or two channels (measured on the 2-core CPU:
  64->128 channels at 32x32, batch 64: 52 ms -> 19 ms; at 8x8 it lost
  20 -> 26 ms; see experiments/README.md). Elsewhere (GPU/TPU) the
  convolution libraries skip the zeros themselves.
  """
  return (jax.default_backend() == "cpu" and min(input_hw) >= 16
          and w.shape[2] >= 3)


def _input_grad_dilated(dy: Array, w: Array, stride: int, padding: int,
                        input_hw: tuple[int, int]) -> Array:
  # Correlate the stride-dilated dy with the flipped, in/out-swapped kernel;
  # the high padding makes the output exactly input_hw (torch's
  # output_padding).
  k = w.shape[0]
  pads = []
  for size, out in zip(input_hw, dy.shape[1:3]):
    low = k - 1 - padding
    pads.append((low, size + padding - 1 - (out - 1) * stride))
  flipped = jnp.flip(w, (0, 1)).swapaxes(2, 3)
  return lax.conv_general_dilated(dy, flipped, (1, 1), pads,
                                  lhs_dilation=(stride, stride),
                                  dimension_numbers=_DIMENSIONS)


def _input_grad_space_to_depth(dy: Array, w: Array, stride: int, padding: int,
                               input_hw: tuple[int, int]) -> Array:
  """The strided input gradient as a stride-1 one on space-to-depth blocks.

  conv2d(x, w, s) equals a stride-1 convolution of the s x s blocks of the
  padded x (s*s*Ci channels) with w regrouped into ceil(k/s) taps; its input
  gradient is a stride-1 input gradient followed by depth-to-space and the
  crop of the padding.
  """
  k, _, ci, co = w.shape
  s = stride
  taps = -(-k // s)
  out_hw = dy.shape[1:3]
  # Padded input length each axis needs: s * (out - 1 + taps) >= k + s*(out-1).
  padded = [s * (o - 1 + taps) for o in out_hw]
  w_blocks = jnp.pad(w, ((0, taps * s - k), (0, taps * s - k), (0, 0), (0, 0)))
  w_blocks = w_blocks.reshape(taps, s, taps, s, ci, co).transpose(0, 2, 1, 3, 4, 5)
  w_blocks = w_blocks.reshape(taps, taps, s * s * ci, co)
  blocks = _input_grad_dilated(dy, w_blocks, 1, 0, (padded[0] // s, padded[1] // s))
  n = dy.shape[0]
  grad = blocks.reshape(n, padded[0] // s, padded[1] // s, s, s, ci)
  grad = grad.transpose(0, 1, 3, 2, 4, 5).reshape(n, padded[0], padded[1], ci)
  # Input rows past the padded length never reach the output: zero gradient.
  grad = jnp.pad(grad, ((0, 0), (0, max(0, input_hw[0] + padding - padded[0])),
                        (0, max(0, input_hw[1] + padding - padded[1])), (0, 0)))
  return grad[:, padding:padding + input_hw[0], padding:padding + input_hw[1]]


def _conv2d_weight_grad(x: Array, dy: Array, stride: int, padding: int,
                        kernel_size: int) -> Array:
  if _use_per_tap(x.shape, dy.shape, kernel_size):
    return _weight_grad_per_tap(x, dy, stride, padding, kernel_size)
  return _weight_grad_convolution(x, dy, stride, padding, kernel_size)


# A weight gradient below this many FLOPs takes about a millisecond either way
# on the 2-core CPU (the 115 MFLOP one of fmnist28's second critic layer at
# batch 64: 2.3-5.3 ms), while the per-tap form adds k*k ops to the program
# and so to its compile time (the fmnist28 wgan-gp step: 10.4-11.2 s ->
# 15.1-17.4 s with every layer per tap), which the tests' many small steps pay.
PER_TAP_MIN_FLOPS = 5e7


def _use_per_tap(x_shape: tuple[int, ...], dy_shape: tuple[int, ...],
                 kernel_size: int) -> bool:
  """Whether a weight gradient of x [N, H, W, Ci], dy [N, Ho, Wo, Co] goes per tap.

  On XLA:CPU, into more channels than it reads (Ci < Co, see
  _weight_grad_per_tap), and large enough for the speed to matter; elsewhere
  (GPU/TPU) the convolution libraries' own weight gradients.
  """
  n, ho, wo, co = dy_shape
  ci = x_shape[3]
  flops = 2 * n * ho * wo * kernel_size ** 2 * ci * co
  return (jax.default_backend() == "cpu" and ci < co
          and flops >= PER_TAP_MIN_FLOPS)


def _weight_grad_convolution(x: Array, dy: Array, stride: int, padding: int,
                             kernel_size: int) -> Array:
  # dW[a, b, i, o] = sum_{n,p,q} x_pad[n, s*p + a, s*q + b, i] dy[n, p, q, o]:
  # a forward convolution of x with batch and channels swapped ([Ci, H, W,
  # N]) by dy as a kernel ([Ho, Wo, N, Co], dilated by the stride).
  # The optimization barriers keep the swaps as explicit transposes: left to
  # itself, XLA:CPU sometimes folds them into the convolution's dimension
  # labels (f01b_i01o->01bf), a layout its fast convolution does not take,
  # and runs that convolution ~10x slower (measured: fmnist28 step with
  # n_critic 1: 1.2 s -> 0.13 s; experiments/README.md).
  out_hw = dy.shape[1:3]
  high = [kernel_size + stride * (o - 1) - size - padding
          for o, size in zip(out_hw, x.shape[1:3])]
  lhs = lax.optimization_barrier(jnp.transpose(x, (3, 1, 2, 0)))
  rhs = lax.optimization_barrier(jnp.transpose(dy, (1, 2, 0, 3)))
  grad = lax.conv_general_dilated(
      lhs, rhs, (1, 1), ((padding, high[0]), (padding, high[1])),
      rhs_dilation=(stride, stride), dimension_numbers=_DIMENSIONS)
  return jnp.transpose(lax.optimization_barrier(grad), (1, 2, 0, 3))


def _weight_grad_per_tap(x: Array, dy: Array, stride: int, padding: int,
                         kernel_size: int) -> Array:
  """The weight gradient as one [Ci, N*Ho*Wo] @ [N*Ho*Wo, Co] matmul per tap.

  dW[a, b] = x_pad[:, a::s, b::s]^T dy over all pixels of the batch. Used
  where Ci < Co and the layer is large (_use_per_tap); there the
  convolution form was slower on the 2-core CPU (batch 64, 4x4 stride 2:
  3 -> 64 channels at 64x64, 110-152 ms vs 13-34 ms; 64 -> 128 at 32x32,
  by 7-25% in each of 12 paired rounds; experiments/README.md); for Ci > Co
  (64 -> 3) the matmuls lost (190-203 ms vs 306-329 ms).
  """
  k, s = kernel_size, stride
  n, _, _, ci = x.shape
  ho, wo, co = dy.shape[1:]
  high = [max(0, k + s * (o - 1) - size - padding)
          for o, size in zip((ho, wo), x.shape[1:3])]
  x_pad = jnp.pad(x, ((0, 0), (padding, high[0]), (padding, high[1]), (0, 0)))
  dy_rows = dy.reshape(n * ho * wo, co)
  taps = [lax.slice(x_pad, (0, a, b, 0), (n, a + s * (ho - 1) + 1, b + s * (wo - 1) + 1, ci),
                    (1, s, s, 1)).reshape(n * ho * wo, ci).T @ dy_rows
          for a in range(k) for b in range(k)]
  return jnp.stack(taps).reshape(k, k, ci, co)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: Array, w: Array, stride: int, padding: int) -> Array:
  """torch Conv2d: x [N, H, W, Ci], w [k, k, Ci, Co] -> [N, H', W', Co]."""
  return _conv2d(x, w, stride, padding)


def _conv2d_fwd(x, w, stride, padding):
  return _conv2d(x, w, stride, padding), (x, w)


def _conv2d_bwd(stride, padding, residuals, dy):
  x, w = residuals
  return (conv2d_input_grad(dy, w, stride, padding, x.shape[1:3]),
          conv2d_weight_grad(x, dy, stride, padding, w.shape[0]))


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d_input_grad(dy: Array, w: Array, stride: int, padding: int,
                      input_hw: tuple[int, int]) -> Array:
  """The x-gradient of conv2d (a transposed convolution): [N, *input_hw, Ci]."""
  return _conv2d_input_grad(dy, w, stride, padding, input_hw)


def _input_grad_fwd(dy, w, stride, padding, input_hw):
  return _conv2d_input_grad(dy, w, stride, padding, input_hw), (dy, w)


def _input_grad_bwd(stride, padding, input_hw, residuals, g):
  # <g, A_w^T dy> = <A_w g, dy>: linear in dy through conv2d, in w through
  # the filter gradient.
  dy, w = residuals
  return (conv2d(g, w, stride, padding),
          conv2d_weight_grad(g, dy, stride, padding, w.shape[0]))


conv2d_input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d_weight_grad(x: Array, dy: Array, stride: int, padding: int,
                       kernel_size: int) -> Array:
  """The w-gradient of conv2d: [k, k, Ci, Co]."""
  return _conv2d_weight_grad(x, dy, stride, padding, kernel_size)


def _weight_grad_fwd(x, dy, stride, padding, kernel_size):
  return _conv2d_weight_grad(x, dy, stride, padding, kernel_size), (x, dy)


def _weight_grad_bwd(stride, padding, kernel_size, residuals, gw):
  # <gw, dW(x, dy)> = <conv2d(x, gw), dy>.
  x, dy = residuals
  return (conv2d_input_grad(dy, gw, stride, padding, x.shape[1:3]),
          conv2d(x, gw, stride, padding))


conv2d_weight_grad.defvjp(_weight_grad_fwd, _weight_grad_bwd)


def conv_transpose2d(x: Array, w: Array, stride: int) -> Array:
  """torch ConvTranspose2d(k, s, p=(k-1)//2) that multiplies H and W by s.

  Args:
    x: [N, H, W, Ci].
    w: [k, k, Co, Ci]: torch's ConvTranspose2d weight [Ci, Co, k, k]
      transposed (2, 3, 1, 0); this is also Flax's ConvTranspose kernel with
      transpose_kernel=True. It is the kernel of the conv2d (Co -> Ci) whose
      x-gradient this is.

  Returns:
    [N, s*H, s*W, Co].
  """
  k = w.shape[0]
  if stride == 1 and k % 2 == 0:
    raise ValueError(f"A stride-1 transposed convolution keeps the size only "
                     f"for odd kernels; got kernel_size={k}.")
  padding = (k - 1) // 2
  return conv2d_input_grad(x, w, stride, padding,
                           (x.shape[1] * stride, x.shape[2] * stride))
