"""What is learned from data on top of the point-in-time aggregates, as scikit-learn transformers.

Each transformer takes the frame made by :func:`features.aggregate.compute_features` and returns
it with its own columns added; ``fit`` learns attributes ending in ``_`` and returns ``self``.
They are fitted inside the model pipeline on training folds only, so priors and vocabularies
never see held-out influencers.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.utils.validation import check_is_fitted

from features.aggregate import CATEGORICAL_FEATURES
from features.contract import (
    CATEGORY_MATCH_CUTOFF,
    DEFAULT_PLATFORM,
    KNOWN_CATEGORIES,
    closest_category,
    normalise_category,
)
from features.tables import value_codes


def split_docs(docs: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """Space-separated tag documents -> (document number, tag) for every non-empty tag."""
    lists = pc.split_pattern(pa.array(docs.to_numpy(dtype=object), type=pa.string()), " ")
    flat = pc.list_flatten(lists)
    doc_index = pc.list_parent_indices(lists).to_numpy()
    keep = pc.not_equal(flat, "")
    return doc_index[keep.to_numpy(zero_copy_only=False)], pc.filter(flat, keep)


def lookup_pairs(X: pd.DataFrame, by_pair: dict, by_tier: dict, fallback: float) -> np.ndarray:
    """Per-row value of the (tier, category) pair, else
    of the tier, else ``fallback``; vectorised."""
    # Tiers and niches are few: look up each distinct combination once, then index by codes.
    tier_code, tiers = pd.factorize(X["tier"].astype(str).to_numpy(dtype=object))
    niche_code, niches = pd.factorize(X["category"].astype(str).to_numpy(dtype=object))
    table = np.array(
        [
            [_first_known(by_pair.get((t, c)), by_tier.get(t), fallback) for c in niches]
            for t in tiers
        ],
        dtype="float64",
    )
    return table[tier_code, niche_code] if len(X) else np.zeros(0)


def _first_known(*values: float | None) -> float:
    """The first value that is neither None nor NaN (NaN if none is)."""
    for value in values:
        if value is not None and not np.isnan(value):
            return float(value)
    return float("nan")


def _binary_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """Presence matrix: repeats of a tag in one document count once, so one prolific post
    does not dominate."""
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def with_columns(X: pd.DataFrame, columns: Mapping[str, object]) -> pd.DataFrame:
    """``X`` with ``columns`` added (replaced in place where ``X`` has them), in one step.

    pandas has a fixed cost per inserted column whatever the number of rows; the learned steps
    add many, and one by one they would be a large share of the time to score one candidate.
    ``X`` is not changed.
    """
    if any(name in X.columns for name in columns):
        data = {name: columns.get(name, X[name]) for name in X.columns}
        data.update({name: v for name, v in columns.items() if name not in X.columns})
        return pd.DataFrame(data, index=X.index)
    return pd.concat([X, pd.DataFrame(columns, index=X.index)], axis=1)


def _names_out(transformer: BaseEstimator, added: list[str]) -> np.ndarray:
    """Input columns followed by the columns the transformer adds (it returns both)."""
    check_is_fitted(transformer, "input_columns_")
    kept = [c for c in transformer.input_columns_ if c not in added]
    return np.asarray(kept + added, dtype=object)


# Sampling variance of a median relative to a mean's (normal errors): a median of n posts is
# as informative as a mean of 2n / pi posts.
MEDIAN_VARIANCE_FACTOR = np.pi / 2.0
# The creator's other level estimates (and its peers' level), each also given to the trees as
# its difference from the starting point, ``<name>_vs_shrunk``: see TierNichePrior.
RELATIVE_LEVELS = (
    "log_er_median",
    "log_er_mean",
    "log_er_recent_median",
    "log_er_ewm",
    "log_er_last",
    "log_er_max",
    "prior_log_er",
)


class TierNichePrior(TransformerMixin, BaseEstimator):
    """The influencer's own historical level, shrunk towards its peers by empirical Bayes.

    ``prior_log_er`` is the post-weighted mean historical log ER of the influencer's platform,
    tier and niche (falling back to platform and tier, then platform, then everyone);
    ``shrunk_log_er`` is ``(n * own_median + k * prior) / (n + k)`` for ``n`` history posts.

    The strength ``k`` is learned per platform from the training rows unless given: it is the
    within-creator variance of a median of one post over the between-creator variance of levels
    around the prior (method of moments, each creator weighted equally), so noisy populations
    lean on peers and consistent ones on the creator's own record. ``shrunk_log_er`` is the model's
    starting point (its LightGBM ``init_score``): with no trees the model is this calibrated
    persistence.

    It also adds each of :data:`RELATIVE_LEVELS` minus the starting point
    (``log_er_ewm_vs_shrunk``, ...). The trees correct the starting point; a correction such as
    "recent posts sit below the long-run level, so lower it" is one split on such a difference,
    where on the two levels apart it takes a staircase of splits on both, and it holds whatever
    the creator's absolute level. README, "Relative levels", has what they changed. Models
    fitted before them have no ``relative_levels_`` and add none.
    """

    def __init__(self, strength: float | None = None, min_group_posts: int = 20):
        self.strength = strength
        self.min_group_posts = min_group_posts

    def fit(self, X: pd.DataFrame, y: object = None) -> TierNichePrior:
        self.input_columns_ = [str(c) for c in X.columns]
        self.relative_levels_ = [c for c in RELATIVE_LEVELS if c == "prior_log_er" or c in X]
        with_history = X[X["n_history_posts"] > 0]
        # Rolling cutoffs give a creator many rows: weight them so each creator counts once.
        per_creator = 1.0 / with_history.groupby("influencer")["influencer"].transform("size")
        n = with_history["n_history_posts"].astype("float64")
        weights = n * per_creator
        weighted = with_history["log_er_mean"] * weights
        total = weights.sum()
        self.global_prior_ = float(weighted.sum() / total) if total > 0 else float("nan")
        self.priors_: dict[tuple[str, ...], float] = {}
        keys = _peer_keys(with_history)
        for depth in (1, 2, 3):
            key = keys[:depth]
            posts = weights.groupby(key).sum()
            means = weighted.groupby(key).sum() / posts
            for k, v in means[posts >= self.min_group_posts].items():
                self.priors_[k if isinstance(k, tuple) else (k,)] = float(v)
        # One strength per platform: platforms differ in how much posts vary around a
        # creator's level (a pooled variance would mis-shrink both).
        platform = keys[0]
        weight = per_creator.to_numpy()
        self.strength_: dict[str, float] = {}
        for name in [None, *sorted(set(platform))]:
            rows = np.ones(len(platform), dtype=bool) if name is None else platform == name
            if self.strength is not None:
                value = float(self.strength)
            else:
                value = self._learned_strength(with_history[rows], weight[rows])
            self.strength_["*" if name is None else str(name)] = value
        return self

    def strength_of(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's shrinkage strength (its platform's; the overall one for a new platform)."""
        check_is_fitted(self, "strength_")
        code, platforms = value_codes(pd.Series(_peer_keys(X)[0]))
        overall = self.strength_["*"]
        table = np.array([self.strength_.get(p, overall) for p in platforms], dtype="float64")
        return table[code] if len(code) else np.zeros(0)

    def _learned_strength(self, with_history: pd.DataFrame, creator_weight: np.ndarray) -> float:
        """Within-creator variance of a one-post median over the between-creator variance."""
        n = with_history["n_history_posts"].to_numpy(dtype="float64")
        std = with_history["log_er_std"].to_numpy(dtype="float64", na_value=np.nan)
        has_spread = (n >= 2) & np.isfinite(std)
        if not has_spread.any():
            return 2.0  # nothing to learn from: the old fixed strength
        dof = (n[has_spread] - 1.0) * creator_weight[has_spread]
        within = float(np.sum(dof * std[has_spread] ** 2) / np.sum(dof))
        deviation = with_history["log_er_median"].to_numpy(dtype="float64") - self.prior(
            with_history
        )
        noise = MEDIAN_VARIANCE_FACTOR * within / n
        ok = np.isfinite(deviation)
        w = creator_weight[ok]
        between = float(np.sum(w * (deviation[ok] ** 2 - noise[ok])) / np.sum(w))
        # A floor keeps k finite when levels barely differ beyond their noise.
        between = max(between, 0.01 * within, 1e-6)
        return MEDIAN_VARIANCE_FACTOR * within / between

    def prior(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "priors_")
        keys = _peer_keys(X)
        code, combos = pd.factorize(pd.MultiIndex.from_arrays(keys))
        table = np.array(
            [
                _first_known(
                    *(self.priors_.get(tuple(c[:d])) for d in (3, 2, 1)), self.global_prior_
                )
                for c in combos
            ],
            dtype="float64",
        )
        return table[code] if len(X) else np.zeros(0)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return with_columns(X, self.added_columns(X))

    def added_columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """The columns :meth:`transform` adds, as arrays
        (the model's booster matrix takes them so)."""
        prior = self.prior(X)
        n = X["n_history_posts"].to_numpy(dtype="float64")
        own = np.nan_to_num(X["log_er_median"].to_numpy(dtype="float64", na_value=np.nan), nan=0.0)
        strength = self.strength_of(X)
        shrunk = (n * own + strength * prior) / (n + strength)
        out = {"prior_log_er": prior, "shrunk_log_er": shrunk}
        for name in getattr(self, "relative_levels_", []):
            level = out[name] if name in out else X[name].to_numpy("float64", na_value=np.nan)
            out[f"{name}_vs_shrunk"] = level - shrunk
        return out

    def added_features(self) -> list[str]:
        relative = [f"{name}_vs_shrunk" for name in getattr(self, "relative_levels_", [])]
        return ["prior_log_er", "shrunk_log_er", *relative]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return _names_out(self, self.added_features())


def _peer_keys(X: pd.DataFrame) -> list[np.ndarray]:
    """Peer group keys, coarsest first: platform, tier, niche (as text)."""
    platform = X["platform"] if "platform" in X else pd.Series(DEFAULT_PLATFORM, index=X.index)
    return [
        platform.astype(str).to_numpy(dtype=object),
        X["tier"].astype(str).to_numpy(dtype=object),
        X["category"].astype(str).to_numpy(dtype=object),
    ]


class HashtagNiche(TransformerMixin, BaseEstimator):
    """Niche and topic signals learned from the bag of hashtags in each influencer's history.

    * ``niche_consistency``: mean over the influencer's known tags of P(own niche | tag), where
      P is learned from training influencers (how consistently posts stay in the own niche);
    * ``niche_purity``: the largest mean P(niche | tag) over niches (how single-niche the tags are);
    * ``hashtag_er``: mean over known tags of the average historical log ER of training
      influencers using that tag (audiences of some tags engage more);
    * ``topic_0..k``: a TF-IDF + truncated SVD embedding of the tags (latent topics).
    """

    def __init__(
        self,
        n_topics: int = 12,
        min_df: int = 5,
        smoothing: float = 1.0,
        max_svd_rows: int = 20_000,
        random_state: int = 0,
    ):
        self.n_topics = n_topics
        self.min_df = min_df
        self.max_svd_rows = max_svd_rows
        self.smoothing = smoothing
        self.random_state = random_state

    def _docs(self, X: pd.DataFrame) -> pd.Series:
        return X["hashtag_doc"].fillna("").astype(str)

    def fit(self, X: pd.DataFrame, y: object = None) -> HashtagNiche:
        self._fit(X)
        return self

    def fit_transform(
        self, X: pd.DataFrame, y: object = None, **fit_params: object
    ) -> pd.DataFrame:
        # Same result as fit(X).transform(X), counting the tags once instead of twice.
        return with_columns(X, self._added(X, self._fit(X)))

    def _tag_matrix(self, docs: pd.Series) -> sparse.csr_matrix:
        """Binary doc x tag matrix over the fitted vocabulary (other tags are ignored)."""
        doc_index, tags = split_docs(docs)
        column = pc.index_in(tags, value_set=self.vocabulary_).to_numpy(zero_copy_only=False)
        known = ~np.isnan(column) if column.dtype.kind == "f" else column >= 0
        return _binary_matrix(
            doc_index[known], column[known].astype("int64"), (len(docs), len(self.vocabulary_))
        )

    def _fit(self, X: pd.DataFrame) -> sparse.csr_matrix | None:
        """Fit, and return the tag matrix of X (None when no tag is frequent enough)."""
        self.input_columns_ = [str(c) for c in X.columns]
        self.svd_ = None
        docs = self._docs(X)
        doc_index, tags = split_docs(docs)
        encoded = (
            pc.dictionary_encode(tags).combine_chunks()
            if isinstance(tags, pa.ChunkedArray)
            else pc.dictionary_encode(tags)
        )
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype("int64")
        all_tags = encoded.dictionary
        every_tag = _binary_matrix(doc_index, codes, (len(docs), len(all_tags)))
        doc_freq = np.bincount(every_tag.indices, minlength=len(all_tags))  # documents per tag
        frequent = np.flatnonzero(doc_freq >= self.min_df)
        self.vocabulary_ = all_tags.take(pa.array(frequent))
        self.niches_ = np.asarray(sorted(X["category"].astype(str).unique()), dtype=object)
        if len(self.vocabulary_) < 2:  # tiny data: no tag is frequent enough to learn from
            return None
        counts = every_tag[:, frequent].tocsr()
        niche_index = pd.Index(self.niches_).get_indexer(X["category"].astype(str))
        onehot = sparse.csr_matrix(
            (np.ones(len(X)), (np.arange(len(X)), niche_index)), shape=(len(X), len(self.niches_))
        )
        tag_niche = np.asarray((counts.T @ onehot).todense())
        self.p_niche_given_tag_ = (tag_niche + self.smoothing / len(self.niches_)) / (
            tag_niche.sum(axis=1, keepdims=True) + self.smoothing
        )
        ler = X["log_er_mean"].to_numpy(dtype="float64")
        has = np.isfinite(ler)
        used = counts[has]
        tag_sum = used.T @ ler[has]
        tag_n = np.asarray(used.sum(axis=0)).ravel()
        global_mean = float(np.nanmean(ler)) if has.any() else 0.0
        # Smoothed towards the global mean so rare tags say little.
        self.tag_er_ = (tag_sum + 5.0 * global_mean) / (tag_n + 5.0)
        self.tfidf_ = TfidfTransformer(sublinear_tf=True).fit(counts)
        n_topics = max(1, min(self.n_topics, counts.shape[1] - 1))
        # Topics settle long before all rows are seen: fit the SVD on a fixed-size sample.
        rows = np.random.default_rng(self.random_state).permutation(counts.shape[0])[
            : self.max_svd_rows
        ]
        self.svd_ = TruncatedSVD(n_components=n_topics, random_state=self.random_state).fit(
            self.tfidf_.transform(counts[np.sort(rows)])
        )
        return counts

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return with_columns(X, self.added_columns(X))

    def added_columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """The columns :meth:`transform` adds, as arrays
        (the model's booster matrix takes them so)."""
        check_is_fitted(self, "niches_")
        counts = self._tag_matrix(self._docs(X)) if self.svd_ is not None else None
        return self._added(X, counts)

    def _added(self, X: pd.DataFrame, counts: sparse.csr_matrix | None) -> dict[str, np.ndarray]:
        if counts is None:
            return {name: np.full(len(X), np.nan) for name in self.added_features()}
        n_known = np.asarray(counts.sum(axis=1)).ravel()
        known = n_known > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_p = np.asarray(counts @ self.p_niche_given_tag_) / n_known[:, None]
            niche_index = pd.Index(self.niches_).get_indexer(X["category"].astype(str))
            own = np.where(
                niche_index >= 0, mean_p[np.arange(len(X)), np.clip(niche_index, 0, None)], np.nan
            )
            added = {
                "niche_consistency": np.where(known, own, np.nan),
                "niche_purity": np.where(known, mean_p.max(axis=1), np.nan),
                "hashtag_er": np.where(known, (counts @ self.tag_er_) / n_known, np.nan),
            }
        assert self.svd_ is not None  # counts exist only when the topics were fitted
        topics = self.svd_.transform(self.tfidf_.transform(counts))
        for i in range(self.svd_.n_components):
            added[f"topic_{i}"] = np.where(known, topics[:, i], np.nan)
        return added

    def added_features(self) -> list[str]:
        svd = getattr(self, "svd_", None)
        n = svd.n_components if svd is not None else self.n_topics
        return ["niche_consistency", "niche_purity", "hashtag_er"] + [
            f"topic_{i}" for i in range(n)
        ]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return _names_out(self, self.added_features())


OTHER_CATEGORY = "other"


class CategoryVocabulary(TransformerMixin, BaseEstimator):
    """The niches the model tells apart, learned from the training rows (an open vocabulary).

    The contract keeps any category name it cannot map to a known niche (``"comedy"``,
    ``"dancing"``); this step decides which of them are frequent enough to learn from. At fit
    time a value held by at least ``min_count`` influencers joins :attr:`vocabulary_` (rows are
    counted once per influencer when there is an ``influencer`` column: rolling cutoffs give a
    creator many rows); the contract's known niches that appear are always kept, and ``other``
    always is. At transform time a value in the vocabulary keeps its name, a close misspelling
    of one (letters only, difflib ratio at least ``cutoff``, as the contract compares) is mapped
    to it, and anything else becomes ``other``. It replaces the ``category`` column, so it
    comes first: the steps after it read ``category``.

    Parameters
    ----------
    min_count
        Influencers a value needs in the training rows to become its own niche.
    cutoff
        Similarity (0-1] a value needs to a vocabulary value to count as its misspelling.
    """

    def __init__(self, min_count: int = 20, cutoff: float = CATEGORY_MATCH_CUTOFF):
        self.min_count = min_count
        self.cutoff = cutoff

    def fit(self, X: pd.DataFrame, y: object = None) -> CategoryVocabulary:
        if (
            isinstance(self.min_count, bool)
            or not isinstance(self.min_count, Integral)
            or self.min_count < 1
        ):
            raise ValueError(
                f"min_count must be a whole number of 1 or more; got {self.min_count!r}"
            )
        if (
            isinstance(self.cutoff, bool)
            or not isinstance(self.cutoff, Real)
            or not 0.0 < self.cutoff <= 1.0
        ):
            raise ValueError(f"cutoff must be a similarity in (0, 1]; got {self.cutoff!r}")
        _require_category(X)
        self.input_columns_ = [str(c) for c in X.columns]
        code, uniques = pd.factorize(X["category"])
        names = np.asarray(
            [normalise_category(v) or OTHER_CATEGORY for v in uniques] + [OTHER_CATEGORY],
            dtype=object,
        )
        held = pd.DataFrame({"category": names[code]})
        if "influencer" in X.columns:
            held["influencer"] = X["influencer"].to_numpy()
            held = held.drop_duplicates()
        counts = held["category"].value_counts()
        known = set(KNOWN_CATEGORIES)
        kept = {str(v) for v, n in counts.items() if n >= self.min_count or v in known}
        self.vocabulary_: tuple[str, ...] = tuple(sorted(kept | {OTHER_CATEGORY}))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.assign(**self.added_columns(X))  # a new frame, as the other steps return

    def added_columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """The column :meth:`transform` replaces, ``category`` on the vocabulary, as an array;
        empty when every value is in the vocabulary already (nothing to replace)."""
        check_is_fitted(self, "vocabulary_")
        _require_category(X)
        # Each distinct value looked up once: a column holds a handful of niches.
        code, uniques = pd.factorize(X["category"])
        niches = [self.niche_of(v) for v in uniques]
        if (code >= 0).all() and all(n == v for n, v in zip(niches, uniques, strict=True)):
            return {}
        return {"category": np.asarray([*niches, OTHER_CATEGORY], dtype=object)[code]}

    def niche_of(self, value: object) -> str:
        """The vocabulary value ``value`` stands for (``other`` if none)."""
        check_is_fitted(self, "vocabulary_")
        text = normalise_category(value)
        if text is None:
            return OTHER_CATEGORY
        if text in self.vocabulary_:
            return text
        return closest_category(text, self.vocabulary_, self.cutoff) or OTHER_CATEGORY

    def added_features(self) -> list[str]:
        return []  # it replaces ``category``; no new model input

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return _names_out(self, [])


def _require_category(X: pd.DataFrame) -> None:
    if "category" not in X.columns:
        present = ", ".join(str(c) for c in X.columns[:10]) or "none"
        raise ValueError(
            f"CategoryVocabulary needs a 'category' column; columns present: {present}"
        )


class CategoryEncoder(TransformerMixin, BaseEstimator):
    """Fix the categories of the categorical columns at
    fit time (LightGBM needs the same at predict)."""

    def __init__(self, columns: tuple[str, ...] = CATEGORICAL_FEATURES):
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> CategoryEncoder:
        self.input_columns_ = [str(c) for c in X.columns]
        self.categories_ = {c: sorted(X[c].astype(str).unique()) for c in self.columns}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        # From codes: building a Categorical from values outside its categories is deprecated.
        encoded = {
            # pandas-stubs want an int-typed array and an Index; any codes and list-like work.
            col: pd.Categorical.from_codes(  # type: ignore[call-overload]
                codes, categories=self.categories_[col]
            )
            for col, codes in self.codes(X).items()
        }
        return with_columns(X, encoded)

    def codes(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each column's category codes (positions in ``categories_``; -1 for unseen values, which
        LightGBM routes like a rare category)."""
        check_is_fitted(self, "categories_")
        out = {}
        for col, cats in self.categories_.items():
            # Each distinct value looked up once: columns hold a handful of values, and hashing
            # every cell as text (pandas' get_indexer) has a fixed cost that dominates for one
            # candidate.
            code, values = value_codes(X[col])
            position = {category: i for i, category in enumerate(cats)}
            table = np.array([position.get(value, -1) for value in values], dtype="int64")
            out[col] = table[code] if len(code) else np.zeros(0, dtype="int64")
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return _names_out(self, [])
