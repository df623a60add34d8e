"""Scheduled, incremental runs over an inbox of incoming feedback (ledger, store, alerts)."""
