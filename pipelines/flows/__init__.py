"""Prefect flows. Each is a plain function under @flow, runnable as a script or deployment."""
