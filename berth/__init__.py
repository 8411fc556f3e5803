"""berth: ship a docker-compose app to your own servers — check, sync by git, ship env, deploy, verify, record."""

__version__ = "0.1.0"
