"""The Textual App, its global bindings and the command line. Imports ``engine`` and ``screens``."""
