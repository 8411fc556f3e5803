"""Engines run the compose app on servers: compose (one server) now; swarm and kubernetes later."""
