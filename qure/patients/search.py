"""Name search that stays fast on a million patients.

Matches are live patients, in three tiers, best first, each read from an index in the
order it is shown:

1. the whole name starts with the query (`ix_patients_name_prefix`, byte order: the exact
   name comes before its continuations);
2. otherwise, every query word starts a word of the name: for one word, from
   `patient_search_terms` (one row per word, kept by a trigger: the whole word "anil"
   comes before "anilkumar"); for several, the names the trigram index finds holding
   every word, by name (the word starts checked on them);
3. for a one-word query, the word occurs inside a word ("nandes" in Fernandes): the words
   containing it come from `search_words` (trigram index over distinct words, most
   similar first), their patients from the word index. Several words are each taken as
   the start of a word of the name.

A page reads only the index entries it shows, and counting stops at `CAP`: a common name
("kumar") costs the same as a rare one. Past the cap the total is reported as capped and
the user is asked to type more of the name.

Round trips: a first page comes in one statement with the counts of tiers 1 and 2 (the
rows of its slices with their patients' columns); a later page needs two (the counts,
then the page). A one-word query that leaves room under the cap adds the words containing
it, then their tiers' counts, then (when the page is not full yet) their rows.

bandit's B608 (SQL built from strings) is silenced here line by line (`# nosec B608`): every
piece put into these statements is made by this module (column lists, tier fragments,
parameter numbers, LIMIT constants); the searched words only ever travel as bound
parameters (`:w0`, `:inside1`, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import text

from qure.core.text import like_escape
from qure.extensions import db

CAP = 500
SET_MOST = 5000  # patients matching every word of a multi-word query, read at most
WORDS_MOST = 20  # words containing a fragment, looked at most
# Three letters or digits in a row: a word the trigram index can look up (of "ab" or
# "a.b.c" it has no trigram, and would read every entry).
TRIGRAM = re.compile(r"[^\W_]{3}")

# The columns a search result carries: what `PatientSchema` shows (not the search copies).
COLUMNS = (
    "id",
    "mrn",
    "full_name",
    "date_of_birth",
    "dob_estimated",
    "sex",
    "phone",
    "email",
    "address",
    "blood_group",
    "allergies",
    "chronic_conditions",
    "emergency_contact",
    "archived_at",
    "created_at",
    "updated_at",
)
SELECTED = ", ".join(f"p.{name}" for name in COLUMNS)


@dataclass
class Tier:
    """One tier: its ids (`id`, from `source`, shown in the order of `key`, then `id`) and
    its parameters, whose names no other tier uses."""

    id: str
    key: str  # text in C collation
    source: str  # FROM ... WHERE ...
    params: dict = field(default_factory=dict)
    # A set the tier reads twice (to count it and to show a page of it), computed once
    # by the statement that reads it: `name AS MATERIALIZED (...)`.
    cte: str | None = None
    # A cheaper superset of the tier (index entries only): when it stays under the limit,
    # the exact count is cheap too; when it does not, the count is capped anyway.
    rough: str | None = None

    @property
    def sql(self) -> str:
        return f"SELECT {self.id} {self.source}"

    def counted(self, room: str) -> str:
        """An SQL expression: how many ids, counting no further than `room` (an SQL
        expression), and `room` itself when the rough superset reaches it."""
        exact = f"(SELECT count(*) FROM ({self.sql} LIMIT {room}) AS m)"  # nosec B608
        if not self.rough:
            return exact
        rough = f"(SELECT count(*) FROM ({self.rough} LIMIT {room}) AS r)"  # nosec B608
        return f"CASE WHEN {rough} >= {room} THEN {room} ELSE {exact} END"

    def page(self, n: int) -> str:
        """A slice of this tier in display order, tagged `n`, its bounds :_limit<n> and
        :_offset<n>."""
        return (
            f"(SELECT {n} AS _tier, {self.key} AS _key, {self.id} AS _id {self.source} "
            f"ORDER BY {self.key}, {self.id} LIMIT :_limit{n} OFFSET :_offset{n})"
        )


def _name_starts() -> Tier:
    return Tier(
        "id",
        'name_search COLLATE "C"',
        'FROM patients WHERE archived_at IS NULL AND name_search COLLATE "C" LIKE :prefix',
    )


def _word_starts(words: list[str], params: dict) -> Tier:
    if len(words) == 1:
        # Stream the word index in order; skip a patient already in tier 1, and keep only
        # the first of several matching words of one patient. (Any term between the word
        # and t.term starts with the word: a range the (patient_id, term) index answers.)
        return Tier(
            "t.patient_id",
            "t.term",
            "FROM patient_search_terms t JOIN patients p ON p.id = t.patient_id "
            'WHERE t.term LIKE :w0 AND p.name_search COLLATE "C" NOT LIKE :prefix '
            "AND NOT EXISTS (SELECT 1 FROM patient_search_terms d "
            "  WHERE d.patient_id = t.patient_id AND d.term >= :word0 AND d.term < t.term)",
            rough="SELECT 1 FROM patient_search_terms WHERE term LIKE :w0",
        )
    distinct = _needed(words)
    if any(TRIGRAM.search(words[i]) for i in distinct):
        # Every word starts a word of the name: " " + name holds " " + word. The trigram
        # index finds the names holding every word (ANDing its lists is far cheaper than
        # intersecting two word-index ranges of 11,000 entries); the word starts are
        # checked on what it finds. The set is read first, at most SET_MOST of it, so the
        # page is ordered from it (never by walking the name index in order).
        found = " AND ".join(
            f"name_search LIKE :c{i} AND (' ' || name_search) LIKE :s{i}" for i in distinct
        )
        return Tier(
            "id",
            'name_search COLLATE "C"',
            'FROM found WHERE name_search COLLATE "C" NOT LIKE :prefix',
            cte="found AS MATERIALIZED (SELECT id, name_search FROM patients "  # nosec B608
            f"WHERE archived_at IS NULL AND {found} LIMIT {SET_MOST})",
        )
    # Short words only (the trigram index has nothing to look up): intersect word-index
    # ranges. The set first, then its patients by primary key: joined in one statement,
    # the planner overestimates the set and scans the whole patients table instead.
    word = "SELECT patient_id FROM patient_search_terms WHERE term LIKE :w"
    sets = " INTERSECT ".join(f"{word}{i}" for i in distinct)
    ids = list(db.session.scalars(text(f"{sets} LIMIT :_most"), {**params, "_most": SET_MOST}))
    return Tier(
        "id",
        'name_search COLLATE "C"',
        'FROM patients WHERE id = ANY(:ids) AND name_search COLLATE "C" NOT LIKE :prefix',
        {"ids": ids},
    )


def _needed(words: list[str]) -> list[int]:
    """The positions of the words that say something: a word repeated, or one that starts
    another query word, adds no condition ("kumar ku" asks what "kumar" asks)."""
    kept: list[int] = []
    for i, word in enumerate(words):
        longer = any(
            other.startswith(word) and (other != word or j < i) for j, other in enumerate(words)
        )
        if not longer:
            kept.append(i)
    return kept


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
    tiers = [
        Tier(
            "t.patient_id",
            "t.term",
            f"FROM patient_search_terms t WHERE t.term = :inside{k} "  # nosec B608
            "AND NOT EXISTS (SELECT 1 FROM patient_search_terms e "
            "  WHERE e.patient_id = t.patient_id "
            f"  AND (e.term LIKE :w0 OR e.term = ANY(:before{k})))",
            {f"inside{k}": word, f"before{k}": found[:k]},
            rough=f"SELECT 1 FROM patient_search_terms WHERE term = :inside{k}",  # nosec B608
        )
        for k, word in enumerate(found)
    ]
    return tiers, more


def _count_first_two(second: Tier, params: dict) -> list[int]:
    """The counts of tiers 1 and 2 in one statement, the second counted no further than
    the room the first leaves under CAP + 1."""
    sql = f"{_with(second)} SELECT first.n, second.n FROM first, second"  # nosec B608
    row = db.session.execute(text(sql), {**params, "_room": CAP + 1}).one()
    return [row[0], row[1]]


def _with(second: Tier) -> str:
    """The WITH clause counting tiers 1 and 2: `first` and `second`, one row each (`n`)."""
    room = "(SELECT :_room - n FROM first)"
    ctes = [second.cte] if second.cte else []
    ctes.append(f"first AS (SELECT {_name_starts().counted(':_room')} AS n)")
    ctes.append(f"second AS (SELECT {second.counted(room)} AS n)")
    return "WITH " + ", ".join(ctes)


def _first_page(second: Tier, limit: int, params: dict) -> tuple[list[int], list]:
    """The counts of tiers 1 and 2 and the rows of a first page that they hold, in one
    statement. Tier 2's slice is read only when tier 1 leaves room on the page, and cut
    here to the count (its rough count may have stopped it short of the rows read)."""
    first = _name_starts()
    sql = (
        f"{_with(second)} SELECT first.n AS _n1, second.n AS _n2, page._tier, {SELECTED} "  # nosec B608
        f"FROM first CROSS JOIN second LEFT JOIN ({first.page(0)} UNION ALL "
        f"(SELECT * FROM {second.page(1)} AS later WHERE (SELECT n FROM first) < :_limit1)"
        ") AS page ON true LEFT JOIN patients p ON p.id = page._id "
        'ORDER BY page._tier, page._key COLLATE "C", page._id'
    )
    bounds = {"_room": CAP + 1, "_limit0": limit, "_offset0": 0, "_limit1": limit, "_offset1": 0}
    got = db.session.execute(text(sql), {**params, **bounds}).all()
    counts = [got[0]._n1, got[0]._n2]
    rows = [row for row in got if row._tier == 0]
    rows += [row for row in got if row._tier == 1][: min(limit - len(rows), counts[1])]
    return counts, rows


def _count_inside(tiers: list[Tier], room: int, params: dict) -> list[int]:
    """The counts of the inside-a-word tiers in one statement, each no further than the
    room the tiers before it leave (as counting them one after the other would)."""
    if not tiers:
        return []
    # Each tier's rough count and, when that stays under `room`, its exact count: enough to
    # give each one its count under the smaller room the tiers before it leave.
    parts = " UNION ALL ".join(
        f"(SELECT {k} AS k, r.n, CASE WHEN r.n < :_room THEN "  # nosec B608
        f"(SELECT count(*) FROM ({tier.sql} LIMIT :_room) AS m) END "
        f"FROM (SELECT count(*) AS n FROM ({tier.rough} LIMIT :_room) AS x) AS r)"
        for k, tier in enumerate(tiers)
    )
    merged = {**params, "_room": room}
    for tier in tiers:
        merged.update(tier.params)
    rows = sorted(db.session.execute(text(parts), merged).all())
    counts = []
    for _, rough, exact in rows:
        left = room - sum(counts)
        counts.append(left if rough >= left else min(exact, left))
        if sum(counts) >= room:
            break
    return counts


def _page(counted: list[tuple[Tier, int]], offset: int, limit: int, params: dict) -> list:
    """The rows of one page: its slice of each tier it spans, with their patients' columns,
    in one statement."""
    slices = []
    merged = dict(params)
    for tier, count in counted:
        taken = sum(size for _, size in slices)
        if taken == limit:
            break
        if offset < count:
            n = len(slices)
            size = min(limit - taken, count - offset)
            merged.update(tier.params)
            merged[f"_limit{n}"], merged[f"_offset{n}"] = size, offset
            slices.append((tier.page(n), size))
            offset = 0
        else:
            offset -= count
    if not slices:
        return []
    union = " UNION ALL ".join(sql for sql, _ in slices)
    ctes = [tier.cte for tier, _ in counted if tier.cte]
    sql = (
        ("WITH " + ", ".join(ctes) + " " if ctes else "")
        + f"SELECT {SELECTED} FROM ({union}) AS page JOIN patients p ON p.id = page._id "  # nosec B608
        'ORDER BY page._tier, page._key COLLATE "C", page._id'
    )
    return list(db.session.execute(text(sql), merged))


def find(query: str, offset: int, limit: int) -> tuple[list, int, bool]:
    """Live patients matching a normalised name query, best first.

    Returns (rows of this page, with the COLUMNS, total, capped): `total` stops at CAP,
    and `capped` says there are more matches than that.
    """
    words = query.split()[:6]
    params: dict = {"prefix": like_escape(query) + "%"}
    for i, word in enumerate(words):
        escaped = like_escape(word)
        params[f"word{i}"] = word
        params[f"w{i}"] = escaped + "%"
        params[f"c{i}"] = "%" + escaped + "%"
        params[f"s{i}"] = "% " + escaped + "%"

    first, second = _name_starts(), _word_starts(words, params)
    params.update(second.params)
    if offset == 0:
        # The first page (nearly every search): its rows from tiers 1 and 2 come with the
        # counts. A later page needs the counts first to know where it starts.
        counts, rows = _first_page(second, limit, params)
    else:
        counts, rows = _count_first_two(second, params), []
    counted = list(zip((first, second), counts, strict=True))
    room = CAP + 1 - sum(counts)
    words_left_out = False
    if room > 0 and len(words) == 1:
        # Inside a word only for one word: several words are each taken as the start of a
        # word of the name, as people type them ("ravi sh").
        inside, words_left_out = _inside_a_word(params)
        counted += zip(inside, _count_inside(inside, room, params), strict=False)
    total = sum(count for _, count in counted)
    if offset > 0:
        rows = _page(counted, offset, limit, params)
    elif len(rows) < limit and len(counted) > 2:
        rows += _page(counted[2:], 0, limit - len(rows), params)
    return rows, min(total, CAP), total > CAP or words_left_out
