"""Build or describe the TFDS (ArrayRecord) datasets of the training data; no TensorFlow.

  python -m memvos_jax.data.tfds_vos build davis_vos/2017 --manual_dir=DAVIS/2017/trainval \\
      [--data_dir=~/tensorflow_datasets] [--clips=bear,boat] [--max_frames=N] [--shard_mb=128]
  python -m memvos_jax.data.tfds_vos info davis_vos/2017 [--data_dir=...]

Datasets: davis_vos/2016, davis_vos/2017 (DAVIS layout, splits from ImageSets/<year>),
youtube_vos2019 (YouTube-VOS 2019 train: JPEGImages, Annotations, meta.json),
vos_static_images (XXX.jpg + XXX.png pairs under a folder). Bad input is one line on
stderr and exit code 2.
"""

import argparse
import sys
import time

from memvos_jax.errors import USAGE_EXIT, InputError


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='python -m memvos_jax.data.tfds_vos',
                              description=__doc__.split('\n\n')[0])
  sub = p.add_subparsers(dest='command', required=True)
  b = sub.add_parser('build', help='build a dataset from a local copy')
  b.add_argument('name', help='davis_vos/2016, davis_vos/2017, youtube_vos2019, vos_static_images')
  b.add_argument('--manual_dir', required=True, help='the local copy (DAVIS / YouTube-VOS root, '
                 'image+mask folder)')
  b.add_argument('--data_dir', default=None, help='TFDS data_dir (default ~/tensorflow_datasets)')
  b.add_argument('--clips', default='', help='only these clips (comma list; tests, samples)')
  b.add_argument('--max_frames', type=int, default=0, help='at most N annotated frames per clip')
  b.add_argument('--shard_mb', type=float, default=None, help='about this many MB per file')
  b.add_argument('--overwrite', action='store_true', help='rebuild an existing dataset')
  i = sub.add_parser('info', help='splits, clips and files of a built dataset')
  i.add_argument('name')
  i.add_argument('--data_dir', default=None)
  return p


def _build(args) -> None:
  import tensorflow_datasets as tfds
  from memvos_jax.data.tfds_vos import builders
  kwargs = {'max_frames': args.max_frames}
  if args.clips:
    kwargs['clips'] = [c.strip() for c in args.clips.split(',') if c.strip()]
  if args.shard_mb:
    kwargs['shard_mb'] = args.shard_mb
  if args.overwrite:
    kwargs['download_mode'] = tfds.download.GenerateMode.FORCE_REDOWNLOAD
  start = time.perf_counter()
  b = builders.build(args.name, args.manual_dir, args.data_dir, **kwargs)
  print(f'{args.name}: built in {time.perf_counter() - start:.1f} s at {b.data_dir}')
  _describe(b)


def _describe(b) -> None:
  index = dict(b.info.metadata or {}).get('clips', {})
  for name, split in b.info.splits.items():
    clips = index.get(name, [])
    print(f'  {name}: {len(clips)} clips, {split.num_examples} frames, '
          f'{split.num_shards} file(s), {split.num_bytes / 2**20:.1f} MB')


def _info(args) -> None:
  from memvos_jax.data.tfds_vos import reader
  b = reader.open_builder(args.name, args.data_dir)
  print(f'{args.name}: {b.data_dir}')
  _describe(b)


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  try:
    (_build if args.command == 'build' else _info)(args)
  except (InputError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return USAGE_EXIT
  return 0


if __name__ == '__main__':
  sys.exit(main())
