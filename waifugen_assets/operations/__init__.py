"""Operations: metrics, backups, credential ages (docs/runbooks/)."""
