"""HTTP layer: the Flask app factory and one blueprint per API area."""
