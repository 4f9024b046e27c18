"""LeRobot datasets (v2.0, v2.1, v3.0): reader, writers (v2.1, v3.0) and the v2.1 validator.

Importing this package is cheap; import the submodules for the reader and writers.
"""
