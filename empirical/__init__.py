"""CLIP finetuning on the seven benchmarks, trajectory recording and task-vector merging."""
