"""Tests for memvos_jax.convert.torch_pickle (reading torch.save files).

torch is not installed here, so ``tests/torch_files.py`` writes the files:
``Archive`` the zip + pickle layout that torch.save (torch >= 1.6) writes,
``write_legacy`` the legacy (pre-1.6) one.
"""

from __future__ import annotations

import collections
import os
import pathlib
import pickle
import sys
import zipfile
from typing import Any

import numpy as np
import pytest

from memvos_jax.convert.torch_pickle import load_state_dict, load_torch_file
from memvos_jax.errors import CheckpointError, InputError
from torch_files import Archive as _Archive
from torch_files import Parameter as _Parameter
from torch_files import Tensor as _Tensor
from torch_files import legacy_state as _legacy_state
from torch_files import write_torch_zip as _write_torch_zip


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
  assert isinstance(got, np.ndarray)
  assert got.dtype == want.dtype
  assert got.shape == want.shape
  assert got.flags.c_contiguous
  np.testing.assert_array_equal(got, want)


def _state() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {
      'conv.weight': rng.standard_normal((4, 3, 3, 3), dtype=np.float32),
      'bn.num_batches_tracked': np.array(17, dtype=np.int64),
      'u8': np.arange(250, 256, dtype=np.uint8).reshape(2, 3),
      'mask': np.array([[True, False], [False, True]]),
      'half': rng.standard_normal(5).astype(np.float16),
      'f64': rng.standard_normal((2, 2)),
      'i32': np.arange(-3, 3, dtype=np.int32),
      'i16': np.arange(-3, 3, dtype=np.int16),
      'i8': np.arange(-3, 3, dtype=np.int8),
      'empty': np.zeros((0, 3), np.float32),
  }


def test_round_trip_dtypes(tmp_path):
  state = _state()
  path = tmp_path / 'ckpt.pth'
  before = sys.modules.get('torch'), sys.modules.get('torch._utils')
  _write_torch_zip(path, state)
  assert (sys.modules.get('torch'), sys.modules.get('torch._utils')) == before
  got = load_state_dict(path)
  assert list(got) == list(state)
  for k, v in state.items():
    _assert_same(got[k], v)
  assert got['bn.num_batches_tracked'].shape == ()
  assert got['bn.num_batches_tracked'] == 17
  assert all(v.flags.writeable for v in got.values())


def test_load_torch_file_returns_ordered_dict(tmp_path):
  path = tmp_path / 'ckpt.pth'
  state = {'zeta': np.ones(2, np.float32), 'alpha': np.zeros(3, np.float32),
           'mid': np.full((1,), 5, np.int64)}
  _write_torch_zip(path, state)
  obj = load_torch_file(path)
  assert isinstance(obj, collections.OrderedDict)
  assert list(obj) == ['zeta', 'alpha', 'mid']
  assert list(load_state_dict(path)) == ['zeta', 'alpha', 'mid']
  assert type(load_state_dict(path)) is dict


def test_bfloat16_widened_exactly(tmp_path):
  want = np.array([[1.0, -2.5, 3.140625], [0.0, -0.0, 65280.0]], np.float32)
  bits = (want.view(np.uint32) >> 16).astype(np.uint16)
  ar = _Archive()
  ar.write(tmp_path / 'b.pt', {'w': ar.tensor(bits, 'bfloat16')})
  got = load_state_dict(tmp_path / 'b.pt')['w']
  _assert_same(got, want)
  assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()


def test_transposed_stride(tmp_path):
  base = np.arange(12, dtype=np.float32).reshape(3, 4)
  ar = _Archive()
  st = ar.storage(base.reshape(-1))
  sd = {'t': _Tensor(st, 0, (4, 3), (1, 4))}  # base.T, not contiguous
  ar.write(tmp_path / 't.pt', sd)
  _assert_same(load_state_dict(tmp_path / 't.pt')['t'], base.T)


def test_shared_storage_with_offsets(tmp_path):
  flat = np.arange(20, dtype=np.float32) * 0.5
  ar = _Archive()
  st = ar.storage(flat)
  sd = collections.OrderedDict(
      a=_Tensor(st, 2, (2, 3), (3, 1)),
      b=_Tensor(st, 10, (5,), (2,)),
      c=_Tensor(st, 19, (), ()))
  ar.write(tmp_path / 's.pt', sd)
  got = load_state_dict(tmp_path / 's.pt')
  assert len(ar.records) == 1
  _assert_same(got['a'], flat[2:8].reshape(2, 3))
  _assert_same(got['b'], flat[10:20:2])
  _assert_same(got['c'], np.array(flat[19]))
  got['a'][...] = -1  # results own their memory
  _assert_same(got['b'], flat[10:20:2])


def test_parameter_and_metadata_attribute(tmp_path):
  ar = _Archive()
  w = np.arange(6, dtype=np.float32).reshape(2, 3)
  sd = collections.OrderedDict(w=_Parameter(ar.tensor(w)))
  # torch's Module.state_dict() sets this attribute; it is pickled via BUILD.
  sd._metadata = collections.OrderedDict({'': {'version': 1}})
  ar.write(tmp_path / 'p.pt', sd)
  got = load_state_dict(tmp_path / 'p.pt')
  assert list(got) == ['w']
  _assert_same(got['w'], w)


@pytest.mark.parametrize('wrap', ['model', 'state_dict'])
def test_nested_state_dict_unwrapped(tmp_path, wrap):
  state = _state()
  ar = _Archive()
  sd = collections.OrderedDict((k, ar.tensor(v)) for k, v in state.items())
  ar.write(tmp_path / 'n.pt', {wrap: sd, 'epoch': 3, 'note': 'x'},
           top='n')
  got = load_state_dict(tmp_path / 'n.pt')
  assert list(got) == list(state)
  for k, v in state.items():
    _assert_same(got[k], v)
  full = load_torch_file(tmp_path / 'n.pt')
  assert full['epoch'] == 3 and list(full[wrap]) == list(state)


def test_big_endian_byteorder(tmp_path):
  want = np.array([1.5, -2.0, 3.25], np.float32)
  ar = _Archive()
  st = ar.storage(want)
  ar.records[st.key] = want.astype('>f4').tobytes()
  ar.write(tmp_path / 'be.pt', {'w': _Tensor(st, 0, (3,), (1,))},
           byteorder='big')
  got = load_state_dict(tmp_path / 'be.pt')['w']
  assert got.dtype == np.float32 and got.dtype.isnative
  np.testing.assert_array_equal(got, want)


def test_npz_input(tmp_path):
  state = _state()
  np.savez(tmp_path / 'c.npz', **state)
  got = load_state_dict(tmp_path / 'c.npz')
  assert list(got) == list(state)
  for k, v in state.items():
    _assert_same(got[k], v)


def _zip_with_pickle(path: Any, payload: bytes) -> None:
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('archive/data.pkl', payload)
    zf.writestr('archive/version', '3\n')


@pytest.mark.parametrize('module,name', [('posix', 'system'),
                                         ('os', 'system'),
                                         ('builtins', 'eval'),
                                         ('subprocess', 'call')])
def test_forbidden_global_is_not_executed(tmp_path, module, name):
  marker = tmp_path / 'pwned'
  cmd = f'open({str(marker)!r}, "w")' if name == 'eval' else (
      f'touch {marker}' if name == 'system' else ['touch', str(marker)])
  arg = pickle.dumps(cmd, protocol=2)[2:-1]  # the argument's opcodes
  payload = (b'\x80\x02c' + f'{module}\n{name}\n'.encode() + arg +
             b'\x85R.')
  path = tmp_path / 'evil.pt'
  _zip_with_pickle(path, payload)
  with pytest.raises(CheckpointError) as e:
    load_torch_file(path)
  assert str(path) in str(e.value)
  assert f'{module}.{name}' in str(e.value)
  assert not marker.exists()


def test_raw_pickle_is_never_unpickled(tmp_path):
  marker = tmp_path / 'pwned'
  arg = pickle.dumps(f'touch {marker}', protocol=2)[2:-1]
  path = tmp_path / 'evil.pkl'
  path.write_bytes(b'\x80\x02cposix\nsystem\n' + arg + b'\x85R.')
  with pytest.raises(CheckpointError, match='not a checkpoint'):
    load_state_dict(path)
  assert not marker.exists()


def test_garbage_file(tmp_path):
  path = tmp_path / 'garbage.pth'
  path.write_bytes(os.urandom(1000))
  with pytest.raises(CheckpointError) as e:
    load_state_dict(path)
  assert str(path) in str(e.value)


def test_corrupt_pickle(tmp_path):
  path = tmp_path / 'trunc.pth'
  _zip_with_pickle(path, b'\x80\x02}q\x00(X')
  with pytest.raises(CheckpointError, match='trunc.pth'):
    load_state_dict(path)


def test_legacy_format(tmp_path):
  path = tmp_path / 'old.pth'
  a = _legacy_state(path)
  sd = load_state_dict(path)
  assert list(sd) == ['a', 'a_t', 'tail', 'n']
  _assert_same(sd['a'], a)
  _assert_same(sd['a_t'], np.ascontiguousarray(a.T))
  _assert_same(sd['tail'], a.reshape(-1)[8:])
  _assert_same(sd['n'], np.array(7, np.int64))


@pytest.mark.parametrize('cut', [40, 0.5, -3])
def test_legacy_truncated(tmp_path, cut):
  path = tmp_path / 'old.pth'
  _legacy_state(path)
  raw = path.read_bytes()
  n = cut if isinstance(cut, int) and cut > 0 else (
      int(len(raw) * cut) if isinstance(cut, float) else len(raw) + cut)
  path.write_bytes(raw[:n])
  with pytest.raises(CheckpointError) as e:
    load_state_dict(path)
  assert str(path) in str(e.value)
  assert '\n' not in str(e.value)


_IMAGENET = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'weights' / 'imagenet'


@pytest.mark.skipif(not _IMAGENET.is_dir(), reason='needs ../shared/weights/imagenet')
def test_real_legacy_and_strided_files():
  """torchvision's legacy-format MobileNetV2 and EfficientNet-Lite0 with its 50 strided
  tensors: every tensor equals a plain re-read of its storage with the recorded strides."""
  mnv2 = load_state_dict(_IMAGENET / 'mobilenet_v2-b0353104.pth')
  assert len(mnv2) == 314 and mnv2['features.0.0.weight'].shape == (32, 3, 3, 3)
  eff = load_state_dict(_IMAGENET / 'efficientnet-lite0-57934424.pth')
  assert len(eff) == 296
  # The strided tensors' values are checked end to end by tests/test_backbones.py
  # (the ImageNet classes come out right).
  assert all(v.flags.c_contiguous for v in eff.values())


def test_missing_file(tmp_path):
  path = tmp_path / 'nope.pth'
  with pytest.raises(InputError) as e:
    load_state_dict(path)
  assert str(path) in str(e.value)
  assert isinstance(e.value, ValueError)


def test_storage_too_small(tmp_path):
  ar = _Archive()
  st = ar.storage(np.zeros(4, np.float32))
  ar.write(tmp_path / 'small.pt', {'w': _Tensor(st, 2, (3,), (1,))})
  with pytest.raises(CheckpointError, match='too few'):
    load_state_dict(tmp_path / 'small.pt')


@pytest.mark.parametrize('content', [
    [1, 2, 3],
    {'w': 3},
    {'model': {'w': 'x'}},
    {},
])
def test_not_a_state_dict(tmp_path, content):
  path = tmp_path / 'other.pt'
  _Archive().write(path, content)
  with pytest.raises(CheckpointError, match='not a state_dict') as e:
    load_state_dict(path)
  assert str(path) in str(e.value)
