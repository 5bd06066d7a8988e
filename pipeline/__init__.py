"""Stage logic as plain Python on records, lines and batches. Never imports pyspark."""
