"""The learned feature steps of :mod:`features.transformers`: the category vocabulary."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.pipeline import default_feature_steps
from features.transformers import CategoryVocabulary


def rows(counts: dict[str, int], rows_each: int = 1) -> pd.DataFrame:
    """A frame with ``counts[value]`` influencers of each category, ``rows_each`` rows each."""
    values = [(f"{value}_{i}", value) for value, n in counts.items() for i in range(n)]
    frame = pd.DataFrame(values * rows_each, columns=["influencer", "category"])
    return frame.assign(n_history_posts=1.0)


@pytest.fixture
def vocabulary() -> CategoryVocabulary:
    # comedy: 25 influencers (frequent), dancing: 30, pet: 2 (rare but a known niche), crypto: 3
    return CategoryVocabulary().fit(rows({"comedy": 25, "dancing": 30, "pet": 2, "crypto": 3}))


def test_frequent_values_and_known_niches_make_the_vocabulary(vocabulary):
    assert vocabulary.vocabulary_ == ("comedy", "dancing", "other", "pet")


def test_influencers_are_counted_not_rows():
    # 3 influencers with 10 rows each (rolling cutoffs): 30 rows, but not 20 influencers.
    fitted = CategoryVocabulary().fit(rows({"crypto": 3}, rows_each=10))
    assert "crypto" not in fitted.vocabulary_
    # Without an influencer column, rows are what there is to count.
    assert (
        "crypto"
        in CategoryVocabulary()
        .fit(rows({"crypto": 3}, rows_each=10).drop(columns="influencer"))
        .vocabulary_
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("comedy", "comedy"),  # a frequent unknown value keeps its name
        ("pet", "pet"),  # a known niche seen in training
        ("comdy", "comedy"),  # a close misspelling of a vocabulary value
        ("Dancing, Lipsyncing", "dancing"),  # as the contract reads it: lower case, first genre
        ("dancnig", "dancing"),  # transposed letters
        ("crypto", "other"),  # rare in training: not its own niche
        ("gaming", "other"),  # never seen
        ("travel", "other"),  # a known niche absent from training: nothing learned about it
        ("other", "other"),
        ("☃☃", "other"),  # no letters to compare
        (None, "other"),  # missing
    ],
)
def test_transform_maps_onto_the_vocabulary(vocabulary, value, expected):
    X = pd.DataFrame({"category": [value, "dancing"], "n_history_posts": [1.0, 2.0]}, index=[7, 9])
    before = X.copy()
    out = vocabulary.transform(X)
    assert out["category"].tolist() == [expected, "dancing"]
    assert list(out.columns) == list(X.columns) and list(out.index) == [7, 9]
    pd.testing.assert_frame_equal(X, before)  # the input is not changed


def test_added_columns_is_empty_when_nothing_changes(vocabulary):
    X = pd.DataFrame({"category": ["comedy", "pet"]})
    assert vocabulary.added_columns(X) == {}
    assert vocabulary.added_columns(X.assign(category=["comedy", "gaming"]))[
        "category"
    ].tolist() == ["comedy", "other"]


def test_scikit_learn_contract(vocabulary):
    X = pd.DataFrame(
        {"influencer": ["a", "b"], "category": ["comdy", "dancing"], "n_history_posts": [1.0, 0.0]}
    )
    fresh = clone(vocabulary)
    assert fresh.get_params() == {"min_count": 20, "cutoff": 0.75}
    assert not hasattr(fresh, "vocabulary_")  # __init__ only stores its arguments
    assert list(vocabulary.get_feature_names_out()) == ["influencer", "category", "n_history_posts"]
    out = CategoryVocabulary(min_count=1).set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame) and out["category"].tolist() == ["comdy", "dancing"]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"min_count": 0}, r"min_count must be a whole number of 1 or more; got 0"),
        ({"min_count": 2.5}, r"min_count must be a whole number of 1 or more; got 2\.5"),
        ({"min_count": True}, r"min_count must be a whole number of 1 or more; got True"),
        ({"cutoff": 0}, r"cutoff must be a similarity in \(0, 1\]; got 0"),
        ({"cutoff": 1.5}, r"cutoff must be a similarity in \(0, 1\]; got 1\.5"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, match):
    with pytest.raises(ValueError, match=match):
        CategoryVocabulary(**params).fit(rows({"comedy": 2}))


def test_a_frame_without_category_is_refused(vocabulary):
    with pytest.raises(
        ValueError, match=r"needs a 'category' column; columns present: influencer, niche"
    ):
        CategoryVocabulary().fit(pd.DataFrame({"influencer": ["a"], "niche": ["food"]}))
    with pytest.raises(ValueError, match=r"needs a 'category' column"):
        vocabulary.transform(pd.DataFrame({"niche": ["food"]}))


def test_transform_before_fit_is_refused():
    with pytest.raises(NotFittedError, match=r"CategoryVocabulary instance is not fitted yet"):
        CategoryVocabulary().transform(pd.DataFrame({"category": ["food"]}))


def test_the_vocabulary_is_the_first_feature_step():
    # The prior and hashtag steps read category: they must see it on the vocabulary.
    assert default_feature_steps().steps[0][0] == "vocabulary"
    assert isinstance(default_feature_steps().steps[0][1], CategoryVocabulary)
