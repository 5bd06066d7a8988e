"""Spark adapter of the balance stage: the per-document sampling decision as a pandas UDF."""

import pandas as pd

from pipeline.balance.sampling import decide


def sample_weight_udf(key_weights: dict[int, float], seed: int):
    """pandas UDF ``(doc_id: string, key: int) -> double``: the sample_weight, or 0.0 when dropped.

    Calls :func:`pipeline.balance.sampling.decide`, so Spark and the plain-Python reference agree.
    (No ``from __future__ import annotations`` here: Spark reads the pandas type hints at runtime.)"""
    from pyspark.sql.functions import pandas_udf

    weights = dict(key_weights)

    @pandas_udf("double")
    def sample_weight(doc_id: pd.Series, key: pd.Series) -> pd.Series:
        out = [decide(seed, d, weights[int(k)]) for d, k in zip(doc_id.tolist(), key.tolist())]
        return pd.Series([0.0 if w is None else w for w in out], dtype="float64")

    return sample_weight
