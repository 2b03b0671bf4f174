"""The study report: plots and the main job that reproduces every result."""
