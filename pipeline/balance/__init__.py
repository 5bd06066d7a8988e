"""Stage ``balance``: deterministic category re-sampling toward the taxonomy's weights."""
