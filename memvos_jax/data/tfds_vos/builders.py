"""TFDS builders of the training data, written in the ArrayRecord file format.

  davis_vos/2016, davis_vos/2017  DAVIS semi-supervised (480p or any DAVIS-layout copy):
                                  splits train / val from ``ImageSets/<year>/<split>.txt``
  youtube_vos2019                 YouTube-VOS 2019 train (``meta.json``, sparse annotations)
  vos_static_images               image+mask folders (``XXX.jpg`` + ``XXX.png``): stage 0

Each is built once from a local copy (``manual_dir``; nothing is downloaded),
one record per annotated frame (``records.py``), in clip and frame order
(``ShardBasedBuilder``: no shuffling, every shard written as a stream), so a
reader has random access to any frame of any clip. Neither building nor
reading needs TensorFlow: the frames are stored as their JPEG files' bytes
and the masks as PNGs encoded with PIL. Build with the module's command line
(no TensorFlow), TFDS's Python API, or the ``tfds build`` command line (which
imports TensorFlow and Apache Beam itself: the ``tfds-cli`` extra)::

  python -m memvos_jax.data.tfds_vos build davis_vos/2017 --manual_dir=DAVIS --data_dir=DIR
  tfds build davis_vos/2017 --imports=memvos_jax.data.tfds_vos.builders \\
      --manual_dir=DAVIS --data_dir=DIR --file_format=array_record

and read with ``memvos_jax.data.tfds_vos.reader`` (``config.data.*_tfds``, docs/data.md).
"""

import functools
import json
import pathlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from memvos_jax.data import sources
from memvos_jax.data.tfds_vos import records
from memvos_jax.errors import InputError

SHARD_MB = 128     # about this many MB of frames and masks per ArrayRecord file

FEATURES = tfds.features.FeaturesDict({
    'sequence': tfds.features.Text(),
    'frame_index': np.int32,
    'frame_name': tfds.features.Text(),
    'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
    'mask': tfds.features.Image(shape=(None, None, 1), encoding_format='png'),
})

_CITATION_DAVIS = """@inproceedings{Perazzi2016, title={A Benchmark Dataset and Evaluation
Methodology for Video Object Segmentation}, author={Perazzi, F. and Pont-Tuset, J. and
McWilliams, B. and Van Gool, L. and Gross, M. and Sorkine-Hornung, A.}, booktitle={CVPR},
year={2016}}"""
_CITATION_YVOS = """@article{Xu2018, title={YouTube-VOS: A Large-Scale Video Object
Segmentation Benchmark}, author={Xu, N. and Yang, L. and Fan, Y. and Yue, D. and Liang, Y.
and Yang, J. and Huang, T.}, journal={arXiv:1809.03327}, year={2018}}"""


class _VosBuilder(tfds.core.ShardBasedBuilder, skip_registration=True):
  """Shared by the builders: features, shard planning, the clip index in the metadata.

  ``clips``: only these clip names (all when None); ``max_frames``: at most this
  many annotated frames per clip (0: all) -- both for small test builds;
  ``shard_mb``: about this many MB per ArrayRecord file.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'One record per annotated frame: the JPEG file, PNG object ids.'}

  def __init__(self, *, clips=None, max_frames: int = 0, shard_mb: float = SHARD_MB,
               file_format=None, **kwargs):
    self._only = None if clips is None else set(clips)
    self._max_frames, self._shard_mb = int(max_frames), float(shard_mb)
    super().__init__(file_format=file_format or 'array_record', **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=FEATURES, metadata=tfds.core.MetadataDict(), disable_shuffling=True,
        homepage=self.HOMEPAGE, citation=self.CITATION, description=self.DESCRIPTION)

  HOMEPAGE = ''
  CITATION = ''
  DESCRIPTION = ''

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # This file. TFDS would find it with ``importlib_resources``, which it does not
    # install; it only looks beside it for download checksums (none: manual data).
    return epath.Path(__file__)

  def _clips(self, root: pathlib.Path) -> dict:
    """{split: [(clip name, [frame paths], [annotation paths])]} of the annotated frames."""
    raise NotImplementedError

  def _record(self, sequence: str, index: int, frame, annotation) -> dict:
    return records.frame_record(sequence, index, frame, annotation)

  def _shard_iterators_per_split(self, dl_manager):
    root = pathlib.Path(dl_manager.manual_dir)
    out, index = {}, {}
    for split, clips in self._clips(root).items():
      if self._only is not None:
        clips = [c for c in clips if c[0] in self._only]
      if self._max_frames:
        clips = [(n, f[:self._max_frames], a[:self._max_frames]) for n, f, a in clips]
      clips = [c for c in clips if c[1]]
      if not clips:
        continue
      rows = [(name, j, f, a) for name, frames, anns in clips
              for j, (f, a) in enumerate(zip(frames, anns))]
      sizes = [pathlib.Path(f).stat().st_size + pathlib.Path(a).stat().st_size
               for _, _, f, a in rows]
      plan = records.shard_plan(sizes, int(self._shard_mb * 2**20))
      out[split] = [functools.partial(self._examples, rows, r) for r in plan]
      index[split] = [[name, len(frames)] for name, frames, _ in clips]
    if not out:
      raise InputError(root, f'{self.name}: no annotated frame to build from')
    self.info.metadata['clips'] = index
    self.info.metadata['built_from'] = {
        'clips': None if self._only is None else sorted(self._only),
        'max_frames': self._max_frames}
    return out

  def _examples(self, rows, keys):
    """(key, record) of ``rows[k]`` for k in ``keys``: key = the record's number in its split."""
    for k in keys:
      yield k, self._record(*rows[k])


def _davis_names(root: pathlib.Path, year: str, split: str):
  path = root / 'ImageSets' / year / f'{split}.txt'
  if not path.is_file():
    return None
  names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
  if not names:
    raise InputError(path, 'split file lists no clip')
  return names


class DavisVosConfig(tfds.core.BuilderConfig):
  """A DAVIS year: its ``ImageSets/<year>/<split>.txt`` files define the splits."""


class DavisVos(_VosBuilder):
  """DAVIS 2016 / 2017 semi-supervised, from a DAVIS-layout folder (480p or other).

  The clips of each split are those of ``ImageSets/<year>/train.txt`` / ``val.txt``
  (a missing file: no such split), read as the folder source reads them.
  """

  name = 'davis_vos'
  BUILDER_CONFIGS = [
      DavisVosConfig(name='2016', description='DAVIS 2016: ImageSets/2016 (single object).'),
      DavisVosConfig(name='2017', description='DAVIS 2017: ImageSets/2017 (multiple objects).'),
  ]
  HOMEPAGE = 'https://davischallenge.org/'
  CITATION = _CITATION_DAVIS
  DESCRIPTION = 'DAVIS video object segmentation, one record per annotated frame.'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  manual_dir: a DAVIS root (DAVIS-2017-trainval-480p.zip unpacked, or the DAVIS 2016
  release): JPEGImages/480p/<clip>/*.jpg, Annotations/480p/<clip>/*.png and
  ImageSets/<year>/{train,val}.txt (JPEGImages/<clip> without 480p works too)."""

  def _clips(self, root):
    year = self.builder_config.name
    out = {}
    for split in ('train', 'val'):
      names = _davis_names(root, year, split)
      if names is not None:
        out[split] = sources.annotated_clips(root, names)
    if not out:
      raise InputError(root / 'ImageSets' / year,
                       f'{self.name}/{year}: no train.txt or val.txt split file')
    return out


class YoutubeVos2019(_VosBuilder):
  """YouTube-VOS 2019 train: every clip of the folder, its annotated (every 5th) frames.

  ``meta.json``'s object categories are kept in the metadata
  (``{'objects': {clip: {id: category}}}``).
  """

  name = 'youtube_vos2019'
  HOMEPAGE = 'https://youtube-vos.org/dataset/vos/'
  CITATION = _CITATION_YVOS
  DESCRIPTION = 'YouTube-VOS 2019 train, one record per annotated frame.'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  manual_dir: the unpacked YouTube-VOS 2019 train.zip: JPEGImages/<clip>/*.jpg,
  Annotations/<clip>/*.png (every 5th frame) and meta.json."""

  def _clips(self, root):
    meta = root / 'meta.json'
    if not meta.is_file():
      raise InputError(meta, f'{self.name}: no meta.json (the YouTube-VOS train layout)')
    try:
      videos = json.loads(meta.read_text())['videos']
    except (ValueError, KeyError) as e:
      raise InputError(meta, f'not a YouTube-VOS meta.json: {e}') from e
    clips = sources.annotated_clips(root)
    self.info.metadata['objects'] = {
        name: {k: o.get('category', '') for k, o in videos.get(name, {}).get('objects', {}).items()}
        for name, _, _ in clips if self._only is None or name in self._only}
    return {'train': clips}


class VosStaticImages(_VosBuilder):
  """Image+mask pairs (``XXX.jpg`` + ``XXX.png`` at any depth), one record each: stage 0.

  A record's ``sequence`` is the image's path under the root without suffix;
  the records follow the folder source's order.
  """

  name = 'vos_static_images'
  DESCRIPTION = 'Images with object masks (static pseudo-video pretraining).'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  manual_dir: a folder of XXX.jpg + XXX.png pairs, searched recursively (e.g. the
  official STCN static set: ECSSD, DUTS, FSS-1000, HRSOD, BIG)."""

  def _clips(self, root):
    if not root.is_dir():
      raise InputError(root, f'{self.name}: folder does not exist')
    pairs = sources.image_mask_pairs(root)
    return {'train': [(jpg.relative_to(root).with_suffix('').as_posix(), [jpg], [png])
                      for jpg, png in pairs]}

  def _record(self, sequence, index, image, mask):
    return records.static_record(sequence, image, mask)


BUILDERS = {b.name: b for b in (DavisVos, YoutubeVos2019, VosStaticImages)}


NAMES = ('davis_vos/2016', 'davis_vos/2017', 'youtube_vos2019', 'vos_static_images')


def builder(name: str, data_dir=None, **kwargs) -> _VosBuilder:
  """The builder of ``name`` (one of ``NAMES``); ``kwargs``: ``_VosBuilder``'s options."""
  base, _, config = name.partition('/')
  if name not in NAMES:
    raise ValueError(f'unknown dataset {name!r} (known: {", ".join(NAMES)})')
  return BUILDERS[base](config=config or None, data_dir=data_dir, **kwargs)


def build(name: str, manual_dir, data_dir=None, download_mode=None, **kwargs) -> _VosBuilder:
  """Builds ``name`` from ``manual_dir`` into ``data_dir`` (skipped if built); the builder.

  ``download_mode``: ``tfds.download.GenerateMode.FORCE_REDOWNLOAD`` rebuilds.
  """
  manual_dir = pathlib.Path(manual_dir)
  if not manual_dir.is_dir():
    raise InputError(manual_dir, 'manual_dir does not exist')
  b = builder(name, data_dir=data_dir, **kwargs)
  mode = {'download_mode': download_mode} if download_mode else {}
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), **mode))
  return b
