"""The build DSN: the replay's schema first on the search path, the rest kept."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from projections.adapters.postgres_versions import with_search_path


def test_search_path_is_added_to_a_url() -> None:
    got = conninfo_to_dict(with_search_path("postgresql://ann@db.example:6543/engage", "s_2"))
    assert got["host"] == "db.example" and got["port"] == "6543" and got["dbname"] == "engage"
    assert got["options"] == "-c search_path=s_2,public"


def test_existing_options_are_kept() -> None:
    got = conninfo_to_dict(with_search_path("dbname=e options='-c statement_timeout=5s'", "s_3"))
    assert got["options"] == "-c statement_timeout=5s -c search_path=s_3,public"
