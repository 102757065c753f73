"""Screens pushed over the dashboard: endpoint detail, help, and the confirmation dialog for commands."""
