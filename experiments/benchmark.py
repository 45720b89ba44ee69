"""Train-step benchmark of ../shared/bench/SPEC.md, side by side with PyTorch.

    python experiments/benchmark.py --arch dcgan64 --loss wgan-gp
    python experiments/benchmark.py --arch fmnist28 --loss wgan-gp --compare

Times the project's own generator step (train_step.make_train_step with the
SPEC's nets, losses and optimizers) and prints one JSON line with the SPEC's
fields plus compile time, peak memory and FLOPs (XLA's cost analysis). With
--compare it then runs ../shared/bench/torch_ref.py with the same arguments
in the same command and prints a third line with the ratio.
"""

import argparse
import ast
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configs import default  # noqa: E402  pylint: disable=g-import-not-at-top
from wgan_jax import data as data_lib  # noqa: E402
from wgan_jax import parallel  # noqa: E402
from wgan_jax import presets  # noqa: E402
from wgan_jax import train  # noqa: E402
from wgan_jax import train_step  # noqa: E402

ARCHS = {"dcgan64": (64, 64, 3), "fmnist28": (28, 28, 1)}
DEFAULT_STEPS = {"dcgan64": 20, "fmnist28": 50}
TORCH_REF = os.path.join(REPO, os.pardir, "shared", "bench", "torch_ref.py")
# float32 peaks for model FLOP utilisation (dense, no tensor-core TF32).
PEAK_FLOPS = {"NVIDIA H100": 67e12, "NVIDIA H200": 67e12}


def log(*args):
  print(*args, file=sys.stderr, flush=True)


def spec_config(arch: str, loss: str, batch: int, n_critic: int):
  """The SPEC workload as a project config (section 2 nets, section 3 optimizers)."""
  config = default.base_config()
  config.model = presets.model_config(arch)
  config.batch_size = batch
  config.n_critic = n_critic
  config.optimizer.eps = 1e-8
  if loss == "wgan-gp":
    config.loss = "wgan-gp"
    config.gp_weight = 10.0
    config.optimizer.name = "adam"
    config.optimizer.b1, config.optimizer.b2 = 0.0, 0.9
    lr = 1e-4
  else:
    config.loss = "wgan"
    config.clip_value = 0.01
    config.optimizer.name = "rmsprop"
    config.optimizer.rmsprop_decay = 0.99
    lr = 5e-5
  config.optimizer.generator_learning_rate = lr
  config.optimizer.critic_learning_rate = lr
  return config


def _real_data(name: str, shape, config) -> "data_lib.Dataset":
  data = config.data
  if name == "fashion_mnist":
    data.source, data.path = "fashion_mnist", default.fashion_mnist_path()
  else:
    data.source, data.path = "folder", default.data_file("anime_faces_64.zip")
    data.image_size, data.channels = 64, 3
  dataset = data_lib.load_dataset(
      data, cache_dir=os.path.join(REPO, ".data_cache"), seed=config.seed)
  if tuple(dataset.example_shape) != shape:
    raise SystemExit(f"--data {name} has shape {dataset.example_shape}, "
                     f"the arch needs {shape}.")
  return dataset


def threads() -> int:
  """CPU threads this process may use (its affinity mask)."""
  return len(os.sched_getaffinity(0))


def _peak_memory_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"])
  if jax.default_backend() == "cpu":  # the process's peak resident set
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return None


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
  """The device's measured float32 matmul rate, FLOP/s (best of `repeats`).

  The ceiling that the step's achieved FLOP/s is read against: on a CPU
  there is no datasheet number that XLA reaches, so it is measured in the
  same command as the step.
  """
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda a: jnp.dot(a, a, precision="highest"))
  jax.block_until_ready(matmul(a))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a))
    best = min(best, time.perf_counter() - t0)
  return 2 * size ** 3 / best


def bench(args) -> dict:
  config = spec_config(args.arch, args.loss, args.batch, args.n_critic)
  for override in args.set or []:
    key, value = override.split("=", 1)
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    # Python literals as on the training command line ('(3,4,4)', 'True', 0.5);
    # strings as given.
    node[leaf] = (value if isinstance(node[leaf], str)
                  else ast.literal_eval(value))
  shape = ARCHS[args.arch]
  gan = train_step.create_gan(config, shape)
  mesh = parallel.make_mesh()
  state = train_step.init_state_on_mesh(gan, mesh)
  if args.data == "random":
    # SPEC section 1: n_critic fixed batches on the device, reused every step.
    step = train_step.make_train_step(gan, mesh)
    rng = np.random.default_rng(args.seed)
    batches = {"image": jax.device_put(
        rng.integers(0, 256, (args.n_critic, args.batch) + shape, dtype=np.uint8),
        parallel.batch_sharded(mesh, 1))}
    inputs = lambda i: (batches,)  # noqa: E731
  else:
    # The training input path (train.input_feed): the dataset resident on the
    # devices, a fresh epoch-shuffled index batch every step, gathered inside
    # the step.
    data = _real_data(args.data, shape, config)
    # inputs(i): step i's batches, batch_indices of (config.seed, i).
    step, inputs = train.input_feed(config, data, gan, mesh)
    log(f"[data] {args.data}: {data.examples.shape} {data.examples.dtype} on device")

  t0 = time.perf_counter()
  compiled = step.lower(state, *inputs(0)).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  log(f"[compile] {compile_s:.1f}s, XLA cost analysis: {flops / 1e9:.1f} GFLOP per step")

  # This VM's speed drifts (host load): the peak is measured before and
  # after the timed steps, and the higher of the two kept.
  peak_before = matmul_peak_flops()
  t0 = time.perf_counter()
  step_index = 0
  for _ in range(args.warmup):
    state, metrics = compiled(state, *inputs(step_index))
    step_index += 1
  jax.block_until_ready(state)
  log(f"[warmup] {args.warmup} steps in {time.perf_counter() - t0:.1f}s")

  steps = args.steps or DEFAULT_STEPS[args.arch]
  rates = []
  for r in range(args.repeats):
    t0 = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, *inputs(step_index))
      step_index += 1
    jax.block_until_ready(state)  # the updated state, not only the loss
    dt = time.perf_counter() - t0
    rates.append(steps / dt)
    log(f"[repeat {r}] {steps} steps {dt:.2f}s -> {rates[-1]:.3f} gen steps/s "
        f"(generator/loss {float(metrics['generator/loss']):+.4f}, "
        f"loadavg {os.getloadavg()[0]:.2f})")

  rate = statistics.median(rates)
  device = jax.devices()[0]
  peak = PEAK_FLOPS.get(device.device_kind)
  peak_after = matmul_peak_flops()
  measured_peak = max(peak_before, peak_after)
  log(f"[peak] float32 matmul 2048^3: {peak_before / 1e9:.1f} GFLOP/s before "
      f"the timed steps, {peak_after / 1e9:.1f} after")
  peak_memory = _peak_memory_bytes()
  out = {
      "impl": "jax-jit",
      "data": args.data,
      "arch": args.arch,
      "loss": args.loss,
      "batch": args.batch,
      "n_critic": args.n_critic,
      "steps": steps,
      "gen_steps_per_s": round(rate, 4),
      "critic_images_per_s": round(rate * args.batch * args.n_critic, 2),
      "ms_per_gen_step": round(1000.0 / rate, 2),
      "device": "cpu" if jax.default_backend() == "cpu" else "gpu",
      "device_kind": device.device_kind,
      "threads": threads(),
      "torch_version": None,
      "jax_version": jax.__version__,
      "compile_s": round(compile_s, 2),
      "gflop_per_step": round(flops / 1e9, 2),
      "achieved_gflop_s": round(flops * rate / 1e9, 1),
      "mfu": round(flops * rate / peak, 4) if peak else None,
      "matmul_peak_gflop_s": round(measured_peak / 1e9, 1),
      "fraction_of_matmul_peak": round(flops * rate / measured_peak, 3),
      "peak_memory_mib": (round(peak_memory / 2 ** 20, 1) if peak_memory
                          else None),
      "repeats": args.repeats,
      "warmup": args.warmup,
      "all_gen_steps_per_s": [round(x, 4) for x in rates],
      "overrides": args.set or [],
  }
  return out


# Runs a script as __main__ and, at its exit, prints its peak resident set
# (VmHWM of its own address space, so not the parent's pages that a fork
# copies, which getrusage(RUSAGE_CHILDREN) would count) to stderr.
_WITH_PEAK_RSS = """
import atexit, runpy, sys
def report():
  for line in open('/proc/self/status'):
    if line.startswith('VmHWM:'):
      print('[peak_rss_kib]', line.split()[1], file=sys.stderr, flush=True)
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_torch(args) -> dict:
  cmd = [sys.executable, "-c", _WITH_PEAK_RSS, TORCH_REF, "--arch", args.arch, "--loss", args.loss,
         "--batch", str(args.batch), "--n_critic", str(args.n_critic),
         "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
  if args.steps:
    cmd += ["--steps", str(args.steps)]
  if jax.default_backend() != "cpu":
    cmd += ["--device", "cuda"]
  if args.torch_compile:
    cmd += ["--compile"]
  log("[compare] " + " ".join([sys.executable] + cmd[3:]))
  done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
  peak_kib = None
  for line in done.stderr.splitlines():
    if line.startswith("[peak_rss_kib]"):
      peak_kib = int(line.split()[1])
    else:
      log(line)
  if done.returncode:
    raise SystemExit(f"torch_ref.py exited with {done.returncode}")
  theirs = json.loads(done.stdout.strip().splitlines()[-1])
  # The reference does not report memory itself.
  theirs["peak_rss_mib"] = round(peak_kib / 1024, 1) if peak_kib else None
  return theirs


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--arch", choices=sorted(ARCHS), default="dcgan64")
  p.add_argument("--loss", choices=["wgan-gp", "wgan-clip"], default="wgan-gp")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--n_critic", type=int, default=5)
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--data", choices=["random", "fashion_mnist", "anime"],
                 default="random",
                 help="random: the SPEC's fixed batches; otherwise the real "
                      "dataset on the devices, gathered inside the step")
  p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                 help="override a config field, e.g. --set model.conv_impl=xla")
  p.add_argument("--compare", action="store_true",
                 help="then run torch_ref.py with the same arguments and print the ratio")
  p.add_argument("--torch_compile", action="store_true",
                 help="with --compare: the torch.compile variant of the reference")
  args = p.parse_args()
  log(f"[setup] loadavg {os.getloadavg()}, devices {jax.devices()}")
  ours = bench(args)
  print(json.dumps(ours), flush=True)
  if args.compare:
    theirs = run_torch(args)
    print(json.dumps(theirs), flush=True)
    print(json.dumps({
        "ratio": round(ours["gen_steps_per_s"] / theirs["gen_steps_per_s"], 3),
        "jax_gen_steps_per_s": ours["gen_steps_per_s"],
        "torch_gen_steps_per_s": theirs["gen_steps_per_s"],
        "torch_impl": theirs["impl"], "arch": args.arch, "loss": args.loss,
        # Both sides do the same mathematics, so XLA's FLOP count of the
        # step measures the reference's rate too.
        "jax_fraction_of_matmul_peak": ours["fraction_of_matmul_peak"],
        "torch_fraction_of_matmul_peak": round(
            ours["gflop_per_step"] * theirs["gen_steps_per_s"]
            / ours["matmul_peak_gflop_s"], 3),
        "jax_peak_rss_mib": ours["peak_memory_mib"],
        "torch_peak_rss_mib": theirs["peak_rss_mib"],
        "batch": args.batch, "n_critic": args.n_critic, "device": ours["device"],
        "date": time.strftime("%Y-%m-%d"),
    }), flush=True)


if __name__ == "__main__":
  main()
