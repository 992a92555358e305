"""One reader per file format; each returns a `RawData` and leaves all checks to `raw.py`."""
