"""The embedded sample: simulated Franka Panda episodes in the DROID, Bridge and Fractal schemas.

`python -m pipelines.sample` regenerates it (pybullet, headless); the data and
its ground truth live in pipelines/sample/data/. Load ground truth with
`pipelines.sample.ground_truth.load_ground_truth(schema)`.
"""
