//! PostgreSQL event store (being written; nothing here works yet).
