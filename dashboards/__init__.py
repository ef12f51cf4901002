"""sovtel: dashboards."""
