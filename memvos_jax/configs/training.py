"""The ``config.training`` block (and training ``config.data`` keys) every supervised model shares.

``supervised(config)`` adds to a model's config what the shared engine
(``memvos_jax.training.trainer``) and the clip sampler (``data.sampling``)
read, with one default each: the official STCN values where STCN's recipe
has one (it is the recipe STM's paper and AFB-URR's code also follow for
clips of three frames). A model's config then overrides what its recipe
changes and adds the keys of its own loss (STCN: ``bce_*``; AFB-URR: ``lu``).
"""

import ml_collections


def _train_data(data: ml_collections.ConfigDict) -> None:
  """Training data. All empty: the embedded synthetic videos (no download)."""
  data.davis_root = ''   # DAVIS 2017 trainval layout (JPEGImages/480p/<clip>)
  data.davis_split = 'train'  # ImageSets/2017|2016/<split>.txt when present
  data.davis_extra_roots = ''  # more DAVIS-layout roots trained on like davis_root (comma list)
  # Pseudo-videos pasted from the DAVIS training frames (data/paste.py) per epoch:
  # 1..max_objects objects cut out with their masks, moving over another clip's frame.
  data.paste_clips = 0
  data.paste_length = 20   # virtual frames of a pasted pseudo-video
  data.heldout = ''      # DAVIS clips kept out of training, validated on (comma list)
  data.yvos_root = ''    # YouTube-VOS train layout (JPEGImages/<clip>, every 5th frame)
  data.static_root = ''  # folders of XXX.jpg + XXX.png (searched recursively)
  # The same data as TFDS datasets in the ArrayRecord format (built once by
  # ``python -m memvos_jax.data.tfds_vos build``; docs/data.md), read beside or instead
  # of the folders above, each trained on like the folder of its kind (comma lists):
  data.tfds_dir = ''     # their TFDS data_dir, local or gs://... ('': ~/tensorflow_datasets)
  data.davis_tfds = ''   # like davis_root, split data.davis_split: e.g. davis_vos/2017
  data.yvos_tfds = ''    # like yvos_root, split train: e.g. youtube_vos2019
  data.static_tfds = ''  # like static_root, split train: e.g. vos_static_images
  data.davis_repeat = 5  # official: DAVIS x5 + YouTube-VOS x1 per epoch
  data.yvos_skip_divisor = 5  # YouTube-VOS frames are every 5th: max_skip // 5
  data.synthetic_length = 40  # frames of a virtual synthetic video
  data.synthetic_clips = 10_000  # synthetic videos per epoch (virtual)
  data.synthetic_with_real = 0   # synthetic videos per epoch mixed in with real data
  data.synthetic_radius = (0.12, 0.25)  # synthetic objects' radius, fraction of the crop side
  data.synthetic_enter_prob = 0.3  # a synthetic object starts outside the frame and moves in
  data.frame_short_side = 0      # resize real frames to this shorter side (0: native)
  data.crop_scale = (0.36, 1.0)  # random resized crop: area fraction (official)
  data.threads = 2       # grain read threads
  data.prefetch = 4      # batches prefetched


def supervised(config: ml_collections.ConfigDict, stage: int = 3) -> ml_collections.ConfigDict:
  """Add the training data keys to ``config.data`` and set ``config.training``; returns it.

  ``stage``: 0 = static images (pseudo-videos from image+mask, one object),
  3 = videos (official STCN stage numbers).
  """
  _train_data(config.data)
  t = config.training = ml_collections.ConfigDict()
  t.stage = stage             # 0: static images (single object); 3: videos
  t.seed = 14159265           # official STCN seed; also the data order
  # Random initial weights: 'threefry' (JAX's default key, per-parameter programs, ~40 s
  # of compiles for a ResNet-18 pair on 2 cores) or 'rbg' (XLA's RngBitGenerator in one
  # compiled program, ~8 s; other values). Unused when starting from a checkpoint.
  t.init_rng = 'threefry'
  t.batch_size = 8 if stage == 0 else 4   # global batch (all devices)
  t.num_steps = 300_000 if stage == 0 else 150_000
  t.crop_size = 384
  t.num_frames = 3            # frames per training clip (official: 3)
  t.max_objects = 1 if stage == 0 else 2   # objects per sample (official: target + second)
  # Max-skip curriculum (official, stage 3): max_skip = values[i] once the
  # training fraction passes boundaries[i-1]; not used by stage 0.
  t.max_skip_values = (5, 10, 15, 20, 25, 5)
  t.max_skip_boundaries = (0.1, 0.2, 0.3, 0.4, 0.9)
  t.reverse_prob = 0.5        # play the clip backwards (official)
  # How a clip's frames are chosen: 'skip' (STCN/STM: ordered frames at most max_skip
  # apart, the curriculum above, reversed with reverse_prob) or 'shuffle' (AFB-URR:
  # num_frames distinct frames of the whole video in random order; no skip, no reversal).
  t.frame_sampling = 'skip'
  # Adam(lr, weight_decay) with MultiStepLR(lr_steps, gamma). optimizer 'adam': the decay
  # is added to the gradient (torch Adam(weight_decay)); 'adamw': decoupled (torch AdamW).
  t.optimizer = 'adam'
  t.learning_rate = 1e-5
  t.weight_decay = 1e-7
  t.lr_steps = (150_000,) if stage == 0 else (125_000,)
  t.lr_gamma = 0.1
  t.warmup_steps = 0          # linear warm-up (not official; used from scratch)
  # Random init only (no config.checkpoint): set the frozen BatchNorm statistics
  # from the first batch (the model's ``calibrate``; official starts from ImageNet's).
  t.bn_from_data = True
  t.compute_dtype = 'float32'   # or 'bfloat16' (params kept in float32)
  # ImageNet weights (torchvision layout, .pth zip/legacy or .npz) for the backbones:
  # one file for every encoder, or 'key=FILE,value=FILE' (convert/imagenet.py).
  # Loaded after the random init (and after bn_from_data, whose statistics they replace).
  t.backbone_init = ''
  # Parameters that do not train: a regex matched (re.match) against each parameter's
  # path 'a/b/c/', e.g. 'key/key_encoder/features_[0-6]/' ('': all train).
  t.freeze = ''
  # How the clip is unrolled: 'scan' (jax.lax.scan), 'python' (the same step
  # body in a Python loop), 'auto' = python on CPU (XLA:CPU compiles the
  # convolutions of a scan's backward pass as plain loops: ~20x slower).
  t.clip_loop = 'auto'
  t.param_sharding = 'replicated'  # or 'sharded': each parameter split over the data axis
  # Several processes (one per host; docs/multihost.md): jax.distributed.initialize().
  # Unset coordinator / num_processes / process_id are detected by jax (TPU pod
  # slices, SLURM, Open MPI); set all three elsewhere (e.g. 2 processes on one machine).
  t.distributed = False
  t.coordinator = ''          # 'host:port' of process 0 ('': detected)
  t.num_processes = 0         # 0: detected
  t.process_id = -1           # -1: detected; the only key that may differ between processes
  t.initialization_timeout = 300   # seconds to wait for every process to connect / compile
  # Seconds a process waits in a host-side exchange (logged indices, config check) for
  # the others; then every waiting process ends with one line naming the step and call.
  t.collective_timeout = 600
  # Checkpoints (orbax): every N steps, keep the last K.
  t.checkpoint_every = 5_000
  t.keep_checkpoints = 3
  # Observability.
  t.log_every = 100
  t.eval_every = 10_000       # validation J&F on held-out clips (0: never)
  t.eval_clips = 8
  t.eval_frames = 10
  # Validation frames' shorter side (0: inference.size for real held-out clips, crop_size
  # for synthetic ones).
  t.eval_size = 0
  t.progress = True           # tqdm bar on stderr
  return t


def tiny_from_scratch(t: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``tiny`` variants' schedule (STCN, STM, AFB-URR): 1400 steps of batch 4 at 128 px
  from random weights on a 2-core CPU.

  Still clips first (max skip 0: one frame repeated), the role of the official static
  pre-training: from scratch the network must learn to read a mask back out of memory
  before matching across motion can pay off (docs/training.md, "Why the still clips").
  A larger rate than the official recipes, with warm-up and one decay.
  """
  t.batch_size = 4
  t.num_steps = 1400
  t.crop_size = 128
  t.max_skip_values = (0, 2, 3, 4, 5, 3)
  t.max_skip_boundaries = (0.06, 0.15, 0.3, 0.5, 0.85)
  t.learning_rate = 2e-4
  t.lr_steps = (1200,)
  t.warmup_steps = 20
  t.checkpoint_every = 100
  t.log_every = 10
  t.eval_every = 200
  t.eval_clips = 8
  t.eval_frames = 8
  return t


# The DAVIS-2016 clips the recipe below keeps out of training and validates on.
HELDOUT = 'boat,car-turn,dance-jump,horsejump-low,paragliding'


def davis_from_imagenet(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The default model's recipe (``configs/default.py``; STM's and AFB-URR's ``small``),
  on a 2-core CPU from ImageNet trunks: what is not the model's own. Returns
  ``config.training``.

  Data: the DAVIS clips (four times an epoch) and 60 pasted pseudo-videos of 20 frames,
  frames at 240 px shorter side, crops of 25-80 % of the frame at 192 px, validation on
  ``HELDOUT`` (inference at 240 px, memory every 3rd frame where the model has that
  setting). Training: batch 4 clips of 3 frames with 2 objects, a growing max skip, Adam
  1e-4 after 50 warm-up steps, the last two checkpoints kept, a log row every 25 steps.
  The caller sets the steps, the decay, what is frozen and how often it checkpoints and
  validates.
  """
  d = config.data
  d.heldout = HELDOUT
  d.davis_repeat, d.paste_clips, d.paste_length = 4, 60, 20
  d.synthetic_with_real, d.frame_short_side, d.crop_scale = 0, 240, (0.25, 0.8)
  config.inference.size = 240
  if 'mem_every' in config.inference:      # AFB-URR's bank has no such setting
    config.inference.mem_every = 3
  t = config.training
  t.batch_size, t.crop_size, t.num_frames, t.max_objects = 4, 192, 3, 2
  t.max_skip_values = (3, 5, 8, 10, 15, 8)
  t.max_skip_boundaries = (0.05, 0.15, 0.3, 0.5, 0.85)
  t.learning_rate, t.warmup_steps = 1e-4, 50
  t.keep_checkpoints, t.log_every = 2, 25
  t.eval_size = 240       # validation at 240 px, also where a model then segments larger
  return t
