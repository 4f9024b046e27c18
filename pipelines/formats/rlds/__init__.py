"""RLDS (TFDS) support: the published step schemas, a dataset writer, synthetic fixtures.

Importing this package is cheap; the submodules import TensorFlow.
"""
