"""The training input pipeline (grain): frame sampling, objects, batching, sharding.

Sample ``g`` of the global stream (step ``g // global_batch``) is a pure
function of (seed, g): the epoch permutation of the concatenated sources
(official: DAVIS x5 + YouTube-VOS), the frames (official max-skip sampling,
with the curriculum's max skip at that step), the augmentation and the
objects all come from generators seeded by (seed, g). Each JAX process reads
its own contiguous slice of every global batch (``ShardByJaxProcess``), so
the global batch does not depend on the number of processes. The stream's
position is therefore the global step: ``make_iterator(ds, config, step)``
starts at the batch of ``step`` for any process count (a resumed run), and
the grain iterator state (one integer) is checkpointable as well.

A sample is {'frames': [T, S, S, 3] uint8, 'labels': [T, S, S] uint8 object
slots (0 = background, k = object k-1), 'valid': [N] bool, 'index': [] int64}.
"""

import dataclasses

import grain
import numpy as np

from memvos_jax.data import augment, paste, sources, synthetic


def max_skip_at(step: int, num_steps: int, values, boundaries) -> int:
  """The curriculum: ``values[i]`` once step/num_steps passes ``boundaries[i-1]``."""
  frac = step / max(num_steps, 1)
  i = int(np.searchsorted(np.asarray(boundaries, np.float64), frac, side='right'))
  return int(values[min(i, len(values) - 1)])


def sample_frames(rng, length: int, max_skip: int, num: int = 3, reverse_prob: float = 0.5):
  """Official ``VOSDataset`` frame choice, extended past three frames.

  ``max_skip == 0`` (not official) gives a still clip: one random frame
  repeated, so a network trained from scratch first learns to read a mask
  back out of memory (see ``configs/stcn.py:tiny``).
  """
  if max_skip == 0:
    return [int(rng.integers(length))] * num
  mj = min(length, max_skip)
  idx = [int(rng.integers(length - mj + 1))]
  bounds = [length - mj, length - mj // 2]
  for i in range(1, num):
    nxt = idx[-1] + int(rng.integers(mj + 1)) + 1
    bound = bounds[i - 1] if i - 1 < len(bounds) else length - 1
    idx.append(min(nxt, bound, length - 1))
  if rng.random() < reverse_prob:
    idx = idx[::-1]
  return idx


def shuffled_frames(rng, length: int, num: int):
  """Official AFB-URR (``DAVIS_Train_DS`` / ``YouTube_Train_DS``): ``num`` distinct frames
  of the whole video in random order (``random.shuffle(range(length))[:num]``).

  A video shorter than ``num`` frames (the official code leaves the rest of
  the clip black, with empty masks) repeats random frames of the permutation.
  """
  idx = [int(i) for i in rng.permutation(length)[:num]]
  while len(idx) < num:
    idx.append(idx[int(rng.integers(len(idx)))])
  return idx


def select_objects(rng, labels: np.ndarray, max_objects: int):
  """Up to N random objects present in frame 0 -> (slot map [T, S, S], valid [N]).

  Objects not chosen become background (official: target and second object).
  """
  present = np.unique(labels[0])
  present = present[present != 0]
  chosen = rng.permutation(present)[:max_objects] if len(present) else present
  lut = np.zeros(256, np.uint8)
  lut[chosen] = np.arange(1, len(chosen) + 1)
  valid = np.arange(max_objects) < len(chosen)
  return lut[labels], valid


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
  """Everything a sample depends on (built from the config by ``spec_from_config``)."""
  seed: int
  global_batch: int
  num_steps: int
  crop_size: int
  num_frames: int
  max_objects: int
  skip_values: tuple
  skip_boundaries: tuple
  reverse_prob: float
  static: bool            # stage 0: static pseudo-videos, no skip
  crop_scale: tuple = (0.36, 1.0)   # random resized crop: area fraction of the frame
  frame_sampling: str = 'skip'      # 'skip' (max-skip curriculum) or 'shuffle' (AFB-URR)


class ClipSampler:
  """grain random-access source: local position -> one augmented sample."""

  def __init__(self, spec: PipelineSpec, srcs, repeats, skip_divisors,
               shard_index: int = 0, shard_count: int = 1):
    if spec.global_batch % shard_count:
      raise ValueError(f'global batch {spec.global_batch} not divisible by '
                       f'{shard_count} processes')
    self.spec, self.srcs, self.skip_divisors = spec, srcs, skip_divisors
    self.table = np.concatenate([
        np.stack([np.full(len(s) * r, k), np.tile(np.arange(len(s)), r)], 1)
        for k, (s, r) in enumerate(zip(srcs, repeats))])      # [L, 2] (source, item)
    self.local_batch = spec.global_batch // shard_count
    self.shard_index = shard_index

  def __len__(self) -> int:
    return self.spec.num_steps * self.local_batch

  def global_index(self, j: int) -> int:
    step, within = divmod(j, self.local_batch)
    return step * self.spec.global_batch + self.shard_index * self.local_batch + within

  def __getitem__(self, j: int):
    return self.sample(self.global_index(int(j)))

  def sample(self, g: int):
    spec = self.spec
    epoch, pos = divmod(g, len(self.table))
    perm = np.random.default_rng([spec.seed, 1, epoch]).permutation(len(self.table))
    k, item = self.table[perm[pos]]
    src = self.srcs[k]
    rng = np.random.default_rng([spec.seed, 2, g])
    skip = max_skip_at(g // spec.global_batch, spec.num_steps, spec.skip_values,
                       spec.skip_boundaries)
    skip = skip and max(1, skip // self.skip_divisors[k])   # 0 (still clips) stays 0
    for _ in range(5):   # official: retry when frame 0 has no object
      if spec.static:
        idx = list(range(spec.num_frames))
      elif spec.frame_sampling == 'shuffle':
        idx = shuffled_frames(rng, src.num_frames(item), spec.num_frames)
      else:
        idx = sample_frames(rng, src.num_frames(item), skip, spec.num_frames,
                            spec.reverse_prob)
      frames, labels = src.load(item, idx, rng)
      if isinstance(src, synthetic.SyntheticSource):
        frames, labels = augment.light_clip(rng, frames, labels)
      elif isinstance(src, sources.VideoSource):   # folders or ArrayRecord
        frames, labels = augment.video_clip(rng, frames, labels, spec.crop_size,
                                            tuple(spec.crop_scale))
      if (labels[0] != 0).any():
        break
    slots, valid = select_objects(rng, labels, spec.max_objects)
    return {'frames': frames, 'labels': slots, 'valid': valid, 'index': np.int64(g)}


def spec_from_config(config) -> PipelineSpec:
  t = config.training
  return PipelineSpec(
      seed=t.seed, global_batch=t.batch_size, num_steps=t.num_steps,
      crop_size=t.crop_size, num_frames=t.num_frames, max_objects=t.max_objects,
      skip_values=tuple(t.max_skip_values), skip_boundaries=tuple(t.max_skip_boundaries),
      reverse_prob=t.reverse_prob, static=t.stage == 0,
      crop_scale=tuple(config.data.crop_scale),
      frame_sampling=t.get('frame_sampling', 'skip'))


def heldout_names(config) -> list[str]:
  """``data.heldout``: DAVIS clips kept out of training (the validation split)."""
  return [n.strip() for n in config.data.heldout.split(',') if n.strip()]


def _names(text: str) -> list[str]:
  return [n.strip() for n in text.split(',') if n.strip()]


def _static_sources(config) -> list:
  """The static image+mask sources: ``data.static_root``, then ``data.static_tfds``."""
  d, t = config.data, config.training
  out = []
  if d.static_root:
    out.append(sources.StaticFolderSource(d.static_root, 'static', t.num_frames, t.crop_size))
  if d.static_tfds:
    from memvos_jax.data.tfds_vos import reader
    out += [reader.TfdsStaticSource(name, d.tfds_dir, 'train', num_frames=t.num_frames,
                                    out_size=t.crop_size) for name in _names(d.static_tfds)]
  return out


def build_sources(config):
  """(sources, repeats, skip divisors, description) for the configured data.

  Folders and their TFDS (ArrayRecord) builds of the same kind are alike: DAVIS
  (``davis_root``, ``davis_extra_roots``, ``davis_tfds``, in that order), then
  the pasted pseudo-videos, YouTube-VOS (``yvos_root``, ``yvos_tfds``) and the
  static images (``static_root``, ``static_tfds``).
  """
  d, t = config.data, config.training
  srcs, repeats, divisors, names = [], [], [], []
  if t.stage == 0:
    static = _static_sources(config)
    srcs += static
    repeats += [1] * len(static)
    divisors += [1] * len(static)
  else:
    roots = [r for r in [d.davis_root] + d.davis_extra_roots.split(',') if r.strip()]
    davis = [sources.VideoFolderSource(
        r.strip(), 'davis' if n == 0 else f'davis+{n}', split=d.davis_split,
        exclude=heldout_names(config), short_side=d.frame_short_side)
        for n, r in enumerate(roots)]
    if d.davis_tfds:
      from memvos_jax.data.tfds_vos import reader
      davis += [reader.TfdsVideoSource(name, d.tfds_dir, d.davis_split,
                                       exclude=heldout_names(config),
                                       short_side=d.frame_short_side)
                for name in _names(d.davis_tfds)]
    srcs += davis
    repeats += [d.davis_repeat] * len(davis)
    divisors += [1] * len(davis)
    if d.paste_clips and davis:
      # Pseudo-videos of objects cut from the training clips' frames (not the held-out ones).
      srcs.append(paste.PasteSource(davis, d.paste_clips, d.paste_length, t.crop_size,
                                    t.max_objects))
      repeats.append(1)
      divisors.append(1)
    yvos = []
    if d.yvos_root:
      yvos.append(sources.VideoFolderSource(d.yvos_root, 'youtube-vos',
                                            short_side=d.frame_short_side))
    if d.yvos_tfds:
      from memvos_jax.data.tfds_vos import reader
      yvos += [reader.TfdsVideoSource(name, d.tfds_dir, 'train', short_side=d.frame_short_side)
               for name in _names(d.yvos_tfds)]
    srcs += yvos
    repeats += [1] * len(yvos)
    divisors += [d.yvos_skip_divisor] * len(yvos)
    static = _static_sources(config)
    srcs += static
    repeats += [1] * len(static)
    divisors += [1] * len(static)
  # The embedded synthetic videos: alone without data folders, or mixed in
  # (``data.synthetic_with_real`` videos per epoch) beside real video.
  n_synthetic = d.synthetic_clips if not srcs else d.synthetic_with_real
  if n_synthetic and t.stage != 0 or not srcs:
    settings = synthetic.SyntheticSettings(size=(t.crop_size, t.crop_size),
                                           max_objects=max(t.max_objects, 1) + 1,
                                           radius=tuple(d.synthetic_radius),
                                           enter_prob=d.synthetic_enter_prob)
    srcs.append(synthetic.SyntheticSource(settings, d.synthetic_length, n_synthetic,
                                          seed=t.seed))
    repeats.append(1)
    divisors.append(1)
  for s, r in zip(srcs, repeats):
    kind = 'images' if isinstance(s, sources.StaticSource) else 'videos'
    names.append(f'{s.name} ({len(s)} {kind}{f" x{r}" if r != 1 else ""})')
  return srcs, repeats, divisors, ', '.join(names)


def make_dataset(config, shard_index: int | None = None, shard_count: int | None = None):
  """(grain MapDataset of per-process batches, description of the data).

  The process shard comes from ``grain.sharding.ShardByJaxProcess`` unless given.
  """
  if shard_index is None or shard_count is None:
    opts = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    shard_index, shard_count = opts.shard_index, opts.shard_count
  srcs, repeats, divisors, desc = build_sources(config)
  sampler = ClipSampler(spec_from_config(config), srcs, repeats, divisors,
                        shard_index, shard_count)
  ds = grain.MapDataset.source(sampler).batch(sampler.local_batch, drop_remainder=True)
  return ds, desc


def make_iterator(ds, config, start_step: int = 0):
  """A grain iterator over ``ds`` from the batch of global step ``start_step`` on."""
  opts = grain.ReadOptions(num_threads=config.data.threads,
                           prefetch_buffer_size=config.data.prefetch)
  return iter(ds[start_step:].to_iter_dataset(opts))
