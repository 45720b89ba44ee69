"""Specification of wgan_jax.convolutions: XLA's values and derivatives, faster.

References are XLA's own ops (lax.conv_general_dilated, lax.conv_transpose)
differentiated by JAX's autodiff, in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from wgan_jax import convolutions

# (kernel, stride, size): the layer kinds of every preset, odd sizes included.
CASES = [(4, 2, 8), (3, 2, 7), (3, 2, 8), (3, 1, 6), (5, 2, 8), (5, 1, 5),
         (1, 1, 4), (4, 1, 6)]


@pytest.fixture(autouse=True)
def float64():
  with jax.enable_x64(True):
    yield


def _reference_conv(x, w, stride, padding):
  return lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _reference_conv_transpose(x, w, stride):
  # Flax's ConvTranspose(transpose_kernel=True) with torch's padding (tested
  # against torch in test_models.py).
  k = w.shape[0]
  low = k // 2
  return lax.conv_transpose(x, w, (stride, stride), [(low, stride + k - 2 - low)] * 2,
                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                            transpose_kernel=True)


def _sample(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _objectives(op):
  """A first-order and a gradient-penalty-like second-order objective of op(x, w)."""
  first = lambda x, w: jnp.sum(jnp.sin(op(x, w)))  # noqa: E731

  def penalty(x, w):
    g = jax.grad(lambda x: jnp.sum(jnp.tanh(op(x, w)) ** 2))(x)
    return jnp.sum(jnp.sqrt(jnp.sum(g ** 2, axis=(1, 2, 3)) + 1e-12) - 1) ** 2
  return first, penalty


def _assert_same_derivatives(op, reference, x, w):
  np.testing.assert_allclose(op(x, w), reference(x, w), rtol=1e-10, atol=1e-12)
  for ours, theirs in zip(_objectives(op), _objectives(reference)):
    for a, b in zip(jax.grad(ours, argnums=(0, 1))(x, w),
                    jax.grad(theirs, argnums=(0, 1))(x, w)):
      np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,size", CASES)
def test_conv2d_matches_xla_with_first_and_second_derivatives(kernel, stride, size):
  padding = (kernel - 1) // 2
  x, w = _sample((2, size, size, 3), 0), _sample((kernel, kernel, 3, 4), 1)
  _assert_same_derivatives(
      lambda x, w: convolutions.conv2d(x, w, stride, padding),
      lambda x, w: _reference_conv(x, w, stride, padding), x, w)


@pytest.mark.parametrize("kernel,stride,size", [c for c in CASES if c[1] == 2 or c[0] % 2])
def test_conv_transpose2d_matches_xla_with_first_and_second_derivatives(
    kernel, stride, size):
  x, w = _sample((2, size, size, 3), 2), _sample((kernel, kernel, 4, 3), 3)
  out = convolutions.conv_transpose2d(x, w, stride)
  assert out.shape == (2, size * stride, size * stride, 4)
  _assert_same_derivatives(lambda x, w: convolutions.conv_transpose2d(x, w, stride),
                           lambda x, w: _reference_conv_transpose(x, w, stride), x, w)


@pytest.mark.parametrize("kernel,stride,size", CASES)
def test_input_and_weight_grads_are_the_gradients_of_conv2d(kernel, stride, size):
  padding = (kernel - 1) // 2
  x, w = _sample((2, size, size, 3), 4), _sample((kernel, kernel, 3, 4), 5)
  out_size = convolutions.output_size(size, kernel, stride, padding)
  dy = _sample((2, out_size, out_size, 4), 6)
  _, vjp = jax.vjp(lambda x, w: _reference_conv(x, w, stride, padding), x, w)
  dx, dw = vjp(dy)
  np.testing.assert_allclose(
      convolutions.conv2d_input_grad(dy, w, stride, padding, (size, size)), dx,
      rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(
      convolutions.conv2d_weight_grad(x, dy, stride, padding, kernel), dw,
      rtol=1e-10, atol=1e-12)


def test_third_derivative_stays_exact():
  # Reverse over reverse over reverse: every VJP is again one of the three ops.
  x, w = _sample((1, 6, 6, 2), 7), _sample((4, 4, 2, 3), 8)
  f = lambda op: lambda w: jnp.sum(op(x, w) ** 3)  # noqa: E731
  ours = f(lambda x, w: convolutions.conv2d(x, w, 2, 1))
  theirs = f(lambda x, w: _reference_conv(x, w, 2, 1))
  third = lambda g: jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(jax.grad(g)(w) ** 2))(w) ** 2))  # noqa: E731
  np.testing.assert_allclose(third(ours)(w), third(theirs)(w), rtol=1e-8)


def test_stride_one_transposed_conv_with_even_kernel_is_refused():
  with pytest.raises(ValueError, match="odd kernels"):
    convolutions.conv_transpose2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((4, 4, 3, 2)), 1)


@pytest.mark.parametrize("kernel,stride,size,channels", [
    (4, 2, 16, 3), (4, 2, 17, 4), (3, 2, 16, 3), (3, 2, 19, 5), (5, 2, 16, 3),
    (4, 3, 18, 3)])
def test_space_to_depth_input_grad_equals_the_dilated_form(kernel, stride, size,
                                                           channels):
  # The CPU path for large maps (convolutions._use_space_to_depth): the same
  # linear map, computed without the dilated input's zeros.
  padding = (kernel - 1) // 2
  w = _sample((kernel, kernel, channels, 4), 9)
  out_size = convolutions.output_size(size, kernel, stride, padding)
  dy = _sample((2, out_size, out_size + 1, 4), 10)
  input_hw = (size, size + stride)
  assert convolutions.output_size(input_hw[1], kernel, stride, padding) == out_size + 1
  np.testing.assert_allclose(
      convolutions._input_grad_space_to_depth(dy, w, stride, padding, input_hw),
      convolutions._input_grad_dilated(dy, w, stride, padding, input_hw),
      rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,size,channels", [
    (4, 2, 16, 3), (4, 2, 17, 4), (3, 2, 16, 1), (3, 2, 19, 5), (5, 2, 16, 3),
    (3, 1, 8, 2), (1, 1, 5, 3), (4, 3, 18, 3), (4, 1, 6, 7)])
def test_per_tap_weight_grad_equals_the_convolution_form(kernel, stride, size,
                                                         channels):
  # The CPU path for large Ci < Co layers (convolutions._use_per_tap): the
  # same linear map as one matmul per kernel tap; odd sizes, a non-square map and a
  # stride that leaves input rows unread included.
  padding = (kernel - 1) // 2
  x = _sample((2, size, size + stride, channels), 11)
  out_hw = [convolutions.output_size(d, kernel, stride, padding) for d in x.shape[1:3]]
  dy = _sample((2, *out_hw, 4), 12)
  np.testing.assert_allclose(
      convolutions._weight_grad_per_tap(x, dy, stride, padding, kernel),
      convolutions._weight_grad_convolution(x, dy, stride, padding, kernel),
      rtol=1e-10, atol=1e-12)


def test_per_tap_weight_grads_are_chosen_for_large_layers_into_more_channels():
  # dcgan64's first critic layer and fmnist28's second at batch 64 go per tap;
  # more channels in than out, or a layer of a few MFLOP, keep the convolution.
  use = convolutions._use_per_tap
  assert use((64, 64, 64, 3), (64, 32, 32, 64), 4)
  assert use((64, 14, 14, 32), (64, 7, 7, 64), 3)
  assert not use((64, 64, 64, 64), (64, 32, 32, 3), 4)
  assert not use((64, 28, 28, 1), (64, 14, 14, 32), 3)
  assert not use((2, 8, 8, 3), (2, 4, 4, 4), 4)
