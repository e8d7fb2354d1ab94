"""Training sources over the ArrayRecord builds: the same clips as the folder sources.

``TfdsVideoSource`` / ``TfdsStaticSource`` list and decode; what a sample is
(resizing, the static pseudo-video, sampling, augmentation, sharding) is the
folder sources' code (``sources.VideoSource`` / ``StaticSource``,
``sampling.ClipSampler``). A split's records are read through TFDS's data
source (``as_data_source``, what ``tfds.data_source`` returns: a grain
random-access source over ``array_record_data_source.ArrayRecordDataSource``,
which ``grain.sources.ArrayRecordDataSource`` subclasses) with the image features
left encoded: frames are decoded here with PIL exactly as the folder source
decodes the file, so a clip is the same arrays from either. Neither
TensorFlow nor the builders' module is needed: TFDS reads the dataset's own
``dataset_info.json``/``features.json``/``metadata.json`` (``data_dir`` local
or ``gs://``).
"""

import numpy as np
import tensorflow_datasets as tfds

from memvos_jax.data import sources
from memvos_jax.data.tfds_vos import records
from memvos_jax.errors import InputError


_BUILD = 'build it with python -m memvos_jax.data.tfds_vos build (docs/data.md)'


def location(dataset: str, data_dir) -> str:
  """Where ``dataset`` is looked for, for messages."""
  return f'{data_dir or "~/tensorflow_datasets"}/{dataset}'


def open_builder(dataset: str, data_dir):
  """The read-only TFDS builder of a built dataset; ``InputError`` if there is none.

  Read from the dataset's files alone (``read_only_builder``): the builders'
  code is never needed (nor imported), nothing is written to ``data_dir``.
  """
  where = location(dataset, data_dir)
  kwargs = {'data_dir': data_dir} if data_dir else {}
  try:
    builder = tfds.core.read_only_builder.builder_from_files(dataset, **kwargs)
  except tfds.core.registered.DatasetNotFoundError:
    raise InputError(where, f'not built: {_BUILD}') from None
  except Exception as e:  # TFDS raises several types for an unreadable dataset
    raise InputError(where, f'cannot open the dataset: {str(e).splitlines()[0][:200]}') from e
  if 'clips' not in dict(builder.info.metadata or {}):
    raise InputError(where, f'no clip index in metadata.json (not a memvos_jax build): {_BUILD}')
  return builder


def open_splits(dataset: str, data_dir: str, split: str):
  """(builder, [(split, data source, [[clip, num_frames], ...] in record order)]) of ``split``.

  ``split``: a split name, several joined by '+' ('train+val'), or '' for all
  of them. Record slices ('train[:10%]') would cut clips: refused.
  """
  where = location(dataset, data_dir)
  if any(c in split for c in '[]%:'):
    raise InputError(where, f'split {split!r}: only whole splits (train, val, train+val) '
                     'keep clips whole')
  builder = open_builder(dataset, data_dir)
  index = dict(builder.info.metadata)['clips']
  names = [s.strip() for s in split.split('+') if s.strip()] or list(index)
  for s in names:
    if s not in index:
      raise InputError(where, f'no split {s!r} (has {", ".join(index)})')
  decoders = {records.IMAGE: tfds.decode.SkipDecoding(), records.MASK: tfds.decode.SkipDecoding()}
  return builder, [(s, builder.as_data_source(split=s, decoders=decoders), index[s])
                   for s in names]


def _check(rec, want_name: str, want_index: int, where):
  got_name = rec['sequence']
  got_name = got_name.decode() if isinstance(got_name, bytes) else str(got_name)
  if got_name != want_name or int(rec['frame_index']) != want_index:
    raise InputError(where, f'record is {got_name} frame {int(rec["frame_index"])} where the '
                     f'clip index says {want_name} frame {want_index}: rebuild the dataset')


class TfdsVideoSource(sources.VideoSource):
  """The clips of a built video dataset's ``split``, as ``VideoFolderSource`` reads a folder.

  ``min_frames``, ``exclude`` and ``short_side`` as there; the clips are in name
  order (the folder source's), whatever the record order.
  """

  def __init__(self, dataset: str, data_dir: str = '', split: str = 'train',
               name: str = '', min_frames: int = 3, exclude=(), short_side: int = 0):
    super().__init__(name or f'{dataset}[{split or "all"}]', short_side)
    self.where = location(dataset, data_dir)
    builder, splits = open_splits(dataset, data_dir, split)
    self._remote = '://' in str(builder.data_dir)     # gs://...
    self._sources, self.clips = [], []   # clips: (name, source number, first record, frames)
    for s, (split_name, src, index) in enumerate(splits):
      self._sources.append(src)
      first = 0
      for clip, n in index:
        if n >= min_frames and clip not in set(exclude):
          self.clips.append((clip, s, first, int(n)))
        first += int(n)
      if first != len(src):
        raise InputError(self.where, f'split {split_name}: the clip index counts {first} '
                         f'records, the files hold {len(src)}: rebuild the dataset')
    self.clips.sort(key=lambda c: c[0])
    if not self.clips:
      raise InputError(self.where, f'{self.name}: no clip with >= {min_frames} annotated frames')

  def __len__(self) -> int:
    return len(self.clips)

  def num_frames(self, i: int) -> int:
    return self.clips[i][3]

  def clip_name(self, i: int) -> str:
    return self.clips[i][0]

  def _decode(self, i: int, frame_indices) -> list:
    name, s, first, _ = self.clips[i]
    src = self._sources[s]
    if self._remote:   # one batched read: array_record fetches the records in parallel threads
      recs = src.__getitems__([first + j for j in frame_indices])
    else:              # local files: a thread per read costs more than the read (busy CPUs)
      recs = [src[first + j] for j in frame_indices]
    out = []
    for j, rec in zip(frame_indices, recs):
      where = f'{self.where}: {name} frame {j}'
      _check(rec, name, j, where)
      out.append((records.decode_image(rec[records.IMAGE], where),
                  records.decode_ids(rec[records.MASK], where)))
    return out


class TfdsStaticSource(sources.StaticSource):
  """The image+mask pairs of a built ``vos_static_images`` split, in record order
  (the folder source's order)."""

  def __init__(self, dataset: str, data_dir: str = '', split: str = 'train',
               name: str = '', num_frames: int = 3, out_size: int = 384):
    super().__init__(name or f'{dataset}[{split or "all"}]', num_frames, out_size)
    self.where = location(dataset, data_dir)
    self._records = []   # (data source, record number, name)
    for _, src, index in open_splits(dataset, data_dir, split)[1]:
      if len(index) != len(src) or any(int(n) != 1 for _, n in index):
        raise InputError(self.where, 'not a static image dataset (one record per image)')
      self._records += [(src, k, clip) for k, (clip, _) in enumerate(index)]
    if not self._records:
      raise InputError(self.where, f'{self.name}: no image')

  def __len__(self) -> int:
    return len(self._records)

  def _pair(self, i: int):
    src, k, name = self._records[i]
    where = f'{self.where}: {name}'
    rec = src[k]
    _check(rec, name, 0, where)
    return (records.decode_image(rec[records.IMAGE], where),
            records.decode_ids(rec[records.MASK], where), where)


def read_clip(source: TfdsVideoSource, i: int) -> tuple[str, np.ndarray, np.ndarray]:
  """(name, frames [T, H, W, 3], ids [T, H, W]) of every stored frame of clip ``i``."""
  frames, ids = source.load(i, range(source.num_frames(i)))
  return source.clip_name(i), frames, ids
