"""Stage 2b, near-dedup: MinHash-LSH signatures, band keys and connected components (dots.llm1)."""
