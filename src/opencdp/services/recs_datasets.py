"""The recommendation models measured on a real dataset (``opencdp recs evaluate --dataset``):
each model of the training against the popularity baseline, on the dataset's own holdout.

* ``instacart`` — next-basket groceries: each customer's last order held out, products bought
  before may be recommended again (``repeat``).
* ``movielens`` — films: each user's last 10 ratings held out, films already rated masked;
  every rating counts the same whatever its age (ratings span twenty years: no decay).

No database: the dataset is read from its package and cached under ``data_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opencdp.errors import RequestError
from opencdp.recs import datasets
from opencdp.recs.evaluation import Report, evaluate, parse_holdout
from opencdp.recs.interactions import Weights
from opencdp.recs.training import TrainConfig


@dataclass(frozen=True)
class DatasetProtocol:
    holdout: str
    repeat: bool
    weights: Weights


#: How each dataset is evaluated unless the caller names another holdout.
PROTOCOLS = {
    "instacart": DatasetProtocol("last-basket", repeat=True, weights=Weights()),
    "movielens": DatasetProtocol("last:10", repeat=False, weights=Weights(half_life_days=0)),
}


def config_for(name: str, holdout: str | None = None) -> tuple[TrainConfig, bool]:
    """The training configuration and ``repeat`` flag the dataset is evaluated with;
    RequestError naming what is accepted for an unknown dataset or a bad holdout."""
    protocol = PROTOCOLS.get(name)
    if protocol is None:
        raise RequestError(
            f"dataset: expected one of {', '.join(sorted(PROTOCOLS))}, got {name!r}",
            code="unknown_dataset",
        )
    chosen = protocol.holdout if holdout is None else holdout
    try:
        parse_holdout(chosen)
    except ValueError as error:
        raise RequestError(str(error), code="invalid_holdout") from None
    return TrainConfig(weights=protocol.weights, holdout=chosen), protocol.repeat


def evaluate_dataset(name: str, data_dir: Path, *, holdout: str | None = None) -> Report:
    """Each model against popularity on dataset ``name`` (``instacart`` | ``movielens``);
    ``holdout`` (``last-basket`` | ``days:N`` | ``last:N``) replaces the dataset's own."""
    config, repeat = config_for(name, holdout)
    interactions, categories = datasets.load(name, data_dir)
    now_us = int(interactions.times_us.max()) + 1
    return evaluate(interactions, categories, now_us, config, repeat=repeat)
