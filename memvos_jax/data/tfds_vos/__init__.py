"""VOS training data as TFDS datasets in the ArrayRecord file format (docs/data.md).

  records.py   one record per annotated frame: JPEG bytes, PNG object ids (no TF, no TFDS)
  builders.py  the TFDS builders (davis_vos/2016, davis_vos/2017, youtube_vos2019,
               vos_static_images), built from a local copy (manual_dir)
  reader.py    training sources over a built split (``config.data.*_tfds``)
  __main__.py  ``python -m memvos_jax.data.tfds_vos build|info``

TensorFlow is needed by neither building nor reading (only TFDS's own
``tfds build`` command line imports it). Importing this package imports nothing
heavy; the builders register with TFDS when ``builders`` is imported.
"""
