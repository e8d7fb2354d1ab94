"""STCN's own config keys checked before training builds anything (``Family.check_config``)."""

from memvos_jax.errors import InputError
from memvos_jax.nn import backbones


def _need(ok: bool, key: str, problem: str):
  if not ok:
    raise InputError(f'config.{key}', problem)


def check_config(config) -> None:
  """The network's widths and backbones and the bootstrapped-CE schedule."""
  n, t = config.network, config.training
  for key in ('key_backbone', 'value_backbone'):
    _need(n[key] in backbones.SPECS, f'network.{key}',
          f'{n[key]!r} is not one of {sorted(backbones.SPECS)}')
  _need(n.key_dim > 0, 'network.key_dim', 'must be > 0')
  _need(n.value_dim >= 16 and n.value_dim % 16 == 0, 'network.value_dim',
        f'{n.value_dim} must be a positive multiple of 16 (CBAM reduction)')
  dims = tuple(n.decoder_dims)
  _need(len(dims) == 3 and all(isinstance(v, int) and v > 0 for v in dims),
        'network.decoder_dims', f'{dims} is not three positive widths (compress, 16->8, 8->4)')
  _need(0 < t.bce_top_p <= 1, 'training.bce_top_p', 'must be in (0, 1]')
  _need(t.bce_end_warm >= t.bce_start_warm, 'training.bce_end_warm', 'must be >= bce_start_warm')
