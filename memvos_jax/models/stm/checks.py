"""STM's own config keys checked before training builds anything (``Family.check_config``)."""

from memvos_jax.errors import InputError
from memvos_jax.nn import backbones


def _need(ok: bool, key: str, problem: str):
  if not ok:
    raise InputError(f'config.{key}', problem)


def check_config(config) -> None:
  """The network's backbone and widths (the paper's loss has no keys of its own)."""
  n = config.network
  _need(n.backbone in backbones.SPECS, 'network.backbone',
        f'{n.backbone!r} is not one of {sorted(backbones.SPECS)}')
  for key in ('key_dim', 'value_dim', 'decoder_dim'):
    value = n[key]
    _need(isinstance(value, int) and value > 0, f'network.{key}', f'{value!r} must be > 0')
