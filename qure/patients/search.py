"""Name search that stays fast on a million patients.

Matches are live patients, in three tiers, best first, each read from an index in the
order it is shown:

1. the whole name starts with the query (`ix_patients_name_prefix`, byte order: the exact
   name comes before its continuations);
2. otherwise, every query word starts a word of the name (`patient_search_terms`, one row
   per word, kept by a trigger: the whole word "anil" comes before "anilkumar");
3. for a one-word query, the word occurs inside a word ("nandes" in Fernandes): the words
   containing it come from `search_words` (trigram index over distinct words, most
   similar first), their patients from the word index. Several words are each taken as
   the start of a word of the name.

A page reads only the index entries it shows, and counting stops at `CAP`: a common name
("kumar") costs the same as a rare one. Past the cap the total is reported as capped and
the user is asked to type more of the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from qure.extensions import db

CAP = 500
SET_MOST = 5000  # patients matching every word of a multi-word query, read at most
WORDS_MOST = 20  # words containing a fragment, looked at most


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class Tier:
    """One tier: the SQL selecting its ids, the order they are shown in, its parameters."""

    sql: str
    order: str
    params: dict
    # A cheaper superset of the tier (index entries only): when it stays under the limit,
    # the exact count is cheap too; when it does not, the count is capped anyway.
    rough: str | None = None

    def count(self, limit: int) -> int:
        """How many ids, counting no further than `limit` (no ordering needed for that)."""
        if limit <= 0:
            return 0
        params = {**self.params, "_limit": limit}
        if self.rough:
            rough = f"SELECT count(*) FROM ({self.rough} LIMIT :_limit) AS matches"
            if db.session.scalar(text(rough), params) >= limit:
                return limit
        query = f"SELECT count(*) FROM ({self.sql} LIMIT :_limit) AS matches"
        return db.session.scalar(text(query), params) or 0

    def ids(self, offset: int, limit: int) -> list[int]:
        query = f"{self.sql} ORDER BY {self.order} LIMIT :_limit OFFSET :_offset"
        params = {**self.params, "_limit": limit, "_offset": offset}
        return list(db.session.scalars(text(query), params))


def _name_starts(params: dict) -> Tier:
    return Tier(
        'SELECT id FROM patients WHERE archived_at IS NULL AND name_search COLLATE "C" '
        "LIKE :prefix",
        'name_search COLLATE "C", id',
        params,
    )


def _word_starts(words: list[str], params: dict) -> Tier:
    if len(words) == 1:
        # Stream the word index in order; skip a patient already in tier 1, and keep only
        # the first of several matching words of one patient. (Any term between the word
        # and t.term starts with the word: a range the (patient_id, term) index answers.)
        return Tier(
            "SELECT t.patient_id FROM patient_search_terms t "
            "JOIN patients p ON p.id = t.patient_id "
            'WHERE t.term LIKE :w0 AND p.name_search COLLATE "C" NOT LIKE :prefix '
            "AND NOT EXISTS (SELECT 1 FROM patient_search_terms d "
            "  WHERE d.patient_id = t.patient_id AND d.term >= :word0 AND d.term < t.term)",
            "t.term, t.patient_id",
            params,
            rough="SELECT 1 FROM patient_search_terms WHERE term LIKE :w0",
        )
    sets = " INTERSECT ".join(
        f"SELECT patient_id FROM patient_search_terms WHERE term LIKE :w{i}"
        for i in range(len(words))
    )
    # The set first, then its patients by primary key: joined in one statement, the planner
    # overestimates the set and scans the whole patients table instead.
    ids = list(db.session.scalars(text(f"{sets} LIMIT :_most"), {**params, "_most": SET_MOST}))
    return Tier(
        'SELECT id FROM patients WHERE id = ANY(:ids) AND name_search COLLATE "C" NOT LIKE :prefix',
        'name_search COLLATE "C", id',
        {**params, "ids": ids},
    )


def _inside_a_word(params: dict) -> tuple[list[Tier], bool]:
    """One word found inside a word of the name ("nandes" in Fernandes), for patients none
    of whose words start with it. The words containing it come from `search_words` (at
    most WORDS_MOST, most similar first); each is a tier of its own, its patients read
    from the word index in order, a patient listed under an earlier word skipped. Also
    says whether more words contain it than were looked at."""
    found = list(
        db.session.scalars(
            text(
                "SELECT word FROM search_words WHERE word LIKE :c0 AND word NOT LIKE :w0 "
                "ORDER BY similarity(word, :word0) DESC, word LIMIT :_most"
            ),
            {**params, "_most": WORDS_MOST + 1},
        )
    )
    more = len(found) > WORDS_MOST
    found = found[:WORDS_MOST]
    return [
        Tier(
            "SELECT t.patient_id FROM patient_search_terms t WHERE t.term = :inside "
            "AND NOT EXISTS (SELECT 1 FROM patient_search_terms e "
            "  WHERE e.patient_id = t.patient_id "
            "  AND (e.term LIKE :w0 OR e.term = ANY(:before)))",
            "t.patient_id",
            {**params, "inside": word, "before": found[:k]},
            rough="SELECT 1 FROM patient_search_terms WHERE term = :inside",
        )
        for k, word in enumerate(found)
    ], more


def find(query: str, offset: int, limit: int) -> tuple[list[int], int, bool]:
    """Ids of live patients matching a normalised name query, best first.

    Returns (ids for this page, total, capped): `total` stops at CAP, and `capped` says
    there are more matches than that.
    """
    words = query.split()[:6]
    params: dict = {"prefix": like_escape(query) + "%"}
    for i, word in enumerate(words):
        escaped = like_escape(word)
        params[f"word{i}"] = word
        params[f"w{i}"] = escaped + "%"
        params[f"c{i}"] = "%" + escaped + "%"

    words_left_out = False

    def tiers():
        nonlocal words_left_out
        yield _name_starts(params)
        yield _word_starts(words, params)
        if len(words) == 1:
            # Inside a word only for one word: several words are each taken as the start
            # of a word of the name, as people type them ("ravi sh").
            inside, words_left_out = _inside_a_word(params)
            yield from inside

    counted: list[tuple[Tier, int]] = []
    room = CAP + 1
    for tier in tiers():  # lazily: a tier past the cap is never even built
        counted.append((tier, tier.count(room)))
        room -= counted[-1][1]
        if room <= 0:
            break
    total = sum(count for _, count in counted)
    ids: list[int] = []
    for tier, count in counted:
        if len(ids) == limit:
            break
        if offset < count:
            ids += tier.ids(offset, min(limit - len(ids), count - offset))
            offset = 0
        else:
            offset -= count
    return ids, min(total, CAP), total > CAP or words_left_out
