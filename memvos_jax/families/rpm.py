"""RPM-Net: the network, its checkpoint reader (``convert/rpm.py``) and the label-propagation core."""

from memvos_jax.convert import rpm as convert_rpm
from memvos_jax.families import Family
from memvos_jax.inference import rpm as core
from memvos_jax.models import rpm


def _make_settings(propagate='hard', resolution='full', calibrate=True,
                   **common) -> core.RPMSettings:
  return core.RPMSettings(propagate=propagate, resolution=resolution,
                          calibrate=calibrate, **common)


def _memory_frames(num_frames, annotated, options):
  del num_frames, annotated, options
  return 1   # no memory bank: the carry is the previous frame only


FAMILY = Family(
    name='rpm',
    build=rpm.RPMNet,
    init_variables=rpm.init_variables,
    abstract_variables=convert_rpm.abstract_variables,
    convert=convert_rpm.convert,
    make_settings=_make_settings,
    init_state=core.init_state,
    step=core.frame_step,
    memory_frames=_memory_frames,
    trainer='memvos_jax.training.rpm',     # self-supervised (frame pairs, no masks)
)
