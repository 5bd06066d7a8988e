"""Stage 2a, rule-based cleaning: line-level dedup (dots.llm1) and Gopher/RefinedWeb/C4 heuristics."""
