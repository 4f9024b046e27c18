"""Models and pure algorithms. No Prefect and no file I/O: plain arrays in, plain results out."""
