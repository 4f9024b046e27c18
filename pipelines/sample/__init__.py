"""The embedded sample: simulated Franka Panda episodes in the DROID, Bridge and Fractal schemas.

The data and its ground truth live in pipelines/sample/data/ (read them through the
`sample-*` source cards and `pipelines.sample.ground_truth.load_ground_truth(schema)`).
The generator (pybullet) and the synthetic RLDS schemas it writes live in
pipelines/sample/generator/, which no product code imports; `make sample-data`
(`python -m pipelines.sample.generator`) regenerates the data.
"""
