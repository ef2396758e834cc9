"""Everything that talks to something: the store, the target, collectors, Prometheus, kill-switch backends, webhooks. Imports engine.domain and other adapters. See docs/architecture.md."""
