"""The lexical index: BM25 per namespace over only the query's informative terms."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentos.runtime.memory._lexical import LexicalIndex, text_hash


def _index(tmp_path: Path, **kwargs: float) -> LexicalIndex:
    index = LexicalIndex(tmp_path / "index.sqlite", **kwargs)  # type: ignore[arg-type]
    filler = [(f"f{i}", f"the server logs a request number {i} and returns a response")
              for i in range(200)]
    index.add("global", [*filler, ("rare", "the server logs a zeppelin request")])
    return index


def test_common_terms_are_left_out_of_the_query_and_the_rare_one_ranks_first(
        tmp_path: Path) -> None:
    index = _index(tmp_path)
    terms = dict(index.query_terms("global", "server logs zeppelin requests"))
    assert terms == {"zeppelin": 1}  # server, log, request: in every chunk
    assert index.search("global", "server logs zeppelin requests", 5)[0][0] == "rare"


def test_a_query_of_only_common_terms_keeps_the_rarest_one(tmp_path: Path) -> None:
    index = _index(tmp_path)
    index.add("global", [("x", "a response without the other words")])
    terms = index.query_terms("global", "response server")
    assert terms == [("respons", 201)] or terms == [("server", 201)]
    assert len(index.search("global", "response server", 5)) == 5


def test_terms_stop_when_their_postings_exceed_the_cap(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "index.sqlite", common_fraction=1.0, max_postings=15)
    index.add("global", [(f"a{i}", f"alpha {'beta' if i < 10 else ''} gamma{i}")
                         for i in range(20)])
    assert index.query_terms("global", "alpha beta gamma3") == [("gamma3", 1), ("beta", 10)]


def test_a_new_rare_term_is_found_right_after_a_search_missed_it(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert index.search("global", "quokka", 5) == []
    index.add("global", [("q", "a quokka visited the server")])
    assert [i for i, _ in index.search("global", "quokka", 5)] == ["q"]


def test_namespaces_do_not_see_each_other(tmp_path: Path) -> None:
    index = _index(tmp_path)
    index.add("agent:a", [("secret", "the zeppelin vault code")])
    assert [i for i, _ in index.search("agent:a", "zeppelin", 5)] == ["secret"]
    assert "secret" not in [i for i, _ in index.search("global", "zeppelin vault", 5)]
    assert index.search("agent:b", "zeppelin", 5) == []
    assert index.count("agent:a") == 1 and index.count("global") == 201


def test_replace_delete_and_drop_by_id(tmp_path: Path) -> None:
    index = _index(tmp_path)
    index.add("global", [("rare", "now about a blimp")])
    assert index.count("global") == 201
    assert index.search("global", "zeppelin", 5) == []
    assert [i for i, _ in index.search("global", "blimp", 5)] == ["rare"]
    assert index.hashes("global")["rare"] == text_hash("now  about a blimp")
    index.delete("global", ["rare", "f0", "not-there"])
    assert index.count("global") == 199 and index.search("global", "blimp", 5) == []
    index.drop("global")
    assert index.count("global") == 0 and index.search("global", "request", 5) == []
    index.add("global", [("again", "a request after the drop")])
    assert [i for i, _ in index.search("global", "request", 5)] == ["again"]


def test_an_index_in_the_old_single_table_layout_is_moved_over(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE VIRTUAL TABLE chunks USING fts5(text, id UNINDEXED, namespace UNINDEXED, "
               "tokenize='porter unicode61')")
    db.executemany("INSERT INTO chunks VALUES (?, ?, ?)", [
        ("zeppelins fly slowly", "z1", "global"), ("a private zeppelin", "z2", "agent:a")])
    db.commit()
    db.close()
    index = LexicalIndex(path)
    assert [i for i, _ in index.search("global", "zeppelin", 5)] == ["z1"]
    assert [i for i, _ in index.search("agent:a", "zeppelin", 5)] == ["z2"]
    index.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='chunks'").fetchone() == (0,)
