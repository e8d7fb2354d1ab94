"""Video file decoding (VideoReader) and result pictures (memvos_jax.apps.visualize)."""

import numpy as np
import pytest
from PIL import Image

from memvos_jax.apps import visualize
from memvos_jax.data import video_file
from memvos_jax.data.video_folder import davis_palette
from memvos_jax.errors import InputError

T, H, W = 12, 48, 64


def _frames(t: int, h: int, w: int) -> list[np.ndarray]:
  """t frames [h, w, 3] uint8: a red square moving right over grey."""
  out = []
  for i in range(t):
    f = np.full((h, w, 3), 60, np.uint8)
    f[10:26, 2 + 3 * i:18 + 3 * i] = (220, 40, 40)
    out.append(f)
  return out


def _write_mp4(path, t=T, h=H, w=W, fps=10.0):
  with visualize.OverlayVideoWriter(path, fps) as writer:
    for f in _frames(t, h, w):
      writer.write(f)
  return path


def test_is_video_file():
  assert video_file.is_video_file('a/b.MP4')
  assert video_file.is_video_file('x.webm') and video_file.is_video_file('x.gif')
  assert not video_file.is_video_file('x.png')
  assert not video_file.is_video_file('clip_folder')


def test_reader_chunks_count_size_and_content(tmp_path):
  path = _write_mp4(tmp_path / 'in.mp4')
  reader = video_file.VideoReader(path, chunk=5)
  assert reader.num_frames == T and len(reader) == 3
  assert reader.native_size == (H, W) and reader.frame_size == (H, W)
  assert reader.fps == pytest.approx(10.0)
  chunks = list(reader)
  assert [s for s, _ in chunks] == [0, 5, 10]
  assert [f.shape for _, f in chunks] == [(5, H, W, 3), (5, H, W, 3),
                                          (2, H, W, 3)]
  frames = np.concatenate([f for _, f in chunks])  # [T, H, W, 3]
  assert frames.dtype == np.uint8
  expected = np.stack(_frames(T, H, W))
  assert np.abs(frames.astype(int) - expected).mean() < 6  # Lossy codec.
  assert list(reader)[0][0] == 0  # Iterable again.


def test_reader_resizes(tmp_path):
  path = _write_mp4(tmp_path / 'in.mp4')
  reader = video_file.VideoReader(str(path), chunk=5, size=(24, 32))
  assert reader.native_size == (H, W) and reader.frame_size == (24, 32)
  shapes = [f.shape for _, f in reader]
  assert shapes == [(5, 24, 32, 3), (5, 24, 32, 3), (2, 24, 32, 3)]


def test_reader_gif_counts_frames_by_decoding(tmp_path):
  path = tmp_path / 'in.gif'
  ims = [Image.fromarray(f) for f in _frames(7, 30, 40)]
  ims[0].save(path, save_all=True, append_images=ims[1:], duration=100)
  reader = video_file.VideoReader(path, chunk=3)
  assert reader.num_frames == 7 and reader.frame_size == (30, 40)
  assert [f.shape[0] for _, f in reader] == [3, 3, 1]


def test_reader_undecodable_file(tmp_path):
  path = tmp_path / 'random.mp4'
  path.write_bytes(np.random.default_rng(0).bytes(4000))
  with pytest.raises(InputError) as e:
    video_file.VideoReader(path, chunk=4)
  assert str(path) in str(e.value) and 'cannot decode video' in str(e.value)
  assert '\n' not in str(e.value)


def test_reader_empty_and_missing_file(tmp_path):
  empty = tmp_path / 'empty.mp4'
  empty.write_bytes(b'')
  with pytest.raises(InputError, match='cannot decode video') as e:
    video_file.VideoReader(empty, chunk=4)
  assert e.value.path == str(empty)
  missing = tmp_path / 'missing.mp4'
  with pytest.raises(InputError, match='cannot decode video') as e:
    video_file.VideoReader(missing, chunk=4)
  assert e.value.path == str(missing)


def test_overlay_colours_objects_only():
  frame = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
  ids = np.zeros((20, 30), np.uint8)
  ids[5:15, 5:15] = 1
  ids[2:6, 20:28] = 2
  palette = davis_palette()
  out = visualize.overlay(frame, ids, palette, alpha=0.5)
  assert out.shape == frame.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[ids == 0], frame[ids == 0])
  red = np.array(palette[3:6])  # Object 1's colour.
  inner = out[7:13, 7:13].astype(int)  # Blended, off the contour.
  blend = np.rint(0.5 * frame[7:13, 7:13] + 0.5 * red)
  assert np.abs(inner - blend).max() <= 1
  np.testing.assert_array_equal(out[5, 5:15], np.tile(red, (10, 1)))  # Edge.
  green = np.array(palette[6:9])
  np.testing.assert_array_equal(out[2, 20], green)


def test_object_stats():
  ids = np.zeros((10, 12), np.uint8)
  ids[2:5, 3:7] = 1  # 3 x 4.
  ids[8, 11] = 3
  stats = visualize.object_stats(ids)
  assert stats == {1: {'area': 12, 'bbox': [3, 2, 6, 4]},
                   3: {'area': 1, 'bbox': [11, 8, 11, 8]}}
  assert visualize.object_stats(np.zeros((4, 4), np.uint8)) == {}


def test_gif_writer_bounded_and_decodable(tmp_path):
  path = tmp_path / 'out.gif'
  n = 25
  with visualize.GifWriter(path, n, max_frames=10, max_side=40) as gif:
    for i in range(n):
      f = np.zeros((60, 100, 3), np.uint8)
      f[:, 4 * i:4 * i + 4] = 255  # Every frame differs.
      gif.write(f)
    assert len(gif._kept) <= 10  # pylint: disable=protected-access
  im = Image.open(path)
  assert 1 < im.n_frames <= 10
  assert max(im.size) <= 40 and im.size == (40, 24)


def test_gif_writer_keeps_all_short_videos(tmp_path):
  path = tmp_path / 'short.gif'
  with visualize.GifWriter(path, 5) as gif:
    for f in _frames(5, H, W):
      gif.write(f)
  im = Image.open(path)
  assert im.n_frames == 5 and im.size == (W, H)


def test_contact_sheet_shape():
  frames = [np.full((100, 200, 3), i * 40, np.uint8) for i in range(5)]
  sheet = visualize.contact_sheet(frames, cols=4, max_side=50)
  # Cells 25 x 50, 2 rows x 4 cols, 2 px gaps.
  assert sheet.shape == (2 * 25 + 2, 4 * 50 + 3 * 2, 3)
  assert sheet.dtype == np.uint8
  single = visualize.contact_sheet(frames[:1], cols=4, max_side=240)
  assert single.shape == (100, 200, 3)


def test_contact_sheet_labels_are_drawn():
  frames = [np.full((60, 80, 3), 128, np.uint8) for _ in range(3)]
  plain = visualize.contact_sheet(frames)
  labelled = visualize.contact_sheet(frames, labels=['frame 0', 'frame 5', 'frame 10'])
  assert labelled.shape == plain.shape
  corner = labelled[:12, :40]                    # black box with white text
  assert (corner == 0).any() and (corner > 200).any()
  assert np.array_equal(labelled[20:], plain[20:])  # the rest of the tiles is untouched
  with pytest.raises(ValueError, match='labels'):
    visualize.contact_sheet(frames, labels=['frame 0'])


@pytest.mark.parametrize('fps, every, duration_ms', [
    (24.0, 1, 42), (10.0, 1, 100), (60.0, 2, 33), (120.0, 4, 33), (0.2, 1, 1000)])
def test_gif_writer_plays_at_the_video_speed(tmp_path, fps, every, duration_ms):
  """Real-time playback; at most 30 shown frames per second, each at most 1 s."""
  gif = visualize.GifWriter(tmp_path / 'a.gif', num_frames=40, fps=fps)
  assert gif.every == every and gif.duration_ms == duration_ms


@pytest.mark.parametrize('h,w', [(48, 64), (47, 63)])
def test_overlay_video_writer_round_trip(tmp_path, h, w):
  path = _write_mp4(tmp_path / f'o{h}x{w}.mp4', t=9, h=h, w=w, fps=12.0)
  reader = video_file.VideoReader(path, chunk=4)
  # Odd sizes are padded by one row/column (yuv420p needs even sizes).
  assert reader.num_frames == 9
  assert reader.frame_size == (h + h % 2, w + w % 2)
  assert reader.fps == pytest.approx(12.0)
  assert sum(f.shape[0] for _, f in reader) == 9


def test_overlay_video_writer_rejects_size_change(tmp_path):
  with visualize.OverlayVideoWriter(tmp_path / 'x.mp4', 5.0) as writer:
    writer.write(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match='first frame'):
      writer.write(np.zeros((16, 18, 3), np.uint8))


def test_reader_rejects_frames_of_varying_size(tmp_path):
  av = pytest.importorskip('av')
  parts = []
  for k, (h, w) in enumerate([(32, 48), (40, 64)]):
    part = tmp_path / f'{k}.ts'
    with av.open(str(part), 'w', format='mpegts') as c:
      stream = c.add_stream('libx264' if 'libx264' in av.codecs_available
                            else 'mpeg4', rate=10)
      stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
      for f in _frames(4, h, w):
        for packet in stream.encode(av.VideoFrame.from_ndarray(f, 'rgb24')):
          c.mux(packet)
      for packet in stream.encode():
        c.mux(packet)
    parts.append(part.read_bytes())
  path = tmp_path / 'varying.mkv'  # MPEG-TS bytes; FFmpeg probes the content.
  path.write_bytes(b''.join(parts))
  reader = video_file.VideoReader(path, chunk=3)
  with pytest.raises(InputError, match='frame 4 is 64x40 but frame 0 is 48x32'):
    list(reader)
