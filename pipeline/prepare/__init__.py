"""Stage 1, document preparation: WARC -> charset-correct HTML -> URL filter -> main text ->
language ID -> exact-dedup key. Plain Python; the Spark job is jobs/prepare.py."""
