"""The headless engine of Canary Console.

Everything that is not drawing lives here: the plan, the store, target access, the kill switch,
the executor, the sandbox. Nothing in this package imports Textual, Rich, ``screens`` or
``console``; ``tests/test_import_hygiene.py`` holds that line.
"""
