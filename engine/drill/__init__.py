"""The sandbox, the self-test lab, the rehearsal, faults and the workload: what a production install never runs. See docs/architecture.md."""
