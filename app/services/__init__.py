"""Business rules. No HTTP objects, no commits: the caller owns the transaction."""
