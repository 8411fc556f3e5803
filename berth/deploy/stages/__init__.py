"""What each step does on a host: preflight, sync, ship the env file, compose build/up, hooks, verify."""
