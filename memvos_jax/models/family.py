"""``Family``: what the shared drivers need from one model.

Every model package ``memvos_jax/models/<name>/`` declares ``FAMILY = Family(...)``
in its ``__init__``, from its own network (``modeling``), per-frame inference
step (``inference``) and converter (``convert``). ``memvos_jax.registry`` lists
the model packages; the clip driver (``inference.clip.ClipSegmenter``), the
training loop (``training.trainer``), ``eval.py``, the Python API and the
converter CLI are handed a ``Family`` and use nothing else of a model.
"""

import dataclasses
import os
import warnings
from typing import Any, Callable

import jax
import numpy as np

from memvos_jax.convert.checkpoint import is_flax_npz, load_npz, restore_variables
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import InputError
from memvos_jax.inference import dtypes


@dataclasses.dataclass(frozen=True)
class Family:
  """One model, as the shared drivers see it.

  Attributes:
    name: config ``model`` value.
    network: the flax module class ``build`` returns (``registry.of`` finds a
      built network's family by it).
    build: ``(**config.network) -> flax module``.
    init_variables: ``(module, rng) -> variables`` (random weights).
    abstract_variables: ``module -> pytree of ShapeDtypeStruct`` (restore target).
    convert: ``(state_dict, module, source) -> variables`` (official checkpoint,
      strict: missing/unexpected/mis-shaped keys raise CheckpointError).
    make_settings: ``(**options) -> hashable settings`` for one compiled program;
      options are ``config.inference`` entries plus ``capacity``, ``chunk``,
      ``return_probs`` and ``out_size``; an unknown option is a TypeError.
    init_state: ``(module, settings, num_objects, size) -> state`` pytree.
    step: ``(module, params, settings, state, FrameInput) -> (state, FrameOutput)``,
      pure, traced once per clip shape (``inference.core.make_chunk_fn`` scans it).
    memory_frames: ``(num_frames, annotated_frames, settings_options) -> int``:
      the slots an unbounded official memory would use (capacity 0 = auto).
    bucket_memory: an automatic memory (capacity 0) is rounded up by
      ``memory.bank.bucket_capacity`` (True where empty slots are masked out of every read:
      clips of different lengths then share one compiled program).
    trainer: ``train(config, workdir)`` for this model (``train.py`` calls it for
      ``config.model``), or None when only official weights are converted.
    check_config: ``config -> None``, raising ``InputError('config.<key>', problem)``
      for the model's own keys (network, loss); run by ``training.config_check``.
    cast_variables: ``(variables, dtype) -> variables`` for a program in compute
      ``dtype`` (``'float32'``: as loaded); default: every floating leaf in it.
  """
  name: str
  network: type
  build: Callable[..., Any]
  init_variables: Callable[..., Any]
  abstract_variables: Callable[..., Any]
  convert: Callable[..., dict]
  make_settings: Callable[..., Any]
  init_state: Callable[..., Any]
  step: Callable[..., Any]
  memory_frames: Callable[..., int]
  bucket_memory: bool = False
  trainer: Callable[..., Any] | None = None
  check_config: Callable[..., None] | None = None
  cast_variables: Callable[..., Any] = dtypes.cast_variables

  def convert_file(self, path: str, model=None) -> dict:
    """Read an official ``.pth``/``.pt``/``.npz`` file and convert it for ``model``
    (default: the network with its default settings)."""
    if not os.path.isfile(path):
      raise InputError(path, 'checkpoint file does not exist')
    model = model if model is not None else self.build()
    return self.convert(load_state_dict(path), model, source=path)

  def load_variables(self, config, model, bf16_kernels: bool = True):
    """Variables from ``config.checkpoint``: official .pth/.npz, orbax folder, a Flax
    ``.npz`` (``convert.checkpoint.save_npz``, the shipped weights), or random.

    When ``config.inference.dtype`` is or resolves to ``'bfloat16'`` it first sets the XLA
    flag for bf16 kernels (``dtypes.bf16_kernels``): loading weights starts JAX's backend.
    ``bf16_kernels=False`` (training): never, as the flag also changes float32 matmul
    rounding, so the training step would depend on the inference dtype.
    """
    if bf16_kernels and self.make_settings(
        dtype=config.get('inference', {}).get('dtype', 'float32')).dtype == 'bfloat16':
      dtypes.bf16_kernels()
    path = config.checkpoint
    if not path:
      warnings.warn('config.checkpoint is empty: using randomly initialised weights')
      return self.init_variables(model, jax.random.key(0))
    if os.path.isdir(path) or is_flax_npz(path):   # a damaged file: one CheckpointError line
      # The target is built once the file has been read (a damaged one is reported first).
      target = lambda: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                                    self.abstract_variables(model))
      return restore_variables(path, target) if os.path.isdir(path) else load_npz(path, target)
    return self.convert_file(path, model)
