"""Draw docs/default_model.png: the shipped default model's masks on real video.

  python scripts/readme_picture.py [--davis ../shared/data/davis2016_train] [--clip dance-jump]

Row 1: the bundled example (examples/bike_small, 4 frames, first-frame mask
given). Rows 2-3: a held-out DAVIS-2016 sequence (never trained on), 8 frames
evenly spaced, segmented from its first-frame mask. Every overlay is the
model's prediction except frame 0, the given mask.
"""

import argparse
import pathlib
import sys

import numpy as np
from PIL import Image, ImageDraw

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import memvos_jax  # noqa: E402
from memvos_jax.apps import visualize  # noqa: E402
from memvos_jax.data import video_folder  # noqa: E402


def _segment(seg, root, clip_name):
  (clip,) = video_folder.find_clips(root, [clip_name])
  ann = video_folder.read_annotations(clip)
  frames = np.stack([video_folder.read_frame(p) for p in clip.frame_paths])
  ids = seg.segment(frames, {0: ann.masks[0]})
  return frames, ids, ann.palette


def _label(image, text):
  im = Image.fromarray(image)
  ImageDraw.Draw(im).text((4, 2), text, fill=(255, 255, 255))
  return np.asarray(im)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--davis', default=str(REPO.parent / 'shared' / 'data' / 'davis2016_train'))
  p.add_argument('--clip', default='dance-jump')
  p.add_argument('--out', default=str(REPO / 'docs' / 'default_model.png'))
  a = p.parse_args()
  seg = memvos_jax.load(chunk=8)
  tiles = []
  frames, ids, palette = _segment(seg, REPO / 'examples' / 'bike_small', 'bike')
  for t in range(4):
    tiles.append(_label(visualize.overlay(frames[t], ids[t], palette),
                        f'bike {t}' + (' (given)' if t == 0 else '')))
  frames, ids, palette = _segment(seg, a.davis, a.clip)
  for t in np.linspace(0, len(frames) - 1, 8).round().astype(int):
    tiles.append(_label(visualize.overlay(frames[t], ids[t], palette),
                        f'{a.clip} {t}' + (' (given)' if t == 0 else '')))
  sheet = visualize.contact_sheet(tiles, cols=4, max_side=300)
  Image.fromarray(sheet).save(a.out, optimize=True)
  print(a.out)


if __name__ == '__main__':
  main()
