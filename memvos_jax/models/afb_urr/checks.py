"""AFB-URR's own config keys checked before training builds anything (``Family.check_config``)."""

from memvos_jax.errors import InputError
from memvos_jax.nn import backbones


def _need(ok: bool, key: str, problem: str):
  if not ok:
    raise InputError(f'config.{key}', problem)


def check_config(config) -> None:
  """The network's trunk and widths, and the loss weight ``training.lu``."""
  n, t = config.network, config.training
  _need(n.backbone in backbones.names(), 'network.backbone',
        f'{n.backbone!r} is not one of {sorted(backbones.names())}')
  _need(isinstance(n.key_dim, int) and n.key_dim > 0, 'network.key_dim', 'must be > 0')
  _need(isinstance(n.value_dim, int) and n.value_dim > 0, 'network.value_dim', 'must be > 0')
  dims = tuple(n.decoder_dims)
  _need(len(dims) == 2 and all(isinstance(v, int) and v > 0 for v in dims),
        'network.decoder_dims', f'{dims} is not two positive widths (global, local)')
  _need(t.lu >= 0, 'training.lu', f'{t.lu} must be >= 0 (the uncertainty loss weight)')
  _need(t.max_objects >= 1, 'training.max_objects',
        'must be >= 1 (official: obj_n 3 = background + 2 objects)')
