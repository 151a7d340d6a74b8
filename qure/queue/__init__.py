"""The day's queue: check-in, walk-in, tokens, call next, the waiting-room board."""
