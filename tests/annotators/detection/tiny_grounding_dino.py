"""A tiny random-weight Grounding DINO saved like a hub checkpoint (config, weights, processor, tokenizer).

The tokenizer's vocabulary is written on the fly and keeps BERT's ids for the
tokens the model code hard-codes ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
[MASK]=103, "."=1012, "?"=1029: the text self-attention blocks are cut at
[CLS], [SEP], "." and "?"); without them padded prompts change the results.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a eggplant yellow basket drawer red blue pink block pot spoon bowl plate black cup towel lid "
    "marker stove cabinet green object carrot knife"
).split()
BERT_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1010: ",", 1012: ".", 1029: "?"}


def write_vocab(path: Path) -> Path:
    tokens = [BERT_IDS.get(i, f"[unused{i}]") for i in range(1030)] + WORDS
    path.write_text("\n".join(tokens) + "\n")
    return path


def save_tiny_grounding_dino(folder: Path, image_edge: int = 64, seed: int = 0) -> Path:

    """Build, save and return `folder` (loadable with from_pretrained(..., local_files_only=True))."""
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SwinConfig,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(str(write_vocab(folder / "vocab.txt")))
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (0, 101, 102)
    assert tokenizer.convert_tokens_to_ids(["."]) == [1012]
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                                   image_size=32, out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16, max_position_embeddings=64),
        d_model=32,  # GroupNorm(32, d_model) needs a multiple of 32
        encoder_layers=1, decoder_layers=2,  # ≥ 2 decoder layers: the box heads are tied across layers
        encoder_ffn_dim=16, decoder_ffn_dim=16, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=20, max_text_len=32, encoder_n_points=2, decoder_n_points=2,
    )
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": image_edge, "longest_edge": image_edge * 2})
    model.save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
