"""What the user configured: flags > berth.toml > .env resolved into a Target, the masker it implies, and the
document berth config prints.
"""
