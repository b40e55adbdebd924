"""The `plugdeck` command."""
