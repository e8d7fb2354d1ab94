"""The supervised training loop, handed a model: ``train(family, config, workdir, ...)``.

A model's own ``train(config, workdir)`` calls it with its pieces (STCN:
``memvos_jax.models.stcn.train``, with STCN's batch loss and BatchNorm
calibration); ``train.py``, scripts and notebooks call that.

Order of work: validate the config and the data folders (no compilation
yet), build the model and the mesh, restore the newest readable checkpoint
(the data iterator starts at its step) or initialise, then run the jitted
update with a progress bar, metrics (TensorBoard + JSON lines), checkpoints
every N steps and validation J&F on held-out synthetic clips. Ends with a
summary.

Several processes (``training.distributed``, docs/multihost.md): every
process runs this same function on its slice of each global batch; they
connect and check that their configs agree before anything else. Process 0
alone prints, writes the metrics (with the global batch's sample indices)
and the summary; every process logs the samples it fed to
``<workdir>/data_log/process-<i>-of-<n>.jsonl``; checkpoints are orbax's
multi-process saves (``checkpointing``).
"""

import json
import os
import sys
import time

import jax
import numpy as np
import tqdm

from memvos_jax.data import sampling
from memvos_jax.convert import imagenet
from memvos_jax.training import checkpointing, config_check, distributed, evaluation
from memvos_jax.training import update as update_lib
from memvos_jax.training import state as state_lib
from memvos_jax.training.writers import JsonLines, MetricWriter


def _log(msg: str):
  tqdm.tqdm.write(msg, file=sys.stdout)
  sys.stdout.flush()


def train(family, config, workdir: str, devices=None, *, loss_fn, calibrate=None,
          optimizer=None) -> dict:
  """Train (or resume) ``family``'s network in ``workdir``; returns the summary (also
  ``summary.json``).

  ``loss_fn``: the batch loss the update differentiates (``update.train_step``);
  ``calibrate(model, variables, batch) -> variables``: BatchNorm statistics from
  the first batch (``training.bn_from_data``, random init only);
  ``optimizer(config) -> (optax transformation, lr schedule)``: a model's own
  optimiser (SAM 2: AdamW with layer decay), the schedule logged as ``lr``;
  default the engine's (``state.make_optimizer``, ``state.lr_schedule``).
  """
  t = config.training
  config_check.check_launch(config)
  if t.distributed:
    distributed.initialize(t)
    distributed.check_same_config(config, workdir)
  devices = list(devices) if devices is not None else jax.devices()

  def checked_data():
    config_check.check(config, len(devices), jax.process_count(),
                       encoders=getattr(family.network, 'encoders', {}), family=family)
    return sampling.make_dataset(config)          # data folders checked here
  ds, desc = distributed.agree(checked_data)
  d = config.data
  if not (d.davis_root or d.yvos_root or d.static_root
          or d.davis_tfds or d.yvos_tfds or d.static_tfds):
    desc = ('no data configured (data.davis_root / yvos_root / static_root or their '
            '*_tfds datasets): '
            f'training on the embedded synthetic videos, {desc}')
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  if lead:
    _log(f'data: {desc}')

  model = family.build(**config.network.to_dict())
  optimizer, schedule = (optimizer(config) if optimizer is not None else
                         (state_lib.make_optimizer(config), state_lib.lr_schedule(config)))
  # The family's restore target: what a checkpoint converts to strictly and the shapes of
  # the random init, without reading config.checkpoint (it is read once, to start).
  abstract_vars = family.abstract_variables(model)
  abstract = jax.eval_shape(lambda v: state_lib.create_state(v, optimizer), abstract_vars)
  mesh = update_lib.make_mesh(devices)
  update, state_sh = update_lib.make_update(model, config, optimizer, mesh, abstract, loss_fn)

  mngr = checkpointing.manager(workdir, t.keep_checkpoints)
  state = checkpointing.restore(mngr, abstract, state_sh)
  start = 0 if state is None else int(jax.device_get(state.step))
  data_iter = sampling.make_iterator(ds, config, start)   # the data position is the step
  if state is None:
    variables = state_lib.init_variables(config, model, family)
    if not config.checkpoint and t.bn_from_data and calibrate is not None:
      # The whole global batch 0 on every process, so that all set the same statistics.
      first = ds[0] if jax.process_count() == 1 else sampling.make_dataset(config, 0, 1)[0][0]
      variables = calibrate(model, variables, first)
    if t.backbone_init:   # ImageNet backbones: their weights and BatchNorm statistics
      variables, lines = imagenet.apply_backbone_init(config, model, variables)
      for line in lines if lead else ():
        _log(line)
    state = jax.jit(lambda v: state_lib.create_state(v, optimizer),
                    out_shardings=state_sh)(variables)
    del variables
  if lead:
    hosts = (f' over {jax.process_count()} processes (batch {t.batch_size // jax.process_count()}'
             ' each)' if jax.process_count() > 1 else '')
    _log(f'model: {family.network.__name__} {dict(config.network)}; {len(devices)} device(s) '
         f'({devices[0].platform}), global batch {t.batch_size}{hosts}, '
         f'{t.crop_size}px crops, {t.num_frames} frames, {t.max_objects} object(s)')
    _log(f'workdir: {os.path.abspath(workdir)} '
         + (f'(resumed from step {start})' if start else '(new run)'))

  writer = MetricWriter(workdir, enabled=lead)
  data_log = JsonLines(os.path.join(
      workdir, 'data_log', f'process-{jax.process_index()}-of-{jax.process_count()}.jsonl'))
  validator = evaluation.Validator(config, family, model) if t.eval_every and lead else None
  bar = tqdm.tqdm(total=t.num_steps, initial=start, desc='train', unit='step',
                  disable=not (t.progress and lead), file=sys.stderr, dynamic_ncols=True)
  pending, last, val, saved = [], None, None, None
  t_start = t_window = time.perf_counter()
  steps_done = 0
  # Several processes: a step that stops progressing (a collective another process never
  # joins) ends this one with one line instead of a hang.
  watchdog = distributed.Watchdog()
  after_eval = False   # from a validation to the next exchange with process 0
  try:
    for step in range(start + 1, t.num_steps + 1):
      if after_eval and not lead:   # process 0 validates alone: no deadline until it is back
        watchdog.disarm()
      else:
        watchdog.arm(step, 'the training step', t.collective_timeout + (
            t.initialization_timeout if step == start + 1 else 0))
      batch = next(data_iter)
      indices = batch.pop('index')
      batch = update_lib.put_batch(batch, mesh)
      if step == start + 1:   # compiled ahead, then every process starts together
        update = distributed.compile_together(update, state, batch,
                                              timeout_s=t.initialization_timeout, step=step)
      state, metrics = update(state, batch)
      pending.append((step, metrics, indices))
      steps_done += 1
      bar.update(1)
      if step % t.log_every == 0 or step == t.num_steps:
        now = time.perf_counter()
        rate = len(pending) / max(now - t_window, 1e-9)
        t_window = now
        watchdog.call('gather_rows (the logged sample indices)')
        local = np.stack([np.asarray(idx) for _, _, idx in pending])
        # The global batches' sample indices.
        every = distributed.gather_rows(local, step)
        after_eval = False
        watchdog.call('the training step (its device collectives)')
        for (s, m, idx), all_idx in zip(pending, every):
          m = {k: float(v) for k, v in jax.device_get(m).items()}
          m['lr'] = float(schedule(s - 1))
          m['steps_per_sec'] = rate
          writer.write(s, m, indices=[int(i) for i in all_idx])
          data_log.write({'step': s, 'indices': [int(i) for i in idx]})
          last = m
        pending = []
        bar.set_postfix(loss=f'{last["loss"]:.4f}', iou=f'{last["iou"]:.3f}',
                        steps_s=f'{rate:.3f}', refresh=False)
      if step % t.checkpoint_every == 0 or step == t.num_steps:
        watchdog.call('the checkpoint save')
        saved = checkpointing.save(mngr, state, t.batch_size)
        if lead:
          _log(f'step {step}: checkpoint saved: {mngr.directory}/{saved}')
      if t.eval_every and (step % t.eval_every == 0 or step == t.num_steps):
        watchdog.call('the gather of the variables for validation')
        host = checkpointing.as_numpy(state.variables)   # a collective: on every process
        watchdog.disarm()   # validation runs on process 0 alone, as long as it takes
        after_eval = True
        if validator is not None:
          val = validator(host)
          writer.write(step, {f'val/{k}': v for k, v in val.items()}
                       | {f'val/copy_first_{k}': v for k, v in validator.baseline.items()})
          _log(f'step {step}: held-out J&F {val["J&F"]:.4f} (J {val["J"]:.4f}, '
               f'F {val["F"]:.4f}); copy-first-frame {validator.baseline["J&F"]:.4f}')
  finally:
    watchdog.disarm()
    bar.close()
    writer.close()
    data_log.close()
  seconds = time.perf_counter() - t_start
  final = int(jax.device_get(state.step))
  saved = saved if saved is not None else (mngr.latest_step() if mngr.all_steps() else None)
  summary = {
      'steps': final, 'steps_this_run': steps_done, 'seconds': seconds,
      'steps_per_sec': steps_done / max(seconds, 1e-9),
      'final_loss': last['loss'] if last else None,
      'checkpoint': f'{mngr.directory}/{saved}' if saved is not None else None,
      'variables': checkpointing.variables_path(workdir, saved) if saved is not None else None,
      'validation': val, 'copy_first_frame': validator.baseline if validator else None,
      'data': desc,
  }
  mngr.close()
  if lead:
    with open(os.path.join(workdir, 'summary.json'), 'w') as f:
      json.dump(summary, f, indent=1)
    _log(_summary_text(summary, workdir))
  return summary


def _summary_text(s: dict, workdir: str) -> str:
  lines = ['', '=== training summary ===',
           f'steps: {s["steps"]} ({s["steps_this_run"]} this run, {s["seconds"]:.0f}s, '
           f'{s["steps_per_sec"]:.3f} steps/s)']
  if s['final_loss'] is not None:
    lines.append(f'final loss: {s["final_loss"]:.4f}')
  if s['validation']:
    v, b = s['validation'], s['copy_first_frame']
    lines.append(f'held-out J&F: {v["J&F"]:.4f} (copy-first-frame baseline {b["J&F"]:.4f}, '
                 f'{v["J&F"] - b["J&F"]:+.4f})')
  if s['checkpoint']:
    lines.append(f'checkpoint: {s["checkpoint"]}')
    lines.append(f'evaluate: python eval.py --config <this config> '
                 f'--config.checkpoint={s["variables"]} --config.data.root=... --workdir=...')
  lines.append(f'metrics: {os.path.join(os.path.abspath(workdir), "metrics.jsonl")}, '
               f'TensorBoard: {os.path.join(os.path.abspath(workdir), "tensorboard")}')
  return '\n'.join(lines)
