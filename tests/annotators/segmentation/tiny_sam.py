"""Tiny random-weight SAM 2 / SAM 1 checkpoints saved like hub folders (config, weights, preprocessor settings).

Importable standalone (torch, transformers, stdlib only): other test folders put this folder on
sys.path and call the builders. One SAM 2 folder (model_type `sam2_video`, like the hub's
facebook/sam2.1-hiera-* checkpoints) loads with both `Sam2VideoModel` and `Sam2Model`.

The processor files are written as JSON, in the hub's layout: transformers' Sam2 image and video
processors need torchvision, which the default environment does not install, so they cannot be
instantiated (or saved) here; the annotators read the same settings from these files.
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def tiny_sam2_video_config(image_size: int = 64, num_maskmem: int = 4, max_object_pointers: int = 6):
    """A Sam2VideoConfig of ~1 M parameters: 5 Hiera blocks, 128-wide FPN, 64-wide memory, one memory-attention layer.

    `num_maskmem` and `max_object_pointers` are kept small (real: 7 and 16) so that a stream of
    ~20 frames already exercises the memory window and pointer window end to end.
    """
    from transformers import Sam2VideoConfig

    # transformers hard-codes the memory cross-attention's key width to 64 (= mem) and stacks object pointers
    # correctly only when they are split into memory-width chunks (hidden > mem), as in the real 256/64
    hidden, mem = 128, 64
    feature_sizes = [[image_size // 4] * 2, [image_size // 8] * 2, [image_size // 16] * 2]
    vision = {
        "model_type": "sam2_vision_model",
        "backbone_config": {
            "model_type": "sam2_hiera_det_model",
            "hidden_size": 8, "num_attention_heads": 1, "image_size": [image_size, image_size],
            "blocks_per_stage": [1, 1, 2, 1], "embed_dim_per_stage": [8, 16, 32, 64],
            "num_attention_heads_per_stage": [1, 1, 1, 1], "window_size_per_stage": [4, 4, 2, 2],
            "global_attention_blocks": [3], "window_positional_embedding_background_size": [2, 2],
        },
        "backbone_channel_list": [64, 32, 16, 8],
        "backbone_feature_sizes": feature_sizes,
        "fpn_hidden_size": hidden,
    }
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": hidden, "image_size": image_size, "patch_size": 16,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 16},
        image_size=image_size,
        num_maskmem=num_maskmem,
        max_object_pointers_in_encoder=max_object_pointers,
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=feature_sizes[-1],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=mem,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
    )


def write_sam2_processor_files(folder: Path, image_size: int) -> None:
    """preprocessor_config.json, video_preprocessor_config.json, processor_config.json as on the hub."""
    common = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
              "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "resample": 2,
              "rescale_factor": 1 / 255, "size": {"height": image_size, "width": image_size}}
    mask = {"height": image_size // 4, "width": image_size // 4}
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {**common, "image_processor_type": "Sam2ImageProcessor", "mask_size": mask}, indent=2))
    (folder / "video_preprocessor_config.json").write_text(json.dumps(
        {**common, "video_processor_type": "Sam2VideoVideoProcessor"}, indent=2))
    (folder / "processor_config.json").write_text(json.dumps(
        {"processor_class": "Sam2VideoProcessor", "point_pad_value": -10, "target_size": image_size}, indent=2))


def lively(model) -> None:
    """Re-draw the weights so a random model gives non-trivial outputs.

    transformers initialises with std 0.02, which leaves the object-score head near 0 and
    the masks empty; PyTorch's own fan-in initialisation, plus random values for the learnt
    embeddings that post_init zeroes (no-memory, temporal, no-object, occlusion), gives masks
    that cover part of the image and presence scores that change with the memory, so tests
    comparing two runs compare something.
    """
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Embedding)):
                module.reset_parameters()
        for name in ("no_memory_embedding", "no_memory_positional_encoding", "memory_temporal_positional_encoding",
                     "no_object_pointer", "occlusion_spatial_embedding_parameter"):
            param = getattr(model, name, None)
            if param is not None:
                param.normal_(0, 0.5)


def tiny_sam2_video(folder: str | Path, image_size: int = 64, seed: int = 0, **config_options) -> str:
    """Build and save a random-weight Sam2VideoModel at `folder`; return the folder (a str).

    The same folder loads with Sam2Model (the image model is a subset of the video model's weights).
    """
    import torch
    from transformers import Sam2VideoModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Sam2VideoModel(tiny_sam2_video_config(image_size, **config_options)).eval()
    lively(model)
    model.save_pretrained(folder)
    write_sam2_processor_files(folder, image_size)
    return str(folder)


def tiny_sam2(folder: str | Path, image_size: int = 64, seed: int = 0) -> str:
    """The single-image SAM 2 checkpoint: the same video folder (Sam2Model loads it, like the hub's)."""
    return tiny_sam2_video(folder, image_size, seed)


def tiny_sam(folder: str | Path, image_size: int = 64, seed: int = 0) -> str:
    """A random-weight SAM 1 (`SamModel`) with its processor settings, saved at `folder`."""
    import torch
    from transformers import SamConfig, SamModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = SamConfig(
        vision_config={"hidden_size": 16, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "mlp_dim": 32, "image_size": image_size, "patch_size": 16, "global_attn_indexes": [1],
                       "window_size": 2, "num_pos_feats": 8},
        prompt_encoder_config={"hidden_size": 16, "image_size": image_size, "patch_size": 16,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 16},
    )
    torch.manual_seed(seed)
    SamModel(config).eval().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True, "do_resize": True,
        "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "image_processor_type": "SamImageProcessor",
        "pad_size": {"height": image_size, "width": image_size}, "processor_class": "SamProcessor",
        "resample": 2, "rescale_factor": 1 / 255, "size": {"longest_edge": image_size},
        "mask_size": {"longest_edge": image_size // 4}, "mask_pad_size": {"height": image_size // 4,
                                                                          "width": image_size // 4},
    }, indent=2))
    return str(folder)
