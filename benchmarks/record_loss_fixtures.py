"""Records the official training losses of STCN, AFB-URR and SAM 2 on one random batch.

Runs in a *torch* environment (not ours), like ``official_runner.py``, against
checkouts of the official repositories that the user points at (never part of
this repo). The official loss code is imported and called unedited:

  * STCN (hkchengrex/STCN): ``model/losses.py`` ``LossComputer(para).compute``
    (``BootstrappedCE`` with its own defaults start_warm=20000,
    end_warm=70000, top_p=0.15, the per-sample ``selector`` slicing, the
    IoU monitor sums), at several iterations ``it`` so that the bootstrapping
    schedule is covered: before start_warm, both ends of the ramp, inside it,
    after end_warm. The network outputs (``logits_1``, ``logits_2``) are made
    by the official ``STCN.aggregate`` (``model/network.py``) from random
    per-object probabilities times the selector, as ``STCN.segment`` does.
  * AFB-URR (xmlyqing00/AFB-URR): ``train.py`` ``train_model`` itself, one
    iteration: ``criterion`` (``torch.nn.CrossEntropyLoss()``, as ``main``
    builds it) of the scores plus ``args.lu`` (0.5, the official default)
    times the uncertainty, both produced by the official ``AFB_URR.segment``
    in training mode (``myutils.calc_uncertainty``, the clamp and log-odds).
    The network around it is replaced by stand-ins: the encoders, key/value
    head and matcher return small placeholders, ``memorize`` returns a
    placeholder bank, and the decoder returns the recorded per-class
    foreground probabilities (the network output whose gradient is saved).
  * SAM 2 (facebookresearch/sam2): ``training/loss_fns.py``
    ``MultiStepMultiMasksAndIous``, built by hydra from the ``trainer.loss.all``
    node of the official training config
    ``sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml``
    (weights focal 20, dice 1, iou 1, class 1; supervise_all_iou,
    iou_use_l1_loss, pred_obj_scores, focal_gamma_obj_score 0,
    focal_alpha_obj_score -1), and a second time with the class's own
    defaults (same weights; IoU loss on the selected mask only, MSE, no
    object-score loss), so both branches of the multimask selection and IoU
    loss are covered.

Only imports that the loss path never uses are stubbed when missing (as
``official_runner.py`` does for CUDA-only bits): ``torchvision``, ``cv2``,
``scipy.ndimage.morphology`` (AFB-URR's ``myutils`` and model module, STCN's
``model/modules.py`` import them at the top), ``tensorboardX`` and AFB-URR's
``dataset`` package (imported by ``train.py``), ``torch_scatter`` (by
``FeatureBank``), and SAM 2's ``training.trainer``, which ``loss_fns.py``
imports for the one constant ``CORE_LOSS_KEY`` (its value is read from the
checkout's ``trainer.py``; the rest of that module pulls in the whole trainer).

The torch Python needs torch, numpy < 2 (AFB-URR's ``myutils`` uses
``np.Inf``), tqdm and Pillow, and for SAM 2 hydra-core and omegaconf.

    python benchmarks/record_loss_fixtures.py --stcn-src ~/STCN \
        --afb-urr-src ~/AFB-URR --sam2-src ~/sam2 --out tests/fixtures/loss

Writes ``stcn.npz``, ``afb_urr.npz`` and ``sam2.npz`` (each under 200 KB):
the inputs, every loss term, the total, and the gradient of the total with
respect to the network outputs (torch autograd, float32, CPU).
``tests/test_loss_parity.py`` checks ours against them.
"""

import argparse
import ast
import contextlib
import importlib
import os
import sys
import types

import numpy as np

SEED = 31


def _unavailable(*args, **kwargs):
  raise RuntimeError('stub: not available in the loss recorder')


def stub_if_missing(name, **attrs):
  """Puts a placeholder module ``name`` (and any missing parent) in sys.modules if it cannot be imported.

  Its attributes ``attrs``, and any other name looked up on it, raise if called.
  """
  try:
    importlib.import_module(name)
    return
  except ImportError:
    pass
  parts, parent = name.split('.'), None
  for i in range(1, len(parts) + 1):
    sub = '.'.join(parts[:i])
    mod = sys.modules.get(sub)
    if mod is None:
      mod = types.ModuleType(sub)
      mod.__path__ = []
      mod.__getattr__ = lambda attr: _unavailable
      sys.modules[sub] = mod
    if parent is not None:
      setattr(parent, parts[i - 1], mod)
    parent = mod
  parent.__dict__.update(attrs)


@contextlib.contextmanager
def official(src, *top_level):
  """``src`` first on sys.path; afterwards its modules ``top_level`` are forgotten (names clash)."""
  src = os.path.abspath(src)
  sys.path.insert(0, src)
  try:
    yield
  finally:
    sys.path.remove(src)
    for name in list(sys.modules):
      if name.split('.')[0] in top_level:
        del sys.modules[name]


def blobs(rng, n, h, w, k):
  """[n, h, w] int labels 0..k: each object a random axis-aligned box (later ones on top)."""
  lab = np.zeros((n, h, w), np.int64)
  for i in range(n):
    for obj in range(1, k + 1):
      y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
      y1, x1 = y0 + rng.integers(h // 4, h // 2), x0 + rng.integers(w // 4, w // 2)
      lab[i, y0:y1, x0:x1] = obj
  return lab


def record_stcn(src, torch):
  """LossComputer.compute at several ``it``: B=2, 3 frames, 2 object slots, 32x32."""
  stub_if_missing('torchvision.models')
  stub_if_missing('cv2')
  with official(src, 'model', 'util', 'dataset'):
    from model.losses import LossComputer
    from model.network import STCN
    rng = np.random.default_rng(SEED)
    b, s, h, w = 2, 3, 32, 32
    selector = np.array([[1, 1], [1, 0]], np.float32)     # sample 1 has no second object
    cls_gt = np.stack([blobs(rng, s, h, w, 2), blobs(rng, s, h, w, 1)])   # [B, s, H, W]
    onehot = np.stack([cls_gt == 1, cls_gt == 2], 2).astype(np.float32)  # [B, s, 2, H, W]
    # Decoder logits: a noisy guess of the ground truth (as a network part-way trained).
    dec = rng.normal(0.0, 2.5, (b, s - 1, 2, h, w)) + 3.0 * (2 * onehot[:, 1:] - 1)
    out = dict(inputs={}, terms={})
    logits = []
    for i in range(1, s):
      prob = torch.sigmoid(torch.tensor(dec[:, i - 1], dtype=torch.float32))
      prob = prob * torch.tensor(selector)[:, :, None, None]
      logits.append(STCN.aggregate(None, prob))              # official, [B, 3, H, W]
    logits = np.stack([l.numpy() for l in logits], 1)          # [B, s-1, 3, H, W]
    rec = dict(logits=logits, cls_gt=cls_gt.astype(np.uint8), selector=selector,
               start_warm=20000, end_warm=70000, top_p=0.15)
    its = [10000, 20000, 45000, 70000, 80000]
    rec['its'] = np.array(its)
    computer = LossComputer(para={})
    bce = computer.bce
    assert (bce.start_warm, bce.end_warm, bce.top_p) == (20000, 70000, 0.15)
    for it in its:
      leaves = [torch.tensor(logits[:, i], requires_grad=True) for i in range(s - 1)]
      data = dict(gt=torch.tensor(onehot[:, :, 0:1]), sec_gt=torch.tensor(onehot[:, :, 1:2]),
                  cls_gt=torch.tensor(cls_gt), selector=torch.tensor(selector))
      for i in range(1, s):
        prev_mask = torch.softmax(leaves[i - 1], dim=1)[:, 1:]   # model.py: aggregate softmax [1:]
        data[f'logits_{i}'] = leaves[i - 1]
        data[f'mask_{i}'] = prev_mask[:, 0:1].detach()
        data[f'sec_mask_{i}'] = prev_mask[:, 1:2].detach()
      losses = computer.compute(data, it)
      losses['total_loss'].backward()
      pre = f'it{it}_'
      rec[pre + 'total_loss'] = np.float32(losses['total_loss'].item())
      for i in range(1, s):
        rec[pre + f'loss_{i}'] = np.float32(losses[f'loss_{i}'].item())
      rec[pre + 'p'] = np.float64(losses['p'])
      for key in ('i', 'u', 'sec_i', 'sec_u'):
        rec[pre + 'iou_' + key] = np.float32(losses[f'hide_iou/{key}'].item())
      rec[pre + 'grad_logits'] = np.stack([l.grad.numpy() for l in leaves], 1)
    return rec


def record_afb_urr(src, torch):
  """train.py's train_model, one iteration: a 4-frame clip (3 segmented), 3 classes, 32x32."""
  import torch.nn as nn
  stub_if_missing('torchvision.models', resnet50=_unavailable)
  stub_if_missing('torchvision.transforms.functional')
  stub_if_missing('cv2')
  stub_if_missing('scipy.ndimage.morphology', binary_dilation=_unavailable)
  stub_if_missing('tensorboardX', SummaryWriter=_unavailable)
  stub_if_missing('torch_scatter', scatter_mean=_unavailable)
  with official(src, 'model', 'myutils', 'dataset', 'train'):
    sys.modules['dataset'] = types.SimpleNamespace(
        PreTrain_DS=_unavailable, DAVIS_Train_DS=_unavailable, YouTube_Train_DS=_unavailable)
    import train
    from model import AFB_URR
    rng = np.random.default_rng(SEED + 1)
    t, obj_n, h, w = 4, 3, 32, 32
    labels = blobs(rng, t, h, w, obj_n - 1)                            # [T, H, W]
    masks = (labels[:, None] == np.arange(obj_n)[None, :, None, None]).astype(np.float32)
    # Per-class fg probabilities (the decoder's output): a noisy guess of the labels,
    # a few pixels saturated to exactly 0 and 1 (beyond the official clamp).
    z = rng.normal(0.0, 2.0, (t - 1, obj_n, h, w)) + 2.0 * (2 * masks[1:] - 1)
    fg = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    fg[0, 1, :2, :3] = 1.0
    fg[1, 0, -2:, -3:] = 0.0
    score = torch.tensor(fg, requires_grad=True)

    class Const(nn.Module):
      def __init__(self, fn):
        super().__init__()
        self.fn = fn

      def forward(self, *args):
        return self.fn(*args)

    bs = t - 1
    model = AFB_URR.__new__(AFB_URR)
    nn.Module.__init__(model)
    model.encoder_q = Const(lambda f: tuple(torch.zeros(bs, 1, d, d) for d in (2, 4, 8, 16)))
    model.keyval_r4 = Const(lambda r4: (torch.zeros(bs, 1, 4), torch.zeros(bs, 1, 4)))
    model.global_matcher = Const(lambda fb, k4, v4: torch.zeros(bs * fb.obj_n * 2 * 4))
    model.decoder = Const(lambda res, r3, r2, r1, shape: score.view(bs * obj_n, h, w))
    model.memorize = lambda frame, mask: ([torch.zeros(1, 4)] * obj_n, [torch.zeros(1, 4)] * obj_n)
    model.train()
    seen = {}
    segment = model.segment

    def recording_segment(frame, fb):
      scores, uncertainty = segment(frame, fb)
      seen['uncertainty'] = uncertainty.item()
      return scores, uncertainty
    model.segment = recording_segment

    class RecordingCE(nn.CrossEntropyLoss):
      def forward(self, input, target):
        loss = super().forward(input, target)
        seen['ce'] = loss.item()
        return loss

    class NoOptimizer:
      def zero_grad(self):
        pass

      def step(self):
        pass

    train.args = argparse.Namespace(lu=_afb_urr_default_lu(src), budget=300000)
    train.device = torch.device('cpu')
    frames = torch.zeros(1, t, 3, h, w)
    sample = (frames, torch.tensor(masks)[None], torch.tensor([obj_n]), {})
    total = train.train_model(model, [sample], RecordingCE(), NoOptimizer(), 'record')
    return dict(fg_probs=fg, labels=labels.astype(np.uint8), lu=np.float32(train.args.lu),
                ce=np.float32(seen['ce']), uncertainty=np.float32(seen['uncertainty']),
                total=np.float32(total), grad_fg_probs=score.grad.numpy())


def _afb_urr_default_lu(src):
  """The default of train.py's ``--lu`` option, read from the source (0.5)."""
  tree = ast.parse(open(os.path.join(src, 'train.py')).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and node.args and getattr(node.args[0], 'value', None) == '--lu':
      return next(k.value.value for k in node.keywords if k.arg == 'default')
  raise ValueError('no --lu option in train.py')


def _core_loss_key(src):
  tree = ast.parse(open(os.path.join(src, 'training', 'trainer.py')).read())
  for node in tree.body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'CORE_LOSS_KEY':
      return node.value.value
  raise ValueError('no CORE_LOSS_KEY in training/trainer.py')


SAM2_STEPS = ((3, 1), (3,))   # per frame: the number of masks M of each prediction step


def record_sam2(src, torch):
  """MultiStepMultiMasksAndIous: 2 frames (steps M=3,1 and M=3), 3 objects, 24x24 masks."""
  from hydra.utils import instantiate
  from omegaconf import OmegaConf
  with official(src, 'training', 'sam2'):
    trainer = types.ModuleType('training.trainer')
    trainer.CORE_LOSS_KEY = _core_loss_key(src)
    sys.modules['training.trainer'] = trainer
    from training import loss_fns
    cfg = OmegaConf.load(os.path.join(
        src, 'sam2', 'configs', 'sam2.1_training', 'sam2.1_hiera_b+_MOSE_finetune.yaml'))
    node = cfg.trainer.loss.all
    assert node._target_ == 'training.loss_fns.MultiStepMultiMasksAndIous'
    variants = dict(
        train=lambda: instantiate(node),
        default=lambda: loss_fns.MultiStepMultiMasksAndIous(
            weight_dict=dict(OmegaConf.to_container(node.weight_dict))))

    rng = np.random.default_rng(SEED + 2)
    n, h, w = 3, 24, 24
    targets = np.stack([blobs(rng, n, h, w, 1) for _ in SAM2_STEPS]).astype(np.float32)
    targets[1, 2] = 0.0                                      # object 2 absent from frame 1
    rec = dict(targets=targets)                              # [T, N, H, W]
    for f, steps in enumerate(SAM2_STEPS):
      for s, m in enumerate(steps):
        # mask logits: the target, sharper or blurrier per candidate mask, plus noise
        scale = rng.uniform(0.5, 6.0, (n, m, 1, 1))
        rec[f'masks_f{f}_s{s}'] = (scale * (2 * targets[f][:, None] - 1)
                                   + rng.normal(0.0, 4.0, (n, m, h, w))).astype(np.float32)
        rec[f'ious_f{f}_s{s}'] = rng.uniform(0.0, 1.0, (n, m)).astype(np.float32)
        rec[f'obj_f{f}_s{s}'] = rng.normal(0.0, 3.0, (n, 1)).astype(np.float32)
    rec['steps'] = np.array([len(s) for s in SAM2_STEPS])
    for name, build in variants.items():
      loss = build()
      rec[f'{name}_config'] = np.array(repr(dict(
          weight_dict=dict(loss.weight_dict), focal_alpha=loss.focal_alpha,
          focal_gamma=loss.focal_gamma, supervise_all_iou=loss.supervise_all_iou,
          iou_use_l1_loss=loss.iou_use_l1_loss, pred_obj_scores=loss.pred_obj_scores,
          focal_alpha_obj_score=loss.focal_alpha_obj_score,
          focal_gamma_obj_score=loss.focal_gamma_obj_score)))
      leaves, outs = {}, []
      for f, steps in enumerate(SAM2_STEPS):
        d = {}
        for key, field in (('masks', 'multistep_pred_multimasks_high_res'),
                           ('ious', 'multistep_pred_ious'),
                           ('obj', 'multistep_object_score_logits')):
          d[field] = []
          for s in range(len(steps)):
            leaf = torch.tensor(rec[f'{key}_f{f}_s{s}'], requires_grad=True)
            leaves[f'{key}_f{f}_s{s}'] = leaf
            d[field].append(leaf)
        outs.append(d)
      losses = loss(outs, torch.tensor(targets))
      core = losses[trainer.CORE_LOSS_KEY]
      core.backward()
      rec[f'{name}_core_loss'] = np.float32(core.item())
      for key in ('loss_mask', 'loss_dice', 'loss_iou', 'loss_class'):
        rec[f'{name}_{key}'] = np.float32(torch.as_tensor(losses[key]).detach().item())
      for key, leaf in leaves.items():
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        rec[f'{name}_grad_{key}'] = grad.numpy()
    return rec


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--stcn-src', help='checkout of hkchengrex/STCN')
  parser.add_argument('--afb-urr-src', help='checkout of xmlyqing00/AFB-URR')
  parser.add_argument('--sam2-src', help='checkout of facebookresearch/sam2')
  parser.add_argument('--out', default='tests/fixtures/loss')
  args = parser.parse_args()
  import torch
  torch.manual_seed(SEED)
  torch.set_num_threads(1)
  os.makedirs(args.out, exist_ok=True)
  jobs = [('stcn', args.stcn_src, record_stcn), ('afb_urr', args.afb_urr_src, record_afb_urr),
          ('sam2', args.sam2_src, record_sam2)]
  for name, src, record in jobs:
    if not src:
      continue
    rec = record(src, torch)
    rec['torch_version'] = np.array(torch.__version__)
    path = os.path.join(args.out, f'{name}.npz')
    np.savez_compressed(path, **rec)
    print(f'{path}: {os.path.getsize(path) / 1024:.1f} KB, {len(rec)} arrays')


if __name__ == '__main__':
  main()
