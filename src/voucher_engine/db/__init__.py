"""PostgreSQL: table definitions, the async engine, migrations and the embedded server launcher."""
