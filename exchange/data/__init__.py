"""Data files bcx ships: generated, never edited by hand (see each file's header)."""
