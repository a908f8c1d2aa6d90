"""All SQL lives here; services call these functions and never build queries."""
