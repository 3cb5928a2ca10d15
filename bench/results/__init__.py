"""The results folder on disk: every table's schema, atomic files and the lock, meta.json
and its fingerprint, and `bench compare`."""
