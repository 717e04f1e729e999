"""`glassbox up`: Prometheus, Alertmanager, the notification inbox and the console on loopback."""
