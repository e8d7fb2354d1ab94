"""RPM-Net layer shapes: every layer of the supplement's Table 1, and the Table 2 variants.

Shapes only (``jax.eval_shape``): nothing is computed, so ResNet-101 is cheap.
"""

import flax
import jax
import jax.numpy as jnp
import pytest

from memvos_jax.models.rpm import modeling as rpm

H, W = 128, 192   # any multiple of 64


def _intermediates(model, source_channels=3):
  def run(rng):
    x = jnp.zeros((1, H, W, 3))
    variables = model.init(rng, x, x)
    (out, offsets), state = model.apply(variables, x, x, jnp.zeros((1, H, W, source_channels)),
                                        capture_intermediates=True,
                                        mutable=['intermediates'])
    return variables, out, offsets, state['intermediates']
  variables, out, offsets, inter = jax.eval_shape(run, jax.random.key(0))
  flat = {}   # module path (or sown name) -> output shape
  for k, v in flax.traverse_util.flatten_dict(inter).items():
    if hasattr(v[0], 'shape'):
      flat['/'.join(k[:-1] if k[-1] == '__call__' else k)] = v[0].shape
  return variables, out, offsets, flat


def _table1(depth='resnet101'):
  """Expected (layer number, intermediate path, [H, W, C]) for Table 1."""
  block, counts = rpm.STAGES[depth]
  rows = [(1, 'embedding/conv1', (H // 2, W // 2, 32)), (2, 'embedding/pool', (H // 4, W // 4, 32))]
  n = 3
  for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), counts)):
    s_in, s_out = 4 * 2 ** stage, 8 * 2 ** stage
    convs = ((planes, 1), (planes, 2), (planes * 4, 2)) if block is rpm.Bottleneck \
        else ((planes, 2), (planes, 2))
    for b in range(blocks):
      for j, (c, which) in enumerate(convs):
        s = s_in if (b == 0 and which == 1) else s_out
        rows.append((n, f'embedding/layer{stage + 1}_{b}/conv{j + 1}', (H // s, W // s, c)))
        n += 1
  exp = block.expansion
  for i, (c, s) in enumerate(((256 * exp, 32), (128 * exp, 16), (64 * exp, 8), (32, 4))):
    rows.append((102 + i, f'embedding/up{i + 1}', (H // s, W // s, c)))
  for i, c in enumerate((32, 16, 2)):
    rows.append((106 + i, f'matcher/match{i}', (H // 4, W // 4, c)))
    rows.append((106 + i, f'matcher/match{i}/offset', (H // 4, W // 4, 18)))
  return rows


@pytest.mark.parametrize('depth', ['resnet101', 'resnet18'])
def test_every_layer_of_table1(depth):
  model = rpm.RPMNet(backbone=depth)
  _, out, offsets, flat = _intermediates(model)
  rows = _table1(depth)
  if depth == 'resnet101':   # the table's numbering: 101 layers up to res5, 109 in all
    assert [r[0] for r in rows if r[0] <= 101] == list(range(1, 102))
  for number, path, shape in rows:
    assert path in flat, f'layer {number}: {path} not found'
    # The embedding runs on both frames at once (batch 2); [H, W, C] is the table's (C, H, W).
    assert flat[path][1:] == shape, f'layer {number} ({path}): {flat[path]} != {shape}'
  assert flat['embedding'] == (2, H // 4, W // 4, 32)          # layer 105 (after the skip add)
  assert offsets.shape == (1, H // 4, W // 4, 2)                # layer 108
  assert out.shape == (1, H // 4, W // 4, 3)                    # layer 109, image
  _, out_mask, _, _ = _intermediates(model, source_channels=1)
  assert out_mask.shape == (1, H // 4, W // 4, 1)               # layer 109, t-1 mask


def test_table1_parameter_shapes():
  model = rpm.RPMNet(backbone='resnet101')
  variables, _, _, _ = _intermediates(model)
  p = variables['params']
  assert p['embedding']['conv1']['kernel'].shape == (7, 7, 3, 32)
  assert len([k for k in p['embedding'] if k.startswith('layer3_')]) == 23
  assert p['embedding']['up1']['kernel'].shape == (3, 3, 2048, 1024)
  assert p['embedding']['up4']['kernel'].shape == (3, 3, 256, 32)
  m = p['matcher']
  assert m['match0']['kernel'].shape == (3, 3, 64, 32)
  assert m['match0']['offset']['kernel'].shape == (3, 3, 64, 18)
  assert m['match1']['kernel'].shape == (3, 3, 32, 16)
  assert m['match2']['kernel'].shape == (3, 3, 16, 2)
  assert set(m) == {'match0', 'match1', 'match2'}   # layer 109 has no weights


@pytest.mark.parametrize('kind,layers,dilation,widths', [
    ('standard', 1, 1, (2,)), ('standard', 3, 1, (32, 16, 2)),
    ('standard', 5, 1, (32, 32, 16, 16, 2)), ('dilated', 3, 3, (32, 16, 2)),
    ('dilated', 3, 6, (32, 16, 2)), ('dilated', 3, 9, (32, 16, 2))])
def test_table2_matching_variants(kind, layers, dilation, widths):
  model = rpm.RPMNet(backbone='resnet18', planes=(8, 8, 8, 8), matching=kind,
                     matching_layers=layers, dilation=dilation)
  variables, out, offsets, flat = _intermediates(model)
  m = variables['params']['matcher']
  assert [m[f'match{i}']['kernel'].shape[-1] for i in range(len(widths))] == list(widths)
  assert all('offset' not in m[k] for k in m)
  assert offsets.shape == (1, H // 4, W // 4, 2) and out.shape == (1, H // 4, W // 4, 3)


def test_unknown_matching_is_refused():
  with pytest.raises(ValueError, match='matching kind'):
    jax.eval_shape(rpm.RPMNet(matching='deform', backbone='resnet18').init, jax.random.key(0),
                   jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 3)))
