"""Development tools: the embedded PostgreSQL server, demo data and the local runner (never deployed)."""
