"""In what order: the deploy pipeline as steps (steps.py), its decisions (decide.py), the lock, release
records, rollback, and berth plan rendered from the same steps.
"""
