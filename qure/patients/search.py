"""Name search that stays fast on a million patients.

Matches are the live patients whose normalised name contains every query word. They come
in three tiers, best first, each read from an index in the order it is shown:

1. the whole name starts with the query (`ix_patients_name_prefix`, byte order: the exact
   name comes before its continuations);
2. every query word starts a later word of the name (`patient_search_terms`, one row per
   word, kept by a trigger: the whole word "anil" comes before "anilkumar");
3. the words occur anywhere, e.g. inside a word (trigram index, by similarity).

A page reads only the index entries it shows, and counting stops at `CAP`: a common name
("kumar") costs the same as a rare one. Past the cap the total is reported as capped and
the user is asked to type more of the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from qure.extensions import db

CAP = 500


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class Tier:
    """One tier: the SQL selecting its ids in display order, and its parameters."""

    sql: str
    params: dict

    def count(self, limit: int) -> int:
        if limit <= 0:
            return 0
        query = f"SELECT count(*) FROM ({self.sql} LIMIT :_limit) AS matches"
        return db.session.scalar(text(query), {**self.params, "_limit": limit}) or 0

    def ids(self, offset: int, limit: int) -> list[int]:
        query = f"{self.sql} LIMIT :_limit OFFSET :_offset"
        params = {**self.params, "_limit": limit, "_offset": offset}
        return list(db.session.scalars(text(query), params))


def _name_starts(params: dict) -> Tier:
    return Tier(
        'SELECT id FROM patients WHERE archived_at IS NULL AND name_search COLLATE "C" '
        'LIKE :prefix ORDER BY name_search COLLATE "C", id',
        params,
    )


def _word_starts(words: list[str], params: dict) -> Tier:
    if len(words) == 1:
        # Stream the word index in order; skip a patient already in tier 1 and keep only
        # the first of several matching words of one patient.
        return Tier(
            "SELECT t.patient_id FROM patient_search_terms t "
            "JOIN patients p ON p.id = t.patient_id "
            'WHERE t.term LIKE :w0 AND p.name_search COLLATE "C" NOT LIKE :prefix '
            "AND NOT EXISTS (SELECT 1 FROM patient_search_terms d "
            "  WHERE d.patient_id = t.patient_id AND d.term LIKE :w0 AND d.term < t.term) "
            "ORDER BY t.term, t.patient_id",
            params,
        )
    sets = " INTERSECT ".join(
        f"SELECT patient_id FROM patient_search_terms WHERE term LIKE :w{i}"
        for i in range(len(words))
    )
    return Tier(
        f"SELECT p.id FROM ({sets}) AS m JOIN patients p ON p.id = m.patient_id "
        'WHERE p.name_search COLLATE "C" NOT LIKE :prefix '
        'ORDER BY p.name_search COLLATE "C", p.id',
        params,
    )


def _anywhere(words: list[str], params: dict) -> Tier:
    contains = " AND ".join(f"name_search LIKE :c{i}" for i in range(len(words)))
    word_starts = " AND ".join(
        f"(name_search LIKE :w{i} OR name_search LIKE :s{i})" for i in range(len(words))
    )
    return Tier(
        f"SELECT id FROM patients WHERE archived_at IS NULL AND {contains} "
        f"AND NOT ({word_starts}) "
        "ORDER BY similarity(name_search, :query) DESC, name_search, id",
        params,
    )


def find(query: str, offset: int, limit: int) -> tuple[list[int], int, bool]:
    """Ids of live patients matching a normalised name query, best first.

    Returns (ids for this page, total, capped): `total` stops at CAP, and `capped` says
    there are more matches than that.
    """
    words = query.split()[:6]
    params: dict = {"query": query, "prefix": like_escape(query) + "%"}
    for i, word in enumerate(words):
        escaped = like_escape(word)
        params[f"w{i}"] = escaped + "%"
        params[f"s{i}"] = "% " + escaped + "%"
        params[f"c{i}"] = "%" + escaped + "%"
    tiers = (_name_starts(params), _word_starts(words, params), _anywhere(words, params))
    counts: list[int] = []
    room = CAP + 1
    for tier in tiers:
        counts.append(tier.count(room))
        room -= counts[-1]
    total = sum(counts)
    ids: list[int] = []
    for tier, count in zip(tiers, counts, strict=True):
        if len(ids) == limit:
            break
        if offset < count:
            ids += tier.ids(offset, min(limit - len(ids), count - offset))
            offset = 0
        else:
            offset -= count
    return ids, min(total, CAP), total > CAP
