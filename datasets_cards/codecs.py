"""The one image codec and the one checksum helper, shared by readers, flows, annotators and the trainer.

Images are RGB uint8 H×W×3 on our side; OpenCV (BGR inside) does the work, which
decodes JPEG bit-identically to PIL's libjpeg-turbo on our data and is the
faster of the two. A frame that does not decode raises FrameDecodeError, which
readers and flows turn into a quarantine record.
"""

from __future__ import annotations

import hashlib

import numpy as np

from datasets_cards.errors import FrameDecodeError

JPEG_MAGIC = b"\xff\xd8"
CHECKSUM_BLOCK = 1 << 20  # bytes read at a time while hashing


def is_jpeg(data: bytes) -> bool:
    return data[:2] == JPEG_MAGIC


def decode_image(data: bytes) -> np.ndarray:
    """Encoded JPEG/PNG bytes → uint8 H×W×3 RGB. Raises FrameDecodeError."""
    import cv2  # local: keeps `import datasets_cards` light

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise FrameDecodeError(f"undecodable frame ({len(data)} bytes): not a JPEG or PNG image")
    return np.ascontiguousarray(image[..., ::-1])


def encode_image(image: np.ndarray, fmt: str = "jpeg", quality: int = 95) -> bytes:
    """uint8 H×W×3 RGB → encoded bytes (`fmt`: jpeg | png); JPEG at `quality`."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buffer = cv2.imencode(".jpg" if fmt == "jpeg" else f".{fmt}", np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {np.shape(image)} as {fmt}")
    return buffer.tobytes()


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """uint8 H×W×3 RGB → JPEG bytes."""
    return encode_image(image, "jpeg", quality)


def sha256_file(path: str, fs=None) -> str:
    """Checksum of a file (what the manifest records for every shard): `path` is a URL, or a path on `fs`."""
    import fsspec

    fs, p = (fs, path) if fs is not None else fsspec.core.url_to_fs(path)
    digest = hashlib.sha256()
    with fs.open(p, "rb") as f:
        for block in iter(lambda: f.read(CHECKSUM_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def mask_to_rle(mask: np.ndarray) -> dict:
    """Boolean H×W mask → COCO RLE {"size": [h, w], "counts": str} (pycocotools' compressed counts)."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """COCO RLE {"size": [h, w], "counts": str | bytes} → boolean H×W mask."""
    from pycocotools import mask as coco_mask

    counts = rle["counts"]
    encoded = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(encoded).astype(bool)
