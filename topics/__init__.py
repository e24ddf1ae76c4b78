"""The event catalogue: Avro schemas, the codec that frames them, and every topic posvenda uses."""
