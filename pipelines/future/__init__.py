"""The future pipeline (DIAL foresight targets): frozen vision tokens of every frame, stored once."""
