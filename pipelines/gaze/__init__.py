"""The gaze pipeline (ReconVLA gaze crops); registers "gaze" when pipelines.gaze.pipeline is imported."""
