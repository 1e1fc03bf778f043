"""Settings, engines, the embedded PostgreSQL server, schema, demo data and CSV import."""
