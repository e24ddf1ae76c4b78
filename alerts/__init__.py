"""Alert and recovery rules as data, their evaluation, and Prometheus rules."""
