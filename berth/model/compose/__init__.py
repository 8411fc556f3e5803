"""The compose model: files and their lines, interpolation as compose does it, services as the rules see them, and the resolved project."""
