"""card.md's images made visible in Prefect's markdown artifact.

The card references its montage and plots by paths relative to the output folder, which Prefect's UI
cannot reach: the first few images travel inside the artifact as downscaled data: URIs, and the rest are
named by their full path. Prefect's UI renders `![alt](data:image/...)` as an <img> (no CSP on markdown).
"""

from __future__ import annotations

import base64
import io
import re

import fsspec
from PIL import Image

from pipelines.io.location import absolute

MAX_IMAGES = 4  # inlined per artifact: Prefect stores the artifact in its database
MAX_SIDE = 640  # pixels, the longer side of an inlined copy
PNG_LIMIT = 150_000  # bytes: a larger PNG (a photo montage) is sent as JPEG instead

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _data_uri(path: str) -> str:
    with fsspec.open(path, "rb") as f:
        image = Image.open(f)
        image.load()
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    kind = "png"
    if out.tell() > PNG_LIMIT:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(out.getvalue()).decode()}"


def inline_images(markdown: str, folder: str, max_images: int = MAX_IMAGES) -> str:
    """`markdown` with its relative image references under `folder` inlined (at most `max_images`)."""
    inlined = 0

    def replace(match: re.Match) -> str:
        nonlocal inlined
        alt, ref = match.groups()
        if ":" in ref or ref.startswith("/"):  # a URL, a data: URI or an absolute path: left as written
            return match.group(0)
        path = f"{absolute(folder).rstrip('/')}/{ref}"
        if inlined < max_images:
            try:
                uri = _data_uri(path)
            except (OSError, ValueError) as e:  # missing or not an image: say where it should be
                return f"*{alt}: `{path}` ({type(e).__name__})*"
            inlined += 1
            return f"![{alt}]({uri})"
        return f"*{alt}: `{path}`*"

    return _IMAGE.sub(replace, markdown)
