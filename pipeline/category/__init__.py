"""Category classification helpers: taxonomy, weak (keyword/URL) labels, hashed n-gram features."""
