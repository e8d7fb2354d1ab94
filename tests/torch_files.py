"""torch.save files written without torch, for the reader's tests (``tests/test_torch_pickle.py``)
and the damaged-file rows of ``tests/test_bad_inputs.py``.

``Archive`` writes the zip layout torch.save (torch >= 1.6) writes: ``<top>/data.pkl``
pickled with protocol 2, whose tensors reduce to ``torch._utils._rebuild_tensor_v2`` and
whose storages are persistent ids ``('storage', torch.FloatStorage, key, 'cpu', numel)``,
plus raw little-endian bytes under ``<top>/data/<key>``; ``write_legacy`` the legacy
(pre-1.6) layout. The torch globals are pickled by reference from stand-in modules that
exist in ``sys.modules`` only while a file is being written.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pathlib
import pickle
import sys
import types
import zipfile
from typing import Any, Iterator

import numpy as np


STORAGE_CLASSES = {
    'float32': 'FloatStorage',
    'float64': 'DoubleStorage',
    'float16': 'HalfStorage',
    'bfloat16': 'BFloat16Storage',
    'int64': 'LongStorage',
    'int32': 'IntStorage',
    'int16': 'ShortStorage',
    'int8': 'CharStorage',
    'uint8': 'ByteStorage',
    'bool': 'BoolStorage',
}


@contextlib.contextmanager
def fake_torch() -> Iterator[types.SimpleNamespace]:
  """Installs stand-in ``torch`` / ``torch._utils`` modules for pickling."""
  torch = types.ModuleType('torch')
  utils = types.ModuleType('torch._utils')
  torch._utils = utils
  classes = {}
  for name in STORAGE_CLASSES.values():
    cls = type(name, (), {'__module__': 'torch'})
    setattr(torch, name, cls)
    classes[name] = cls

  def fn(name: str) -> Any:
    def f(*args):
      raise AssertionError('stand-in, never called')
    f.__name__ = f.__qualname__ = name
    f.__module__ = 'torch._utils'
    setattr(utils, name, f)
    return f

  ns = types.SimpleNamespace(
      classes=classes, rebuild_tensor_v2=fn('_rebuild_tensor_v2'),
      rebuild_parameter=fn('_rebuild_parameter'))
  saved = {k: sys.modules.get(k) for k in ('torch', 'torch._utils')}
  sys.modules['torch'] = torch
  sys.modules['torch._utils'] = utils
  try:
    yield ns
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v


class Storage:
  """Stand-in for a torch storage: a key into the archive's data/ folder."""

  def __init__(self, key: str, dtype: str, numel: int):
    self.key, self.dtype, self.numel = key, dtype, numel


class Tensor:
  """Stand-in for a torch tensor: an (offset, shape, stride) storage view."""

  fake: types.SimpleNamespace | None = None  # set while pickling

  def __init__(self, storage: Storage, offset: int, shape: tuple,
               stride: tuple):
    self.storage, self.offset, self.shape, self.stride = (storage, offset,
                                                          shape, stride)

  def __reduce_ex__(self, protocol):
    return (Tensor.fake.rebuild_tensor_v2,
            (self.storage, self.offset, self.shape, self.stride, False,
             collections.OrderedDict()))


class Parameter:
  """Stand-in for torch.nn.Parameter wrapping a tensor."""

  def __init__(self, data: Tensor):
    self.data = data

  def __reduce_ex__(self, protocol):
    return (Tensor.fake.rebuild_parameter,
            (self.data, True, collections.OrderedDict()))


class Archive:
  """Builds a torch.save-style zip file."""

  def __init__(self):
    self.records: dict[str, bytes] = {}

  def storage(self, flat: np.ndarray, dtype: str | None = None) -> Storage:
    """A storage holding ``flat``; dtype names the torch type (bfloat16 bits
    are given as uint16)."""
    dtype = dtype or flat.dtype.name
    key = str(len(self.records))
    self.records[key] = np.ascontiguousarray(flat).tobytes()
    return Storage(key, dtype, flat.size)

  def tensor(self, arr: np.ndarray, dtype: str | None = None) -> Tensor:
    arr = np.asarray(arr)
    st = self.storage(arr.reshape(-1), dtype)
    stride = tuple(s // arr.itemsize for s in arr.strides) if arr.size else (
        (1,) * arr.ndim)
    return Tensor(st, 0, arr.shape, stride)

  def write(self, path: Any, obj: Any, top: str = 'archive',
            byteorder: str | None = 'little') -> None:
    with fake_torch() as fake:
      Tensor.fake = fake

      class Pickler(pickle.Pickler):

        def persistent_id(self, o):
          if isinstance(o, Storage):
            cls = fake.classes[STORAGE_CLASSES[o.dtype]]
            return ('storage', cls, o.key, 'cpu', o.numel)
          return None

      buf = io.BytesIO()
      try:
        Pickler(buf, protocol=2).dump(obj)
      finally:
        Tensor.fake = None
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
      zf.writestr(f'{top}/data.pkl', buf.getvalue())
      if byteorder:
        zf.writestr(f'{top}/byteorder', byteorder)
      for key, data in self.records.items():
        zf.writestr(f'{top}/data/{key}', data)
      zf.writestr(f'{top}/version', '3\n')


def write_torch_zip(path: Any, state: dict[str, np.ndarray],
                     wrap: str | None = None) -> None:
  """Writes ``state`` (name -> array) as torch.save would an OrderedDict."""
  ar = Archive()
  sd = collections.OrderedDict((k, ar.tensor(v)) for k, v in state.items())
  ar.write(path, {wrap: sd} if wrap else sd)


def write_legacy(path: Any, obj: Any, records: dict[str, tuple[bytes, int]]) -> None:
  """torch's legacy (pre-1.6) torch.save layout: magic, protocol 1001, sys info, the
  object (6-field storage persistent ids), sorted storage keys, then each storage
  as an int64 element count and its bytes."""
  with fake_torch() as fake:
    Tensor.fake = fake

    class Pickler(pickle.Pickler):

      def persistent_id(self, o):
        if isinstance(o, Storage):
          cls = fake.classes[STORAGE_CLASSES[o.dtype]]
          return ('storage', cls, o.key, 'cpu', o.numel, None)
        return None

    buf = io.BytesIO()
    for head in (0x1950a86a20f9469cfc6c, 1001,
                 {'protocol_version': 1001, 'little_endian': True,
                  'type_sizes': {'short': 2, 'int': 4, 'long': 4}}):
      pickle.dump(head, buf, protocol=2)
    try:
      Pickler(buf, protocol=2).dump(obj)
    finally:
      Tensor.fake = None
    keys = sorted(records)
    pickle.dump(keys, buf, protocol=2)
    for key in keys:
      data, numel = records[key]
      buf.write(np.int64(numel).tobytes() + data)
  pathlib.Path(path).write_bytes(buf.getvalue())


def legacy_state(path):
  """A legacy file with a contiguous, a transposed (strided) and an offset tensor."""
  ar = Archive()
  a = np.arange(12, dtype=np.float32).reshape(3, 4)
  st = ar.storage(a.reshape(-1))
  state = collections.OrderedDict([
      ('a', Tensor(st, 0, (3, 4), (4, 1))),
      ('a_t', Tensor(st, 0, (4, 3), (1, 4))),          # non-contiguous view
      ('tail', Tensor(st, 8, (4,), (1,))),
      ('n', ar.tensor(np.array(7, np.int64)))])
  records = {k: (v, len(v) // (8 if k == '1' else 4)) for k, v in ar.records.items()}
  write_legacy(path, state, records)
  return a
