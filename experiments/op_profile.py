"""Where a compiled program's time goes, per HLO op: the train step or the FID Inception.

    python experiments/op_profile.py --program step --arch fmnist28 --loss wgan-gp
    python experiments/op_profile.py --program inception --batch 32

Compiles the program (the benchmark's SPEC step, experiments/benchmark.py,
or the Inception network), traces two runs with `jax.profiler.trace` and
XLA:CPU's per-op trace events, and sums the events per HLO instruction of
the compiled module, labelled by what the instruction is (a convolution with
its window, a dot, an elementwise fusion) and the source op it came from.
Prints the --top entries (ms per run) and one JSON line of totals per kind
(YNNPACK convolutions, dots, fusions, XLA's own convolutions).

Ops that run concurrently are each counted for their whole duration, so the
sums exceed the wall time: read them as shares.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

# Per-op trace events; must be set before jax initialises XLA.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_enable_xprof_traceme=true")

import jax  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from experiments import benchmark  # noqa: E402
from wgan_jax import inception  # noqa: E402
from wgan_jax import parallel  # noqa: E402
from wgan_jax import train_step  # noqa: E402

RUNS = 2


def _step_program(args):
  config = benchmark.spec_config(args.arch, args.loss, args.batch, args.n_critic)
  shape = benchmark.ARCHS[args.arch]
  gan = train_step.create_gan(config, shape)
  mesh = parallel.make_mesh()
  state = train_step.init_state_on_mesh(gan, mesh)
  batches = {"image": jax.device_put(
      np.random.default_rng(0).integers(
          0, 256, (args.n_critic, args.batch) + shape, dtype=np.uint8),
      parallel.batch_sharded(mesh, 1))}
  compiled = train_step.make_train_step(gan, mesh).lower(state, batches).compile()
  holder = {"state": state}

  def run():
    holder["state"], _ = compiled(holder["state"], batches)
    return holder["state"]

  return compiled, run


def _inception_program(args):
  params = inception.load_params()
  x = np.random.default_rng(0).uniform(
      -1, 1, (args.batch, inception.INPUT_SIZE, inception.INPUT_SIZE, 3)
  ).astype(np.float32)
  compiled = jax.jit(inception._apply_network, static_argnums=2).lower(  # pylint: disable=protected-access
      params, x, jax.lax.Precision.HIGHEST).compile()
  return compiled, lambda: compiled(params, x)


PROGRAMS = {"step": _step_program, "inception": _inception_program}


def describe_instructions(hlo_text: str) -> dict[str, tuple[str, str, str]]:
  """{instruction name: (shape, what it computes, source op)} of an HLO module."""
  bodies, current = {}, None
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) ", line)
    if line and not line.startswith(" ") and "{" in line and header:
      current = header.group(1)
      bodies[current] = []
    elif current:
      bodies[current].append(line)
  described = {}
  for line in hlo_text.splitlines():
    m = re.match(r"\s+%?([\w.\-]+) = (\S+) ([\w\-]+)\(", line)
    if not m:
      continue
    name, shape, opcode = m.groups()
    called = re.search(r"calls=%?([\w.\-]+)", line)
    source = re.search(r'op_name="([^"]+)"', line)
    what = opcode
    body = "\n".join(bodies.get(called.group(1), [])) if called else line
    conv = re.search(r"convolution\(.*?\), window=\{([^}]*)\}", body)
    if conv:
      what = "conv " + conv.group(1)
    elif re.search(r" dot\(", body):
      what = "dot"
    kind = ("ynn " if "__ynn_fusion" in line else "") + what.split(" ")[0]
    described[name] = (shape.split("{")[0], what, kind,
                       source.group(1) if source else "")
  return described


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--program", choices=sorted(PROGRAMS), default="step")
  p.add_argument("--arch", choices=sorted(benchmark.ARCHS), default="fmnist28")
  p.add_argument("--loss", choices=["wgan-gp", "wgan-clip"], default="wgan-gp")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--n_critic", type=int, default=5)
  p.add_argument("--top", type=int, default=30)
  args = p.parse_args()
  compiled, run = PROGRAMS[args.program](args)
  described = describe_instructions(compiled.as_text())
  for _ in range(3):  # warm-up
    jax.block_until_ready(run())
  t0 = time.perf_counter()
  for _ in range(RUNS):
    jax.block_until_ready(run())
  wall_ms = 1e3 * (time.perf_counter() - t0) / RUNS
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(RUNS):
        jax.block_until_ready(run())
    path = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"),
                     recursive=True)[0]
    events = json.load(gzip.open(path))
  events = events["traceEvents"] if isinstance(events, dict) else events
  per_op = collections.defaultdict(float)
  for e in events:
    if e.get("ph") == "X" and e["name"] in described:
      per_op[e["name"]] += e["dur"] / 1e3 / RUNS
  rows, counts, kinds = collections.defaultdict(float), collections.Counter(), collections.defaultdict(float)
  for name, ms in per_op.items():
    shape, what, kind, source = described[name]
    source = re.sub(r"^jit\(\w+\)/", "", source)
    key = f"{what[:60]} | {shape} | {source[-70:]}"
    rows[key] += ms
    counts[key] += 1
    kinds[kind] += ms
  traced = sum(per_op.values())
  for key, ms in sorted(rows.items(), key=lambda kv: -kv[1])[:args.top]:
    print(f"{ms:8.1f} ms {counts[key]:3d}x  {key}")
  print(json.dumps({
      "program": args.program,
      **({"arch": args.arch, "loss": args.loss} if args.program == "step" else {}),
      "batch": args.batch, "wall_ms": round(wall_ms, 1),
      "traced_ms": round(traced, 1),
      "share_by_kind": {k: round(v / traced, 3) for k, v in
                        sorted(kinds.items(), key=lambda kv: -kv[1])},
      "device": jax.devices()[0].device_kind, "jax_version": jax.__version__,
  }), flush=True)


if __name__ == "__main__":
  main()
