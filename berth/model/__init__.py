"""What the user's files mean: compose files (load, interpolate, resolve), env files, Dockerfiles, the git
repository, release records read back; bounded reads of every user file.
"""
