"""The pixel pipeline (Pixel-160K, PixelVLA §4.2)."""
