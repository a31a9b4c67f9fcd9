"""The schema and queries, as files (`migrations/`, `queries/`, `roles/`).

Not Python: this file only lets the folder ship inside a wheel, as the package
`marketing_sql` (setup.py maps it), so an installed pipeline finds its SQL with no
checkout beside it (resources/sql_files.py).
"""
