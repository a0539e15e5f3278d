"""Item-to-item co-occurrence: products that the same customers buy, add and view together.

Similarity is the cosine of two products' customer sets (how many customers had both, over the
geometric mean of how many had each), kept for each product's ``neighbours`` closest others. A
customer's score for a product sums the similarities to what the customer had, weighted by how
strongly (see :mod:`opencdp.recs.interactions`), plus the product's own weight (a product one
looked at or buys regularly is a candidate again; the serving rules decide whether it is shown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import scipy.sparse as sp


def similarities(confidence: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Items x items cosine similarities of the users who had them, the diagonal removed, at
    most ``neighbours`` per row (the largest)."""
    import numpy as np
    import scipy.sparse as sp

    had = confidence.copy().tocsr()
    had.data = np.ones_like(had.data, dtype=np.float32)
    together = (had.T @ had).tocsr().astype(np.float32)
    counts = np.asarray(had.sum(axis=0)).ravel().astype(np.float32)
    together.setdiag(0)
    together.eliminate_zeros()
    coo = together.tocoo()
    norm = np.sqrt(counts[coo.row] * counts[coo.col])
    values = coo.data / np.where(norm > 0, norm, 1.0)
    return top_per_row(
        sp.csr_matrix((values, (coo.row, coo.col)), shape=together.shape, dtype=np.float32),
        neighbours,
    )


def top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``matrix`` keeping the ``k`` largest entries of each row."""
    import numpy as np
    import scipy.sparse as sp

    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    keep = np.ones(matrix.nnz, dtype=bool)
    for row in np.flatnonzero(lengths > k):  # only the rows that have more than k
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        values = matrix.data[start:end]
        drop = np.argpartition(-values, k - 1)[k:]
        keep[start + drop] = False
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    return sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])),
        shape=matrix.shape,
        dtype=np.float32,
    )


def scores(history: sp.csr_matrix, similar: sp.csr_matrix) -> np.ndarray:
    """Users (rows of ``history``) x items scores: the history times the similarities, plus
    the history itself."""
    import numpy as np

    weighted = history.copy()
    weighted.data = np.log1p(weighted.data)
    dense = (weighted @ similar).toarray()
    dense += weighted.toarray()
    return np.asarray(dense, dtype=np.float32)
