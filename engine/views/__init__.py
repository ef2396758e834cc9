"""The plain-data models the screens and the report draw. See docs/architecture.md."""
