"""Training PEFT candidates: frozen configs, a fingerprint-keyed adapter cache with a file
lock, and one trainer per component. Nothing here trains at import time."""
