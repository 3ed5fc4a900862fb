"""Generated reports live in this folder (theory.json, theory_examples.csv)."""
