"""Packaging details pyproject.toml cannot say: the top-level `sql/` folder (the design
card's layout) ships in the wheel as the package `marketing_sql`, with its .sql files.
The code packages are listed, not discovered, so the dev-only `tests/`, `bench/` and
`devkit/` stay out of the wheel (tests/test_wheel_install.py checks the wheel's contents).
Everything else about the project is in pyproject.toml."""

from setuptools import find_packages, setup

CODE_PACKAGES = ["pipelines*", "assets*", "resources*", "transforms*", "datagen*", "api*"]

setup(
    packages=[*find_packages(include=CODE_PACKAGES), "marketing_sql"],
    package_dir={"marketing_sql": "sql"},
    package_data={"marketing_sql": ["migrations/*.sql", "queries/*.sql", "roles/*.sql"]},
)
