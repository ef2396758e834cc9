"""The runbook's actions: one function per user action (role check, work, audit), called alike by the App, the CLI and the API. See docs/architecture.md."""
