"""Scale-out: several daz instances on one PostgreSQL, each room leased to exactly one instance."""
