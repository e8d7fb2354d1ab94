"""The float32 kernels the models spend their time in, XLA:CPU beside torch, same threads.

Why float32 speed-ups over the official code are bounded on a CPU: STCN, STM
and AFB-URR spend most of a frame in 3x3 convolutions (decoder, fuser,
ResNets), SAM 2 in attention. This times those kernels at the models' shapes
in JAX (as the models run them, and the alternatives tried: im2col + one dot,
nine shifted dots, Winograd F(2x2, 3x3); deferred-normalisation attention in
query chunks) and in torch (``nn.Conv2d``, ``F.scaled_dot_product_attention``)
in a child Python, each pinned to the same number of threads.

    .venv/bin/python benchmarks/kernels_vs_torch.py [--torch-python /tmp/torchenv/bin/python]
        [--repeats 5] [--json OUT]

Prints one table: milliseconds (best of ``--repeats``) and GMAC/s per kernel.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

# (name, batch, H, W, Cin, Cout): 3x3, stride 1, padding 1 convolutions.
CONVS = [
    ('STCN decoder up_8_4, 480p', 2, 120, 214, 256, 256),
    ('STCN decoder up_16_8 skip, 480p', 1, 60, 107, 512, 512),
    ('STCN decoder up_16_8 block, 480p', 2, 60, 107, 512, 256),
    ('STCN fuser block1, 270p', 2, 17, 30, 1280, 512),
    ('STCN decoder compress, 270p', 2, 17, 30, 1024, 512),
    ('ResNet-50 layer1, 480p', 1, 120, 214, 64, 64),
]
# (name, queries, keys, heads, head dim)
ATTENTION = [
    ('SAM 2 memory self-attention', 4096, 4096, 1, 256),
    ('SAM 2 cross-attention, 2 memories', 4096, 8192, 1, 256),
    ('Hiera-T global attention', 4096, 4096, 4, 96),
]

TORCH_CHILD = r'''
import json, sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1])); reps = int(sys.argv[2]); spec = json.loads(sys.argv[3])
def best(f):
  with torch.no_grad():
    f(); ts = []
    for _ in range(reps):
      t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
  return min(ts)
out = {}
for name, b, h, w, c, o in spec['convs']:
  x = torch.randn(b, c, h, w); m = torch.nn.Conv2d(c, o, 3, 1, 1)
  out[name] = best(lambda: m(x))
for name, nq, nk, nh, d in spec['attention']:
  q, k, v = torch.randn(1, nh, nq, d), torch.randn(1, nh, nk, d), torch.randn(1, nh, nk, d)
  out[name] = best(lambda: F.scaled_dot_product_attention(q, k, v))
print('RESULT ' + json.dumps(out))
'''


def jax_kernels(repeats):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax import lax

  from memvos_jax.models.sam2.common import sdpa

  def best(f, *args):
    f = jax.jit(f)
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(repeats):
      t = time.perf_counter()
      jax.block_until_ready(f(*args))
      ts.append(time.perf_counter() - t)
    return min(ts)

  def conv(x, w):      # as models/layers.conv runs it (nn.Conv)
    return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def shifted(x):
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    return [xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]

  def im2col(x, w):
    cols = jnp.concatenate(shifted(x), -1)
    return jnp.einsum('bhwc,co->bhwo', cols, w.reshape(-1, w.shape[-1]))

  def nine_dots(x, w):
    return sum(jnp.einsum('bhwc,co->bhwo', s, w[t // 3, t % 3]) for t, s in enumerate(shifted(x)))

  g = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)

  def winograd(x, w):  # F(2x2, 3x3)
    b, h, wd, c = x.shape
    th, tw = -(-h // 2), -(-wd // 2)
    xp = jnp.pad(x, ((0, 0), (1, 2 * th - h + 1), (1, 2 * tw - wd + 1), (0, 0)))
    bt = lambda r: [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]]
    rows = bt([xp[:, i:i + 2 * th:2] for i in range(4)])
    v = [t for a in rows for t in bt([a[:, :, j:j + 2 * tw:2] for j in range(4)])]
    v = jnp.stack(v).reshape(16, b * th * tw, c)
    u = jnp.einsum('ai,ijco,bj->abco', g, w, g).reshape(16, c, -1)
    m = jnp.einsum('kpc,kco->kpo', v, u).reshape(4, 4, b, th, tw, -1)
    t0, t1 = m[0] + m[1] + m[2], m[1] - m[2] - m[3]
    y = [[t[0] + t[1] + t[2], t[1] - t[2] - t[3]] for t in (t0, t1)]
    y = jnp.stack([jnp.stack(r, -2) for r in y], 2)
    return y.reshape(b, 2 * th, 2 * tw, -1)[:, :h, :wd]

  def deferred(q, k, v, chunk=1024):   # exp(s - max) @ v, normalised after the dot
    def run(qc):
      s = jnp.einsum('qhd,khd->hqk', qc / math.sqrt(q.shape[-1]), k)
      p = jnp.exp(s - jnp.max(s, -1, keepdims=True))
      o = jnp.einsum('hqk,khd->hqd', p, v) / jnp.sum(p, -1)[..., None]
      return jnp.moveaxis(o, 0, 1)
    out = lax.map(run, q.reshape(-1, chunk, *q.shape[1:]))
    return out.reshape(q.shape[0], q.shape[1], v.shape[-1])

  rng = np.random.default_rng(0)
  rows = []
  for name, b, h, w, c, o in CONVS:
    x = jnp.asarray(rng.standard_normal((b, h, w, c)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, c, o)) / math.sqrt(9 * c), jnp.float32)
    rows.append(dict(kernel=name, macs=b * h * w * c * o * 9, jax={
        'conv (ours)': best(conv, x, k), 'im2col + dot': best(im2col, x, k),
        '9 shifted dots': best(nine_dots, x, k), 'Winograd F(2,3)': best(winograd, x, k)}))
  for name, nq, nk, nh, d in ATTENTION:
    q, k, v = (jnp.asarray(rng.standard_normal((n, nh, d)), jnp.float32) for n in (nq, nk, nk))
    rows.append(dict(kernel=name, macs=2 * nq * nk * nh * d, jax={
        'sdpa (ours)': best(lambda q, k, v: sdpa(q, k, v, None, 1024), q, k, v),
        'deferred norm, 1024-query chunks': best(deferred, q, k, v)}))
  return rows


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--torch-python', default='/tmp/torchenv/bin/python')
  ap.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
  ap.add_argument('--repeats', type=int, default=5)
  ap.add_argument('--json')
  args = ap.parse_args()
  rows = jax_kernels(args.repeats)
  spec = json.dumps(dict(convs=CONVS, attention=ATTENTION))
  r = subprocess.run([args.torch_python, '-c', TORCH_CHILD, str(args.threads), str(args.repeats),
                      spec], capture_output=True, text=True)
  if r.returncode:
    sys.exit(f'the torch child failed:\n{r.stderr[-2000:]}')
  torch_times = json.loads(r.stdout.split('RESULT ', 1)[1])
  import jax
  print(f'# jax {jax.__version__}, {args.threads} threads; best of {args.repeats}; '
        f'float32; load average before/after {os.getloadavg()}')
  for kind in ('conv', 'attention'):
    group = [r for r in rows if (kind == 'conv') == ('conv (ours)' in r['jax'])]
    print(f'\n| {kind} | GMAC | torch ms (GMAC/s) | ' + ' | '.join(
        f'JAX {n} ms (GMAC/s)' for n in group[0]['jax']) + ' |')
    print('| --- ' * (3 + len(group[0]['jax'])) + '|')
    for row in group:
      t = row['torch'] = torch_times[row['kernel']]
      cell = lambda s, row=row: f'{s * 1e3:.1f} ({row["macs"] / s / 1e9:.0f})'
      print(f'| {row["kernel"]} | {row["macs"] / 1e9:.1f} | {cell(t)} | '
            + ' | '.join(cell(s) for s in row['jax'].values()) + ' |')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  main()
