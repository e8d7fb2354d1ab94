"""RPM-Net (Kim et al., WACV 2020): everything that is RPM-Net's own, and its ``FAMILY``.

  * ``modeling``: the network (FCN-ResNet embedding, deformable matching module);
  * ``deform_conv``: the deformable convolution and layer 109's sampling;
  * ``inference``: the per-frame label-propagation step;
  * ``convert``: checkpoints (no official release exists: ``.npz`` of this layout);
  * ``training``: the self-supervised trainer (reconstruct a frame from its neighbour).
"""

from memvos_jax.models.family import Family
from memvos_jax.models.rpm import convert, inference, modeling, training


def _memory_frames(num_frames, annotated, options):
  del num_frames, annotated, options
  return 1   # no memory bank: the carry is the previous frame only


def train(config, workdir: str | None = None, log=print, variables=None):
  """Self-supervised training (frame pairs, no masks): ``training.train``; returns
  (variables, history)."""
  return training.train(FAMILY, config, workdir, log, variables)


FAMILY = Family(
    name='rpm',
    network=modeling.RPMNet,
    build=modeling.RPMNet,
    init_variables=modeling.init_variables,
    abstract_variables=convert.abstract_variables,
    convert=convert.convert,
    make_settings=inference.RPMSettings,
    init_state=inference.init_state,
    step=inference.frame_step,
    memory_frames=_memory_frames,
    trainer=train,
)
