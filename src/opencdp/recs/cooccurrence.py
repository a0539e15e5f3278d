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


def top_per_row(matrix: sp.csr_matrix, k: int, cells: int = 4_000_000) -> sp.csr_matrix:
    """``matrix`` keeping the ``k`` largest entries of each row: blocks of rows made dense (at
    most ``cells`` values at a time) and cut with one ``argpartition`` each."""
    import numpy as np
    import scipy.sparse as sp

    matrix = matrix.tocsr()
    n_rows, n_cols = matrix.shape
    if k >= n_cols or matrix.nnz == 0:
        return sp.csr_matrix(matrix, dtype=np.float32)
    step = max(1, cells // max(n_cols, 1))
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    values_out: list[np.ndarray] = []
    for start in range(0, n_rows, step):
        block = matrix[start : start + step].toarray()
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(block, top, axis=1)
        keep = values > 0
        rows_out.append((np.nonzero(keep)[0] + start).astype(np.int64))
        cols_out.append(top[keep])
        values_out.append(values[keep])
    return sp.csr_matrix(
        (np.concatenate(values_out), (np.concatenate(rows_out), np.concatenate(cols_out))),
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
