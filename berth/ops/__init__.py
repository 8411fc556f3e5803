"""What is there now: berth status and logs (status.py) and berth doctor's diagnosis (doctor.py), read-only."""
