"""Before/after category distribution of the balance stage: table (JSON + text) and a PNG bar chart."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

from pipeline.balance.sampling import UNKNOWN, category_key
from pipeline.category.taxonomy import Taxonomy


def aggregate(records: Iterable[Mapping], column: str, num_leaves: int) -> dict[int, dict[str, int]]:
    """Per-key integer aggregates of balanced records (the plain-Python twin of the Spark job's groupBy):
    ``docs``, ``chars`` (input) and ``docs_kept``, ``chars_kept`` (rows without a drop reason)."""
    agg: dict[int, dict[str, int]] = {}
    for r in records:
        k = category_key(r.get(column), num_leaves)
        a = agg.setdefault(k, {"docs": 0, "chars": 0, "docs_kept": 0, "chars_kept": 0})
        n = len(r.get("text") or "")
        a["docs"] += 1
        a["chars"] += n
        if r.get("drop_reason") is None:
            a["docs_kept"] += 1
            a["chars_kept"] += n
    return agg


def distribution(
    taxonomy: Taxonomy,
    weights: Mapping[int, float],
    agg: Mapping[int, Mapping[str, int]],
) -> dict:
    """The report table from per-key integer aggregates (see :func:`aggregate`).

    Every document of a key has the same expected copies ``weights[key]``, so the copies after
    balancing are ``docs_kept * max(weight, 1)`` (a kept down-sampled document counts once); shares are
    of documents (copies counted) and of characters (a proxy for tokens). Only integer sums come from
    the data, so the report is identical for any partitioning."""

    def factor(k: int) -> float:
        return max(float(weights.get(k, 0.0)), 1.0)

    copies = {k: a.get("docs_kept", 0) * factor(k) for k, a in agg.items()}
    chars_after = {k: a.get("chars_kept", 0) * factor(k) for k, a in agg.items()}
    tot_docs = sum(a.get("docs", 0) for a in agg.values())
    tot_chars = sum(a.get("chars", 0) for a in agg.values())
    tot_copies = sum(copies.values())
    tot_chars_after = sum(chars_after.values())

    def share(x: float, t: float) -> float:
        return round(x / t, 6) if t else 0.0

    rows = []
    for k in sorted(agg, key=lambda k: (k == UNKNOWN, k)):
        a = agg[k]
        leaf = taxonomy.leaves[k] if k != UNKNOWN else None
        rows.append(
            {
                "category": k if k != UNKNOWN else None,
                "name": leaf.en if leaf else "(no category)",
                "domain": leaf.domain_en if leaf else "",
                "sample_weight": round(float(weights.get(k, 0.0)), 6),
                "docs_before": int(a.get("docs", 0)),
                "docs_kept": int(a.get("docs_kept", 0)),
                "copies_after": round(copies[k], 3),
                "share_docs_before": share(a.get("docs", 0), tot_docs),
                "share_docs_after": share(copies[k], tot_copies),
                "share_chars_before": share(a.get("chars", 0), tot_chars),
                "share_chars_after": share(chars_after[k], tot_chars_after),
            }
        )
    domains: dict[str, dict[str, float]] = {}
    for r in rows:
        d = domains.setdefault(r["domain"] or "(no category)", {"docs_before": 0, "copies_after": 0.0})
        d["docs_before"] += r["docs_before"]
        d["copies_after"] += r["copies_after"]
    for d in domains.values():
        d["share_docs_before"] = share(d["docs_before"], tot_docs)
        d["share_docs_after"] = share(d["copies_after"], tot_copies)
        d["copies_after"] = round(d["copies_after"], 3)
    return {
        "totals": {
            "docs_before": int(tot_docs),
            "docs_kept": int(sum(a.get("docs_kept", 0) for a in agg.values())),
            "copies_after": round(tot_copies, 3),
            "chars_before": int(tot_chars),
            "chars_after": round(tot_chars_after, 1),
        },
        "categories": rows,
        "domains": dict(sorted(domains.items())),
    }


def format_table(report: dict, limit: int = 40) -> str:
    """Text table of the ``limit`` largest categories (by input documents) and the domain totals."""
    t = report["totals"]
    lines = [
        f"balance: {t['docs_before']:,} docs in -> {t['docs_kept']:,} kept, {t['copies_after']:,.1f} "
        "copies (sum of sample_weight)",
        f"{'category':<42} {'weight':>7} {'docs in':>9} {'kept':>9} {'copies':>10} {'share in':>9} {'share out':>9}",
    ]
    rows = sorted(report["categories"], key=lambda r: (-r["docs_before"], r["name"]))
    for r in rows[:limit]:
        lines.append(
            f"{r['name'][:42]:<42} {r['sample_weight']:>7.3f} {r['docs_before']:>9,} {r['docs_kept']:>9,} "
            f"{r['copies_after']:>10,.1f} {r['share_docs_before']:>9.2%} {r['share_docs_after']:>9.2%}"
        )
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more categories in _balance.json")
    lines.append(
        f"{'domain':<42} {'':>7} {'docs in':>9} {'':>9} {'copies':>10} {'share in':>9} {'share out':>9}"
    )
    for name, d in report["domains"].items():
        lines.append(
            f"{name[:42]:<42} {'':>7} {d['docs_before']:>9,} {'':>9} {d['copies_after']:>10,.1f} "
            f"{d['share_docs_before']:>9.2%} {d['share_docs_after']:>9.2%}"
        )
    return "\n".join(lines)


def chart_png(report: dict, top: int = 40) -> bytes:
    """PNG: domain shares before/after (left) and the ``top`` largest leaves before/after (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doms = list(report["domains"].items())
    cats = sorted(report["categories"], key=lambda r: (-r["docs_before"], r["name"]))[:top]
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(16, max(6, 0.22 * len(cats) + 1.5)), constrained_layout=True
    )
    for ax, labels, before, after, title in (
        (
            ax1,
            [d for d, _ in doms],
            [v["share_docs_before"] for _, v in doms],
            [v["share_docs_after"] for _, v in doms],
            "Domains: share of documents",
        ),
        (
            ax2,
            [r["name"] for r in cats],
            [r["share_docs_before"] for r in cats],
            [r["share_docs_after"] for r in cats],
            f"Top {len(cats)} leaves: share of documents",
        ),
    ):
        y = list(range(len(labels)))
        ax.barh([i - 0.2 for i in y], before, height=0.4, label="before", color="#9aa5b1")
        ax.barh([i + 0.2 for i in y], after, height=0.4, label="after (copies)", color="#2b6cb0")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(title)
        ax.legend(loc="lower right")
    t = report["totals"]
    fig.suptitle(f"balance: {t['docs_before']:,} documents in, {t['copies_after']:,.0f} copies out")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
