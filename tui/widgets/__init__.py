"""Dashboard widgets: each renders the DashboardState it is bound to and nothing else."""
