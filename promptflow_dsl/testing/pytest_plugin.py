"""pytest fixtures for the loopback server."""
