"""Reading Parquet inputs as a file, a folder or a glob (features/datasets.py)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import DataError
from features.distributed import read_parquet_any
from tests.conftest import raw_profiles_frame
from tests.dask_fixtures import write_parts

# --------------------------------------------------------------------------- reading


def test_read_parquet_any_file_folder_glob_agree(parquet_data):
    profiles_dir, _ = parquet_data
    whole = read_parquet_any(profiles_dir)
    assert len(whole) == sum(len(pq.read_table(f)) for f in profiles_dir.glob("*.parquet"))
    pd.testing.assert_frame_equal(read_parquet_any(str(profiles_dir / "part-*.parquet")), whole)
    pd.testing.assert_frame_equal(
        read_parquet_any(profiles_dir / "part-0.parquet"),
        pq.read_table(profiles_dir / "part-0.parquet").to_pandas(),
    )
    lazy = read_parquet_any(profiles_dir, engine="dask")
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), whole, check_dtype=False)


def test_read_parquet_any_no_files(tmp_path):
    with pytest.raises(DataError, match="no Parquet files found"):
        read_parquet_any(str(tmp_path / "*.parquet"))


def test_readers_skip_hidden_and_underscore_folders(tmp_path):
    write_parts(raw_profiles_frame(), tmp_path / "t", 1)
    write_parts(
        raw_profiles_frame(), tmp_path / "t" / "_tmp-1234", 2
    )  # an unpublished staging folder
    write_parts(raw_profiles_frame(), tmp_path / "t" / ".hidden", 1)
    assert len(read_parquet_any(tmp_path / "t")) == len(raw_profiles_frame())
