"""One Textual screen per runbook step (console part 1 and 2). Imports ``engine`` only."""
