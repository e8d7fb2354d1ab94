"""Model families: one name ties a network, its converter and its inference core.

Every model (``stcn``, ``stm``, ``afb_urr``, ...) lives in
``memvos_jax/families/<name>.py`` as ``FAMILY = Family(...)``: the declaration
tying its network (``models/``), converter (``convert/``), inference core
(``inference/``) and trainer; ``get(name)`` imports it on first use, so one
model's code never loads for another. ``loading`` builds a family's network
from a config and loads its weights. The clip driver
(``inference.clip.ClipSegmenter``), ``eval.py``, the Python API and the
converter CLI only talk to a ``Family``.
"""

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

_HELPERS = ('loading',)   # modules of this package that are not families


@dataclasses.dataclass(frozen=True)
class Family:
  """What the shared drivers need from a model.

  Attributes:
    name: config ``model`` value.
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
    trainer: the module whose ``train(config, workdir)`` trains this model
      (``train.py`` dispatches on ``config.model``), or None when only
      official weights are converted.
  """
  name: str
  build: Callable[..., Any]
  init_variables: Callable[..., Any]
  abstract_variables: Callable[..., Any]
  convert: Callable[..., dict]
  make_settings: Callable[..., Any]
  init_state: Callable[..., Any]
  step: Callable[..., Any]
  memory_frames: Callable[..., int]
  trainer: str | None = None


def available() -> list[str]:
  """Names of the families shipped in this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if not m.name.startswith('_') and m.name not in _HELPERS)


def get(name: str) -> Family:
  """The family called ``name``; a ValueError lists the known ones."""
  if name not in available():
    raise ValueError(f'unknown model {name!r} (known: {", ".join(available())})')
  return importlib.import_module(f'{__name__}.{name}').FAMILY


def trainable() -> list[str]:
  """Names of the families ``train.py`` can train."""
  return [n for n in available() if get(n).trainer]


def train_fn(name: str) -> Callable[..., Any]:
  """``train(config, workdir)`` of family ``name``; a ValueError names the trainable ones."""
  trainer = get(name).trainer
  if not trainer:
    raise ValueError(f'model {name!r} has no trainer here: its official weights are converted '
                     f'instead (train.py trains: {", ".join(trainable())})')
  return importlib.import_module(trainer).train


def of(module) -> Family:
  """The family a built network belongs to (``module.family``, default stcn)."""
  return get(getattr(module, 'family', 'stcn'))
