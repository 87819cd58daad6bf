"""Simulated outside systems (journal, and later SPAR, accounts, mailboxes) for demo and tests."""
