"""RLDS (TFDS): reader, dataset writer and the export of finished outputs.

Importing this package is cheap; the submodules import TensorFlow.
"""
