"""New files for the user's repository: berth init's deployment files (project.py) and generated secrets (secrets.py)."""
