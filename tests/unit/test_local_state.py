"""Local tables survive a clean stop only (streams/local_state.py)."""
from __future__ import annotations

from streams import local_state


def tables_in(tmp_path):
    tables = tmp_path / "v1" / "tables"
    tables.mkdir(parents=True)
    (tables / "order-history-0.db").write_text("state")
    return tables


def test_after_a_clean_stop_the_tables_are_kept_and_the_marker_is_consumed(tmp_path):
    tables = tables_in(tmp_path)
    local_state.mark_clean(tmp_path)
    assert local_state.prepare(tmp_path, tables) is False
    assert (tables / "order-history-0.db").exists()
    assert not (tmp_path / local_state.MARKER).exists(), "a kill during this run must find no marker"


def test_without_a_clean_stop_the_tables_are_removed(tmp_path):
    tables = tables_in(tmp_path)
    assert local_state.prepare(tmp_path, tables) is True
    assert not tables.exists()


def test_a_first_start_removes_nothing(tmp_path):
    assert local_state.prepare(tmp_path, tmp_path / "v1" / "tables") is False


def test_a_killed_run_after_a_clean_one_is_detected(tmp_path):
    tables = tables_in(tmp_path)
    local_state.mark_clean(tmp_path)
    local_state.prepare(tmp_path, tables)  # this run is killed: it never marks
    assert local_state.prepare(tmp_path, tables) is True
