"""Runs an official PyTorch VOS implementation (STCN, STM, AFB-URR, SAM 2) on one clip.

This script runs in a *torch* environment (not ours) against a checkout of the
official repository that the user points at (never part of this repo). The
official code is imported unedited; the official evaluation loop of
``eval_davis.py`` (STCN), ``eval_DAVIS.py``'s ``Run_video`` (STM),
``eval.py``'s ``eval_DAVIS`` (AFB-URR) or ``tools/vos_inference.py``'s
``vos_inference`` (SAM 2, whose CUDA bfloat16 autocast does nothing on the
CPU; ``--sam2-config``, default Hiera-T 2.1; needs hydra-core and iopath) is
replayed step for step, with only what a CPU run needs: STCN's ``.cuda()``
calls and ``device='cuda'`` tensors are sent to the CPU, ImageNet weights are
not downloaded (the checkpoint replaces them), and where the compiled
``torch_scatter`` extension is not installed, AFB-URR's one call into it
(``scatter_mean``) is given by a few lines of torch.

    python benchmarks/official_runner.py --model stcn --src ~/STCN \
        --davis-root /tmp/davis --clip long270 --weights stcn.pth \
        --out official.npz [--no-mkldnn] [--threads 2]

``--davis-root`` is a DAVIS-2017-style tree (``JPEGImages/480p/<clip>``,
``Annotations/480p/<clip>/00000.png``), the layout both official test
datasets read. The ``.npz`` written holds ``masks`` [T, H, W] uint8 (argmax),
``probs_u8`` [T, K+1, H, W] = round(255 p) (background first), ``seconds``
(the inference loop alone), ``frame_starts`` [T] (seconds from the start of
that loop to the moment the official code begins frame t's own work, after
frame t-1 is memorised: STCN's ``InferenceCore.encode_key(t)`` call,
AFB-URR's loop iteration t, STM's ``model(frame t, keys, values)`` call (its
iteration t first memorises frame t-1); frame 0 is 0), ``frame_cpu`` [T] and
``cpu_seconds`` (the same in CPU seconds of the process, all threads),
``peak_rss_gb`` (``VmHWM`` at the end), and for AFB-URR the bank size per
class after every update (``bank_after`` [T-2, K+1]) and the LFU removals
(``removed``). SAM 2 gives no probabilities (``vos_inference`` thresholds
each object's logits at 0): its ``.npz`` has ``masks`` but no ``probs_u8``.

``--no-mkldnn`` sets ``torch.backends.mkldnn.enabled = False`` (convolutions
through PyTorch's native CPU kernels instead of oneDNN): the official code's
own float32 noise, against which our drift is measured (docs/parity.md).
"""

import argparse
import contextlib
import os
import sys
import time

import numpy as np


class FrameClock:
  """Wall and CPU seconds since ``start()`` at which each frame's work begins.

  Only observes: ``mark(t)`` is called where the official loop starts frame
  t's own work, after frame t-1 is memorised (STCN: by wrapping the
  InferenceCore's ``encode_key``; AFB-URR: at the top of the replayed loop;
  STM: before the segmentation call, since its iteration t begins by
  memorising frame t-1). ``vs_official.py`` times the official code over
  the same frames as ours from these marks.
  """

  def start(self, frames):
    self.starts = np.zeros(frames)
    self.cpu = np.zeros(frames)
    self.seen = set()
    self.tic, self.cpu0 = time.perf_counter(), time.process_time()

  def mark(self, t):
    if t not in self.seen:
      self.seen.add(t)
      self.starts[t] = time.perf_counter() - self.tic
      self.cpu[t] = time.process_time() - self.cpu0

  def stop(self):
    """(wall seconds, CPU seconds) since ``start``, and the per-frame marks."""
    return dict(seconds=time.perf_counter() - self.tic,
                cpu_seconds=time.process_time() - self.cpu0,
                frame_starts=self.starts, frame_cpu=self.cpu)


def peak_rss_gb():
  """Peak resident set size of this process (``VmHWM``) in GB (1e9 bytes)."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1]) * 1024 / 1e9
  return float('nan')


def cpu_only(torch):
  """Makes ``.cuda()`` and ``device='cuda'`` mean the CPU (the official STCN assumes a GPU)."""
  torch.Tensor.cuda = lambda self, *a, **k: self
  torch.nn.Module.cuda = lambda self, *a, **k: self
  zeros = torch.zeros

  def zeros_on_cpu(*args, **kwargs):
    if str(kwargs.get('device', 'cpu')).startswith('cuda'):
      kwargs['device'] = 'cpu'
    return zeros(*args, **kwargs)
  torch.zeros = zeros_on_cpu


def no_downloads(torch):
  """ImageNet initialisations are not fetched (no network; the checkpoint replaces them).

  STCN's ResNets call ``model_zoo.load_url`` (given an empty dict: nothing
  loaded); STM builds ``torchvision.models.resnet50(pretrained=True)`` (built
  without weights instead).
  """
  import torch.utils.model_zoo
  import torchvision.models
  torch.utils.model_zoo.load_url = lambda *a, **k: {}
  torch.hub.load_state_dict_from_url = lambda *a, **k: {}
  for name in ('resnet18', 'resnet50'):
    build = getattr(torchvision.models, name)
    setattr(torchvision.models, name,
            lambda *a, _build=build, **k: _build(weights=None))


def torch_scatter_shim(torch):
  """``torch_scatter.scatter_mean`` (AFB-URR's one use of that compiled extension) in torch.

  Same semantics: sums of ``src`` into ``out`` at ``index`` along ``dim``,
  divided by the count per target (a count of 0 divides by 1).
  """
  import types

  def scatter_mean(src, index, dim=-1, out=None):
    out = torch.zeros_like(src) if out is None else out
    out.scatter_add_(dim, index, src)
    count = torch.zeros_like(out).scatter_add_(dim, index, torch.ones_like(src))
    out.div_(count.clamp(min=1))
    return out
  sys.modules.setdefault('torch_scatter', types.SimpleNamespace(scatter_mean=scatter_mean))


def run_stcn(args, torch):
  """eval_davis.py's loop: InferenceCore.interact on frame 0, probs un-padded, argmax."""
  import torch.nn.functional as F
  from dataset.davis_test_dataset import DAVISTestDataset
  from inference_core import InferenceCore
  from model.eval_network import STCN
  from util.tensor_util import unpad

  data = DAVISTestDataset(args.davis_root, imset='2017/val.txt', target_name=args.clip)[0]
  net = STCN().eval()
  saved = torch.load(args.weights, map_location='cpu')
  net.load_state_dict(saved)
  rgb = data['rgb'][None]                  # [1, T, 3, H, W]
  msk = data['gt']                         # [K, T, 1, H, W]
  k = len(data['info']['labels'])
  size = data['info']['size_480p']
  clock = FrameClock()
  clock.start(rgb.shape[1])
  core = InferenceCore(net, rgb, k, top_k=args.top_k, mem_every=args.mem_every)
  encode_key = core.encode_key             # the official method, observed: it begins every frame

  def timed_encode_key(idx):
    clock.mark(idx)
    return encode_key(idx)
  core.encode_key = timed_encode_key
  core.interact(msk[:, 0], 0, rgb.shape[1])
  probs = []
  for ti in range(core.t):
    prob = unpad(core.prob[:, ti], core.pad)
    probs.append(F.interpolate(prob, size, mode='bilinear', align_corners=False)[:, 0])
  timing = clock.stop()
  probs = torch.stack(probs).numpy()       # [T, K+1, H, W]
  return dict(probs=probs, masks=probs.argmax(1).astype(np.uint8), **timing)


def run_afb_urr(args, torch):
  """eval.py's eval_DAVIS loop, with the bank sizes and LFU removals of every update."""
  import torch.nn.functional as F
  from dataset import DAVIS_Test_DS
  from model import AFB_URR, FeatureBank

  frames, masks, obj_n, _ = DAVIS_Test_DS(args.davis_root, img_set='2017/val.txt')[0]
  obj_n = int(obj_n)                       # eval.py: obj_n.item() of the loader's tensor
  device = torch.device('cpu')
  model = AFB_URR(device, update_bank=True, load_imagenet_params=False).to(device).eval()
  saved = torch.load(args.weights, map_location='cpu')
  if 'model' in saved:
    saved = saved['model']
  model.load_state_dict(saved, strict=False)
  frame_n = frames.shape[0]
  removed = []
  clock = FrameClock()
  clock.start(frame_n)
  pred_mask = masks[0:1]
  probs = [pred_mask[0].numpy()]
  fb = FeatureBank(obj_n, args.budget, device, update_rate=args.update_rate,
                   thres_close=args.merge_thres)
  remove = fb.remove

  def counting_remove(class_idx, request_n, *rest):
    before = fb.keys[class_idx].shape[1]
    out = remove(class_idx, request_n, *rest)
    removed[-1][class_idx] += before - fb.keys[class_idx].shape[1]
    return out
  fb.remove = counting_remove
  k4, v4 = model.memorize(frames[0:1], pred_mask)
  fb.init_bank(k4, v4)
  bank_after = []
  for t in range(1, frame_n):
    clock.mark(t)
    score, _ = model.segment(frames[t:t + 1], fb)
    pred_mask = F.softmax(score, dim=1)
    probs.append(pred_mask[0].numpy())
    if t < frame_n - 1:
      k4, v4 = model.memorize(frames[t:t + 1], pred_mask)
      removed.append([0] * obj_n)
      fb.update(k4, v4, t)
      bank_after.append([fb.keys[i].shape[1] for i in range(obj_n)])
  timing = clock.stop()
  probs = np.stack(probs)
  return dict(probs=probs, masks=probs.argmax(1).astype(np.uint8), **timing,
              bank_after=np.array(bank_after), removed=np.array(removed))


def run_stm(args, torch):
  """eval_DAVIS.py's Run_video (Mem_every), optionally teacher-forced.

  With ``--teacher NPZ`` (a recording with ``probs_u8`` [T, K+1, H, W]) the
  frame memorised before frame t is the recording's frame t-1 probabilities
  (round(255 p) / 255) instead of the official estimate: both ports then see
  the same inputs on every frame, so per-frame parity is tested without the
  drift a free run carries forward.
  """
  import torch.nn as nn
  import torch.nn.functional as F
  from dataset import DAVIS_MO_Test
  from model import STM

  fs, ms, num_objects, _ = DAVIS_MO_Test(args.davis_root, resolution='480p',
                                         imset='2017/val.txt')[0]
  fs, ms = fs[None], ms[None]              # [1, 3, T, H, W], [1, 11, T, H, W]
  num_objects = torch.as_tensor(num_objects).reshape(1, 1)
  model = nn.DataParallel(STM()).eval()
  model.load_state_dict(torch.load(args.weights, map_location='cpu'))
  teacher = None
  if args.teacher:
    teacher = torch.from_numpy(np.load(args.teacher)['probs_u8'].astype(np.float32) / 255.0)
  t_n = fs.shape[2]
  to_memorize = [int(i) for i in np.arange(0, t_n, step=args.mem_every)]
  es = torch.zeros_like(ms)
  es[:, :, 0] = ms[:, :, 0]
  clock = FrameClock()
  clock.start(t_n)
  for t in range(1, t_n):
    prev = es[:, :, t - 1]
    if teacher is not None and t > 1:
      prev = torch.zeros_like(prev)
      prev[0, :teacher.shape[1]] = teacher[t - 1]
    prev_key, prev_value = model(fs[:, :, t - 1], prev, num_objects[0])
    if t - 1 == 0:
      this_keys, this_values = prev_key, prev_value
    else:
      this_keys = torch.cat([keys, prev_key], dim=3)
      this_values = torch.cat([values, prev_value], dim=3)
    clock.mark(t)                          # frame t-1 memorised: frame t's own work begins
    logit = model(fs[:, :, t], this_keys, this_values, num_objects[0])
    es[:, :, t] = F.softmax(logit, dim=1)
    if t - 1 in to_memorize:
      keys, values = this_keys, this_values
  timing = clock.stop()
  probs = es[0, :int(num_objects) + 1].permute(1, 0, 2, 3).numpy()   # [T, K+1, H, W]
  return dict(probs=probs, masks=probs.argmax(1).astype(np.uint8), **timing,
              teacher_forced=teacher is not None)


def put_per_obj_mask(per_obj_mask, height, width):
  """``tools/vos_inference.py``'s ``put_per_obj_mask`` (a lower id wins an overlap)."""
  mask = np.zeros((height, width), dtype=np.uint8)
  for object_id in sorted(per_obj_mask)[::-1]:
    mask[per_obj_mask[object_id].reshape(height, width)] = object_id
  return mask


def run_sam2(args, torch):
  """tools/vos_inference.py's vos_inference: frame 0's masks (add_new_mask), propagate_in_video.

  The predictor is built as vos_inference builds it for DAVIS-style PNGs
  (``++model.non_overlap_masks=true``), with ``build_sam2_video_predictor``'s
  default post-processing (``fill_hole_area`` 8 needs the CUDA extension: on
  the CPU the official code warns and skips it). ``init_state`` (JPEG
  decoding, resizing to the model's input size) is outside the timed loop;
  frame t's work begins when the generator is resumed after yielding frame t-1.
  """
  from PIL import Image
  from sam2.build_sam import build_sam2_video_predictor

  predictor = build_sam2_video_predictor(args.sam2_config, args.weights, device='cpu',
                                         hydra_overrides_extra=['++model.non_overlap_masks=true'])
  video_dir = os.path.join(args.davis_root, 'JPEGImages', '480p', args.clip)
  first = np.array(Image.open(os.path.join(args.davis_root, 'Annotations', '480p', args.clip,
                                           '00000.png'))).astype(np.uint8)
  object_ids = [int(i) for i in np.unique(first) if i > 0]
  autocast = (torch.autocast('cpu', dtype=torch.bfloat16) if args.bf16
              else contextlib.nullcontext())
  with torch.inference_mode(), autocast:
    state = predictor.init_state(video_path=video_dir, async_loading_frames=False)
    h, w, frame_n = state['video_height'], state['video_width'], state['num_frames']
    masks = np.zeros((frame_n, h, w), np.uint8)
    clock = FrameClock()
    clock.start(frame_n)
    for object_id in object_ids:
      predictor.add_new_mask(inference_state=state, frame_idx=0, obj_id=object_id,
                             mask=first == object_id)
    for t, out_ids, logits in predictor.propagate_in_video(state):
      masks[t] = put_per_obj_mask({oid: (logits[i] > 0.0).cpu().numpy()
                                   for i, oid in enumerate(out_ids)}, h, w)
      if t + 1 < frame_n:
        clock.mark(t + 1)
    timing = clock.stop()
  return dict(probs=None, masks=masks, **timing)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--model', choices=['stcn', 'stm', 'afb_urr', 'sam2'], required=True)
  p.add_argument('--src', required=True, help='checkout of the official repository')
  p.add_argument('--davis-root', required=True)
  p.add_argument('--clip', required=True)
  p.add_argument('--weights', required=True, help='official-format .pth')
  p.add_argument('--out', required=True)
  p.add_argument('--no-mkldnn', action='store_true')
  p.add_argument('--threads', type=int, default=2)
  p.add_argument('--mem-every', type=int, default=5)
  p.add_argument('--top-k', type=int, default=20)
  p.add_argument('--budget', type=int, default=300000)
  p.add_argument('--update-rate', type=float, default=0.1)
  p.add_argument('--merge-thres', type=float, default=0.95)
  p.add_argument('--sam2-config', default='configs/sam2.1/sam2.1_hiera_t.yaml',
                 help='SAM 2: the official hydra config of the checkpoint')
  p.add_argument('--bf16', action='store_true',
                 help="SAM 2: run under torch.autocast('cpu', dtype=torch.bfloat16), as the "
                      'official predictor runs under CUDA autocast on GPUs')
  p.add_argument('--teacher', help='STM: a recording whose probs_u8 are memorised (teacher forcing)')
  args = p.parse_args()
  if args.bf16 and args.model != 'sam2':
    sys.exit('official_runner: --bf16 is for --model sam2')
  if not os.path.isdir(args.src):
    sys.exit(f'official_runner: --src {args.src}: not a directory')
  sys.path.insert(0, os.path.abspath(args.src))
  import torch
  torch.set_num_threads(args.threads)
  torch.set_grad_enabled(False)
  torch.backends.mkldnn.enabled = not args.no_mkldnn
  cpu_only(torch)
  no_downloads(torch)
  try:
    import torch_scatter  # noqa: F401
  except ImportError:
    torch_scatter_shim(torch)
  out = dict(stcn=run_stcn, stm=run_stm, afb_urr=run_afb_urr,
             sam2=run_sam2)[args.model](args, torch)
  probs = out.pop('probs')
  if probs is not None:
    out['probs_u8'] = np.round(probs * 255).astype(np.uint8)
  np.savez_compressed(args.out, mkldnn=not args.no_mkldnn, torch=torch.__version__, bf16=args.bf16,
                      threads=args.threads, torch_threads=torch.get_num_threads(),
                      peak_rss_gb=peak_rss_gb(), **out)
  print(f'{args.model} {args.clip}: {len(out["masks"])} frames in {out["seconds"]:.1f} s '
        f'(mkldnn {"off" if args.no_mkldnn else "on"}) -> {args.out}')


if __name__ == '__main__':
  main()
