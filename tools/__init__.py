"""The project's build tools (greenlens_build, component_venv), importable as tools.* from the repository root."""
