"""spark-submit entry points: one module per stage, plus the whole pipeline and retraining jobs."""
