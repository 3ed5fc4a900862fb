"""CLIP image encoder + frozen zero-shot classification head (open_clip)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


class WeightsMissing(FileNotFoundError):
    """Pretrained weights could not be found or loaded; the message says how to provide them."""


TINY = "tvgrad-tiny-ViT"
"""A tiny open_clip config shipped with tvgrad (random weights only: ``--pretrained none``)."""
CONFIGS = Path(__file__).parent / "configs"


def register_configs() -> None:
    """Make the configs shipped in ``tvgrad/empirical/configs`` known to open_clip (idempotent)."""
    import open_clip
    if TINY not in open_clip.list_models():
        open_clip.add_model_config(CONFIGS)


def load_clip(model_name: str, pretrained: str | None, *, cache_dir: str | None = None,
              device: str | torch.device = "cpu"):
    """``open_clip.create_model_and_transforms`` with a clear error for missing weights.

    ``pretrained`` is an open_clip tag (e.g. ``openai``, ``laion2b_s34b_b79k``; fetched from the
    hub into ``cache_dir`` — needs network), a local checkpoint file, or ``None`` / ``"none"`` for
    random weights. Returns (model, train_preprocess, eval_preprocess, tokenizer).
    """
    import open_clip
    register_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}; e.g. ViT-B-32, ViT-B-16, ViT-L-14")
    tag = None if pretrained in (None, "", "none") else pretrained
    if tag is not None and open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu") \
            and not (open_clip.get_model_config(model_name) or {}).get("quick_gelu"):
        # open_clip only warns: the network would use GELU around weights trained with
        # QuickGELU, and every θ₀-level number would come from a different network
        raise ValueError(f"pretrained {tag!r} weights were trained with QuickGELU, but model "
                         f"{model_name!r} uses GELU: use {model_name + '-quickgelu'!r}")
    if tag is not None and ("/" in tag or tag.endswith((".pt", ".bin", ".safetensors"))) \
            and not Path(tag).is_file():
        raise WeightsMissing(f"pretrained weights file {tag} does not exist; pass an existing "
                             f"checkpoint path or an open_clip tag (open_clip.list_pretrained())")
    try:
        model, pre_train, pre_val = open_clip.create_model_and_transforms(
            model_name, pretrained=tag, cache_dir=cache_dir, device=device)
    except Exception as exc:  # hub/network/file errors all come here
        raise WeightsMissing(
            f"could not load pretrained weights {tag!r} for {model_name} "
            f"(cache dir: {cache_dir or '~/.cache/huggingface (open_clip default)'}): {exc}. "
            f"Without network, download the checkpoint elsewhere and pass its local path as "
            f"--pretrained /path/to/open_clip_model.safetensors, or set --cache-dir to a folder "
            f"that holds it.") from None
    return model, pre_train, pre_val, open_clip.get_tokenizer(model_name)


class ClassificationHead(nn.Linear):
    """Frozen zero-shot head: normalised class embeddings × exp(logit_scale); input normalised."""

    def __init__(self, weights: Tensor):
        super().__init__(weights.shape[1], weights.shape[0], bias=False)
        with torch.no_grad():
            self.weight.copy_(weights)
        self.weight.requires_grad_(False)

    def forward(self, features: Tensor) -> Tensor:
        """Logits of the (normalised) features or images."""
        return super().forward(features / features.norm(dim=-1, keepdim=True))


@torch.no_grad()
def zeroshot_head(model, tokenizer, classnames: list[str], templates: list[str],
                  device: str | torch.device = "cpu") -> ClassificationHead:
    """Class embedding = mean over templates of the normalised text embeddings, renormalised,
    times the model's logit scale.
    """
    model.eval()
    rows = []
    for name in classnames:
        tokens = tokenizer([t.format(name) for t in templates]).to(device)
        emb = model.encode_text(tokens)
        emb = emb / emb.norm(dim=-1, keepdim=True)
        mean = emb.mean(0)
        rows.append(mean / mean.norm())
    weights = torch.stack(rows) * model.logit_scale.exp()
    return ClassificationHead(weights.float().cpu())


class ImageClassifier(nn.Module):
    """The trained image encoder (``model.visual``) followed by the frozen head."""

    def __init__(self, visual: nn.Module, head: ClassificationHead):
        super().__init__()
        self.visual = visual
        self.head = head

    def forward(self, images: Tensor) -> Tensor:
        """Logits of the (normalised) features or images."""
        feats = self.visual(images)
        return self.head(feats.to(self.head.weight.dtype))

    def encoder_state(self) -> dict[str, Tensor]:
        """The trainable parameters θ (the image encoder), detached."""
        return {k: v.detach() for k, v in self.visual.named_parameters()}
