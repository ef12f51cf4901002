"""sovtel's test suite; mirrors the package layout."""
