"""Read PyTorch ``torch.save`` checkpoints into numpy without importing torch.

Supports the zip format written by torch >= 1.6: an archive with one top
folder holding ``data.pkl`` (a pickle whose persistent ids name storages),
``data/<key>`` (raw storage bytes), ``version`` and maybe ``byteorder``.
``data.pkl`` is read by a restricted unpickler: ``find_class`` only hands out
an allow-list of stand-ins for the torch globals a checkpoint needs (tensor
rebuild functions, storage classes, dtypes, ``collections.OrderedDict``, ...)
and never imports a module, so a malicious checkpoint cannot run code. Every
tensor comes back as a C-contiguous numpy array of the right dtype and shape
(storage offset and strides honoured; bfloat16 widened to float32 exactly).

Also the legacy (pre-1.6, non-zip) format that torchvision's ImageNet files
still use: four pickles in a row (magic number, protocol version, system
info, the object, whose storages are persistent ids ``('storage', type, key,
location, numel, view_metadata)``), the sorted storage keys, then each
storage as an int64 element count and its raw bytes. Tensors are rebuilt once
every storage has been read. TorchScript archives and the tar format of
torch < 0.4 are rejected with a CheckpointError that names the file.
``load_state_dict`` also accepts ``.npz`` (``load_npz_arrays``).

A file that cannot be what it claims is one CheckpointError line naming it
(``damaged``, ``not_a_checkpoint``): empty, a zip cut short (its directory at
the end missing), a member whose bytes fail their CRC or do not decompress, a
pickle or ``.npy`` header that does not parse, a legacy file whose storages
stop early, or a file in none of these formats (text, ...).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from typing import Any, Callable

import numpy as np

from memvos_jax.errors import CheckpointError, InputError

# torch dtype name -> numpy dtype (little-endian as stored). bfloat16 is read
# as uint16 bit patterns and widened to float32 afterwards.
_NP_DTYPES: dict[str, str] = {
    'float32': '<f4',
    'float64': '<f8',
    'float16': '<f2',
    'bfloat16': '<u2',
    'int64': '<i8',
    'int32': '<i4',
    'int16': '<i2',
    'int8': '|i1',
    'uint8': '|u1',
    'bool': '|b1',
    'complex64': '<c8',
    'complex128': '<c16',
    'uint16': '<u2',
    'uint32': '<u4',
    'uint64': '<u8',
}

# Aliases torch also exposes (``torch.float`` is ``torch.float32``, ...).
_DTYPE_ALIASES: dict[str, str] = {
    'float': 'float32',
    'double': 'float64',
    'half': 'float16',
    'long': 'int64',
    'int': 'int32',
    'short': 'int16',
    'cfloat': 'complex64',
    'cdouble': 'complex128',
}

# Legacy typed storage class name -> torch dtype name of its elements.
_STORAGE_DTYPES: dict[str, str] = {
    'FloatStorage': 'float32',
    'DoubleStorage': 'float64',
    'HalfStorage': 'float16',
    'BFloat16Storage': 'bfloat16',
    'LongStorage': 'int64',
    'IntStorage': 'int32',
    'ShortStorage': 'int16',
    'CharStorage': 'int8',
    'ByteStorage': 'uint8',
    'BoolStorage': 'bool',
    'ComplexFloatStorage': 'complex64',
    'ComplexDoubleStorage': 'complex128',
}

# The first bytes of a zip archive's first member (every torch.save zip and .npz).
_ZIP_MAGIC = b'PK\x03\x04'

# Pickled header of the legacy (non-zip) format: protocol 2, then the magic
# number 0x1950a86a20f9469cfc6c as a LONG1.
_LEGACY_MAGIC = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'


class _DType:
  """Stand-in for a ``torch.dtype`` global such as ``torch.float32``."""

  def __init__(self, name: str):
    self.name = name

  def __repr__(self) -> str:
    return f'torch.{self.name}'


class _StorageType:
  """Stand-in for a storage class global (``torch.FloatStorage``, ...)."""

  def __init__(self, name: str, dtype: str):
    self.name = name
    self.dtype = dtype  # torch dtype name of the elements

  def __repr__(self) -> str:
    return f'torch.{self.name}'


class _Marker:
  """Stand-in for a class global that is only passed around, never built."""

  def __init__(self, name: str):
    self.name = name

  def __repr__(self) -> str:
    return self.name


class _Storage:
  """A storage in the archive; its bytes are read from the zip on first use."""

  def __init__(self, read: Callable[[], bytes], dtype: str, nbytes: int,
               key: str):
    self._read = read
    self._bytes: bytes | None = None
    self.dtype = dtype
    self.nbytes = nbytes
    self.key = key

  @property
  def data(self) -> bytes:
    if self._bytes is None:
      self._bytes = self._read()
    return self._bytes


class _Pending:
  """A legacy-format tensor whose storage bytes come after the pickle."""

  def __init__(self, build: Callable[[], np.ndarray]):
    self.build = build


def _resolve(obj: Any) -> Any:
  """Replaces every _Pending in a loaded container tree by its array."""
  if isinstance(obj, _Pending):
    return obj.build()
  if isinstance(obj, dict):
    for k, v in obj.items():
      obj[k] = _resolve(v)
    return obj
  if isinstance(obj, list):
    return [_resolve(v) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_resolve(v) for v in obj)
  return obj


def _size(shape: Any = ()) -> tuple:
  """Stand-in for ``torch.Size``."""
  return tuple(shape)


def _device(spec: Any, index: Any = None) -> str:
  """Stand-in for ``torch.device``: devices are kept as strings."""
  return str(spec) if index is None else f'{spec}:{index}'


def _encode(text: str, encoding: str = 'latin1') -> bytes:
  """Stand-in for ``_codecs.encode`` (how protocol 2 pickles ``bytes``)."""
  if encoding not in ('latin1', 'latin-1'):
    raise pickle.UnpicklingError(f'_codecs.encode with encoding {encoding!r}')
  return text.encode('latin1')


class _Unpickler(pickle.Unpickler):
  """Unpickles ``data.pkl`` with an allow-list of globals and zip storages."""

  def __init__(self, file: Any, path: str, read_record: Callable[[str], bytes],
               big_endian: bool, legacy: bool = False):
    super().__init__(file, encoding='utf-8')
    self._path = path
    self._read_record = read_record
    self._big_endian = big_endian
    # Legacy files: storages follow the pickle, so tensors are built later
    # (_Pending) from the bytes the caller hands to ``legacy_bytes``.
    self._legacy = legacy
    self.legacy_bytes: dict[str, bytes] = {}
    self._storages: dict[str, _Storage] = {}
    self._globals = self._allowed_globals()

  def _error(self, problem: str) -> CheckpointError:
    return CheckpointError(f'{self._path}: {problem}')

  def _allowed_globals(self) -> dict[tuple[str, str], Any]:
    g: dict[tuple[str, str], Any] = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('builtins', 'complex'): complex,
        ('builtins', 'bytearray'): bytearray,
        ('_codecs', 'encode'): _encode,
        ('torch', 'Size'): _size,
        ('torch', 'device'): _device,
        ('torch', 'Tensor'): _Marker('torch.Tensor'),
        ('torch.nn.parameter', 'Parameter'):
            _Marker('torch.nn.parameter.Parameter'),
        ('torch._utils', '_rebuild_tensor'): self._rebuild_tensor,
        ('torch._utils', '_rebuild_tensor_v2'): self._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_tensor_v3'): self._rebuild_tensor_v3,
        ('torch._utils', '_rebuild_parameter'): self._rebuild_parameter,
        ('torch._utils', '_rebuild_parameter_with_state'):
            self._rebuild_parameter_with_state,
        ('torch._tensor', '_rebuild_from_type_v2'):
            self._rebuild_from_type_v2,
    }
    for name, dtype in _STORAGE_DTYPES.items():
      g[('torch', name)] = _StorageType(name, dtype)
    for module in ('torch', 'torch.storage'):
      g[(module, 'UntypedStorage')] = _StorageType('UntypedStorage', 'uint8')
    for name in _NP_DTYPES:
      g[('torch', name)] = _DType(name)
    for alias, name in _DTYPE_ALIASES.items():
      g[('torch', alias)] = _DType(name)
    return g

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._globals[(module, name)]
    except KeyError:
      raise self._error(
          f'the pickle references the global {module}.{name}, which is not '
          'allowed in a checkpoint (only tensors, storages, dtypes and plain '
          'containers are); refusing to load it') from None

  def persistent_load(self, pid: Any) -> _Storage:
    size = 6 if self._legacy else 5
    if (not isinstance(pid, tuple) or len(pid) != size or pid[0] != 'storage'
        or not isinstance(pid[1], _StorageType)):
      raise self._error(f'unsupported persistent id {pid!r} in the pickle')
    storage_type, key, numel = pid[1], str(pid[2]), pid[4]
    if self._legacy and pid[5] is not None:
      raise self._error(f'storage views (persistent id {pid!r}) are not '
                        'supported')
    if key not in self._storages:
      itemsize = np.dtype(_NP_DTYPES[storage_type.dtype]).itemsize
      if self._legacy:
        read = lambda: self.legacy_bytes[key]
      else:
        read = lambda: self._read_record(f'data/{key}')
      self._storages[key] = _Storage(read, storage_type.dtype,
                                     int(numel) * itemsize, key)
    return self._storages[key]

  @property
  def storages(self) -> dict[str, _Storage]:
    return self._storages

  # Tensor rebuild functions (same signatures as in torch._utils).

  def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any,
              dtype: str, metadata: Any = None) -> Any:
    if self._legacy:
      return _Pending(lambda: self._build_tensor(storage, offset, size, stride,
                                                 dtype, metadata))
    return self._build_tensor(storage, offset, size, stride, dtype, metadata)

  def _build_tensor(self, storage: Any, offset: Any, size: Any, stride: Any,
                    dtype: str, metadata: Any = None) -> np.ndarray:
    if not isinstance(storage, _Storage):
      raise self._error(f'tensor rebuilt from {type(storage).__name__}, '
                        'not from a storage')
    if dtype not in _NP_DTYPES:
      raise self._error(f'tensor dtype torch.{dtype} is not supported')
    try:
      shape = tuple(int(s) for s in size)
      strides = tuple(int(s) for s in stride)
      offset = int(offset)
    except (TypeError, ValueError):
      raise self._error(f'bad tensor geometry size={size!r} stride={stride!r} '
                        f'offset={offset!r}') from None
    if (len(shape) != len(strides) or offset < 0 or min(shape, default=0) < 0
        or min(strides, default=0) < 0):
      raise self._error(f'bad tensor geometry size={shape} stride={strides} '
                        f'offset={offset}')
    np_dtype = np.dtype(_NP_DTYPES[dtype])
    if self._big_endian:
      np_dtype = np_dtype.newbyteorder('>')
    native = np_dtype.newbyteorder('=')
    if 0 in shape:
      out = np.zeros(shape, native)
    else:
      data = storage.data
      itemsize = np_dtype.itemsize
      last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
      if (last + 1) * itemsize > len(data):
        raise self._error(
            f'storage data/{storage.key} holds {len(data)} bytes, too few for '
            f'a tensor of shape {shape}, stride {strides}, offset {offset}')
      base = np.frombuffer(data, dtype=np_dtype, count=last + 1 - offset,
                           offset=offset * itemsize)
      view = np.lib.stride_tricks.as_strided(
          base, shape=shape, strides=tuple(s * itemsize for s in strides),
          writeable=False)
      out = np.array(view, dtype=native, order='C', copy=True)
    if dtype == 'bfloat16':
      out = (out.astype(np.uint32) << 16).view(np.float32)
    if isinstance(metadata, dict):
      if metadata.get('conj'):
        out = np.conj(out)
      if metadata.get('neg'):
        out = np.negative(out)
    return out

  def _rebuild_tensor(self, storage: Any, storage_offset: Any, size: Any,
                      stride: Any) -> np.ndarray:
    return self._tensor(storage, storage_offset, size, stride,
                        getattr(storage, 'dtype', ''))

  def _rebuild_tensor_v2(self, storage: Any, storage_offset: Any, size: Any,
                         stride: Any, requires_grad: Any = False,
                         backward_hooks: Any = None,
                         metadata: Any = None) -> np.ndarray:
    del requires_grad, backward_hooks
    return self._tensor(storage, storage_offset, size, stride,
                        getattr(storage, 'dtype', ''), metadata)

  def _rebuild_tensor_v3(self, storage: Any, storage_offset: Any, size: Any,
                         stride: Any, requires_grad: Any,
                         backward_hooks: Any, dtype: Any,
                         metadata: Any = None) -> np.ndarray:
    del requires_grad, backward_hooks
    if not isinstance(dtype, _DType):
      raise self._error(f'tensor dtype {dtype!r} is not supported')
    return self._tensor(storage, storage_offset, size, stride, dtype.name,
                        metadata)

  # Parameters and subclasses wrap a tensor (maybe a _Pending): passed through.
  def _rebuild_parameter(self, data: Any, requires_grad: Any = False,
                         backward_hooks: Any = None) -> Any:
    del requires_grad, backward_hooks
    return data

  def _rebuild_parameter_with_state(self, data: Any, requires_grad: Any,
                                    backward_hooks: Any, state: Any) -> Any:
    del requires_grad, backward_hooks, state
    return data

  def _rebuild_from_type_v2(self, func: Any, new_type: Any, args: Any,
                            state: Any) -> Any:
    del new_type, state
    if not callable(func):
      raise self._error(f'_rebuild_from_type_v2 with {func!r}')
    return func(*args)


def _one_line(text: str, limit: int = 300) -> str:
  text = ' '.join(str(text).split())
  return text if len(text) <= limit else text[:limit - 3] + '...'


def damaged(path: Any, detail: str) -> CheckpointError:
  """``<path>: damaged checkpoint: <detail>`` (one line)."""
  return CheckpointError(_one_line(f'{os.fspath(path)}: damaged checkpoint: {detail}', 600))


def not_a_checkpoint(path: Any, detail: str) -> CheckpointError:
  """``<path>: not a checkpoint: <detail>`` (one line)."""
  return CheckpointError(_one_line(f'{os.fspath(path)}: not a checkpoint: {detail}', 600))


def _why(e: BaseException) -> str:
  return _one_line(f'{type(e).__name__}: {e}', 200)


def _head(path: str, n: int = 4) -> bytes:
  try:
    with open(path, 'rb') as f:
      return f.read(n)
  except OSError as e:
    raise InputError(path, f'cannot read checkpoint: {e}') from None


def _not_zip(path: str, what: str) -> CheckpointError:
  """Why ``path`` (meant to be a ``what`` zip) is not a readable zip: empty, cut short, or
  another kind of file."""
  size = os.path.getsize(path)
  if size == 0:
    return damaged(path, 'the file is empty (0 bytes)')
  if _head(path) == _ZIP_MAGIC:
    return damaged(path, f'truncated {what}: a zip archive whose end (its directory) is '
                   f'missing after {size} bytes; was the download or copy cut short?')
  return not_a_checkpoint(path, f'not a {what} (zip archive)')


def zip_member_names(path: str | os.PathLike, what: str = '.npz') -> list[str]:
  """The member names of the zip ``path``; CheckpointError when it is damaged or no zip."""
  path = os.fspath(path)
  if not zipfile.is_zipfile(path):
    raise _not_zip(path, what)
  try:
    with zipfile.ZipFile(path) as zf:
      return zf.namelist()
  except (zipfile.BadZipFile, EOFError, ValueError) as e:
    raise damaged(path, f'the {what} zip directory cannot be read ({_why(e)})') from None


def load_npz_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Every array of the ``.npz`` ``path`` (name -> array, in file order), each read and
  CRC-checked; CheckpointError naming the file and the entry when one is damaged."""
  path = os.fspath(path)
  zip_member_names(path)
  out = {}
  try:
    with np.load(path, allow_pickle=False) as f:
      for k in f.files:
        try:
          value = f[k]
        except ValueError as e:
          if 'allow_pickle' in str(e):
            raise not_a_checkpoint(path, f'.npz entry {k!r} holds pickled Python objects, '
                                   'not an array') from None
          raise damaged(path, f'.npz entry {k!r} cannot be read ({_why(e)})') from None
        except Exception as e:  # bad CRC, bad compressed data, cut short
          raise damaged(path, f'.npz entry {k!r} cannot be read ({_why(e)})') from None
        if not isinstance(value, np.ndarray):   # np.load hands raw bytes without .npy magic
          raise damaged(path, f'.npz entry {k!r} cannot be read (no .npy header)')
        out[k] = value
  except CheckpointError:
    raise
  except Exception as e:  # the archive itself: any error is the file's fault
    raise damaged(path, f'the .npz cannot be read ({_why(e)})') from None
  return out


def _check_file(path: str) -> None:
  if not os.path.exists(path):
    raise InputError(path, 'checkpoint file not found')
  if not os.path.isfile(path):
    raise InputError(path, 'checkpoint path is not a file')
  if not os.access(path, os.R_OK):
    raise InputError(path, 'checkpoint file is not readable')


def _is_legacy(path: str) -> bool:
  with open(path, 'rb') as f:
    return f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC


def _is_tar(path: str) -> bool:
  try:
    return tarfile.is_tarfile(path)
  except OSError:
    return False


def _load_legacy(path: str) -> Any:
  """The legacy format: magic, protocol, sys info, object, keys, storages."""
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as e:
    raise InputError(path, f'cannot read checkpoint: {e}') from None
  stream = io.BytesIO(raw)

  def header(what: str) -> Any:
    try:
      return _Unpickler(stream, path, None, False, legacy=True).load()
    except CheckpointError:
      raise
    except Exception as e:  # truncated or corrupt header pickle
      raise damaged(path, f'legacy torch.save file whose {what} cannot be read '
                    f'({_why(e)})') from None

  header('magic number')
  version = header('protocol version')
  if version != 1001:
    raise CheckpointError(f'{path}: legacy torch checkpoint protocol {version!r} '
                          'is not supported (expected 1001)')
  info = header('system info')
  if not isinstance(info, dict):
    raise damaged(path, f'legacy torch.save file whose system info is a '
                  f'{type(info).__name__}')
  big_endian = not info.get('little_endian', True)
  unpickler = _Unpickler(stream, path, None, big_endian, legacy=True)
  try:
    obj = unpickler.load()
    keys = pickle.Unpickler(stream).load()
  except CheckpointError:
    raise
  except Exception as e:
    raise damaged(path, f'legacy torch.save file that cannot be unpickled '
                  f'({_why(e)})') from None
  if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
    raise damaged(path, 'legacy torch.save file with a bad storage key list')
  storages = unpickler.storages
  pos = stream.tell()
  order = '>' if big_endian else '<'
  for key in keys:
    if key not in storages:
      raise damaged(path, f'legacy torch.save file: storage {key} is listed but no '
                    'tensor uses it')
    if pos + 8 > len(raw):
      raise damaged(path, f'truncated legacy torch.save file: it ends after {len(raw)} '
                    f'bytes, before storage {key}')
    numel = int(np.frombuffer(raw, f'{order}i8', 1, pos)[0])
    nbytes = storages[key].nbytes
    itemsize = np.dtype(_NP_DTYPES[storages[key].dtype]).itemsize
    if numel * itemsize != nbytes:
      raise damaged(path, f'legacy torch.save file: storage {key} holds {numel} '
                    f'elements, the pickle says {nbytes // itemsize}')
    if pos + 8 + nbytes > len(raw):
      raise damaged(path, f'truncated legacy torch.save file: storage {key} needs '
                    f'{nbytes} bytes, {len(raw) - pos - 8} are left')
    unpickler.legacy_bytes[key] = raw[pos + 8:pos + 8 + nbytes]
    pos += 8 + nbytes
  missing = sorted(set(storages) - set(keys))
  if missing:
    raise damaged(path, f'legacy torch.save file: storages {missing[:3]} are used but '
                  'not stored')
  return _resolve(obj)


def _load_zip(path: str, zf: zipfile.ZipFile) -> Any:
  names = zf.namelist()
  pkls = [n for n in names
          if n == 'data.pkl' or (n.endswith('/data.pkl') and n.count('/') == 1)]
  if any(n == 'constants.pkl' or (n.endswith('/constants.pkl') and
                                  n.count('/') == 1) for n in names):
    raise CheckpointError(
        f'{path}: this is a TorchScript archive (torch.jit.save), not a '
        'torch.save checkpoint; save its state_dict with torch.save instead')
  if not pkls:
    raise not_a_checkpoint(path, 'a zip archive without data.pkl (torch.save writes one), '
                           'nor a .npz of arrays')
  top = names[0].split('/')[0] + '/' if '/' in names[0] else ''
  pkl = top + 'data.pkl' if top + 'data.pkl' in pkls else pkls[0]
  prefix = pkl[:-len('data.pkl')]
  big_endian = False

  def read_record(name: str) -> bytes:
    try:
      return zf.read(prefix + name)
    except KeyError:
      raise damaged(path, f'record {prefix + name} is missing from the '
                    'archive') from None
    except Exception as e:  # bad CRC, bad header, bad compressed data
      raise damaged(path, f'record {prefix + name} cannot be read ({_why(e)})') from None

  if prefix + 'byteorder' in names:
    order = read_record('byteorder').decode('ascii', 'replace').strip()
    if order not in ('little', 'big'):
      raise damaged(path, f'unknown byteorder {order!r}')
    big_endian = order == 'big'

  data = read_record('data.pkl')   # read whole: its CRC is checked
  try:
    return _Unpickler(io.BytesIO(data), path, read_record, big_endian).load()
  except CheckpointError:
    raise
  except Exception as e:  # corrupt pickle or member: any error is the file's fault
    raise damaged(path, f'{pkl} cannot be unpickled ({_why(e)})') from None


def load_torch_file(path: str | os.PathLike) -> Any:
  """Load a torch.save file, with every tensor as a numpy array.

  Arrays are C-contiguous, own their memory and have the tensor's dtype and
  shape, honouring storage offset and strides (bfloat16 -> float32 exactly).
  Raises InputError for a missing/unreadable file and CheckpointError (naming
  the file) for anything that is not a torch.save checkpoint (zip or legacy),
  is truncated or damaged, or whose pickle references a global outside the
  allow-list.
  """
  path = os.fspath(path)
  _check_file(path)
  if not zipfile.is_zipfile(path):
    if os.path.getsize(path) and _is_legacy(path):
      return _load_legacy(path)
    if os.path.getsize(path) and _is_tar(path):
      raise CheckpointError(
          f'{path}: the tar checkpoint format of torch < 0.4 is not '
          'supported; re-save it with a recent torch (torch.save(torch.load('
          'f), f)) or convert it to .npz')
    if os.path.getsize(path) and _head(path) != _ZIP_MAGIC:
      raise not_a_checkpoint(path, 'neither the zip nor the legacy format torch.save '
                             'writes, nor a .npz')
    raise _not_zip(path, 'torch.save zip')   # empty, or a zip cut short
  try:
    with zipfile.ZipFile(path) as zf:
      return _load_zip(path, zf)
  except (zipfile.BadZipFile, EOFError) as e:
    raise damaged(path, f'the zip archive cannot be read ({_why(e)})') from None
  except OSError as e:
    raise InputError(path, f'cannot read checkpoint: {e}') from None


def _is_npz(path: str) -> bool:
  """A zip of ``.npy`` members; a ``.npz``-named file that is no readable zip is an error."""
  if path.endswith('.npz'):
    names = zip_member_names(path)
  elif not zipfile.is_zipfile(path):
    return False
  else:
    try:
      with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError):
      return False   # load_torch_file says why
  return bool(names) and all(n.endswith('.npy') for n in names)


def _is_state_dict(obj: Any) -> bool:
  return isinstance(obj, dict) and all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Load a checkpoint as a flat {name: array} dict in file order.

  load_torch_file, then: if the top level is a dict holding a dict under
  'model' or 'state_dict' whose values are arrays, unwrap it. Also accepts
  .npz files (np.load -> dict in file order). Any other content raises
  CheckpointError(f"{path}: not a state_dict ...").
  """
  path = os.fspath(path)
  _check_file(path)
  if _is_npz(path):
    return load_npz_arrays(path)
  obj = load_torch_file(path)
  if isinstance(obj, dict):
    for key in ('model', 'state_dict'):
      inner = obj.get(key)
      if isinstance(inner, dict) and inner and _is_state_dict(inner):
        obj = inner
        break
  if not _is_state_dict(obj) or not obj:
    if isinstance(obj, dict) and not obj:
      what = 'an empty dict'
    elif isinstance(obj, dict):
      bad = [k for k, v in obj.items()
             if not (isinstance(k, str) and isinstance(v, np.ndarray))]
      what = (f'dict with non-tensor entries {bad[:5]!r}' +
              (' ...' if len(bad) > 5 else ''))
    else:
      what = type(obj).__name__
    raise CheckpointError(
        f'{path}: not a state_dict (expected a dict of name -> tensor, or one '
        f"nested under 'model' or 'state_dict'; found {what})")
  return dict(obj)
