"""Reading a dataset's source: listing its parquet files, slicing them into partitions, and
reading one slice as normalised metadata rows. No Dagster imports."""
