"""Metric writers: TensorBoard event files (no TensorFlow needed) and JSON lines.

``EventFileWriter`` writes the TFRecord-framed ``Event`` protocol buffers
TensorBoard reads (scalar summaries only), encoded by hand: a record is
length (uint64) + masked CRC-32C of it + payload + masked CRC-32C of it.
``read_scalars`` parses such a file back (tests use it).
"""

import json
import os
import socket
import struct
import time

_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
  _TABLE.append(_c)


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    out.append(b | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
  return _varint((num << 3) | wire) + payload


def _bytes_field(num: int, data: bytes) -> bytes:
  return _field(num, 2, _varint(len(data)) + data)


def _event(step: int, wall_time: float, summary: bytes | None = None,
           file_version: str | None = None) -> bytes:
  out = _field(1, 1, struct.pack('<d', wall_time)) + _field(2, 0, _varint(step))
  if file_version is not None:
    out += _bytes_field(3, file_version.encode())
  if summary is not None:
    out += _bytes_field(5, summary)
  return out


def _scalar_summary(values: dict) -> bytes:
  out = b''
  for tag, v in values.items():
    value = _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack('<f', float(v)))
    out += _bytes_field(1, value)
  return out


class EventFileWriter:
  """Appends scalar summaries to ``logdir/events.out.tfevents.<time>.<host>``."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f'events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}'
    self.path = os.path.join(logdir, name)
    self._f = open(self.path, 'ab')
    self._write(_event(0, time.time(), file_version='brain.Event:2'))

  def _write(self, data: bytes):
    header = struct.pack('<Q', len(data))
    self._f.write(header + struct.pack('<I', _masked_crc(header)) + data
                  + struct.pack('<I', _masked_crc(data)))

  def scalars(self, step: int, values: dict):
    self._write(_event(int(step), time.time(), summary=_scalar_summary(values)))
    self._f.flush()

  def close(self):
    self._f.close()


def _read_varint(buf, i):
  shift = n = 0
  while True:
    b = buf[i]
    i += 1
    n |= (b & 0x7F) << shift
    shift += 7
    if not b & 0x80:
      return n, i


def _parse(buf):
  """Protocol buffer fields: list of (number, value) (bytes for wire 2)."""
  i, out = 0, []
  while i < len(buf):
    key, i = _read_varint(buf, i)
    num, wire = key >> 3, key & 7
    if wire == 0:
      v, i = _read_varint(buf, i)
    elif wire == 1:
      v, i = buf[i:i + 8], i + 8
    elif wire == 5:
      v, i = buf[i:i + 4], i + 4
    else:
      n, i = _read_varint(buf, i)
      v, i = buf[i:i + n], i + n
    out.append((num, v))
  return out


def read_scalars(path: str) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in an event file; CRCs are checked."""
  data = open(path, 'rb').read()
  i, out = 0, []
  while i < len(data):
    header = data[i:i + 8]
    (n,) = struct.unpack('<Q', header)
    (hcrc,) = struct.unpack('<I', data[i + 8:i + 12])
    payload = data[i + 12:i + 12 + n]
    (pcrc,) = struct.unpack('<I', data[i + 12 + n:i + 16 + n])
    if hcrc != _masked_crc(header) or pcrc != _masked_crc(payload):
      raise ValueError(f'{path}: bad record checksum at byte {i}')
    i += 16 + n
    fields = dict(_parse(payload))
    step = fields.get(2, 0)
    if 5 in fields:
      for num, value in _parse(fields[5]):
        if num == 1:
          v = dict(_parse(value))
          out.append((step, v[1].decode(), struct.unpack('<f', v[2])[0]))
  return out


class MetricWriter:
  """Both sinks: ``workdir/tensorboard/`` events and ``workdir/metrics.jsonl``."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      self.tb = EventFileWriter(os.path.join(workdir, 'tensorboard'))
      self.jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')

  def write(self, step: int, values: dict, **extra):
    if not self.enabled:
      return
    values = {k: float(v) for k, v in values.items()}
    self.tb.scalars(step, values)
    self.jsonl.write(json.dumps({'step': int(step), **values, **extra}) + '\n')
    self.jsonl.flush()

  def close(self):
    if self.enabled:
      self.tb.close()
      self.jsonl.close()


class JsonLines:
  """One JSON object a line, appended to ``path`` and flushed (e.g. a process's data log)."""

  def __init__(self, path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    self.file = open(path, 'a')

  def write(self, row: dict):
    self.file.write(json.dumps(row) + '\n')
    self.file.flush()

  def close(self):
    self.file.close()
