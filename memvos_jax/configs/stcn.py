"""STCN evaluation and training config.

Evaluation: ``python eval.py --config configs/stcn.py --config.checkpoint=stcn.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``.
Training:   ``python train.py --config configs/stcn.py --workdir=runs/stcn``
(the official recipe, stage 3: DAVIS + YouTube-VOS; without data folders it
trains on the embedded synthetic videos).

Variants (``--config configs/stcn.py:<arg>``):
  runlocal  small inference chunks for CPUs and tests (training as default);
  stage0    official static-image pretraining (pseudo-videos from image+mask);
  stage3    official main training (the default);
  tiny      ResNet-18 keys, small dims, 128 px crops, still clips first: learns
            from random weights in ~16 minutes on a 2-core CPU (docs/training.md).
"""

import ml_collections

from memvos_jax.configs import common

# Official hyper-parameters (hkchengrex/STCN util/hyper_para.py, train.py,
# model/model.py, model/losses.py, dataset/*.py).
_STAGES = {
    0: dict(batch_size=8, num_steps=300_000, lr_steps=(150_000,)),
    3: dict(batch_size=4, num_steps=150_000, lr_steps=(125_000,)),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('stcn', arg, ('stage3', 'stage0', 'runlocal', 'tiny'), 'stage3')
  config = ml_collections.ConfigDict()
  config.model = 'stcn'
  # Official .pth / .npz state_dict, or an orbax folder written by
  # ``python -m memvos_jax.convert`` or by training (``<workdir>/export``).
  # Empty: random init. For training: the initial weights (e.g. the stage-0
  # result for stage 3, the official ``load_network``).
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      key_backbone='resnet50', value_backbone='resnet18', key_dim=64, value_dim=512,
      decoder_dims=(512, 256, 256)))

  config.data = common.eval_data()
  # Training data. All empty: the embedded synthetic videos (no download).
  config.data.davis_root = ''   # DAVIS 2017 trainval layout (JPEGImages/480p/<clip>)
  config.data.davis_split = 'train'  # ImageSets/2017|2016/<split>.txt when present
  config.data.davis_extra_roots = ''  # more DAVIS-layout roots trained on like davis_root (comma list)
  # Pseudo-videos pasted from the DAVIS training frames (data/paste.py) per epoch:
  # 1..max_objects objects cut out with their masks, moving over another clip's frame.
  config.data.paste_clips = 0
  config.data.paste_length = 20   # virtual frames of a pasted pseudo-video
  config.data.heldout = ''      # DAVIS clips kept out of training, validated on (comma list)
  config.data.yvos_root = ''    # YouTube-VOS train layout (JPEGImages/<clip>, every 5th frame)
  config.data.static_root = ''  # folders of XXX.jpg + XXX.png (searched recursively)
  # The same data as TFDS datasets in the ArrayRecord format (built once by
  # ``python -m memvos_jax.data.tfds_vos build``; docs/data.md), read beside or instead
  # of the folders above, each trained on like the folder of its kind (comma lists):
  config.data.tfds_dir = ''     # their TFDS data_dir, local or gs://... ('': ~/tensorflow_datasets)
  config.data.davis_tfds = ''   # like davis_root, split data.davis_split: e.g. davis_vos/2017
  config.data.yvos_tfds = ''    # like yvos_root, split train: e.g. youtube_vos2019
  config.data.static_tfds = ''  # like static_root, split train: e.g. vos_static_images
  config.data.davis_repeat = 5  # official: DAVIS x5 + YouTube-VOS x1 per epoch
  config.data.yvos_skip_divisor = 5  # YouTube-VOS frames are every 5th: max_skip // 5
  config.data.synthetic_length = 40  # frames of a virtual synthetic video
  config.data.synthetic_clips = 10_000  # synthetic videos per epoch (virtual)
  config.data.synthetic_with_real = 0   # synthetic videos per epoch mixed in with real data
  config.data.frame_short_side = 0      # resize real frames to this shorter side (0: native)
  config.data.crop_scale = (0.36, 1.0)  # random resized crop: area fraction (official)
  config.data.threads = 2       # grain read threads
  config.data.prefetch = 4      # batches prefetched

  config.inference = ml_collections.ConfigDict()
  config.inference.size = 0               # segment at this shorter side (0: native)
  config.inference.mem_every = 5
  config.inference.top_k = 20             # 0 = softmax over all memory
  # Memory slots. 0 = as many as the official (unbounded) memory would hold
  # for the clip; a fixed number bounds memory on long videos (FIFO eviction
  # of non-annotated frames).
  config.inference.memory_capacity = 0
  common.scan_options(config.inference, chunk=8)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0       # 0 = the clip's object count (static per clip)
  config.inference.eviction = 'fifo'     # full bank: 'fifo' (oldest) or 'lfu' (least used per age)

  stage = 0 if arg == 'stage0' else 3
  t = config.training = ml_collections.ConfigDict()
  t.stage = stage             # 0: static images (single object); 3: videos
  t.seed = 14159265           # official seed; also the data order
  # Random initial weights: 'threefry' (JAX's default key, per-parameter programs, ~40 s
  # of compiles for a ResNet-18 pair on 2 cores) or 'rbg' (XLA's RngBitGenerator in one
  # compiled program, ~8 s; other values). Unused when starting from a checkpoint.
  t.init_rng = 'threefry'
  t.batch_size = _STAGES[stage]['batch_size']   # global batch (all devices)
  t.num_steps = _STAGES[stage]['num_steps']
  t.crop_size = 384
  t.num_frames = 3            # frames per training clip (official: 3)
  t.max_objects = 1 if stage == 0 else 2   # objects per sample (official: target + second)
  # Max-skip curriculum (official, stage 3): max_skip = values[i] once the
  # training fraction passes boundaries[i-1]; not used by stage 0.
  t.max_skip_values = (5, 10, 15, 20, 25, 5)
  t.max_skip_boundaries = (0.1, 0.2, 0.3, 0.4, 0.9)
  t.reverse_prob = 0.5        # play the three frames backwards (official)
  # Adam(lr, weight_decay=1e-7) with MultiStepLR(lr_steps, gamma).
  t.learning_rate = 1e-5
  t.weight_decay = 1e-7
  t.lr_steps = _STAGES[stage]['lr_steps']
  t.lr_gamma = 0.1
  t.warmup_steps = 0          # linear warm-up (not official; used by tiny, from scratch)
  # Random init only (no config.checkpoint): set the frozen BatchNorm statistics
  # from the first batch (official starts from ImageNet statistics instead).
  t.bn_from_data = True
  # Bootstrapped cross-entropy: plain CE before start, then the top-p hardest
  # pixels with p going linearly from 1 to top_p between start and end.
  t.bce_start_warm = 20_000
  t.bce_end_warm = 70_000
  t.bce_top_p = 0.15
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
  t.eval_every = 10_000       # validation J&F on held-out synthetic clips (0: never)
  t.eval_clips = 8
  t.eval_frames = 10
  t.eval_size = 0             # 0: crop_size
  t.progress = True           # tqdm bar on stderr

  if arg == 'runlocal':
    common.runlocal(config)
  if arg == 'tiny':
    config.network = ml_collections.ConfigDict(dict(
        key_backbone='resnet18', value_backbone='resnet18', key_dim=32, value_dim=128,
        decoder_dims=(128, 64, 64)))
    config.inference.chunk = 4
    config.data.synthetic_length = 24
    t.batch_size = 4
    t.num_steps = 1400
    t.crop_size = 128
    t.max_objects = 2
    # Still clips first (max skip 0: one frame repeated), the role of the
    # official static stage 0: from scratch, the network must learn to read a
    # mask back out of memory before matching across motion can pay off.
    t.max_skip_values = (0, 2, 3, 4, 5, 3)
    t.max_skip_boundaries = (0.06, 0.15, 0.3, 0.5, 0.85)
    # From scratch (no ImageNet backbones): a larger rate, scaled schedules.
    t.learning_rate = 2e-4
    t.lr_steps = (1200,)
    t.warmup_steps = 20
    # Bootstrapping from the start: the hardest pixels (mostly the objects'),
    # so that a network learning from scratch does not settle on background.
    t.bce_start_warm = 0
    t.bce_end_warm = 100
    t.checkpoint_every = 100
    t.log_every = 10
    t.eval_every = 200
    t.eval_clips = 8
    t.eval_frames = 8
  config.lock()
  return config
