"""The tlog monitor: follows logs, audits consistency, witnesses and gossips."""
