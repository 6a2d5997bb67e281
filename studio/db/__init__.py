"""The database: engine and unit of work, the repository base, migrations."""
