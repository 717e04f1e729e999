"""The local console that ``glassbox up`` serves on 127.0.0.1."""
