"""CLIP finetuning on the seven benchmarks of the paper (not implemented yet; see issue 5)."""
