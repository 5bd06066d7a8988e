"""Tokenization into memory-mappable Arrow shards, and the packed-sequence loader that reads them.

Plain Python (pyarrow, numpy, tokenizers); never imports pyspark. ``tokenizer`` trains/loads the
byte-level BPE, ``shards`` writes and indexes shards, ``loader`` packs them into training batches.
"""
