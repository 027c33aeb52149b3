"""File writers: core records as Parquet files, byte for byte the same on every run."""
