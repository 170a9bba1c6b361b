"""The embedded SQLite store: one file, WAL, one writer at a time, numbered migrations."""
