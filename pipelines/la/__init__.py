"""The la pipeline: LA4VLA language-action episodes (keyframes, atomic segments, verification)."""
