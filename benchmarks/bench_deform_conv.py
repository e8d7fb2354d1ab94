"""Time the deformable convolution against a standard convolution of the same size.

    python benchmarks/bench_deform_conv.py [--sizes 64x112,128x224] [--repeats 5]

For each feature size (RPM-Net's matching layers at stride 4: 480p frames
padded to 512x896 give 128x224) and each layer of Table 1 (106: 64->32,
107: 32->16, 108: 16->2, 3x3; 109: 1x1 sampling), times jitted forward and
forward+backward passes of ``deform_conv`` (random offsets) and of
``jax.lax.conv_general_dilated`` with the same kernel (the offset conv is
not counted on either side). Prints milliseconds (median of ``--repeats``)
and the ratio; ``--json`` writes the rows.
"""

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from memvos_jax.models.rpm import deform_conv as dc  # noqa: E402

LAYERS = {'106': (64, 32, 3), '107': (32, 16, 3), '108': (16, 2, 3), '109': (3, 3, 1)}


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))   # compile
  times = []
  for _ in range(repeats):
    tic = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - tic)
  return 1000 * float(np.median(times))


def bench(h, w, cin, cout, k, repeats):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, h, w, cin)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(k, k, cin, cout)), jnp.float32)
  off = jnp.asarray(rng.normal(size=(1, h, w, 2 * k * k)) * 2, jnp.float32)
  pad = k // 2

  def plain(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def deform(x, kernel, off):
    return dc.deform_conv(x, off, kernel)

  plain_f = jax.jit(plain)
  deform_f = jax.jit(deform)
  plain_g = jax.jit(jax.grad(lambda x, k: jnp.sum(plain(x, k) ** 2), argnums=(0, 1)))
  deform_g = jax.jit(jax.grad(lambda x, k, o: jnp.sum(deform(x, k, o) ** 2), argnums=(0, 1, 2)))
  row = dict(size=f'{h}x{w}', cin=cin, cout=cout, k=k,
             plain_fwd_ms=_time(plain_f, x, kernel, repeats=repeats),
             deform_fwd_ms=_time(deform_f, x, kernel, off, repeats=repeats),
             plain_fwd_bwd_ms=_time(plain_g, x, kernel, repeats=repeats),
             deform_fwd_bwd_ms=_time(deform_g, x, kernel, off, repeats=repeats))
  return row


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--sizes', default='64x112,128x224')
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--json', default='')
  args = p.parse_args()
  rows = []
  print(f'device: {jax.devices()[0].device_kind}')
  print('layer  size     cin->cout k | fwd ms: conv  deform  ratio '
        '| fwd+bwd ms: conv  deform  ratio')
  for size in args.sizes.split(','):
    h, w = (int(v) for v in size.split('x'))
    for name, (cin, cout, k) in LAYERS.items():
      r = bench(h, w, cin, cout, k, args.repeats)
      r['layer'] = name
      rows.append(r)
      print(f'{name}    {r["size"]:8s} {cin:3d}->{cout:<3d}  {k} | '
            f'{r["plain_fwd_ms"]:8.2f} {r["deform_fwd_ms"]:8.2f} '
            f'{r["deform_fwd_ms"] / r["plain_fwd_ms"]:6.1f}x | '
            f'{r["plain_fwd_bwd_ms"]:8.2f} {r["deform_fwd_bwd_ms"]:8.2f} '
            f'{r["deform_fwd_bwd_ms"] / r["plain_fwd_bwd_ms"]:6.1f}x', flush=True)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
  main()
