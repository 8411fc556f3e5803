"""What runs on the server: commands built as text by pure functions (commands/, engines/), and the one
transport that runs them (transport/); session.py connects and reads the host's facts.
"""
