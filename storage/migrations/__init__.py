"""The SQL migration files (package data), applied in order by storage.migrate."""
