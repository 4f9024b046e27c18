"""The sample generator: pybullet scenes, scripted motions, the published RLDS step schemas and
synthetic RLDS fixtures. Used by `make sample-data`, tests and benchmarks; product code never imports it."""
