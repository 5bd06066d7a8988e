"""Stage 3 (``filter``): clutter-line removal, document quality and category scores, thresholds."""
