"""Tiny random-weight encoders saved like hub checkpoints, loaded by the backends through their real paths.

The Qwen2.5-VL one is a whole tiny Qwen2.5-VL (vision tower and language model) saved with the
hub's tensor names (`visual.*`, `model.language_model.*`, `lm_head.*`) and the PIL image
processor's preprocessor_config.json, so the backend's "tower only" loading is exercised.
"""

from __future__ import annotations

from pathlib import Path

# 3B-shaped apart from the sizes: patch 14, merge 2, temporal 2, window 112, full attention in the last block.
QWEN_VISION = {
    "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 24,
    "fullatt_block_indexes": [1], "window_size": 112, "patch_size": 14, "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}


def save_tiny_qwen(folder: Path, seed: int = 0, **vision) -> Path:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    folder.mkdir(parents=True, exist_ok=True)
    text = {
        "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
    }
    config = Qwen2_5_VLConfig(vision_config={**QWEN_VISION, **vision}, text_config=text, image_token_id=60,
                              video_token_id=61, vision_start_token_id=62, vision_end_token_id=63)
    torch.manual_seed(seed)
    Qwen2_5_VLForConditionalGeneration(config).eval().save_pretrained(folder)
    Qwen2VLImageProcessorPil().save_pretrained(folder)
    return folder


def save_tiny_siglip(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config={"vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None})
    torch.manual_seed(seed)
    SiglipModel(config).eval().save_pretrained(folder)
    return folder


def save_tiny_dinov2(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    Dinov2Model(Dinov2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                             image_size=32, patch_size=8)).eval().save_pretrained(folder)
    return folder
