"""(to be written)"""

LINKS: tuple[tuple[str, str, str], ...] = ()
