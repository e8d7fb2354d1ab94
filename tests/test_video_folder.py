"""Clip discovery, annotation reading, chunked frame streaming, mask writing."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from memvos_jax.data import video_folder as vf
from memvos_jax.errors import InputError

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / 'shared'
REAL = SHARED / 'data' / 'real_clips'


def _need_real():
  if not REAL.is_dir():
    pytest.skip(f'needs {REAL} (the shared real clips beside the repo)')
  return REAL


def _frame(i: int, h: int, w: int) -> np.ndarray:
  """A [H, W, 3] uint8 frame whose pixels encode its index."""
  out = np.zeros((h, w, 3), np.uint8)
  out[..., 0] = i * 10
  out[..., 1] = np.arange(w, dtype=np.uint8)[None, :]
  out[..., 2] = 200 - i
  return out


def _indexed(ids: np.ndarray, palette=None) -> Image.Image:
  im = Image.fromarray(ids.astype(np.uint8))
  im.putpalette(palette or vf.davis_palette())
  return im


def make_clip(root: pathlib.Path, name: str, n: int = 3, size=(6, 8),
              davis: bool = False, ext: str = '.png', annotations=None):
  """Writes a clip; `annotations` maps frame index -> PIL image or ids."""
  h, w = size
  sub = ('480p',) if davis else ()
  frames = root.joinpath('JPEGImages', *sub, name)
  anns = root.joinpath('Annotations', *sub, name)
  frames.mkdir(parents=True, exist_ok=True)
  anns.mkdir(parents=True, exist_ok=True)
  for i in range(n):
    Image.fromarray(_frame(i, h, w)).save(frames / f'{i:05d}{ext}')
  if annotations is None:
    ids = np.zeros((h, w), np.uint8)
    ids[:2, :2] = 1
    annotations = {0: ids}
  for i, ann in annotations.items():
    im = ann if isinstance(ann, Image.Image) else _indexed(ann)
    im.save(anns / f'{i:05d}.png')
  return frames, anns


# ------------------------------------------------------------------ discovery


@pytest.mark.parametrize('davis', [True, False])
def test_layout_detection(tmp_path, davis):
  make_clip(tmp_path, 'a', davis=davis)
  (clip,) = vf.find_clips(tmp_path)
  sub = ('480p',) if davis else ()
  assert clip.name == 'a'
  assert clip.frame_paths[0] == tmp_path.joinpath('JPEGImages', *sub, 'a',
                                                  '00000.png')
  assert clip.annotation_paths == {
      0: tmp_path.joinpath('Annotations', *sub, 'a', '00000.png')}


def test_clips_and_frames_sorted(tmp_path):
  for name in ('zeta', 'alpha', 'mid'):
    make_clip(tmp_path, name, n=1)
  folder = tmp_path / 'JPEGImages' / 'mid'
  for stem in ('00003', '00002', '00001'):  # Written out of order.
    Image.fromarray(_frame(0, 6, 8)).save(folder / f'{stem}.JPG')
  (folder / 'notes.txt').write_text('ignored')
  (folder / '.hidden.jpg').write_bytes(b'ignored')
  clips = vf.find_clips(tmp_path)
  assert [c.name for c in clips] == ['alpha', 'mid', 'zeta']
  assert [p.name for p in clips[1].frame_paths] == [
      '00000.png', '00001.JPG', '00002.JPG', '00003.JPG']
  assert [c.name for c in vf.find_clips(tmp_path, ['zeta', 'alpha'])] == [
      'alpha', 'zeta']


def test_missing_root(tmp_path):
  with pytest.raises(InputError, match='data root does not exist') as e:
    vf.find_clips(tmp_path / 'nope')
  assert 'nope' in str(e.value)


def test_missing_jpegimages(tmp_path):
  with pytest.raises(InputError, match='JPEGImages'):
    vf.find_clips(tmp_path)


def test_missing_requested_clip(tmp_path):
  make_clip(tmp_path, 'a')
  with pytest.raises(InputError, match='ghost'):
    vf.find_clips(tmp_path, ['a', 'ghost'])


def test_empty_clip_folder(tmp_path):
  make_clip(tmp_path, 'a')
  (tmp_path / 'JPEGImages' / 'empty').mkdir()
  with pytest.raises(InputError, match='no frames') as e:
    vf.find_clips(tmp_path)
  assert str(e.value).startswith(str(tmp_path / 'JPEGImages' / 'empty'))


def test_missing_annotation_folder(tmp_path):
  make_clip(tmp_path, 'a')
  (tmp_path / 'JPEGImages' / 'b').mkdir()
  Image.fromarray(_frame(0, 6, 8)).save(tmp_path / 'JPEGImages' / 'b' / '0.png')
  with pytest.raises(InputError, match='annotation folder does not exist'):
    vf.find_clips(tmp_path, ['b'])
  (clip,) = vf.find_clips(tmp_path, ['b'], require_annotations=False)
  assert clip.annotation_paths == {}


def test_annotation_folder_without_png(tmp_path):
  _, anns = make_clip(tmp_path, 'a')
  (anns / '00000.png').unlink()
  with pytest.raises(InputError, match='no annotations'):
    vf.find_clips(tmp_path)


def test_annotation_without_matching_frame(tmp_path):
  _, anns = make_clip(tmp_path, 'a', n=2)
  _indexed(np.zeros((6, 8))).save(anns / '00007.png')
  with pytest.raises(InputError, match='annotation has no matching frame') as e:
    vf.find_clips(tmp_path)
  assert '00007.png' in str(e.value)


# ---------------------------------------------------------------- annotations


def test_palette_annotations(tmp_path):
  a = np.zeros((6, 8), np.uint8)
  a[0, 0] = 1
  b = np.zeros((6, 8), np.uint8)
  b[1, 1] = 3
  make_clip(tmp_path, 'a', n=4, annotations={0: a, 2: b})
  ann = vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert ann.labels.tolist() == [1, 3]
  assert ann.size == (6, 8)
  assert ann.first_frame == 0
  assert sorted(ann.masks) == [0, 2]
  np.testing.assert_array_equal(ann.masks[2], b)
  assert ann.masks[0].dtype == np.uint8
  assert ann.palette == vf.davis_palette()


def test_missing_first_frame_annotation(tmp_path):
  ids = np.ones((6, 8), np.uint8)
  _, anns = make_clip(tmp_path, 'a', annotations={1: ids})
  clip = vf.find_clips(tmp_path)[0]
  with pytest.raises(InputError, match='no annotation for the first') as e:
    vf.read_annotations(clip)
  assert str(e.value).startswith(str(anns / '00000.png'))
  ann = vf.read_annotations(clip, require_first_frame=False)
  assert ann.first_frame == 1 and ann.labels.tolist() == [1]


def test_greyscale_annotation(tmp_path):
  ids = np.zeros((6, 8), np.uint8)
  ids[2:4, 2:4] = 2
  ids[5, 7] = 5
  make_clip(tmp_path, 'a', annotations={0: Image.fromarray(ids, 'L')})
  ann = vf.read_annotations(vf.find_clips(tmp_path)[0])
  np.testing.assert_array_equal(ann.masks[0], ids)
  assert ann.labels.tolist() == [2, 5]
  assert len(ann.palette) == 768


def _soft_edges(ids: np.ndarray, scale: int = 4) -> np.ndarray:
  """ids drawn at `scale` x and downscaled bilinearly: interpolated values along edges."""
  h, w = ids.shape
  big = np.asarray(Image.fromarray(ids).resize((w * scale, h * scale), Image.NEAREST))
  return np.asarray(Image.fromarray(big).resize((w, h), Image.BILINEAR))


def test_antialiased_binary_mask_is_one_object_with_a_warning(tmp_path):
  big = np.zeros((128, 192), np.uint8)
  big[26:78, 34:110] = 255
  soft = np.asarray(Image.fromarray(big).resize((48, 32), Image.BILINEAR))
  assert len(np.unique(soft)) > 3                       # grey levels along the edges
  _, anns = make_clip(tmp_path, 'a', size=(32, 48), annotations={0: Image.fromarray(soft, 'L')})
  with pytest.warns(UserWarning, match='anti-aliasing grey levels') as w:
    ann = vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert str(anns / '00000.png') in str(w[0].message)
  np.testing.assert_array_equal(ann.masks[0], (soft >= 128).astype(np.uint8))
  assert ann.labels.tolist() == [1]


def test_interpolated_ids_are_refused(tmp_path):
  ids = np.zeros((32, 48), np.uint8)
  ids[5:17, 5:22] = 1
  ids[15:30, 25:45] = 12
  make_clip(tmp_path, 'a', size=(32, 48), annotations={0: _soft_edges(ids)})
  with pytest.raises(InputError, match='looks like anti-aliasing or interpolated resizing'):
    vf.read_annotations(vf.find_clips(tmp_path)[0])
  make_clip(tmp_path, 'b', size=(32, 48), annotations={0: ids})   # the same, unblurred: fine
  assert vf.read_annotations(vf.find_clips(tmp_path, ['b'])[0]).labels.tolist() == [1, 12]


def test_first_annotation_without_object(tmp_path):
  _, anns = make_clip(tmp_path, 'a', annotations={0: np.zeros((6, 8), np.uint8),
                                                  1: np.ones((6, 8), np.uint8)})
  with pytest.raises(InputError, match='the first annotation has no object') as e:
    vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert str(e.value).startswith(str(anns / '00000.png'))


def test_one_empty_clip_does_not_hide_the_others(tmp_path):
  make_clip(tmp_path, 'a')
  (tmp_path / 'JPEGImages' / 'b').mkdir()
  assert vf.clip_names(tmp_path) == ['a', 'b']
  assert vf.find_clip(tmp_path, 'a').name == 'a'
  with pytest.raises(InputError, match='no frames'):
    vf.find_clip(tmp_path, 'b')
  with pytest.raises(InputError, match='clip folder does not exist'):
    vf.clip_names(tmp_path, ['a', 'c'])


@pytest.mark.parametrize('mode', ['RGB', 'RGBA'])
def test_rgb_annotation_with_davis_colours(tmp_path, mode):
  ids = np.zeros((6, 8), np.uint8)
  ids[0, :] = 1
  ids[3, :] = 2
  ids[5, 5] = 7
  pal = np.asarray(vf.davis_palette(), np.uint8).reshape(256, 3)
  rgb = Image.fromarray(pal[ids]).convert(mode)
  make_clip(tmp_path, 'a', annotations={0: rgb})
  ann = vf.read_annotations(vf.find_clips(tmp_path)[0])
  np.testing.assert_array_equal(ann.masks[0], ids)
  assert ann.labels.tolist() == [1, 2, 7]


def test_rgb_annotation_uses_clip_palette(tmp_path):
  palette = [0, 0, 0, 10, 20, 30, 40, 50, 60]  # Not DAVIS colours.
  first = np.zeros((6, 8), np.uint8)
  first[0, 0] = 1
  later = np.zeros((6, 8, 3), np.uint8)
  later[1, 1] = (40, 50, 60)
  make_clip(tmp_path, 'a', annotations={
      0: _indexed(first, palette), 1: Image.fromarray(later)})
  ann = vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert ann.masks[1][1, 1] == 2 and ann.masks[1].sum() == 2
  assert ann.palette[:9] == palette and len(ann.palette) == 768


def test_rgb_annotation_off_palette_errors(tmp_path):
  rgb = np.zeros((6, 8, 3), np.uint8)
  rgb[0, 0] = (1, 2, 3)
  make_clip(tmp_path, 'a', annotations={0: Image.fromarray(rgb)})
  with pytest.raises(InputError, match='match no palette entry') as e:
    vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert '00000.png' in str(e.value)


def test_unsupported_annotation_mode(tmp_path):
  ids = np.zeros((6, 8), np.uint16)
  make_clip(tmp_path, 'a', annotations={0: Image.fromarray(ids)})
  with pytest.raises(InputError, match='unsupported image mode'):
    vf.read_annotations(vf.find_clips(tmp_path)[0])


def test_annotation_size_mismatch(tmp_path):
  make_clip(tmp_path, 'a', annotations={0: np.zeros((6, 4))})
  with pytest.raises(InputError, match='annotation is 4x6 but frames are 8x6'):
    vf.read_annotations(vf.find_clips(tmp_path)[0])


def test_annotation_off_by_rounding_is_resized_with_a_warning(tmp_path):
  """853 px masks on 854 px frames (a real export's rounding): resized, one warning."""
  ids = np.zeros((6, 6), np.uint8)
  ids[:, 3:] = 1
  make_clip(tmp_path, 'a', annotations={0: ids})
  with pytest.warns(UserWarning, match=r'00000.png: annotation is 6x6 but frames are 8x6; resized'):
    ann = vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert ann.masks[0].shape == (6, 8) and ann.masks[0][:, 0].max() == 0 and ann.masks[0][:, -1].min() == 1


def test_corrupt_annotation(tmp_path):
  _, anns = make_clip(tmp_path, 'a')
  (anns / '00000.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
  with pytest.raises(InputError, match='cannot read image') as e:
    vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert '00000.png' in str(e.value) and '\n' not in str(e.value)


def test_corrupt_first_frame_header(tmp_path):
  frames, _ = make_clip(tmp_path, 'a', ext='.jpg')
  (frames / '00000.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(InputError, match='cannot read image') as e:
    vf.read_annotations(vf.find_clips(tmp_path)[0])
  assert '00000.jpg' in str(e.value)


# --------------------------------------------------------------------- frames


def test_read_frame_corrupt_jpg(tmp_path):
  bad = tmp_path / 'bad.jpg'
  bad.write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
  with pytest.raises(InputError, match='cannot read image') as e:
    vf.read_frame(bad)
  assert 'bad.jpg' in str(e.value)


def test_read_frame_truncated_jpg(tmp_path):
  good = tmp_path / 'good.jpg'
  Image.fromarray(_frame(1, 64, 64)).save(good)
  bad = tmp_path / 'cut.jpg'
  bad.write_bytes(good.read_bytes()[:300])  # Header parses, pixels do not.
  assert vf.read_frame(good).shape == (64, 64, 3)
  with pytest.raises(InputError, match='cut.jpg: cannot read image'):
    vf.read_frame(bad)


def test_frame_reader_chunks(tmp_path):
  make_clip(tmp_path, 'a', n=7, size=(5, 9))
  clip = vf.find_clips(tmp_path)[0]
  reader = vf.FrameReader(clip, chunk=3, size=(5, 9))
  assert len(reader) == 3
  chunks = list(reader)
  assert [s for s, _ in chunks] == [0, 3, 6]
  assert [f.shape for _, f in chunks] == [(3, 5, 9, 3), (3, 5, 9, 3),
                                          (1, 5, 9, 3)]
  for start, frames in chunks:
    assert frames.dtype == np.uint8
    for j, frame in enumerate(frames):
      np.testing.assert_array_equal(frame, _frame(start + j, 5, 9))


def test_frame_reader_corrupt_jpg(tmp_path):
  frames, _ = make_clip(tmp_path, 'a', n=5, ext='.jpg')
  (frames / '00003.jpg').write_bytes(b'garbage bytes')
  reader = vf.FrameReader(vf.find_clips(tmp_path)[0], chunk=2, size=(6, 8))
  it = iter(reader)
  assert next(it)[0] == 0
  with pytest.raises(InputError, match='00003.jpg: cannot read image'):
    list(it)


def test_frame_reader_size_mismatch(tmp_path):
  frames, _ = make_clip(tmp_path, 'a', n=3)
  Image.fromarray(_frame(2, 6, 9)).save(frames / '00002.png')
  reader = vf.FrameReader(vf.find_clips(tmp_path)[0], chunk=2, size=(6, 8))
  with pytest.raises(InputError, match="frame is 9x6 but the clip's first "
                     'frame is 8x6') as e:
    list(reader)
  assert '00002.png' in str(e.value)


def test_frame_reader_early_break(tmp_path):
  make_clip(tmp_path, 'a', n=6)
  reader = vf.FrameReader(vf.find_clips(tmp_path)[0], chunk=1, size=(6, 8))
  for start, _ in reader:
    if start == 1:
      break
  assert [s for s, _ in reader] == list(range(6))  # Re-iterable.


# ---------------------------------------------------------------------- masks


def test_write_mask_round_trip(tmp_path):
  ids = np.zeros((6, 8), np.uint8)
  ids[1:3, 2:5] = 1
  ids[4, :] = 9
  palette = vf.davis_palette()
  palette[3:6] = [1, 2, 3]
  out = tmp_path / 'new' / 'deep' / '00000.png'
  vf.write_mask(out, ids, palette)
  vf.write_mask(out, ids, palette)  # Overwrite is fine.
  assert [p.name for p in out.parent.iterdir()] == ['00000.png']  # No temps.
  with Image.open(out) as im:
    assert im.mode == 'P'
    assert vf._pad_palette(im.getpalette()) == palette
    np.testing.assert_array_equal(np.array(im), ids)


def test_davis_palette():
  pal = vf.davis_palette()
  assert len(pal) == 768
  assert pal[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
  assert pal[-3:] == [224, 224, 192]


# ------------------------------------------------------------------ real data


def test_real_bike():
  root = _need_real()
  (clip,) = vf.find_clips(root, ['bike'])
  assert len(clip.frame_paths) == 4 and list(clip.annotation_paths) == [0]
  ann = vf.read_annotations(clip)
  assert ann.labels.tolist() == [1, 2]
  assert len(ann.palette) == 768
  assert ann.size == (480, 854) and ann.masks[0].shape == (480, 854)
  (start, frames), = list(vf.FrameReader(clip, chunk=4, size=ann.size))
  assert start == 0 and frames.shape == (4, 480, 854, 3)


def test_real_judo_size_mismatch():
  """judo's 00005.png is 853 px wide on 854 px frames: resized with one warning."""
  root = _need_real()
  (clip,) = vf.find_clips(root, ['judo'])
  assert sorted(clip.annotation_paths) == [0, 5, 8, 13]
  with pytest.warns(UserWarning) as caught:
    ann = vf.read_annotations(clip)
  assert len(caught) == 1
  assert '00005.png' in str(caught[0].message) and '854' in str(caught[0].message)
  assert ann.masks[5].shape == ann.size


def test_real_bedroom_has_no_annotations():
  root = _need_real()
  with pytest.raises(InputError, match='annotation folder does not exist'):
    vf.find_clips(root, ['bedroom'])
  (clip,) = vf.find_clips(root, ['bedroom'], require_annotations=False)
  assert len(clip.frame_paths) == 200
