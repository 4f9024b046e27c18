"""Exports of finished output folders to other dataset formats (RLDS/TFDS).

`from pipelines.export.rlds import export_rlds` (imports TensorFlow).
"""
