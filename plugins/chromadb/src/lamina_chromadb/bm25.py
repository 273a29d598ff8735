"""BM25 over the candidates Chroma's full-text filter returns (pure Python; run it off the loop).

Chroma's classic API filters documents (``where_document``) but does not rank them. The provider
fetches every document containing at least one query term (up to ``keyword_candidates``) and
scores them here with Okapi BM25 (k1 = 1.2, b = 0.75):

* N: the collection's record count (Chroma's count endpoint);
* df(t): the number of candidates containing t. The candidates are every document containing
  any query term, so this is the exact document frequency (unless the candidate cap was hit);
* avgdl: the mean length of the candidates, not of the whole collection. Keeping collection-wide
  length statistics would mean a read-modify-write of the collection's metadata on every insert
  and delete, which drifts with concurrent writers or several Lamina servers sharing one Chroma;
  the candidates' mean needs no bookkeeping and still normalises each matching document's length
  against the documents it competes with;
* idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)) (Lucene's form: always > 0), so every score is
  finite and > 0 for a document matching a term.
"""

from __future__ import annotations

import math
from collections import Counter

K1 = 1.2
B = 0.75


def rank(
    ids: list[str], documents: list[str | None], terms: list[str], total: int, k: int
) -> list[tuple[str, float]]:
    """The best ``k`` (id, score) pairs, best first (ties broken by id, for stable results)."""
    wanted = set(terms)
    tfs: list[tuple[str, int, Counter[str]]] = []
    df: Counter[str] = Counter()
    length_sum = 0
    for record_id, doc in zip(ids, documents, strict=True):
        toks = (doc or "").split()
        tf = Counter(t for t in toks if t in wanted)
        if not tf:
            continue  # cannot happen for Lamina's documents; guards records written by others
        tfs.append((record_id, len(toks), tf))
        df.update(tf.keys())
        length_sum += len(toks)
    if not tfs:
        return []
    n = max(total, len(tfs))
    avgdl = max(length_sum / len(tfs), 1.0)
    idf = {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in df}
    scored: list[tuple[str, float]] = []
    for record_id, dl, tf in tfs:
        norm = K1 * (1.0 - B + B * dl / avgdl)
        score = sum(idf[t] * f * (K1 + 1.0) / (f + norm) for t, f in tf.items())
        scored.append((record_id, score if math.isfinite(score) else 0.0))
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored[:k]
