"""The reliability drill (issue 12): hostile inputs, damaged outputs, a hostile VLM server, faults on disk.

Every case builds its corpus or fault inside the test and asserts one outcome: finished,
quarantined with a reason, retried, or a clear one-line error. Faults on disk are injected
through fsspec (ENOSPC, EROFS), not file permissions: CI runs as root.
"""
