"""Object ids <-> scan slots: the bookkeeping between user masks and the compiled scan.

User masks carry object ids (uint8 labels, 0 = background); the scan works on
K static slots (slot i = object i-1 of ``FrameInput.given``, 0 = background).
``ObjectSlots`` holds both lookup tables and the frame each object was first
given on; the clip driver (``clip.ClipSegmenter``), the streaming session
(``api.StreamingSession``) and training validation use it.
"""

import numpy as np


class ObjectSlots:
  """Up to ``max_objects`` objects, each given a slot (1..K) on first sight."""

  def __init__(self, max_objects: int):
    self.lut = np.zeros(256, np.uint8)                 # object id -> slot (0: unknown / bg)
    self.ids = np.zeros(max_objects + 1, np.uint8)     # slot -> object id
    self.first_seen: dict[int, int] = {}               # object id -> frame first given

  @classmethod
  def from_masks(cls, masks: dict[int, np.ndarray], max_objects: int = 0) -> 'ObjectSlots':
    """Every object of ``masks`` {frame: [H, W] ids}, slots in id order.

    ``max_objects`` 0: as many slots as objects. Callers check ``len`` against
    ``max_objects`` (more objects than slots are not given slots).
    """
    first_seen: dict[int, int] = {}
    for f in sorted(masks):
      for label in np.unique(masks[f]):
        if label:
          first_seen.setdefault(int(label), f)
    slots = cls(max(max_objects or len(first_seen), len(first_seen)))
    for label in sorted(first_seen):
      slots.add(label, first_seen[label])
    return slots

  @property
  def max_objects(self) -> int:
    return len(self.ids) - 1

  @property
  def objects(self) -> list[int]:
    """Object ids known so far, sorted."""
    return sorted(self.first_seen)

  def __len__(self) -> int:
    return len(self.first_seen)

  def __contains__(self, label) -> bool:
    return int(label) in self.first_seen

  def add(self, label: int, frame: int) -> int:
    """Give object ``label`` (first seen on ``frame``) the next free slot; returns it."""
    if len(self) == self.max_objects:
      raise ValueError(f'object {label} exceeds max_objects={self.max_objects}')
    slot = len(self) + 1
    self.first_seen[int(label)] = frame
    self.lut[label], self.ids[slot] = slot, label
    return slot

  def given_frames(self) -> dict[int, list[int]]:
    """{frame: object ids first given on it}, frames in order."""
    return {f: [l for l, g in self.first_seen.items() if g == f]
            for f in sorted(set(self.first_seen.values()))}

  def given(self, labels) -> np.ndarray:
    """[K] bool: the slots of ``labels``."""
    out = np.zeros(self.max_objects, bool)
    out[self.lut[np.asarray(labels, np.int64)] - 1] = True
    return out

  def to_slots(self, ids: np.ndarray) -> np.ndarray:
    """[...] object ids -> [...] uint8 slots (unknown ids -> 0)."""
    return self.lut[ids]

  def to_ids(self, slots: np.ndarray) -> np.ndarray:
    """[...] slots -> [...] uint8 object ids."""
    return self.ids[slots]
